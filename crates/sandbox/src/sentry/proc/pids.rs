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

/// The host tgid in a host `status` file.
pub fn tgid_field(status: &str) -> Option<i32> {
    status.lines().find_map(|l| l.strip_prefix("Tgid:"))?.trim().parse().ok()
}

/// (tgid, tid) inside the sandbox's pid namespace and the host tgid, for host thread
/// `host_tid`.
pub fn ns_ids(host_tid: i32) -> Option<(i32, i32, i32)> {
    let s = host::read_string(&format!("{host_tid}/status")).ok()?;
    Some((*ns_field(&s, "NStgid:").last()?, *ns_field(&s, "NSpid:").last()?, tgid_field(&s)?))
}

/// Who a host thread is, from its host `status` file: what deciding whether another may
/// inspect it takes.
pub struct Owner {
    /// Its process (host tgid).
    pub tgid: i32,
    /// Its real, effective and saved uids.
    pub uids: [u32; 3],
    /// Its real, effective and saved gids.
    pub gids: [u32; 3],
}

/// [`Owner`] of host thread `host_tid` (one read of its `status`).
pub fn owner(host_tid: i32) -> Option<Owner> {
    let s = host::read_string(&format!("{host_tid}/status")).ok()?;
    let three = |key: &str| -> Option<[u32; 3]> {
        let v: Vec<u32> = s
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .take(3)
            .filter_map(|x| x.parse().ok())
            .collect();
        v.try_into().ok()
    };
    Some(Owner { tgid: tgid_field(&s)?, uids: three("Uid:")?, gids: three("Gid:")? })
}

/// Whether host thread `tid` is of process `tgid` (host ids; no read when `tid` is its
/// main thread; never for tgid 0, no process).
pub fn in_process(tid: i32, tgid: i32) -> bool {
    tgid > 0
        && (tid == tgid || host::read_string(&format!("{tid}/status")).ok().and_then(|s| tgid_field(&s)) == Some(tgid))
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
    let mut out: Vec<Proc> = in_cgroup()
        .into_iter()
        .filter_map(|host| {
            let ns = ns_of(host);
            (ns > 0).then_some(Proc { host, ns })
        })
        .collect();
    out.sort_by_key(|p| p.ns);
    out
}

/// How many processes the sandbox has (`sysinfo`'s `procs`, `/proc/loadavg`, `/proc/stat`):
/// its cgroup's, the Sentry left out. A count from one read of `cgroup.procs`, where
/// [`list`] reads every process's `status` for its sandbox pid (about 20 us for two
/// processes, on every `sysinfo`, which every Python start makes). A process joining the
/// cgroup from outside the pid namespace (`exec`'s helper, for the moment before it enters)
/// is counted as the sandbox's a moment early.
pub fn count() -> usize {
    let me = std::process::id() as i32;
    in_cgroup().into_iter().filter(|&p| p != me).count()
}

/// The host pids in the sandbox's cgroup (`cgroup.procs`), the Sentry's among them.
fn in_cgroup() -> Vec<i32> {
    host::cgroup_read("cgroup.procs").unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Host pid of sandbox pid `ns`. A zombie has left its cgroup's `cgroup.procs` but still has
/// its `/proc/<pid>` until its parent reaps it (programs wait for the `Z` in its `stat`): when
/// `ns` is not a live process, the host's processes whose parent is one of the sandbox's are
/// searched for it.
pub fn host_of(ns: i32) -> Option<i32> {
    if let Some(host) = cached(ns) {
        return Some(host);
    }
    let live = list();
    remember(&live);
    if let Some(p) = live.iter().find(|p| p.ns == ns) {
        return Some(p.host);
    }
    let parents: std::collections::HashSet<i32> = live.iter().map(|p| p.host).collect();
    host::list(".").ok()?.iter().filter_map(|n| std::str::from_utf8(n).ok()?.parse::<i32>().ok()).find(|&host| {
        let Ok(s) = host::read_string(&format!("{host}/status")) else { return false };
        let ppid = s.lines().find(|l| l.starts_with("PPid:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
        let ids = ns_field(&s, "NStgid:");
        ids.len() >= 2 && ids.last() == Some(&ns) && ppid.is_some_and(|pp| parents.contains(&pp))
    })
}

/// The sandbox pids last listed, and the cgroup they were in. A program that waits for each of
/// a thousand children to sleep reads `/proc/<pid>/stat` a thousand times: a lookup must not
/// list every process each time.
/// (the sandbox's `/proc/<pid>/cgroup` text, sandbox pid → host pid).
type Known = (Vec<u8>, std::collections::HashMap<i32, i32>);
static CACHE: std::sync::Mutex<Option<Known>> = std::sync::Mutex::new(None);

/// `/proc/<pid>/cgroup` of a host process (readable whoever it belongs to, dumpable or not).
fn cgroup_of(host: i32) -> Option<Vec<u8>> {
    host::read(&format!("{host}/cgroup")).ok()
}

/// A cached host pid for `ns`, if it still is that process: in the sandbox's cgroup, with the
/// same pid in its innermost pid namespace (a host pid reused elsewhere fails the first test).
fn cached(ns: i32) -> Option<i32> {
    let (group, host) = {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let (group, map) = cache.as_ref()?;
        (group.clone(), *map.get(&ns)?)
    };
    (cgroup_of(host)? == group && ns_of(host) == ns).then_some(host)
}

fn remember(live: &[Proc]) {
    let Some(group) = live.iter().find_map(|p| cgroup_of(p.host)) else { return };
    let map = live.iter().map(|p| (p.ns, p.host)).collect();
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) = Some((group, map));
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
