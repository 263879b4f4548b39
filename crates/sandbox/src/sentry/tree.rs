//! Emulation of the calls that change the tree (create, remove, rename, link) and file
//! metadata (modes, owners, times, size), on paths resolved as `fs.rs` describes.

use super::notify::{errno, Call, ProgramFd, Reply, SysResult};
use super::resolve::{c, Located};
use super::{host, Sentry};
use crate::sys;
use crate::sys::abi;
use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

impl Sentry {
    // ---- creating, removing, renaming -----------------------------------------------------

    /// A `*at` call that changes a file's metadata, `op(dir, path, flags)`, with the caller's
    /// `flags` passed to the kernel as they are (so unknown bits fail as they would natively).
    /// `AT_EMPTY_PATH` with an empty path acts on the caller's descriptor `dirfd` itself, and a
    /// `/proc` magic link (`/proc/self/fd/3`) on the file it points to, as Linux does.
    fn change_at(
        &self,
        call: &Call,
        dirfd: ProgramFd,
        pi: usize,
        flags: i32,
        op: impl Fn(Option<BorrowedFd<'_>>, &CStr, i32) -> SysResult<i64>,
    ) -> Reply {
        let r = self.path_arg(call, pi).and_then(|path| {
            if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
                let fd = call.fetch_fd(dirfd)?;
                return self.as_caller(call, || op(Some(fd.as_fd()), c"", flags));
            }
            let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            self.on_path(
                call,
                dirfd,
                &path,
                follow,
                |p| op(None, p, flags),
                |comps| {
                    let fd = self.proc_target(call, &comps, follow)?.ok_or(libc::EACCES)?;
                    let on_fd = flags & !libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH;
                    self.as_caller(call, || op(Some(fd.as_fd()), c"", on_fd))
                },
            )
        });
        Reply::from(r)
    }

    /// A call that changes the tree at `path`: `/proc` refuses it.
    fn change(
        &self,
        call: &Call,
        dirfd: ProgramFd,
        pi: usize,
        follow: bool,
        op: impl Fn(&CStr) -> SysResult<i64>,
    ) -> Reply {
        let r = self
            .path_arg(call, pi)
            .and_then(|path| self.on_path(call, dirfd, &path, follow, &op, |_| Err(libc::EACCES)));
        Reply::from(r)
    }

    pub(super) fn mkdir(&self, call: &Call) -> Reply {
        let (dirfd, pi, mode) = match call.nr {
            libc::SYS_mkdir => (ProgramFd::CWD, 0, call.args[1] as u32),
            _ => (call.arg_fd(0), 1, call.args[2] as u32),
        };
        let mode = mode & 0o7777 & !self.umask_of(call);
        self.change(call, dirfd, pi, false, |p| done(sys::mkdirat(None, path(p), mode, false)))
    }

