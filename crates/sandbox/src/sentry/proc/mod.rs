//! The synthetic `/proc`: what a program in v2 sees instead of the host's procfs.
//!
//! Entries are generated on demand from the sandbox's own facts (its memory limit and CPU
//! share, its processes translated into its pid namespace) and from the host's per-process
//! files for the sandbox's own processes only. Nothing about other processes of the host is
//! ever shown.

mod content;
pub mod pids;

use super::notify::SysResult;
use std::time::Instant;

/// Facts about the sandbox the synthetic files report.
pub struct Info {
    pub memory_limit: u64,
    pub millicpu: u64,
    pub hostname: String,
    pub started: Instant,
    /// Whether `mountinfo` shows a bind mount's root (its path in the filesystem it comes
    /// from). On for OCI containers, whose mounts are the bundle owner's own paths (runc shows
    /// them too); off for functions, whose binds come from fnbox's data directory.
    pub bind_roots: bool,
}

/// The kind of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Link,
}

/// A magic link: opening it opens what it points to, whatever its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// Descriptor `fd` of host thread `tid`.
    Fd {
        tid: i32,
        fd: i32,
    },
    Exe {
        tid: i32,
    },
    Cwd {
        tid: i32,
    },
    Root {
        tid: i32,
    },
    /// One of the task's namespaces (`ns/uts`): opened, an nsfs descriptor for `ioctl(NS_GET_*)`
    /// and comparisons; joining one is refused (`setns` is unsupported).
    Ns {
        tid: i32,
        name: &'static str,
    },
}

/// The entries of `/proc/<pid>/ns`.
const NAMESPACES: &[&str] =
    &["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"];

/// A resolved `/proc` entry.
#[derive(Debug)]
pub enum Entry {
    Dir(Vec<(Vec<u8>, Kind)>),
    File(Vec<u8>),
    /// A plain symlink (`self`, `mounts`, ...) and its target text.
    Link(Vec<u8>),
    Magic(Magic),
    /// A file whose value the kernel keeps for the task (`oom_score_adj`, `comm`): opened on
    /// the host's procfs for the sandbox's own task, so a write reaches the kernel, which
    /// checks it, keeps it per task and passes it on across `fork`, and a read shows it back.
    Task {
        tid: i32,
        name: &'static str,
    },
}

/// What resolving a `/proc` path gave.
pub enum Found {
    Entry(Entry),
    /// The path went through a magic link to a directory of the real tree: continue from
    /// there with the remaining components.
    Through(Magic, Vec<Vec<u8>>),
}

/// Who makes a call that reaches `/proc`: what deciding whether it may inspect another
/// process takes (from its credentials, `creds.rs`).
pub struct Caller {
    /// Its host thread id.
    pub tid: i32,
    pub fsuid: u32,
    pub fsgid: u32,
    /// It holds CAP_SYS_PTRACE.
    pub may_ptrace: bool,
}

/// The caller, with its host tgid (read once per lookup).
struct Me<'a> {
    caller: &'a Caller,
    host_tgid: i32,
}

/// Whose directory a `/proc/<pid>` or `/proc/<pid>/task/<tid>` path is.
#[derive(Clone, Copy)]
struct Subject {
    /// Host tid whose files are read (the thread, or the process's main thread).
    host: i32,
    /// Sandbox pid (or tid) the directory is named after.
    ns: i32,
    /// Whether this is a `task/<tid>` directory (which has no `task/` of its own).
    thread: bool,
}

const GLOBAL: &[(&str, Kind)] = &[
    ("self", Kind::Link),
    ("thread-self", Kind::Link),
    ("meminfo", Kind::File),
    ("cpuinfo", Kind::File),
    ("stat", Kind::File),
    ("uptime", Kind::File),
    ("loadavg", Kind::File),
    ("version", Kind::File),
    ("filesystems", Kind::File),
    ("config.gz", Kind::File),
    ("mounts", Kind::Link),
    ("sys", Kind::Dir),
    ("sysvipc", Kind::Dir),
    // Present and empty, as a container's read-only kernel views are (OCI's default
    // readonlyPaths; runtime-tools checks them as an unprivileged user).
    ("bus", Kind::Dir),
    ("fs", Kind::Dir),
    ("irq", Kind::Dir),
    ("sysrq-trigger", Kind::File),
];

/// The empty directories of [`GLOBAL`].
const EMPTY_DIRS: [&[u8]; 3] = [b"bus", b"fs", b"irq"];

/// Per-process files that are the kernel's own (see [`Entry::Task`]). `maps` and `pagemap`
/// describe the task's own memory (its `PROCMAP_QUERY` ioctl needs the kernel's file; page
/// frame numbers read as zero without CAP_SYS_ADMIN of the host).
const TASK_FILES: &[&str] = &["oom_score_adj", "oom_adj", "comm", "maps", "pagemap"];

