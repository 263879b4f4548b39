//! Translating between host pids (what seccomp notifications carry) and the sandbox's pids
//! (what the program sees).

use std::fs;
use std::path::PathBuf;

/// A process of the sandbox, as the Sentry sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub host: i32,
    /// Its pid inside the sandbox's pid namespace.
    pub ns: i32,
}

/// Reads `NStgid`/`NSpid` from the host's `/proc/<tid>/status`: (tgid, tid) inside the
/// innermost pid namespace, and the host tgid.
pub fn ns_ids(host_tid: i32) -> Option<(i32, i32, i32)> {
    let s = fs::read_to_string(format!("/proc/{host_tid}/status")).ok()?;
    let last = |key: &str| -> Option<i32> {
        s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().last()).and_then(|v| v.parse().ok())
    };
    let host_tgid = s.lines().find(|l| l.starts_with("Tgid:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((last("NStgid:")?, last("NSpid:")?, host_tgid))
}

/// The sandbox's processes, from its cgroup (the Sentry itself, which lives outside the
/// sandbox's pid namespace, is left out).
pub fn list(cgroup_procs: &[PathBuf]) -> Vec<Proc> {
    let mut out = Vec::new();
    let Some(procs) = cgroup_procs.first() else { return out };
    for line in fs::read_to_string(procs).unwrap_or_default().lines() {
        let Ok(host) = line.trim().parse::<i32>() else { continue };
        let Ok(s) = fs::read_to_string(format!("/proc/{host}/status")) else { continue };
        let Some(ns) = s.lines().find(|l| l.starts_with("NStgid:")) else { continue };
        let ids: Vec<i32> = ns.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        if ids.len() >= 2 {
            out.push(Proc { host, ns: *ids.last().unwrap_or(&0) });
        }
    }
    out.sort_by_key(|p| p.ns);
    out
}

/// Host pid of sandbox pid `ns`.
pub fn host_of(cgroup_procs: &[PathBuf], ns: i32) -> Option<i32> {
    list(cgroup_procs).into_iter().find(|p| p.ns == ns).map(|p| p.host)
}

/// Host tids of the threads of host process `host`, with their sandbox tids.
pub fn threads(host: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    for e in fs::read_dir(format!("/proc/{host}/task")).into_iter().flatten().flatten() {
        let Ok(t) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if let Some((_, ns_tid, _)) = ns_ids(t) {
            out.push(Proc { host: t, ns: ns_tid });
        }
    }
    out.sort_by_key(|p| p.ns);
    out
}
