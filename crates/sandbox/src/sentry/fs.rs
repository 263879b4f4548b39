//! Emulation of the path-taking file syscalls.
//!
//! Each handler copies the path out of the caller once, turns it into an absolute path
//! inside the sandbox (`Resolver::locate`) and makes the same syscall itself: the Sentry is
//! chrooted into the sandbox root, whose tree holds no procfs, so the kernel resolves the
//! copied path exactly as for the program and can never leave the root. A path that runs into
//! the `/proc` placeholder (`EACCES`) is walked (`Resolver::canonical`) and answered from the
//! synthetic `/proc`.

use super::notify::{errno, Call, ProgramFd, Reply, SysResult};
use super::resolve::{c, Located};
use super::{host, Sentry};
use crate::sys::{self, abi};
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Converts `statx` to the `struct stat` of `stat`/`newfstatat`.
pub fn to_stat(x: &libc::statx) -> libc::stat {
    let mut st = abi::zeroed::<libc::stat>();
    st.st_dev = libc::makedev(x.stx_dev_major, x.stx_dev_minor);
    st.st_ino = x.stx_ino;
    st.st_nlink = x.stx_nlink as u64;
    st.st_mode = x.stx_mode as u32;
    st.st_uid = x.stx_uid;
    st.st_gid = x.stx_gid;
    st.st_rdev = libc::makedev(x.stx_rdev_major, x.stx_rdev_minor);
    st.st_size = x.stx_size as i64;
    st.st_blksize = x.stx_blksize as i64;
    st.st_blocks = x.stx_blocks as i64;
    st.st_atime = x.stx_atime.tv_sec;
    st.st_atime_nsec = x.stx_atime.tv_nsec as i64;
    st.st_mtime = x.stx_mtime.tv_sec;
    st.st_mtime_nsec = x.stx_mtime.tv_nsec as i64;
    st.st_ctime = x.stx_ctime.tv_sec;
    st.st_ctime_nsec = x.stx_ctime.tv_nsec as i64;
    st
}

/// What an open gave.
enum Opened {
    Fd(OwnedFd),
    /// A FIFO to open blocking (path inside the root, and how).
    Fifo(Vec<u8>, abi::open_how),
}

fn statx_at(dir: Option<BorrowedFd<'_>>, path: &CStr, flags: i32, mask: u32) -> SysResult<libc::statx> {
    sys::fs::statx(dir, path, flags, mask).map_err(errno)
}

/// `openat2`'s `struct open_how` as Linux takes it (`copy_struct_from_user`): smaller than the
/// version Linux knows is EINVAL; a larger one (newer programs) must be zero past what is
/// known (E2BIG), and all of it must be readable (EFAULT).
fn read_open_how(call: &Call) -> SysResult<abi::open_how> {
    let known = std::mem::size_of::<abi::open_how>();
    let size = call.args[3] as usize;
    if size < known {
        return Err(libc::EINVAL);
    }
    if size > 4096 {
        return Err(libc::E2BIG);
    }
    if size > known {
        let tail = call.read_bytes(call.args[2] + known as u64, size - known)?;
        if tail.iter().any(|&b| b != 0) {
            return Err(libc::E2BIG);
        }
    }
    call.read_struct(call.args[2])
}

impl Sentry {
    /// Reads path argument `i` for a call that changes the tree, and checks the call is still
    /// pending: had the thread died and its id been reused, the path read would be another
    /// process's memory, and no change may be made from that. (Lookups skip the check: their
    /// answer would go nowhere.)
    pub(super) fn path_arg(&self, call: &Call, i: usize) -> SysResult<Vec<u8>> {
        let p = call.path(i)?;
        if !call.listener.valid(call.id) {
            return Err(libc::ESRCH);
        }
        Ok(p)
    }

