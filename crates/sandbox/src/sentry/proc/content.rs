//! Contents of the synthetic `/proc` files.

use super::pids;
use super::{Entry, Info, Kind, Magic};
use crate::sentry::host;
use crate::sentry::notify::SysResult;
use std::fmt::Write as _;

fn host_file(pid: i32, name: &str) -> SysResult<Vec<u8>> {
    host::read(&format!("{pid}/{name}"))
}

/// Files of the sandbox's own processes that need no translation.
pub fn pass_through(host: i32, name: &str) -> SysResult<Vec<u8>> {
    host_file(host, name)
}

pub fn fd_list(pid: i32) -> Vec<Vec<u8>> {
    let mut fds: Vec<i32> = host::list(&format!("{pid}/fd"))
        .unwrap_or_default()
        .iter()
        .filter_map(|e| std::str::from_utf8(e).ok()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds.into_iter().map(|f| f.to_string().into_bytes()).collect()
}

pub fn fd_exists(pid: i32, fd: i32) -> bool {
    host::exists(&format!("{pid}/fd/{fd}"))
}

pub fn magic_text(m: Magic) -> SysResult<Vec<u8>> {
    let link = match m {
        Magic::Fd { tid, fd } => format!("{tid}/fd/{fd}"),
        Magic::Exe { tid } => format!("{tid}/exe"),
        Magic::Cwd { tid } => format!("{tid}/cwd"),
        Magic::Ns { tid, name } => format!("{tid}/ns/{name}"),
        Magic::Root { .. } => return Ok(b"/".to_vec()),
    };
    host::read_link(&link)
}

use super::pids::ns_of;

/// `status` with pid fields as the sandbox sees them.
fn status(host: i32) -> SysResult<Vec<u8>> {
    let s = String::from_utf8_lossy(&host_file(host, "status")?).into_owned();
    let last = |key: &str| {
        s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().last()).unwrap_or("0").to_string()
    };
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let (key, _) = line.split_once(':').unwrap_or((line, ""));
        let v = match key {
            "Tgid" => last("NStgid:"),
            "Pid" => last("NSpid:"),
            "PPid" => {
                let ppid: i32 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                ns_of(ppid).to_string()
            }
            "TracerPid" => "0".into(),
            "NStgid" => last("NStgid:"),
            "NSpid" => last("NSpid:"),
            "NSpgid" => last("NSpgid:"),
            "NSsid" => last("NSsid:"),
            _ => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        let _ = writeln!(out, "{key}:\t{v}");
    }
    Ok(out.into_bytes())
}

/// `stat` with pid, ppid, pgrp, session and tpgid translated.
fn stat(host: i32, ns: i32) -> SysResult<Vec<u8>> {
    let s = String::from_utf8_lossy(&host_file(host, "stat")?).into_owned();
    let status = String::from_utf8_lossy(&host_file(host, "status")?).into_owned();
    let last = |key: &str| {
        status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().last()).unwrap_or("0").to_string()
    };
    let close = s.rfind(')').ok_or(libc::EIO)?;
    let comm = &s[s.find('(').unwrap_or(0)..=close];
    let mut f: Vec<String> = s[close + 2..].split(' ').map(String::from).collect();
    if f.len() > 5 {
        f[1] = ns_of(f[1].parse().unwrap_or(0)).to_string();
        f[2] = last("NSpgid:");
        f[3] = last("NSsid:");
        f[5] = "-1".into();
    }
    Ok(format!("{ns} {comm} {}", f.join(" ")).into_bytes())
}

use crate::launch::PROC_PLACEHOLDER;

/// The sandbox's mounts, with nothing of the host in them (see [`sanitize_mounts`]).
fn mounts(host: i32, info: bool, bind_roots: bool) -> SysResult<Vec<u8>> {
    let raw = String::from_utf8_lossy(&host_file(host, if info { "mountinfo" } else { "mounts" })?).into_owned();
    Ok(sanitize_mounts(&raw, info, bind_roots).into_bytes())
}

