//! Opening, stating and reading links of synthetic `/proc` entries.

use super::notify::{errno, Call, ProgramFd, SysResult};
use super::proc::{self, Entry, Found, Kind, Magic};
use super::resolve::Node;
use super::Sentry;
use crate::sys;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

impl Sentry {
    pub(super) fn proc_lookup(&self, call: &Call, comps: &[Vec<u8>], follow: bool) -> SysResult<Found> {
        let c = self.creds_of(call);
        const CAP_SYS_PTRACE: u32 = 19;
        let caller = proc::Caller {
            tid: call.tid,
            fsuid: c.fsuid,
            fsgid: c.fsgid,
            may_ptrace: c.cap_eff & (1 << CAP_SYS_PTRACE) != 0,
        };
        proc::lookup(&self.info, &caller, comps, follow)
    }

    /// A magic link used as a directory in the middle of a path: continue in the real tree.
    fn through(&self, call: &Call, m: Magic, rest: &[Vec<u8>], follow: bool) -> SysResult<Node> {
        let mut path = proc::link_text(&Entry::Magic(m))?;
        if path.first() != Some(&b'/') {
            return Err(libc::ENOTDIR);
        }
        for r in rest {
            path.push(b'/');
            path.extend_from_slice(r);
        }
        // Walked with the caller's ids, as the kernel walks it: search permission on every
        // directory is the caller's (the Sentry's own would let any user of the sandbox into
        // root's directories through /proc/self/root/... or /proc/self/cwd/...).
        self.as_caller(call, || self.resolver.resolve(call, ProgramFd::CWD, &path, follow, false))
    }

    pub(super) fn proc_open(&self, call: &Call, comps: &[Vec<u8>], flags: i32, no_magic: bool) -> SysResult<OwnedFd> {
        let follow = flags & libc::O_NOFOLLOW == 0;
        let writing = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let entry = match self.proc_lookup(call, comps, follow)? {
            Found::Entry(e) => e,
            Found::Through(_, _) if no_magic => return Err(libc::ELOOP),
            Found::Through(m, rest) => {
                // Opened with the caller's ids, as the kernel would (`through` walks with
                // them too): the Sentry's own would let any user of the sandbox read and write
                // root's files through /proc/self/root/... or /proc/self/cwd/...
                return match self.through(call, m, &rest, follow)? {
                    Node::Fs(fd) => self.as_caller(call, || reopen(&fd, flags)),
                    Node::Proc(c) => self.proc_open(call, &c, flags, no_magic),
                };
            }
        };
        match entry {
            Entry::Magic(_) if no_magic => Err(libc::ELOOP),
            Entry::File(content) => {
                if writing {
                    return Err(libc::EACCES);
                }
                if flags & libc::O_DIRECTORY != 0 {
                    return Err(libc::ENOTDIR);
                }
                memfd_with(&content, flags)
            }
            Entry::Dir(list) => {
                if writing {
                    return Err(libc::EISDIR);
                }
                let (fd, name) =
                    self.area.materialize(&list, flags & (libc::O_NONBLOCK | libc::O_PATH) | libc::O_CLOEXEC)?;
                self.resolver.area_dirs.lock().unwrap_or_else(|e| e.into_inner()).insert(name, comps.to_vec());
                Ok(fd)
            }
            Entry::Link(_) => Err(libc::ELOOP),
            Entry::Magic(m) => self.open_magic(call, m, flags & !libc::O_CREAT),
            Entry::Task { tid, name } => {
                let (path, flags) = (format!("{tid}/{name}"), flags & !(libc::O_CREAT | libc::O_NOFOLLOW));
                // Another process's (its oom_score_adj, say) with the caller's ids: the file's
                // owner is that process's user, whom the caller may not be.
                if self.of_caller(call, tid) {
                    self.open_host(&path, flags)
                } else {
                    self.as_caller(call, || self.open_host(&path, flags))
                }
            }
        }
    }

    /// Opens a magic link's target with the caller's ids, as the kernel would: reopening
    /// `/proc/self/fd/N` checks the file's mode against the opener, and another process's
    /// descriptors need the kernel's leave to look at that process. The caller's own process
    /// may always reach its own descriptors, even when it is not dumpable (its
    /// `/proc/<pid>/fd` is then root's, mode 0500, which only the task itself may search): the
    /// Sentry takes those as itself, then reopens them with the caller's ids.
    fn open_magic(&self, call: &Call, m: Magic, flags: i32) -> SysResult<OwnedFd> {
        let path = self.magic_path(m);
        let own = match m {
            Magic::Fd { tid, .. } | Magic::Exe { tid } | Magic::Cwd { tid } => self.of_caller(call, tid),
            _ => false,
        };
        if own {
            let target = self.open_host(&path, libc::O_PATH)?;
            return self.as_caller(call, || reopen(&target, flags));
        }
        self.as_caller(call, || self.open_host(&path, flags))
    }

    /// Opens `/proc/<rel>` of the host: a magic link's target, or a file the kernel keeps for
    /// one of the sandbox's own tasks.
    /// Whether host thread `tid` is of the caller's process (at most one read: the caller's
    /// tgid is cached with its credentials).
    fn of_caller(&self, call: &Call, tid: i32) -> bool {
        tid == call.tid || proc::pids::in_process(tid, self.creds_of(call).tgid)
    }

    fn open_host(&self, rel: &str, flags: i32) -> SysResult<OwnedFd> {
        sys::openat(Some(super::host::proc_fd()?), std::path::Path::new(rel), flags | libc::O_CLOEXEC, 0).map_err(errno)
    }