    /// Runs `op` on the located path; after `EACCES` (the `/proc` placeholder), on the
    /// walked path, or `proc_op` for a synthetic entry.
    pub(super) fn on_path<T>(
        &self,
        call: &Call,
        dirfd: ProgramFd,
        path: &[u8],
        follow: bool,
        op: impl Fn(&CStr) -> SysResult<T>,
        proc_op: impl FnOnce(Vec<Vec<u8>>) -> SysResult<T>,
    ) -> SysResult<T> {
        match self.resolver.locate(call, dirfd, path)? {
            Located::Proc(comps) => proc_op(comps),
            Located::Path(p) => match self.as_caller(call, || op(&c(&p))) {
                // EACCES is also what a non-root caller gets for real: the walk below runs
                // as the Sentry, and the retry as the caller again. When the Sentry's walk
                // fails further on, the caller's stopped first, at the permission check.
                Err(libc::EACCES) => match self.resolver.canonical(call, dirfd, path, follow) {
                    Ok(Located::Path(p)) => self.as_caller(call, || op(&c(&p))),
                    Ok(Located::Proc(comps)) => proc_op(comps),
                    Err(_) => Err(libc::EACCES),
                },
                r => r,
            },
        }
    }

    /// Two paths (rename, link): both must be in the tree.
    pub(super) fn on_two_paths(
        &self,
        call: &Call,
        (d1, p1): (ProgramFd, &[u8]),
        (d2, p2): (ProgramFd, &[u8]),
        op: impl Fn(&CStr, &CStr) -> SysResult<i64>,
    ) -> SysResult<i64> {
        let located = |d, p| -> SysResult<Vec<u8>> {
            match self.resolver.locate(call, d, p)? {
                Located::Path(p) => Ok(p),
                Located::Proc(_) => Err(libc::EXDEV),
            }
        };
        let (a, b) = (located(d1, p1)?, located(d2, p2)?);
        match self.as_caller(call, || op(&c(&a), &c(&b))) {
            Err(libc::EACCES) => {
                let canon = |d, p| -> SysResult<Vec<u8>> {
                    match self.resolver.canonical(call, d, p, false)? {
                        Located::Path(p) => Ok(p),
                        Located::Proc(_) => Err(libc::EXDEV),
                    }
                };
                let (a, b) = (canon(d1, p1)?, canon(d2, p2)?);
                self.as_caller(call, || op(&c(&a), &c(&b)))
            }
            r => r,
        }
    }

    // ---- open ---------------------------------------------------------------------------

    pub(super) fn open(&self, call: &Call) -> Reply {
        let (dirfd, pi, flags, mode, resolve) = match call.nr {
            libc::SYS_open => (ProgramFd::CWD, 0, call.args[1] as i32, call.args[2] as u32, 0u64),
            libc::SYS_creat => {
                (ProgramFd::CWD, 0, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, call.args[1] as u32, 0)
            }
            libc::SYS_openat2 => {
                let how = match read_open_how(call) {
                    Ok(h) => h,
                    Err(e) => return Reply::Error(e),
                };
                if how.flags & libc::O_CREAT as u64 != 0 && how.mode & !0o7777 != 0 {
                    return Reply::Error(libc::EINVAL);
                }
                (call.arg_fd(0), 1, how.flags as i32, how.mode as u32, how.resolve)
            }
            _ => (call.arg_fd(0), 1, call.args[2] as i32, call.args[3] as u32, 0),
        };
        // Only calls that change the tree need the "still pending" check (see `path_arg`).
        let changes = flags & (libc::O_CREAT | libc::O_TRUNC) != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
        let path = if changes { self.path_arg(call, pi) } else { call.path(pi) };
        let cloexec = flags & libc::O_CLOEXEC != 0;
        if flags & libc::O_PATH != 0 {
            // The kernel cannot install O_PATH descriptors for a supervisor (ADDFD refuses
            // them), and they allow no I/O: check the path resolves inside the tree, then let
            // the kernel open it in the sandbox's own mount namespace.
            return self.check_then_continue(
                call,
                dirfd,
                pi,
                if flags & libc::O_NOFOLLOW != 0 { libc::AT_SYMLINK_NOFOLLOW } else { 0 },
                None,
            );
        }
        // open, openat and creat take everything but the path in registers, which no thread
        // can change: where the path stays out of /proc, the kernel opens it for the caller
        // (no descriptor to install; FIFOs wait in the caller, as native). Only where programs
        // see the area read-only (docs/architecture.md, "Continued calls").
        if let Ok(p) = &path {
            if call.nr != libc::SYS_openat2
                && self.area.read_only()
                && self.resolver.outside_proc(call, dirfd, p, flags & libc::O_NOFOLLOW == 0)
            {
                return Reply::Continue;
            }
        }
        match path.and_then(|path| self.open_path(call, dirfd, &path, flags, mode, resolve)) {
            Ok(Opened::Fd(fd)) => Reply::Fd { fd, cloexec },
            Ok(Opened::Fifo(path, how)) => {
                // The name is opened again, so what it names may have been swapped since the
                // walk (a symlink to another user's file): the open is the caller's, with its
                // ids and capabilities, never the Sentry's.
                let creds = self.creds_of(call);
                self.defer(call, move |s| {
                    // Waits for the FIFO's other end, as the program's own open would.
                    match creds.act(|| sys::openat2(s.resolver.root.as_fd(), &c(&path), &how)) {
                        Ok(fd) => Reply::Fd { fd, cloexec },
                        Err(e) => Reply::Error(errno(e)),
                    }
                })
            }
            Err(e) => Reply::Error(e),
        }
    }

