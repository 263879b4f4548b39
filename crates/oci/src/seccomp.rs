//! `linux.seccomp` → a profile fnbox's seccomp compiler takes (v1).

use crate::config;
use fnbox_sandbox::seccomp::profile::{ArgTest, Profile, ProfileAction, SyscallRule};

fn action(name: &str, errno: Option<u32>) -> Result<ProfileAction, String> {
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    Ok(match name {
        "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG" => ProfileAction::Allow,
        "SCMP_ACT_ERRNO" => ProfileAction::Errno(errno),
        // Without a tracer, libseccomp's TRACE fails the call with ENOSYS.
        "SCMP_ACT_TRACE" => ProfileAction::Errno(libc::ENOSYS),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" | "SCMP_ACT_KILL_PROCESS" | "SCMP_ACT_TRAP" => ProfileAction::Kill,
        other => {
            return Err(format!(
                "seccomp action {other} in config.json is not supported by fnbox: use SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL or SCMP_ACT_LOG"
            ))
        }
    })
}

fn test(a: &config::SeccompArg) -> Result<(u8, ArgTest), String> {
    if a.index > 5 {
        return Err(format!("seccomp argument index {} in config.json is out of range (0 to 5)", a.index));
    }
    let t = match a.op.as_str() {
        "SCMP_CMP_EQ" => ArgTest::Eq(a.value),
        "SCMP_CMP_NE" => ArgTest::Ne(a.value),
        "SCMP_CMP_MASKED_EQ" => ArgTest::MaskedEq { mask: a.value, value: a.value_two },
        other => {
            return Err(format!(
                "seccomp operator {other} in config.json is not supported by fnbox: use SCMP_CMP_EQ, SCMP_CMP_NE or SCMP_CMP_MASKED_EQ"
            ))
        }
    };
    Ok((a.index as u8, t))
}

pub fn profile(s: &config::Seccomp) -> Result<Profile, String> {
    let default = action(&s.default_action, s.default_errno_ret)?;
    let mut syscalls = Vec::new();
    for entry in &s.syscalls {
        let action = action(&entry.action, entry.errno_ret)?;
        let args: Vec<(u8, ArgTest)> = entry.args.iter().map(test).collect::<Result<_, _>>()?;
        for name in &entry.names {
            syscalls.push(SyscallRule { name: name.clone(), action, args: args.clone() });
        }
    }
    Ok(Profile { default, syscalls })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_style_profile_converts() {
        let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                        {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                        {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#;
        let s: config::Seccomp = serde_json::from_str(json).unwrap();
        let p = profile(&s).unwrap();
        assert_eq!(p.default, ProfileAction::Errno(1));
        assert_eq!(p.syscalls.len(), 4);
        assert_eq!(p.syscalls[3].args, vec![(0, ArgTest::MaskedEq { mask: 2114060288, value: 0 })]);
        let bad: config::Seccomp =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_NOTIFY","syscalls":[]}"#).unwrap();
        assert!(profile(&bad).unwrap_err().contains("SCMP_ACT_NOTIFY"));
    }
}