/// The kernel's `mounts` or `mountinfo` (`info`) text without what it says about the host: a
/// bind mount's root is its path in the host's filesystem (the data directory), a device
/// source names the host's disk, and filesystem options carry host paths (overlayfs' layers)
/// and the sandbox's host uid range (`uid=`, `gid=` of tmpfs and devpts). What stays: mount
/// points, filesystem types, and whether each is read-only; with `bind_roots` (an OCI
/// container, see [`Info::bind_roots`]), also each mount's root.
fn sanitize_mounts(raw: &str, info: bool, bind_roots: bool) -> String {
    let neutral =
        |source: &str, fstype: &str| if source.starts_with('/') { fstype.to_string() } else { source.to_string() };
    let only_rw = |opts: &str| if opts.split(',').any(|o| o == "ro") { "ro" } else { "rw" };
    let mut out = String::new();
    for line in raw.lines() {
        let mut f: Vec<String> = line.split(' ').map(String::from).collect();
        if info {
            // id parent dev root mountpoint options [optional...] - fstype source super-options
            let Some(dash) = f.iter().position(|x| x == "-") else { continue };
            if dash < 6 || f.len() < dash + 4 {
                continue;
            }
            if !bind_roots {
                f[3] = "/".into();
            }
            if f[dash + 2] == PROC_PLACEHOLDER {
                // The placeholder under the Sentry's /proc: shown as what the program sees.
                f[5] = "rw,nosuid,nodev,noexec,relatime".into();
                f[dash + 1] = "proc".into();
                f[dash + 2] = "proc".into();
                f[dash + 3] = "rw".into();
            }
            f[dash + 2] = neutral(&f[dash + 2], &f[dash + 1]);
            f[dash + 3] = only_rw(&f[dash + 3]).into();
            f.truncate(dash + 4);
        } else {
            // source mountpoint fstype options dump pass
            if f.len() < 4 {
                continue;
            }
            if f[0] == PROC_PLACEHOLDER {
                f[0] = "proc".into();
                f[2] = "proc".into();
                f[3] = "rw".into();
            }
            f[0] = neutral(&f[0], &f[2]);
            let mount_ro = f[3].split(',').any(|o| o == "ro");
            f[3] = if mount_ro { "ro" } else { "rw" }.into();
        }
        out.push_str(&f.join(" "));
        out.push('\n');
    }
    out
}

pub fn per_process(info: &Info, host: i32, ns: i32, name: &[u8]) -> SysResult<Vec<u8>> {
    match name {
        b"status" => status(host),
        b"stat" => stat(host, ns),
        b"mounts" => mounts(host, false, info.bind_roots),
        b"mountinfo" => mounts(host, true, info.bind_roots),
        b"cgroup" => Ok(b"0::/\n".to_vec()),
        b"loginuid" | b"sessionid" => Ok(b"4294967295".to_vec()),
        b"statm" | b"cmdline" | b"environ" | b"limits" | b"smaps" | b"smaps_rollup" | b"auxv" | b"oom_score"
        | b"uid_map" | b"gid_map" | b"setgroups" | b"io" => host_file(host, std::str::from_utf8(name).unwrap_or("")),
        _ => Err(libc::ENOENT),
    }
}

/// Memory use from the sandbox's cgroup: (used, file cache, shmem).
fn cgroup_memory() -> (u64, u64, u64) {
    let read = |f: &str| host::cgroup_read(f).and_then(|s| s.trim().parse::<u64>().ok());
    let used = read("memory.usage_in_bytes").or_else(|| read("memory.current")).unwrap_or(0);
    let stat = host::cgroup_read("memory.stat").unwrap_or_default();
    let key = |k: &str| crate::cgroup::keyed_value(&stat, k).unwrap_or(0);
    let file = key("cache").max(key("file"));
    (used, file, key("shmem"))
}

/// CPUs the sandbox's share amounts to (at least one).
pub fn cpus(info: &Info) -> u64 {
    let host = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
    info.millicpu.div_ceil(1000).clamp(1, host)
}

fn meminfo(info: &Info) -> Vec<u8> {
    let (used, file, shmem) = cgroup_memory();
    let kb = |b: u64| b / 1024;
    let total = info.memory_limit;
    let free = total.saturating_sub(used);
    let avail = free + file.saturating_sub(shmem).min(used);
    let mut s = String::new();
    for (k, v) in [
        ("MemTotal", kb(total)),
        ("MemFree", kb(free)),
        ("MemAvailable", kb(avail)),
        ("Buffers", 0),
        ("Cached", kb(file)),
        ("SwapCached", 0),
        ("Active", kb(used)),
        ("Inactive", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", kb(used.saturating_sub(file))),
        ("Mapped", 0),
        ("Shmem", kb(shmem)),
        ("CommitLimit", kb(total)),
        ("Committed_AS", kb(used)),
        ("HugePages_Total", 0),
        ("HugePages_Free", 0),
        ("Hugepagesize", 2048),
    ] {
        let unit = if k.starts_with("HugePages_") { "" } else { " kB" };
        let _ = writeln!(s, "{:<16}{:>8}{unit}", format!("{k}:"), v);
    }
    s.into_bytes()
}

fn cpuinfo(info: &Info) -> Vec<u8> {
    let host = host::read_string("cpuinfo").unwrap_or_default();
    let first = host.split("\n\n").next().unwrap_or("").to_string();
    let mut s = String::new();
    for i in 0..cpus(info) {
        for line in first.lines() {
            let key = line.split(':').next().unwrap_or("").trim();
            match key {
                "processor" | "core id" | "apicid" | "initial apicid" => {
                    let _ = writeln!(s, "{key}\t\t: {i}");
                }
                "siblings" | "cpu cores" => {
                    let _ = writeln!(s, "{key}\t: {}", cpus(info));
                }
                _ => {
                    s.push_str(line);
                    s.push('\n');
                }
            }
        }
        s.push('\n');
    }
    s.into_bytes()
}

fn proc_stat(info: &Info) -> Vec<u8> {
    let btime = host::read_string("stat")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("btime"))
        .map(String::from)
        .unwrap_or_else(|| "btime 0".into());
    let mut s = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
    for i in 0..cpus(info) {
        let _ = writeln!(s, "cpu{i} 0 0 0 0 0 0 0 0 0 0");
    }
    let procs = pids::count();
    let _ = write!(s, "intr 0\nctxt 0\n{btime}\nprocesses {procs}\nprocs_running 1\nprocs_blocked 0\n");
    s.into_bytes()
}