    fn open_path(
        &self,
        call: &Call,
        dirfd: ProgramFd,
        path: &[u8],
        flags: i32,
        mode: u32,
        resolve: u64,
    ) -> SysResult<Opened> {
        let creating = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
        if call.nr == libc::SYS_openat2 && mode != 0 && !creating {
            return Err(libc::EINVAL);
        }
        let mode = if creating { mode & 0o7777 & !self.umask_of(call) } else { 0 };
        let how = abi::open_how {
            flags: (flags | libc::O_CLOEXEC) as u64,
            mode: mode as u64,
            resolve: abi::RESOLVE_IN_ROOT | abi::RESOLVE_NO_MAGICLINKS,
        };
        // openat2 with RESOLVE_BENEATH/IN_ROOT is relative to the caller's own directory.
        if resolve & (abi::RESOLVE_BENEATH | abi::RESOLVE_IN_ROOT) != 0 {
            let base = if dirfd == ProgramFd::CWD {
                sys::openat(Some(host::proc_fd()?), std::path::Path::new(&format!("{}/cwd", call.tid)), libc::O_PATH, 0)
                    .map_err(errno)?
            } else {
                call.fetch_fd(dirfd)?
            };
            let how = abi::open_how { resolve: resolve | abi::RESOLVE_NO_MAGICLINKS, ..how };
            return sys::openat2(base.as_fd(), &c(path), &how).map(Opened::Fd).map_err(errno);
        }
        let how = abi::open_how { resolve: how.resolve | resolve, ..how };
        let root = self.resolver.root.as_fd();
        // Where FIFOs may exist, open without waiting first: a FIFO's blocking open is then
        // finished by its own thread (the worker never waits for the program).
        let probe =
            self.fifos.load(std::sync::atomic::Ordering::Relaxed) && flags & (libc::O_NONBLOCK | libc::O_PATH) == 0;
        self.on_path(
            call,
            dirfd,
            path,
            flags & libc::O_NOFOLLOW == 0,
            |p| {
                if !probe {
                    return sys::openat2(root, &p.to_owned(), &how).map(Opened::Fd).map_err(errno);
                }
                let quick = abi::open_how { flags: how.flags | libc::O_NONBLOCK as u64, ..how };
                match sys::openat2(root, &p.to_owned(), &quick) {
                    Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(Opened::Fifo(p.to_bytes().to_vec(), how)),
                    Err(e) => Err(errno(e)),
                    Ok(fd) => {
                        let x = statx_at(Some(fd.as_fd()), c"", libc::AT_EMPTY_PATH, libc::STATX_TYPE)?;
                        if x.stx_mode as u32 & libc::S_IFMT == libc::S_IFIFO {
                            return Ok(Opened::Fifo(p.to_bytes().to_vec(), how));
                        }
                        // Back to the status flags the program asked for (F_SETFL keeps the
                        // access mode and ignores creation flags).
                        let _ = sys::fd::set_status_flags(&fd, flags & !libc::O_NONBLOCK);
                        Ok(Opened::Fd(fd))
                    }
                }
            },
            |comps| {
                if resolve & abi::RESOLVE_NO_XDEV != 0 {
                    return Err(libc::EXDEV); // /proc is a mount of its own
                }
                self.proc_open(
                    call,
                    &comps,
                    flags,
                    resolve & (abi::RESOLVE_NO_MAGICLINKS | abi::RESOLVE_NO_SYMLINKS) != 0,
                )
                .map(Opened::Fd)
            },
        )
    }