    /// Where a magic link points, relative to the host's `/proc` (the root: the sandbox's).
    fn magic_path(&self, m: Magic) -> String {
        match m {
            Magic::Fd { tid, fd } => format!("{tid}/fd/{fd}"),
            Magic::Exe { tid } => format!("{tid}/exe"),
            Magic::Cwd { tid } => format!("{tid}/cwd"),
            Magic::Ns { tid, name } => format!("{tid}/ns/{name}"),
            Magic::Root { .. } => format!("self/fd/{}", self.resolver.root.as_raw_fd()),
        }
    }

    /// The real file a `/proc` path names through a magic link (`/proc/self/fd/3`,
    /// `/proc/1/cwd/sub`), opened `O_PATH`, as the kernel acts on a magic link's target
    /// whatever its name (GNU tar's `chmod("/proc/self/fd/3")`). The target is a file a task of
    /// the sandbox holds open, or a path resolved inside the root: never out of the sandbox,
    /// and nothing a program could not reach with `fchmod`, `fchown` or `futimens` itself.
    /// `None`: a synthetic entry (or, without `follow`, the link itself).
    pub(super) fn proc_target(&self, call: &Call, comps: &[Vec<u8>], follow: bool) -> SysResult<Option<OwnedFd>> {
        match self.proc_lookup(call, comps, follow)? {
            Found::Entry(Entry::Magic(m)) if follow => self.open_host(&self.magic_path(m), libc::O_PATH).map(Some),
            Found::Entry(Entry::Task { tid, name }) => self.open_host(&format!("{tid}/{name}"), libc::O_PATH).map(Some),
            Found::Entry(_) => Ok(None),
            Found::Through(m, rest) => match self.through(call, m, &rest, follow)? {
                Node::Fs(fd) => Ok(Some(fd)),
                Node::Proc(c) => self.proc_target(call, &c, follow),
            },
        }
    }

    pub(super) fn proc_statx(&self, call: &Call, comps: &[Vec<u8>], follow: bool) -> SysResult<libc::statx> {
        let entry = match self.proc_lookup(call, comps, follow)? {
            Found::Entry(e) => e,
            Found::Through(m, rest) => {
                return match self.through(call, m, &rest, follow)? {
                    Node::Fs(fd) => super::fsops::sys_statx_mask(
                        Some(fd.as_fd()),
                        b"",
                        libc::AT_EMPTY_PATH,
                        libc::STATX_BASIC_STATS,
                    ),
                    Node::Proc(c) => self.proc_statx(call, &c, follow),
                };
            }
        };
        let (kind, mode) = match &entry {
            Entry::Dir(_) => (Kind::Dir, 0o555),
            Entry::File(_) => (Kind::File, 0o444),
            Entry::Link(_) => (Kind::Link, 0o777),
            Entry::Magic(m) if follow => return self.host_statx(&self.magic_path(*m)),
            Entry::Task { tid, name } => return self.host_statx(&format!("{tid}/{name}")),
            Entry::Magic(_) => (Kind::Link, 0o777),
        };
        Ok(synthetic_statx(comps, kind, mode))
    }

    fn host_statx(&self, rel: &str) -> SysResult<libc::statx> {
        super::fsops::sys_statx_mask(Some(super::host::proc_fd()?), rel.as_bytes(), 0, libc::STATX_BASIC_STATS)
    }

    pub(super) fn proc_readlink(&self, call: &Call, comps: &[Vec<u8>]) -> SysResult<Vec<u8>> {
        match self.proc_lookup(call, comps, false)? {
            Found::Entry(e) => proc::link_text(&e),
            Found::Through(m, rest) => match self.through(call, m, &rest, false)? {
                Node::Fs(fd) => super::fsops::readlinkat(Some(fd.as_fd()), b""),
                Node::Proc(c) => self.proc_readlink(call, &c),
            },
        }
    }
}

/// Reopens a resolved file with the caller's flags.
pub(super) fn reopen(fd: &OwnedFd, flags: i32) -> SysResult<OwnedFd> {
    let p = super::host::self_fd(fd);
    let flags = flags & !(libc::O_CREAT | libc::O_NOFOLLOW);
    sys::openat(Some(super::host::proc_fd()?), std::path::Path::new(&p), flags, 0).map_err(errno)
}

/// An in-memory file holding `content`, opened read-only (or read-write for the few
/// writable entries).
fn memfd_with(content: &[u8], flags: i32) -> SysResult<OwnedFd> {
    let m = sys::fs::memfd(c"fnbox-proc").map_err(errno)?;
    sys::fs::write_all(m.as_fd(), content).map_err(errno)?;
    let access = flags & libc::O_ACCMODE;
    reopen(&m, access | (flags & libc::O_NONBLOCK))
}

fn synthetic_statx(comps: &[Vec<u8>], kind: Kind, perm: u32) -> libc::statx {
    let mut x = sys::abi::zeroed::<libc::statx>();
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut ts = x.stx_atime; // zeroes
    ts.tv_sec = t.as_secs() as i64;
    ts.tv_nsec = t.subsec_nanos();
    x.stx_mask = libc::STATX_BASIC_STATS;
    x.stx_mode = (perm
        | match kind {
            Kind::Dir => libc::S_IFDIR,
            Kind::File => libc::S_IFREG,
            Kind::Link => libc::S_IFLNK,
        }) as u16;
    x.stx_nlink = if kind == Kind::Dir { 2 } else { 1 };
    x.stx_blksize = 1024;
    // A stable inode number per path, like procfs's.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for comp in comps {
        for &b in comp.iter().chain(b"/") {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    x.stx_ino = h >> 16 | 1;
    x.stx_dev_major = 0;
    x.stx_dev_minor = 0x16;
    x.stx_atime = ts;
    x.stx_mtime = ts;
    x.stx_ctime = ts;
    x
}