fn release() -> (String, String) {
    crate::sys::kernel_release()
}

pub fn global(info: &Info, name: &[u8]) -> SysResult<Vec<u8>> {
    match name {
        b"meminfo" => Ok(meminfo(info)),
        b"cpuinfo" => Ok(cpuinfo(info)),
        b"stat" => Ok(proc_stat(info)),
        b"uptime" => host::read("uptime"),
        b"loadavg" => {
            let n = pids::count();
            Ok(format!("0.00 0.00 0.00 1/{n} {n}\n").into_bytes())
        }
        b"version" => {
            let (r, v) = release();
            Ok(format!("Linux version {r} (fnbox sentry) {v}\n").into_bytes())
        }
        b"filesystems" => host::read("filesystems"),
        // The kernel's build options (test suites check for features with it); as public as
        // `uname`.
        b"config.gz" => host::read("config.gz"),
        // There and inert: a container's read-only kernel views (see proc::GLOBAL).
        b"sysrq-trigger" => Ok(Vec::new()),
        _ => Err(libc::ENOENT),
    }
}

/// `/proc/sys` files of the System V IPC namespace: the Sentry joined the sandbox's, so the
/// host's `/proc` shows it the sandbox's own values.
const IPC_SYS: &[&str] = &[
    "kernel/shmmax",
    "kernel/shmall",
    "kernel/shmmni",
    "kernel/msgmax",
    "kernel/msgmnb",
    "kernel/msgmni",
    "kernel/sem",
    "kernel/shm_rmid_forced",
];

/// `/proc/sysvipc/{shm,msg,sem}`: the sandbox's own IPC objects (see [`IPC_SYS`]).
pub fn sysvipc(rest: &[Vec<u8>]) -> SysResult<Entry> {
    match rest {
        [] => Ok(Entry::Dir(["shm", "msg", "sem"].iter().map(|n| (n.as_bytes().to_vec(), Kind::File)).collect())),
        [n] if [&b"shm"[..], b"msg", b"sem"].contains(&n.as_slice()) => {
            host::read(&format!("sysvipc/{}", String::from_utf8_lossy(n))).map(Entry::File)
        }
        [_] => Err(libc::ENOENT),
        _ => Err(libc::ENOTDIR),
    }
}