    // ---- stat ---------------------------------------------------------------------------

    pub(super) fn stat(&self, call: &Call) -> Reply {
        let (dirfd, pi, flags, buf) = match call.nr {
            libc::SYS_stat => (ProgramFd::CWD, 0, 0, call.args[1]),
            libc::SYS_lstat => (ProgramFd::CWD, 0, libc::AT_SYMLINK_NOFOLLOW, call.args[1]),
            libc::SYS_statx => (call.arg_fd(0), 1, call.args[2] as i32, call.args[4]),
            _ => (call.arg_fd(0), 1, call.args[3] as i32, call.args[2]),
        };
        let mask = if call.nr == libc::SYS_statx { call.args[3] as u32 } else { libc::STATX_BASIC_STATS };
        let path = match call.path(pi) {
            // fstat (glibc's is `newfstatat(fd, "", AT_EMPTY_PATH)`): the filter lets every
            // call with AT_EMPTY_PATH run natively (rules `newfstatat-fd`, `statx-fd`), so
            // this is reached only under a filter that notifies them anyway; the kernel
            // stats the caller's own descriptor (docs/architecture.md, "Continued calls").
            Ok(p) if p.is_empty() && flags & libc::AT_EMPTY_PATH != 0 => return Reply::Continue,
            r => r,
        };
        let r = path.and_then(|path| self.statx_of(call, dirfd, &path, flags, mask)).and_then(|x| {
            if call.nr == libc::SYS_statx {
                call.write_struct(buf, &x)
            } else {
                call.write_struct(buf, &to_stat(&x))
            }
        });
        Reply::from(r.map(|()| 0))
    }

    fn statx_of(&self, call: &Call, dirfd: ProgramFd, path: &[u8], flags: i32, mask: u32) -> SysResult<libc::statx> {
        let sync = flags & libc::AT_STATX_SYNC_TYPE;
        let known = if call.nr == libc::SYS_statx {
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT | libc::AT_EMPTY_PATH | libc::AT_STATX_SYNC_TYPE
        } else {
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT | libc::AT_EMPTY_PATH
        };
        if flags & !known != 0 || (call.nr == libc::SYS_statx && mask & libc::STATX__RESERVED as u32 != 0) {
            return Err(libc::EINVAL);
        }
        if path.is_empty() {
            // (With AT_EMPTY_PATH the kernel answered: see `stat`.)
            return Err(libc::ENOENT);
        }
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        let f = sync | (flags & libc::AT_SYMLINK_NOFOLLOW);
        self.on_path(
            call,
            dirfd,
            path,
            follow,
            |p| statx_at(None, p, f, mask),
            |comps| self.proc_statx(call, &comps, follow),
        )
    }

    // ---- access, readlink -------------------------------------------------------------------