    pub(super) fn mknod(&self, call: &Call) -> Reply {
        let (dirfd, pi, mode, dev) = match call.nr {
            libc::SYS_mknod => (ProgramFd::CWD, 0, call.args[1] as u32, call.args[2]),
            _ => (call.arg_fd(0), 1, call.args[2] as u32, call.args[3]),
        };
        let kind = mode & libc::S_IFMT;
        if !matches!(kind, 0 | libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK) {
            return Reply::Error(libc::EINVAL); // not a kind of file, as Linux answers
        }
        if !(kind == 0 || kind == libc::S_IFREG || kind == libc::S_IFIFO || kind == libc::S_IFSOCK) {
            self.note(call, "device nodes cannot be created");
            return Reply::Error(libc::EPERM);
        }
        let mode = (mode & !0o7777) | (mode & 0o7777 & !self.umask_of(call));
        if kind == libc::S_IFIFO {
            self.fifos.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.change(call, dirfd, pi, false, |p| done(sys::mknodat(None, path(p), mode, dev as libc::dev_t)))
    }

    pub(super) fn unlink(&self, call: &Call) -> Reply {
        let (dirfd, pi, flags) = match call.nr {
            libc::SYS_unlink => (ProgramFd::CWD, 0, 0),
            libc::SYS_rmdir => (ProgramFd::CWD, 0, libc::AT_REMOVEDIR),
            _ => (call.arg_fd(0), 1, call.args[2] as i32),
        };
        self.change(call, dirfd, pi, false, |p| done(sys::fs::unlinkat(None, path(p), flags)))
    }

    pub(super) fn symlink(&self, call: &Call) -> Reply {
        let (dirfd, pi) = if call.nr == libc::SYS_symlink { (ProgramFd::CWD, 1) } else { (call.arg_fd(1), 2) };
        let target = match call.path(0) {
            Ok(t) => c(&t),
            Err(e) => return Reply::Error(e),
        };
        self.change(call, dirfd, pi, false, |p| done(sys::symlinkat(path(&target), None, path(p))))
    }

    pub(super) fn rename(&self, call: &Call) -> Reply {
        let (od, op, nd, np, flags) = match call.nr {
            libc::SYS_rename => (ProgramFd::CWD, 0, ProgramFd::CWD, 1, 0),
            libc::SYS_renameat => (call.arg_fd(0), 1, call.arg_fd(2), 3, 0),
            _ => (call.arg_fd(0), 1, call.arg_fd(2), 3, call.args[4] as u32),
        };
        let r = self.path_arg(call, op).and_then(|a| {
            let b = self.path_arg(call, np)?;
            self.on_two_paths(call, (od, &a), (nd, &b), |x, y| {
                done(sys::fs::renameat2(None, path(x), None, path(y), flags))
            })
        });
        Reply::from(r)
    }

    pub(super) fn link(&self, call: &Call) -> Reply {
        let (od, op, nd, np, flags) = match call.nr {
            libc::SYS_link => (ProgramFd::CWD, 0, ProgramFd::CWD, 1, 0),
            _ => (call.arg_fd(0), 1, call.arg_fd(2), 3, call.args[4] as i32),
        };
        let r = self.path_arg(call, op).and_then(|a| {
            let b = self.path_arg(call, np)?;
            if a.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
                // Link the caller's descriptor: through the Sentry's own copy of it.
                let fd = call.fetch_fd(od)?;
                let from = c(host::self_fd(&fd).as_bytes());
                return match self.resolver.locate(call, nd, &b)? {
                    Located::Path(to) => done(sys::fs::linkat(
                        Some(host::proc_fd()?),
                        path(&from),
                        None,
                        path(&c(&to)),
                        libc::AT_SYMLINK_FOLLOW,
                    )),
                    Located::Proc(_) => Err(libc::EXDEV),
                };
            }
            let f = flags;
            self.on_two_paths(call, (od, &a), (nd, &b), |x, y| done(sys::fs::linkat(None, path(x), None, path(y), f)))
        });
        Reply::from(r)
    }

    // ---- metadata -----------------------------------------------------------------------

    pub(super) fn chmod(&self, call: &Call) -> Reply {
        let (dirfd, pi, mode, flags) = match call.nr {
            libc::SYS_chmod => (ProgramFd::CWD, 0, call.args[1] as u32, 0),
            libc::SYS_fchmodat => (call.arg_fd(0), 1, call.args[2] as u32, 0),
            _ => (call.arg_fd(0), 1, call.args[2] as u32, call.args[3] as i32),
        };
        self.change_at(call, dirfd, pi, flags, |dir, p, flags| done(sys::fs::fchmodat2(dir, p, mode, flags)))
    }

    pub(super) fn chown(&self, call: &Call) -> Reply {
        let (dirfd, pi, uid, gid, flags) = match call.nr {
            libc::SYS_chown => (ProgramFd::CWD, 0, call.args[1], call.args[2], 0),
            libc::SYS_lchown => (ProgramFd::CWD, 0, call.args[1], call.args[2], libc::AT_SYMLINK_NOFOLLOW),
            _ => (call.arg_fd(0), 1, call.args[2], call.args[3], call.args[4] as i32),
        };
        self.change_at(call, dirfd, pi, flags, |dir, p, flags| {
            done(sys::fs::fchownat(dir, p, uid as u32, gid as u32, flags))
        })
    }

