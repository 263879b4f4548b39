//! Capability and rlimit names as OCI specs spell them.

const CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

const RLIMITS: [&str; 16] = [
    "CPU",
    "FSIZE",
    "DATA",
    "STACK",
    "CORE",
    "RSS",
    "NPROC",
    "NOFILE",
    "MEMLOCK",
    "AS",
    "LOCKS",
    "SIGPENDING",
    "MSGQUEUE",
    "NICE",
    "RTPRIO",
    "RTTIME",
];

/// Every capability this table knows, as OCI names (`features`).
pub fn all_caps() -> Vec<String> {
    CAPS.iter().map(|c| format!("CAP_{c}")).collect()
}

/// Bit mask of a list such as `["CAP_CHOWN", "CAP_KILL"]`. Unknown names are an error: a
/// capability silently missing would change what the program may do.
pub fn caps_mask(names: &[String]) -> Result<u64, String> {
    names.iter().try_fold(0u64, |m, n| {
        let bare = n.strip_prefix("CAP_").unwrap_or(n);
        CAPS.iter()
            .position(|c| c.eq_ignore_ascii_case(bare))
            .map(|i| m | 1 << i)
            .ok_or_else(|| format!("unknown capability '{n}' in config.json: use names such as CAP_CHOWN"))
    })
}

/// `RLIMIT_NOFILE` → 7.
pub fn rlimit(name: &str) -> Result<u32, String> {
    let bare = name.strip_prefix("RLIMIT_").unwrap_or(name);
    RLIMITS
        .iter()
        .position(|r| r.eq_ignore_ascii_case(bare))
        .map(|i| i as u32)
        .ok_or_else(|| format!("unknown rlimit '{name}' in config.json: use names such as RLIMIT_NOFILE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kernel_numbers() {
        assert_eq!(caps_mask(&["CAP_CHOWN".into(), "CAP_SYS_ADMIN".into()]).unwrap(), 1 | 1 << 21);
        assert_eq!(caps_mask(&["CAP_CHECKPOINT_RESTORE".into()]).unwrap(), 1 << 40);
        assert!(caps_mask(&["CAP_FLY".into()]).unwrap_err().contains("CAP_FLY"));
        assert_eq!(rlimit("RLIMIT_NOFILE").unwrap(), libc::RLIMIT_NOFILE);
        assert_eq!(rlimit("RLIMIT_RTTIME").unwrap(), libc::RLIMIT_RTTIME);
        assert!(rlimit("RLIMIT_X").is_err());
    }
}