    pub(super) fn access(&self, call: &Call) -> Reply {
        let (dirfd, pi, mode, flags) = match call.nr {
            libc::SYS_access => (ProgramFd::CWD, 0, call.args[1] as i32, 0),
            libc::SYS_faccessat => (call.arg_fd(0), 1, call.args[2] as i32, 0),
            _ => (call.arg_fd(0), 1, call.args[2] as i32, call.args[3] as i32),
        };
        if mode & !7 != 0 || flags & !(libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Reply::Error(libc::EINVAL);
        }
        // Without AT_EACCESS, access checks the caller's real ids (Linux's rule).
        let check = |dir: Option<BorrowedFd<'_>>, p: &CStr, f: i32| {
            let run = || sys::fs::faccessat2(dir, p, mode, f).map(|()| 0).map_err(errno);
            if flags & libc::AT_EACCESS == 0 {
                self.as_caller_real(call, run)
            } else {
                run()
            }
        };
        let r = call.path(pi).and_then(|path| {
            if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
                let fd = call.fetch_fd(dirfd)?;
                return self.as_caller(call, || check(Some(fd.as_fd()), c"", flags));
            }
            self.on_path(
                call,
                dirfd,
                &path,
                flags & libc::AT_SYMLINK_NOFOLLOW == 0,
                |p| check(None, p, flags),
                |comps| {
                    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
                    if let Some(fd) = self.proc_target(call, &comps, follow)? {
                        // A magic link's target (or a file the kernel keeps for the task).
                        return check(Some(fd.as_fd()), c"", flags & !libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH);
                    }
                    if mode & libc::W_OK != 0 {
                        Err(libc::EACCES)
                    } else {
                        Ok(0)
                    }
                },
            )
        });
        Reply::from(r.map(|_| 0))
    }

    pub(super) fn readlink(&self, call: &Call) -> Reply {
        let (dirfd, pi, buf, size) = match call.nr {
            libc::SYS_readlink => (ProgramFd::CWD, 0, call.args[1], call.args[2] as i64),
            _ => (call.arg_fd(0), 1, call.args[2], call.args[3] as i64),
        };
        if size <= 0 {
            return Reply::Error(libc::EINVAL);
        }
        let r = call.path(pi).and_then(|path| {
            let text = if path.is_empty() {
                if dirfd == ProgramFd::CWD {
                    return Err(libc::ENOENT);
                }
                let fd = call.fetch_fd(dirfd)?;
                super::fsops::readlinkat(Some(fd.as_fd()), b"")?
            } else {
                self.on_path(
                    call,
                    dirfd,
                    &path,
                    false,
                    |p| super::fsops::readlinkat(None, p.to_bytes()),
                    |comps| self.proc_readlink(call, &comps),
                )?
            };
            let n = text.len().min(size as usize);
            call.write_bytes(buf, &text[..n])?;
            Ok(n as i64)
        });
        Reply::from(r)
    }

    // ---- execve, chdir ------------------------------------------------------------------

    /// Checks the target resolves inside the root (and is of the right type), then lets the
    /// kernel run the call as made: the sandbox's mount namespace holds the same read-only
    /// tree, so the kernel finds the very file the Sentry checked. A process's working
    /// directory and image cannot be set from outside, hence "continue" for these two.
    fn check_then_continue(
        &self,
        call: &Call,
        dirfd: ProgramFd,
        pi: usize,
        flags: i32,
        want_dir: Option<bool>,
    ) -> Reply {
        let r = call.path(pi).and_then(|path| {
            if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
                return Ok(());
            }
            let f = flags & libc::AT_SYMLINK_NOFOLLOW;
            let x = self.on_path(
                call,
                dirfd,
                &path,
                f == 0,
                |p| statx_at(None, p, f, libc::STATX_TYPE),
                |_| {
                    self.note(
                        call,
                        match want_dir {
                            Some(true) => "chdir into /proc",
                            Some(false) => "executing a file under /proc (such as /proc/self/exe)",
                            None => "an O_PATH descriptor of a /proc entry",
                        },
                    );
                    Err(libc::ENOENT)
                },
            )?;
            match (x.stx_mode as u32 & libc::S_IFMT, want_dir) {
                (_, None) | (libc::S_IFDIR, Some(true)) | (libc::S_IFREG, Some(false)) => Ok(()),
                (_, Some(true)) => Err(libc::ENOTDIR),
                (libc::S_IFLNK, Some(false)) => Err(libc::ELOOP),
                _ => Err(libc::EACCES),
            }
        });
        match r {
            Ok(()) => Reply::Continue,
            Err(e) => Reply::Error(e),
        }
    }

    pub(super) fn exec(&self, call: &Call) -> Reply {
        // A set-user-ID program (a container may allow them), or one whose bounding set was
        // lowered, has other credentials after execve: none read before it (this check's
        // own among them) may serve a call made after it.
        let _ = self.creds_changed();
        let reply = if call.nr == libc::SYS_execveat {
            self.check_then_continue(call, call.arg_fd(0), 1, call.args[4] as i32, Some(false))
        } else {
            self.check_then_continue(call, ProgramFd::CWD, 0, 0, Some(false))
        };
        let _ = self.creds_changed();
        reply
    }

    pub(super) fn chdir(&self, call: &Call) -> Reply {
        self.resolver.cwd_moves(call.tid);
        if call.nr == libc::SYS_fchdir {
            return Reply::Continue; // a descriptor: nothing to check
        }
        self.check_then_continue(call, ProgramFd::CWD, 0, 0, Some(true))
    }
}
