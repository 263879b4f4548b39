//! Translating between host pids (what seccomp notifications carry) and the sandbox's pids
//! (what the program sees).

use crate::sentry::host;

/// A process (or thread) of the sandbox, as the Sentry sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    pub host: i32,
    /// Its id inside the sandbox's pid namespace.
    pub ns: i32,
}

/// The innermost-namespace values of an `NS*` line of a host `status` file.
fn ns_field(status: &str, key: &str) -> Vec<i32> {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default()
}

/// (tgid, tid) inside the sandbox's pid namespace and the host tgid, for host thread
/// `host_tid`.
pub fn ns_ids(host_tid: i32) -> Option<(i32, i32, i32)> {
    let s = host::read_string(&format!("{host_tid}/status")).ok()?;
    let host_tgid = s.lines().find(|l| l.starts_with("Tgid:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((*ns_field(&s, "NStgid:").last()?, *ns_field(&s, "NSpid:").last()?, host_tgid))
}

/// Sandbox pid of host pid `host` (0 when it is outside the sandbox, like init's parent).
pub fn ns_of(host: i32) -> i32 {
    if host <= 0 {
        return 0;
    }
    let Ok(s) = host::read_string(&format!("{host}/status")) else { return 0 };
    let ids = ns_field(&s, "NStgid:");
    if ids.len() >= 2 {
        *ids.last().unwrap_or(&0)
    } else {
        0
    }
}

/// The sandbox's processes, from its cgroup (the Sentry itself, outside the sandbox's pid
/// namespace, is left out).
pub fn list() -> Vec<Proc> {
    let mut out: Vec<Proc> = host::cgroup_read("cgroup.procs")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .filter_map(|host| {
            let ns = ns_of(host);
            (ns > 0).then_some(Proc { host, ns })
        })
        .collect();
    out.sort_by_key(|p| p.ns);
    out
}

/// Host pid of sandbox pid `ns`.
pub fn host_of(ns: i32) -> Option<i32> {
    list().into_iter().find(|p| p.ns == ns).map(|p| p.host)
}

/// The threads of host process `host`, with their sandbox tids.
pub fn threads(host: i32) -> Vec<Proc> {
    let mut out: Vec<Proc> = host::list(&format!("{host}/task"))
        .unwrap_or_default()
        .iter()
        .filter_map(|t| std::str::from_utf8(t).ok()?.parse::<i32>().ok())
        .filter_map(|t| ns_ids(t).map(|(_, ns, _)| Proc { host: t, ns }))
        .collect();
    out.sort_by_key(|p| p.ns);
    out
}