const PER_PROCESS: &[(&str, Kind)] = &[
    ("status", Kind::File),
    ("stat", Kind::File),
    ("statm", Kind::File),
    ("cmdline", Kind::File),
    ("environ", Kind::File),
    ("comm", Kind::File),
    ("limits", Kind::File),
    ("maps", Kind::File),
    ("pagemap", Kind::File),
    ("smaps", Kind::File),
    ("smaps_rollup", Kind::File),
    ("auxv", Kind::File),
    ("cgroup", Kind::File),
    ("mounts", Kind::File),
    ("mountinfo", Kind::File),
    ("oom_score", Kind::File),
    ("oom_score_adj", Kind::File),
    ("oom_adj", Kind::File),
    ("loginuid", Kind::File),
    ("sessionid", Kind::File),
    ("uid_map", Kind::File),
    ("gid_map", Kind::File),
    ("setgroups", Kind::File),
    ("io", Kind::File),
    ("fd", Kind::Dir),
    ("fdinfo", Kind::Dir),
    ("ns", Kind::Dir),
    ("task", Kind::Dir),
    ("exe", Kind::Link),
    ("cwd", Kind::Link),
    ("root", Kind::Link),
];

fn entries(list: &[(&str, Kind)]) -> Vec<(Vec<u8>, Kind)> {
    list.iter().map(|(n, k)| (n.as_bytes().to_vec(), *k)).collect()
}

fn parse_num(c: &[u8]) -> Option<i32> {
    if c.is_empty() || !c.iter().all(u8::is_ascii_digit) || c.len() > 9 {
        return None;
    }
    std::str::from_utf8(c).ok()?.parse().ok()
}

/// Resolves the components after `/proc` for a call made by `caller`.
/// `follow`: follow a final symlink or magic link (as `open`/`stat` do; not `lstat`,
/// `readlink`).
pub fn lookup(info: &Info, caller: &Caller, comps: &[Vec<u8>], follow: bool) -> SysResult<Found> {
    let (caller_tgid, caller_tid, caller_host_tgid) = pids::ns_ids(caller.tid).ok_or(libc::ESRCH)?;
    let me = Me { caller, host_tgid: caller_host_tgid };
    let mut comps: Vec<Vec<u8>> = comps.to_vec();
    let mut hops = 0;
    loop {
        let Some(first) = comps.first().cloned() else {
            let mut list = entries(GLOBAL);
            for p in pids::list() {
                list.push((p.ns.to_string().into_bytes(), Kind::Dir));
            }
            return Ok(Found::Entry(Entry::Dir(list)));
        };
        let last = comps.len() == 1;
        // `self` and `thread-self` are symlinks to the caller's directories.
        let link = match first.as_slice() {
            b"self" => Some(format!("{caller_tgid}")),
            b"thread-self" => Some(format!("{caller_tgid}/task/{caller_tid}")),
            b"mounts" => Some("self/mounts".to_string()),
            _ => None,
        };
        if let Some(target) = link {
            if last && !follow {
                return Ok(Found::Entry(Entry::Link(target.into_bytes())));
            }
            hops += 1;
            if hops > 8 {
                return Err(libc::ELOOP);
            }
            let mut next = super::resolve::components(target.as_bytes());
            next.extend(comps.drain(1..));
            comps = next;
            continue;
        }
        if let Some(ns) = parse_num(&first) {
            let host = if ns == caller_tgid { caller_host_tgid } else { pids::host_of(ns).ok_or(libc::ENOENT)? };
            return process(info, &me, Subject { host, ns, thread: false }, &comps[1..], follow);
        }
        if first == b"sys" {
            return content::sys(info, &comps[1..]).map(Found::Entry);
        }
        if first == b"sysvipc" {
            return content::sysvipc(&comps[1..]).map(Found::Entry);
        }
        if EMPTY_DIRS.contains(&first.as_slice()) {
            return if last { Ok(Found::Entry(Entry::Dir(Vec::new()))) } else { Err(libc::ENOENT) };
        }
        if !last {
            return Err(libc::ENOTDIR);
        }
        return content::global(info, &first).map(|c| Found::Entry(Entry::File(c)));
    }
}

/// Entries of `/proc/<pid>` that Linux shows only to whoever may inspect the process
/// (`ptrace_may_access` in read mode): its links, descriptors, environment, memory maps.
const INSPECTING: &[&[u8]] = &[
    b"exe",
    b"cwd",
    b"root",
    b"fd",
    b"fdinfo",
    b"environ",
    b"auxv",
    b"maps",
    b"smaps",
    b"smaps_rollup",
    b"pagemap",
    b"mem",
    b"io",
];