/// `/proc/sys`: the few values programs read.
pub fn sys(info: &Info, rest: &[Vec<u8>]) -> SysResult<Entry> {
    let (release, version) = release();
    let uuid = || {
        let h = crate::sys::random_hex(16);
        format!("{}-{}-4{}-a{}-{}\n", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    };
    let tree: Vec<(&str, String)> = vec![
        ("kernel/hostname", format!("{}\n", info.hostname)),
        ("kernel/osrelease", format!("{release}\n")),
        ("kernel/ostype", "Linux\n".into()),
        ("kernel/version", format!("{version}\n")),
        ("kernel/pid_max", "4194304\n".into()),
        ("kernel/threads-max", "63390\n".into()),
        ("kernel/ngroups_max", "65536\n".into()),
        ("kernel/cap_last_cap", "40\n".into()),
        ("kernel/tainted", "0\n".into()),
        ("kernel/domainname", "(none)\n".into()),
        ("kernel/core_pattern", "core\n".into()),
        ("kernel/random/uuid", uuid()),
        ("kernel/random/boot_id", uuid()),
        ("kernel/random/entropy_avail", "256\n".into()),
        ("kernel/random/poolsize", "256\n".into()),
        ("vm/overcommit_memory", "0\n".into()),
        ("vm/max_map_count", "65530\n".into()),
        ("fs/file-max", "9223372036854775807\n".into()),
        ("fs/nr_open", "1048576\n".into()),
        ("fs/pipe-max-size", "1048576\n".into()),
        ("fs/pipe-user-pages-soft", "16384\n".into()),
        ("fs/inotify/max_user_watches", "65536\n".into()),
        ("fs/inotify/max_user_instances", "128\n".into()),
        ("fs/inotify/max_queued_events", "16384\n".into()),
        ("net/core/somaxconn", "4096\n".into()),
    ];
    let want: Vec<&[u8]> = rest.iter().map(|c| c.as_slice()).collect();
    let path = want.iter().map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join("/");
    if IPC_SYS.contains(&path.as_str()) {
        return host::read(&format!("sys/{path}")).map(Entry::File);
    }
    if let Some((_, v)) = tree.iter().find(|(k, _)| *k == path) {
        return Ok(Entry::File(v.clone().into_bytes()));
    }
    let tree: Vec<(&str, String)> = tree.into_iter().chain(IPC_SYS.iter().map(|k| (*k, String::new()))).collect();
    // A directory: the next component of every key below it.
    let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
    let mut list: Vec<(Vec<u8>, Kind)> = Vec::new();
    for (k, _) in &tree {
        if let Some(rest) = k.strip_prefix(&prefix) {
            let (name, kind) = match rest.split_once('/') {
                Some((d, _)) => (d, Kind::Dir),
                None => (rest, Kind::File),
            };
            if !list.iter().any(|(n, _)| n == name.as_bytes()) {
                list.push((name.as_bytes().to_vec(), kind));
            }
        }
    }
    if list.is_empty() {
        return Err(libc::ENOENT);
    }
    Ok(Entry::Dir(list))
}

#[cfg(test)]
mod tests {
    use super::sanitize_mounts;

    const INFO: &str = "\
69 85 254:0 /usr /usr ro,nosuid,nodev,relatime,idmapped - ext4 /dev/vda rw,discard,resuid=65534,resgid=65534
71 85 254:0 /var/lib/fnbox/code/ab12 /code ro,nosuid,nodev,relatime,idmapped - ext4 /dev/vda rw,discard
74 85 0:44 / /dev rw,nosuid,noexec,relatime shared:4 - tmpfs tmpfs rw,size=0k,mode=755,uid=1364525056,gid=1364525056
85 45 0:46 / / rw,relatime - overlay fnbox-root rw,lowerdir=/run/fnbox/stage/lower,upperdir=/run/fnbox/stage/disk/upper
86 85 0:47 / /proc ro,nosuid,nodev,noexec,relatime - tmpfs fnbox-proc rw,size=4k,mode=000,uid=1364525056
";

    #[test]
    fn mountinfo_keeps_mount_points_and_types_and_loses_the_host() {
        let out = sanitize_mounts(INFO, true, false);
        for host in ["/var/lib", "/run/fnbox", "/dev/vda", "1364525056", "resuid", "lowerdir"] {
            assert!(!out.contains(host), "{host} in:\n{out}");
        }
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "71 85 254:0 / /code ro,nosuid,nodev,relatime,idmapped - ext4 ext4 rw");
        assert_eq!(lines[2], "74 85 0:44 / /dev rw,nosuid,noexec,relatime shared:4 - tmpfs tmpfs rw");
        assert_eq!(lines[3], "85 45 0:46 / / rw,relatime - overlay fnbox-root rw");
        assert_eq!(lines[4], "86 85 0:47 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw");
    }

    #[test]
    fn a_containers_mountinfo_keeps_each_bind_roots_as_runc_shows_it() {
        let out = sanitize_mounts(INFO, true, true);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "69 85 254:0 /usr /usr ro,nosuid,nodev,relatime,idmapped - ext4 ext4 rw");
        assert_eq!(lines[3], "85 45 0:46 / / rw,relatime - overlay fnbox-root rw");
        // Still shown as what the program sees, and still without the host's disk and options.
        assert_eq!(lines[4], "86 85 0:47 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw");
        for host in ["/dev/vda", "1364525056", "lowerdir"] {
            assert!(!out.contains(host), "{host} in:\n{out}");
        }
    }

    #[test]
    fn mounts_lose_the_host_too() {
        let raw = "/dev/vda /code ext4 ro,nosuid,relatime,idmapped 0 0\ntmpfs /tmp tmpfs rw,uid=1364525056 0 0\n";
        assert_eq!(sanitize_mounts(raw, false, false), "ext4 /code ext4 ro 0 0\ntmpfs /tmp tmpfs rw 0 0\n");
    }
}