    pub(super) fn utimes(&self, call: &Call) -> Reply {
        let times = match call.nr {
            libc::SYS_utime => read_utimbuf(call, call.args[1]),
            libc::SYS_utimes => read_timevals(call, call.args[1]),
            libc::SYS_futimesat => read_timevals(call, call.args[2]),
            _ if call.args[2] == 0 => Ok(None),
            _ => call.read_struct::<[abi::kernel_timespec; 2]>(call.args[2]).map(|t| Some(t.map(libc::timespec::from))),
        };
        let times = match times {
            Ok(t) => t,
            Err(e) => return Reply::Error(e),
        };
        let (dirfd, pi, flags) = match call.nr {
            libc::SYS_utime | libc::SYS_utimes => (ProgramFd::CWD, 0, 0),
            libc::SYS_futimesat => (call.arg_fd(0), 1, 0),
            _ => (call.arg_fd(0), 1, call.args[3] as i32),
        };
        self.change_at(call, dirfd, pi, flags, |dir, p, flags| done(sys::fs::utimensat(dir, p, times.as_ref(), flags)))
    }

    pub(super) fn truncate(&self, call: &Call) -> Reply {
        let len = call.args[1] as i64;
        // The caller's file-size limit, which Linux checks against the caller's own
        // (RLIMIT_FSIZE is per process, and the Sentry has its own).
        if len > 0 && self.file_size_limit(call).is_some_and(|max| len as u64 > max) {
            return Reply::Error(libc::EFBIG);
        }
        let r = self.path_arg(call, 0).and_then(|path| {
            self.on_path(
                call,
                ProgramFd::CWD,
                &path,
                true,
                |p| done(sys::fs::truncate(p, len)),
                |comps| {
                    // Through a magic link: open its target for writing as the caller (the
                    // permission check `truncate` makes), then cut it.
                    let fd = self.proc_target(call, &comps, true)?.ok_or(libc::EACCES)?;
                    let w = self.as_caller(call, || super::procfs::reopen(&fd, libc::O_WRONLY | libc::O_NONBLOCK))?;
                    done(sys::fs::ftruncate(w.as_fd(), len))
                },
            )
        });
        Reply::from(r)
    }

    /// The caller's soft RLIMIT_FSIZE in bytes (`None`: unlimited or unknown).
    fn file_size_limit(&self, call: &Call) -> Option<u64> {
        let limits = host::read_string(&format!("{}/limits", call.tid)).ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max file size"))?;
        line["Max file size".len()..].split_whitespace().next()?.parse().ok()
    }

    pub(super) fn statfs(&self, call: &Call) -> Reply {
        let r = call.path(0).and_then(|path| {
            let st = self.on_path(
                call,
                ProgramFd::CWD,
                &path,
                true,
                |p| sys::fs::statfs(p).map_err(errno),
                |comps| {
                    if let Some(fd) = self.proc_target(call, &comps, true)? {
                        return sys::fs::fstatfs(fd.as_fd()).map_err(errno);
                    }
                    let mut st = abi::zeroed::<libc::statfs>();
                    st.f_type = 0x9fa0; // PROC_SUPER_MAGIC
                    st.f_bsize = 4096;
                    st.f_namelen = 255;
                    Ok(st)
                },
            )?;
            call.write_struct(call.args[1], &st)?;
            Ok(0)
        });
        Reply::from(r)
    }
}

fn read_timevals(call: &Call, addr: u64) -> SysResult<Option<[libc::timespec; 2]>> {
    if addr == 0 {
        return Ok(None);
    }
    let tv: [abi::kernel_old_timeval; 2] = call.read_struct(addr)?;
    let ts = |t: abi::kernel_old_timeval| libc::timespec { tv_sec: t.tv_sec, tv_nsec: t.tv_usec * 1000 };
    Ok(Some([ts(tv[0]), ts(tv[1])]))
}

fn read_utimbuf(call: &Call, addr: u64) -> SysResult<Option<[libc::timespec; 2]>> {
    if addr == 0 {
        return Ok(None);
    }
    let b: [i64; 2] = call.read_struct(addr)?;
    Ok(Some([libc::timespec { tv_sec: b[0], tv_nsec: 0 }, libc::timespec { tv_sec: b[1], tv_nsec: 0 }]))
}

/// A resolved path as the `sys` wrappers take it (no copy).
pub(super) fn path(p: &CStr) -> &Path {
    Path::new(OsStr::from_bytes(p.to_bytes()))
}

/// A wrapper's result as the reply of a call that returns 0.
pub(super) fn done(r: std::io::Result<()>) -> SysResult<i64> {
    r.map(|()| 0).map_err(errno)
}