/// Linux's rule for inspecting host thread `target` (ptrace's read mode with filesystem
/// ids): its own process always; another's if the caller holds CAP_SYS_PTRACE, or if its
/// fsuid is the target's real, effective and saved uid and its fsgid the target's gids. One
/// read of the target's `status`, none for the caller's own main thread. (Linux also refuses
/// a target that is not dumpable; the Sentry cannot read that flag, and the uid rule is the
/// wall between users.)
fn may_inspect(me: &Me, target: i32) -> bool {
    if target == me.host_tgid || target == me.caller.tid {
        return true;
    }
    let Some(t) = pids::owner(target) else { return false };
    let c = me.caller;
    t.tgid == me.host_tgid
        || c.may_ptrace
        || (t.uids.iter().all(|u| *u == c.fsuid) && t.gids.iter().all(|g| *g == c.fsgid))
}

/// Entries of `/proc/<pid>` (or `/proc/<pid>/task/<tid>`).
fn process(info: &Info, me: &Me, who: Subject, rest: &[Vec<u8>], follow: bool) -> SysResult<Found> {
    let Some(name) = rest.first() else {
        let mut list = entries(PER_PROCESS);
        if who.thread {
            list.retain(|(n, _)| n != b"task");
        }
        return Ok(Found::Entry(Entry::Dir(list)));
    };
    let last = rest.len() == 1;
    if INSPECTING.contains(&name.as_slice()) && !may_inspect(me, who.host) {
        return Err(libc::EACCES);
    }
    let magic = match name.as_slice() {
        b"exe" => Some(Magic::Exe { tid: who.host }),
        b"cwd" => Some(Magic::Cwd { tid: who.host }),
        b"root" => Some(Magic::Root { tid: who.host }),
        _ => None,
    };
    if let Some(m) = magic {
        if last {
            return Ok(Found::Entry(Entry::Magic(m)));
        }
        return Ok(Found::Through(m, rest[1..].to_vec()));
    }
    match name.as_slice() {
        b"fd" | b"fdinfo" => {
            let dir = name.as_slice() == b"fd";
            let Some(n) = rest.get(1) else {
                let kind = if dir { Kind::Link } else { Kind::File };
                let mut fds = content::fd_list(who.host);
                if who.host == me.host_tgid {
                    // The descriptor this very open is about to get, as Linux would list it.
                    let next = (0..).find(|i: &i32| !fds.contains(&i.to_string().into_bytes())).unwrap_or(0);
                    fds.push(next.to_string().into_bytes());
                    fds.sort_by_key(|f| String::from_utf8_lossy(f).parse::<i32>().unwrap_or(0));
                }
                return Ok(Found::Entry(Entry::Dir(fds.into_iter().map(|f| (f, kind)).collect())));
            };
            let fd = parse_num(n).ok_or(libc::ENOENT)?;
            if !content::fd_exists(who.host, fd) {
                return Err(libc::ENOENT);
            }
            if !dir {
                if rest.len() > 2 {
                    return Err(libc::ENOTDIR);
                }
                return content::pass_through(who.host, &format!("fdinfo/{fd}")).map(|c| Found::Entry(Entry::File(c)));
            }
            let m = Magic::Fd { tid: who.host, fd };
            if rest.len() == 2 {
                let _ = follow;
                return Ok(Found::Entry(Entry::Magic(m)));
            }
            Ok(Found::Through(m, rest[2..].to_vec()))
        }
        b"ns" => {
            let Some(n) = rest.get(1) else {
                return Ok(Found::Entry(Entry::Dir(
                    NAMESPACES.iter().map(|n| (n.as_bytes().to_vec(), Kind::Link)).collect(),
                )));
            };
            let name = NAMESPACES.iter().find(|x| x.as_bytes() == n.as_slice()).ok_or(libc::ENOENT)?;
            let m = Magic::Ns { tid: who.host, name };
            if rest.len() == 2 {
                return Ok(Found::Entry(Entry::Magic(m)));
            }
            Ok(Found::Through(m, rest[2..].to_vec()))
        }
        b"task" if !who.thread => {
            let threads = pids::threads(who.host);
            let Some(t) = rest.get(1) else {
                return Ok(Found::Entry(Entry::Dir(
                    threads.iter().map(|t| (t.ns.to_string().into_bytes(), Kind::Dir)).collect(),
                )));
            };
            let ns = parse_num(t).ok_or(libc::ENOENT)?;
            let th = threads.into_iter().find(|x| x.ns == ns).ok_or(libc::ENOENT)?;
            process(info, me, Subject { host: th.host, ns, thread: true }, &rest[2..], follow)
        }
        _ if !last => Err(libc::ENOTDIR),
        other => match TASK_FILES.iter().find(|t| t.as_bytes() == other) {
            Some(name) => Ok(Found::Entry(Entry::Task { tid: who.host, name })),
            None => content::per_process(info, who.host, who.ns, other).map(|c| Found::Entry(Entry::File(c))),
        },
    }
}

/// Text of a `/proc` symlink or magic link, as `readlink` returns it.
pub fn link_text(e: &Entry) -> SysResult<Vec<u8>> {
    match e {
        Entry::Link(t) => Ok(t.clone()),
        Entry::Magic(m) => content::magic_text(*m),
        _ => Err(libc::EINVAL),
    }
}
