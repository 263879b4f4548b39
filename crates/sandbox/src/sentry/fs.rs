//! Emulation of the path-taking file syscalls.
//!
//! Each handler copies the path out of the caller once, resolves it inside the sandbox root
//! (`resolve.rs`), performs the operation on descriptors the Sentry holds, and answers with a
//! value, an error, or an installed descriptor. Operations on a resolved file go through
//! `/proc/self/fd/N` of the Sentry's own descriptor, which names exactly the file that was
//! resolved, so nothing is ever looked up twice.

use super::notify::{errno, Call, Reply, SysResult};
use super::resolve::{c, fd_statx, Node, Parent};
use super::Sentry;
use crate::sys::{self, abi};
use std::os::fd::{AsRawFd, OwnedFd};

/// `/proc/self/fd/<fd>` (and an optional component below it), as a C string.
fn fd_path(fd: &OwnedFd, name: Option<&[u8]>) -> std::ffi::CString {
    let mut p = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
    if let Some(n) = name {
        p.push(b'/');
        p.extend_from_slice(n);
    }
    c(&p)
}

fn ret(r: libc::c_int) -> SysResult<i64> {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(r as i64)
    }
}

fn ret_long(r: libc::c_long) -> SysResult<i64> {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(r)
    }
}

/// Converts `statx` to the `struct stat` of `stat`/`newfstatat`.
pub fn to_stat(x: &libc::statx) -> libc::stat {
    // SAFETY: stat is plain data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
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

impl Sentry {
    /// Reads path argument `i` and checks the call is still pending.
    pub(super) fn path_arg(&self, call: &Call, i: usize) -> SysResult<Vec<u8>> {
        let p = call.path(i)?;
        if !self.listener.valid(call.id) {
            return Err(libc::ESRCH);
        }
        Ok(p)
    }

    /// The caller's umask (from the host's `/proc/<tid>/status`).
    pub(super) fn umask_of(&self, call: &Call) -> u32 {
        std::fs::read_to_string(format!("/proc/{}/status", call.tid))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("Umask:")).and_then(|l| u32::from_str_radix(l[6..].trim(), 8).ok())
            })
            .unwrap_or(0o022)
    }

    // ---- open ---------------------------------------------------------------------------

    pub(super) fn open(&self, call: &Call) -> Reply {
        let (dirfd, pi, flags, mode, resolve) = match call.nr {
            libc::SYS_open => (libc::AT_FDCWD, 0, call.args[1] as i32, call.args[2] as u32, 0u64),
            libc::SYS_creat => {
                (libc::AT_FDCWD, 0, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, call.args[1] as u32, 0)
            }
            libc::SYS_openat2 => {
                let size = call.args[3] as usize;
                if size < std::mem::size_of::<abi::open_how>() {
                    return Reply::Error(libc::EINVAL);
                }
                let how: abi::open_how = match call.read_struct(call.args[2]) {
                    Ok(h) => h,
                    Err(e) => return Reply::Error(e),
                };
                (call.arg_fd(0), 1, how.flags as i32, how.mode as u32, how.resolve)
            }
            _ => (call.arg_fd(0), 1, call.args[2] as i32, call.args[3] as u32, 0),
        };
        let path = match self.path_arg(call, pi) {
            Ok(p) => p,
            Err(e) => return Reply::Error(e),
        };
        match self.open_path(call, dirfd, &path, flags, mode, resolve) {
            Ok(fd) => Reply::Fd { fd, cloexec: flags & libc::O_CLOEXEC != 0 },
            Err(e) => Reply::Error(e),
        }
    }

    fn open_path(
        &self,
        call: &Call,
        dirfd: i32,
        path: &[u8],
        flags: i32,
        mode: u32,
        resolve: u64,
    ) -> SysResult<OwnedFd> {
        if path.is_empty() {
            return Err(libc::ENOENT);
        }
        let creating = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
        let mode = if creating { mode & 0o7777 & !self.umask_of(call) } else { 0 };
        let our_flags = (flags | libc::O_CLOEXEC) as u64;
        // openat2 with RESOLVE_BENEATH/IN_ROOT is relative to the caller's own directory.
        if resolve & (abi::RESOLVE_BENEATH | abi::RESOLVE_IN_ROOT) != 0 {
            let base = if dirfd == libc::AT_FDCWD {
                sys::openat(
                    Some(self.resolver.host_proc.as_raw_fd()),
                    std::path::Path::new(&format!("{}/cwd", call.tid)),
                    libc::O_PATH,
                    0,
                )
                .map_err(errno)?
            } else {
                call.fetch_fd(dirfd)?
            };
            let how =
                abi::open_how { flags: our_flags, mode: mode as u64, resolve: resolve | abi::RESOLVE_NO_MAGICLINKS };
            return sys::openat2(base.as_raw_fd(), &c(path), &how).map_err(errno);
        }
        let follow = flags & libc::O_NOFOLLOW == 0;
        match self.resolver.resolve(call, dirfd, path, follow, false) {
            Ok(Node::Fs(node)) => {
                if flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL {
                    return Err(libc::EEXIST);
                }
                if flags & libc::O_PATH != 0 {
                    return Ok(node);
                }
                let st = fd_statx(&node, libc::STATX_TYPE)?;
                if st.stx_mode as u32 & libc::S_IFMT == libc::S_IFLNK {
                    return Err(libc::ELOOP);
                }
                if flags & libc::O_TMPFILE == libc::O_TMPFILE {
                    let how = abi::open_how { flags: our_flags, mode: mode as u64, resolve: 0 };
                    return sys::openat2(node.as_raw_fd(), &c(b"."), &how).map_err(errno);
                }
                // Reopen what was resolved, with the caller's flags.
                let p = fd_path(&node, None);
                // SAFETY: `p` is NUL-terminated.
                let fd = ret(unsafe {
                    libc::open(p.as_ptr(), flags & !(libc::O_CREAT | libc::O_NOFOLLOW) | libc::O_CLOEXEC)
                })?;
                // SAFETY: open returned a new descriptor.
                Ok(unsafe { sys::owned(fd as i32) })
            }
            Ok(Node::Proc(comps)) => self.proc_open(call, &comps, flags),
            Err(libc::ENOENT) if flags & libc::O_CREAT != 0 => match self.resolver.resolve_parent(call, dirfd, path)? {
                Parent::Fs { dir, name } => {
                    let res = abi::RESOLVE_BENEATH | abi::RESOLVE_NO_MAGICLINKS | abi::RESOLVE_NO_SYMLINKS;
                    let how = abi::open_how { flags: our_flags, mode: mode as u64, resolve: res };
                    sys::openat2(dir.as_raw_fd(), &c(&name), &how).map_err(errno)
                }
                Parent::Proc => Err(libc::EACCES),
            },
            Err(e) => Err(e),
        }
    }

    // ---- stat ---------------------------------------------------------------------------

    pub(super) fn stat(&self, call: &Call) -> Reply {
        let (dirfd, pi, flags, buf) = match call.nr {
            libc::SYS_stat => (libc::AT_FDCWD, 0, 0, call.args[1]),
            libc::SYS_lstat => (libc::AT_FDCWD, 0, libc::AT_SYMLINK_NOFOLLOW, call.args[1]),
            libc::SYS_statx => (call.arg_fd(0), 1, call.args[2] as i32, call.args[4]),
            _ => (call.arg_fd(0), 1, call.args[3] as i32, call.args[2]),
        };
        let x = match self.statx_of(call, dirfd, pi, flags) {
            Ok(x) => x,
            Err(e) => return Reply::Error(e),
        };
        let r =
            if call.nr == libc::SYS_statx { call.write_struct(buf, &x) } else { call.write_struct(buf, &to_stat(&x)) };
        Reply::from(r.map(|()| 0))
    }

    fn statx_of(&self, call: &Call, dirfd: i32, pi: usize, flags: i32) -> SysResult<libc::statx> {
        let path = self.path_arg(call, pi)?;
        let mask = if call.nr == libc::SYS_statx { call.args[3] as u32 } else { libc::STATX_BASIC_STATS };
        let sync = flags & libc::AT_STATX_SYNC_TYPE;
        if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
            // fstat of one of the caller's descriptors (how glibc implements fstat).
            let link =
                if dirfd == libc::AT_FDCWD { format!("{}/cwd", call.tid) } else { format!("{}/fd/{dirfd}", call.tid) };
            return super::resolve::sys_statx_mask(self.resolver.host_proc.as_raw_fd(), link.as_bytes(), sync, mask)
                .map_err(|e| if e == libc::ENOENT { libc::EBADF } else { e });
        }
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        match self.resolver.resolve(call, dirfd, &path, follow, flags & libc::AT_EMPTY_PATH != 0)? {
            Node::Fs(fd) => super::resolve::sys_statx_mask(fd.as_raw_fd(), b"", libc::AT_EMPTY_PATH | sync, mask),
            Node::Proc(comps) => self.proc_statx(call, &comps, follow),
        }
    }

    // ---- access, readlink -------------------------------------------------------------------

    pub(super) fn access(&self, call: &Call) -> Reply {
        let (dirfd, pi, mode, flags) = match call.nr {
            libc::SYS_access => (libc::AT_FDCWD, 0, call.args[1] as i32, 0),
            libc::SYS_faccessat => (call.arg_fd(0), 1, call.args[2] as i32, 0),
            _ => (call.arg_fd(0), 1, call.args[2] as i32, call.args[3] as i32),
        };
        let r = (|| {
            let path = self.path_arg(call, pi)?;
            let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
            match self.resolver.resolve(call, dirfd, &path, follow, flags & libc::AT_EMPTY_PATH != 0)? {
                Node::Fs(fd) => {
                    let f = libc::AT_EMPTY_PATH | (flags & (libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW));
                    // SAFETY: the empty path is NUL-terminated.
                    ret_long(unsafe { libc::syscall(libc::SYS_faccessat2, fd.as_raw_fd(), c"".as_ptr(), mode, f) })
                }
                Node::Proc(comps) => {
                    self.proc_lookup(call, &comps, follow)?;
                    if mode & libc::W_OK != 0 {
                        Err(libc::EACCES)
                    } else {
                        Ok(0)
                    }
                }
            }
        })();
        Reply::from(r.map(|_| 0))
    }

    pub(super) fn readlink(&self, call: &Call) -> Reply {
        let (dirfd, pi, buf, size) = match call.nr {
            libc::SYS_readlink => (libc::AT_FDCWD, 0, call.args[1], call.args[2] as i64),
            _ => (call.arg_fd(0), 1, call.args[2], call.args[3] as i64),
        };
        if size <= 0 {
            return Reply::Error(libc::EINVAL);
        }
        let r = (|| {
            let path = self.path_arg(call, pi)?;
            let text = match self.resolver.resolve(call, dirfd, &path, false, true)? {
                Node::Fs(fd) => super::resolve::readlinkat(fd.as_raw_fd(), b"")?,
                Node::Proc(comps) => self.proc_readlink(call, &comps)?,
            };
            let n = text.len().min(size as usize);
            call.write_bytes(buf, &text[..n])?;
            Ok(n as i64)
        })();
        Reply::from(r)
    }

    // ---- operations on a parent directory and a name ----------------------------------------

    /// Resolves the parent of path argument `pi` (relative to `dirfd`).
    fn parent(&self, call: &Call, dirfd: i32, pi: usize) -> SysResult<(OwnedFd, Vec<u8>)> {
        let path = self.path_arg(call, pi)?;
        match self.resolver.resolve_parent(call, dirfd, &path)? {
            Parent::Fs { dir, name } => Ok((dir, name)),
            Parent::Proc => Err(libc::EACCES),
        }
    }

    pub(super) fn mkdir(&self, call: &Call) -> Reply {
        let (dirfd, pi, mode) = match call.nr {
            libc::SYS_mkdir => (libc::AT_FDCWD, 0, call.args[1] as u32),
            _ => (call.arg_fd(0), 1, call.args[2] as u32),
        };
        let r = (|| {
            let (dir, name) = self.parent(call, dirfd, pi)?;
            let mode = mode & 0o7777 & !self.umask_of(call);
            // SAFETY: NUL-terminated name, directory descriptor.
            ret(unsafe { libc::mkdirat(dir.as_raw_fd(), c(&name).as_ptr(), mode) })
        })();
        Reply::from(r)
    }

    pub(super) fn mknod(&self, call: &Call) -> Reply {
        let (dirfd, pi, mode, dev) = match call.nr {
            libc::SYS_mknod => (libc::AT_FDCWD, 0, call.args[1] as u32, call.args[2]),
            _ => (call.arg_fd(0), 1, call.args[2] as u32, call.args[3]),
        };
        let kind = mode & libc::S_IFMT;
        if !(kind == 0 || kind == libc::S_IFREG || kind == libc::S_IFIFO || kind == libc::S_IFSOCK) {
            self.note(call, "device nodes cannot be created");
            return Reply::Error(libc::EPERM);
        }
        let r = (|| {
            let (dir, name) = self.parent(call, dirfd, pi)?;
            let mode = (mode & !0o7777) | (mode & 0o7777 & !self.umask_of(call));
            // SAFETY: NUL-terminated name, directory descriptor.
            ret(unsafe { libc::mknodat(dir.as_raw_fd(), c(&name).as_ptr(), mode, dev as libc::dev_t) })
        })();
        Reply::from(r)
    }

    pub(super) fn unlink(&self, call: &Call) -> Reply {
        let (dirfd, pi, flags) = match call.nr {
            libc::SYS_unlink => (libc::AT_FDCWD, 0, 0),
            libc::SYS_rmdir => (libc::AT_FDCWD, 0, libc::AT_REMOVEDIR),
            _ => (call.arg_fd(0), 1, call.args[2] as i32),
        };
        let r = (|| {
            let (dir, name) = self.parent(call, dirfd, pi)?;
            if name == b"." {
                return Err(libc::EINVAL);
            }
            if name == b".." {
                return Err(libc::ENOTEMPTY);
            }
            // SAFETY: NUL-terminated name, directory descriptor.
            ret(unsafe { libc::unlinkat(dir.as_raw_fd(), c(&name).as_ptr(), flags) })
        })();
        Reply::from(r)
    }

    pub(super) fn rename(&self, call: &Call) -> Reply {
        let (od, op, nd, np, flags) = match call.nr {
            libc::SYS_rename => (libc::AT_FDCWD, 0, libc::AT_FDCWD, 1, 0),
            libc::SYS_renameat => (call.arg_fd(0), 1, call.arg_fd(2), 3, 0),
            _ => (call.arg_fd(0), 1, call.arg_fd(2), 3, call.args[4] as u32),
        };
        let r = (|| {
            let (d1, n1) = self.parent(call, od, op)?;
            let (d2, n2) = self.parent(call, nd, np)?;
            // SAFETY: NUL-terminated names, directory descriptors.
            ret_long(unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    d1.as_raw_fd(),
                    c(&n1).as_ptr(),
                    d2.as_raw_fd(),
                    c(&n2).as_ptr(),
                    flags,
                )
            })
        })();
        Reply::from(r)
    }

    pub(super) fn link(&self, call: &Call) -> Reply {
        let (od, op, nd, np, flags) = match call.nr {
            libc::SYS_link => (libc::AT_FDCWD, 0, libc::AT_FDCWD, 1, 0),
            _ => (call.arg_fd(0), 1, call.arg_fd(2), 3, call.args[4] as i32),
        };
        let r = (|| {
            let (d2, n2) = self.parent(call, nd, np)?;
            if flags & libc::AT_SYMLINK_FOLLOW != 0 || flags & libc::AT_EMPTY_PATH != 0 {
                let path = self.path_arg(call, op)?;
                let Node::Fs(node) = self.resolver.resolve(call, od, &path, true, flags & libc::AT_EMPTY_PATH != 0)?
                else {
                    return Err(libc::EXDEV);
                };
                let p = fd_path(&node, None);
                // SAFETY: NUL-terminated paths; the magic link is followed to the resolved file.
                return ret(unsafe {
                    libc::linkat(libc::AT_FDCWD, p.as_ptr(), d2.as_raw_fd(), c(&n2).as_ptr(), libc::AT_SYMLINK_FOLLOW)
                });
            }
            let (d1, n1) = self.parent(call, od, op)?;
            // SAFETY: NUL-terminated names, directory descriptors.
            ret(unsafe { libc::linkat(d1.as_raw_fd(), c(&n1).as_ptr(), d2.as_raw_fd(), c(&n2).as_ptr(), 0) })
        })();
        Reply::from(r)
    }

    pub(super) fn symlink(&self, call: &Call) -> Reply {
        let (target_arg, dirfd, pi) = match call.nr {
            libc::SYS_symlink => (0, libc::AT_FDCWD, 1),
            _ => (0, call.arg_fd(1), 2),
        };
        let r = (|| {
            let target = call.path(target_arg)?;
            let (dir, name) = self.parent(call, dirfd, pi)?;
            // SAFETY: NUL-terminated strings, directory descriptor.
            ret(unsafe { libc::symlinkat(c(&target).as_ptr(), dir.as_raw_fd(), c(&name).as_ptr()) })
        })();
        Reply::from(r)
    }

    // ---- metadata changes on a resolved file -----------------------------------------------

    /// Resolves path argument `pi`; `Fs` nodes only (`/proc` refuses changes).
    fn node(&self, call: &Call, dirfd: i32, pi: usize, follow: bool, empty: bool) -> SysResult<OwnedFd> {
        let path = self.path_arg(call, pi)?;
        match self.resolver.resolve(call, dirfd, &path, follow, empty)? {
            Node::Fs(fd) => Ok(fd),
            Node::Proc(_) => Err(libc::EPERM),
        }
    }

    pub(super) fn chmod(&self, call: &Call) -> Reply {
        let (dirfd, pi, mode, flags) = match call.nr {
            libc::SYS_chmod => (libc::AT_FDCWD, 0, call.args[1] as u32, 0),
            libc::SYS_fchmodat => (call.arg_fd(0), 1, call.args[2] as u32, 0),
            _ => (call.arg_fd(0), 1, call.args[2] as u32, call.args[3] as i32),
        };
        let r = (|| {
            let node =
                self.node(call, dirfd, pi, flags & libc::AT_SYMLINK_NOFOLLOW == 0, flags & libc::AT_EMPTY_PATH != 0)?;
            if fd_statx(&node, libc::STATX_TYPE)?.stx_mode as u32 & libc::S_IFMT == libc::S_IFLNK {
                return Err(libc::EOPNOTSUPP);
            }
            // SAFETY: NUL-terminated path naming the resolved file.
            ret(unsafe { libc::chmod(fd_path(&node, None).as_ptr(), mode) })
        })();
        Reply::from(r)
    }

    pub(super) fn chown(&self, call: &Call) -> Reply {
        let (dirfd, pi, uid, gid, flags) = match call.nr {
            libc::SYS_chown => (libc::AT_FDCWD, 0, call.args[1], call.args[2], 0),
            libc::SYS_lchown => (libc::AT_FDCWD, 0, call.args[1], call.args[2], libc::AT_SYMLINK_NOFOLLOW),
            _ => (call.arg_fd(0), 1, call.args[2], call.args[3], call.args[4] as i32),
        };
        let r = (|| {
            let node =
                self.node(call, dirfd, pi, flags & libc::AT_SYMLINK_NOFOLLOW == 0, flags & libc::AT_EMPTY_PATH != 0)?;
            // SAFETY: empty path with AT_EMPTY_PATH on an O_PATH descriptor.
            ret(unsafe { libc::fchownat(node.as_raw_fd(), c"".as_ptr(), uid as u32, gid as u32, libc::AT_EMPTY_PATH) })
        })();
        Reply::from(r)
    }

    pub(super) fn utimes(&self, call: &Call) -> Reply {
        let r = (|| {
            let (dirfd, pi, flags, times) = match call.nr {
                libc::SYS_utime => (libc::AT_FDCWD, 0, 0, self.read_utimbuf(call, call.args[1])?),
                libc::SYS_utimes => (libc::AT_FDCWD, 0, 0, self.read_timevals(call, call.args[1])?),
                libc::SYS_futimesat => (call.arg_fd(0), 1, 0, self.read_timevals(call, call.args[2])?),
                _ => {
                    let ts = if call.args[2] == 0 {
                        None
                    } else {
                        Some(call.read_struct::<[libc::timespec; 2]>(call.args[2])?)
                    };
                    (call.arg_fd(0), 1, call.args[3] as i32, ts)
                }
            };
            let tp = times.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
            if flags & libc::AT_SYMLINK_NOFOLLOW != 0 {
                let (dir, name) = self.parent(call, dirfd, pi)?;
                // SAFETY: NUL-terminated name; `tp` is null or points to two timespecs.
                return ret(unsafe {
                    libc::utimensat(dir.as_raw_fd(), c(&name).as_ptr(), tp, libc::AT_SYMLINK_NOFOLLOW)
                });
            }
            let node = self.node(call, dirfd, pi, true, flags & libc::AT_EMPTY_PATH != 0)?;
            // SAFETY: NUL-terminated path naming the resolved file; `tp` as above.
            ret(unsafe { libc::utimensat(libc::AT_FDCWD, fd_path(&node, None).as_ptr(), tp, 0) })
        })();
        Reply::from(r)
    }

    fn read_timevals(&self, call: &Call, addr: u64) -> SysResult<Option<[libc::timespec; 2]>> {
        if addr == 0 {
            return Ok(None);
        }
        let tv: [libc::timeval; 2] = call.read_struct(addr)?;
        let ts = |t: libc::timeval| libc::timespec { tv_sec: t.tv_sec, tv_nsec: t.tv_usec * 1000 };
        Ok(Some([ts(tv[0]), ts(tv[1])]))
    }

    fn read_utimbuf(&self, call: &Call, addr: u64) -> SysResult<Option<[libc::timespec; 2]>> {
        if addr == 0 {
            return Ok(None);
        }
        let b: [i64; 2] = call.read_struct(addr)?;
        Ok(Some([libc::timespec { tv_sec: b[0], tv_nsec: 0 }, libc::timespec { tv_sec: b[1], tv_nsec: 0 }]))
    }

    pub(super) fn truncate(&self, call: &Call) -> Reply {
        let r = (|| {
            let node = self.node(call, libc::AT_FDCWD, 0, true, false)?;
            // SAFETY: NUL-terminated path naming the resolved file.
            ret(unsafe { libc::truncate(fd_path(&node, None).as_ptr(), call.args[1] as i64) })
        })();
        Reply::from(r)
    }

    pub(super) fn statfs(&self, call: &Call) -> Reply {
        let r = (|| {
            let path = self.path_arg(call, 0)?;
            // SAFETY: statfs is plain data.
            let mut st: libc::statfs = unsafe { std::mem::zeroed() };
            match self.resolver.resolve(call, libc::AT_FDCWD, &path, true, false)? {
                // SAFETY: `st` is a writable statfs; fstatfs accepts O_PATH descriptors.
                Node::Fs(fd) => ret(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?,
                Node::Proc(_) => {
                    st.f_type = 0x9fa0; // PROC_SUPER_MAGIC
                    st.f_bsize = 4096;
                    st.f_namelen = 255;
                    0
                }
            };
            call.write_struct(call.args[1], &st)?;
            Ok(0)
        })();
        Reply::from(r)
    }

    // ---- execve, chdir ------------------------------------------------------------------

    /// Checks the program resolves inside the root, then lets the kernel run the call: the
    /// sandbox's mount namespace holds the same read-only tree, so the kernel finds the very
    /// file the Sentry checked.
    pub(super) fn exec(&self, call: &Call) -> Reply {
        let (dirfd, flags) =
            if call.nr == libc::SYS_execveat { (call.arg_fd(0), call.args[4] as i32) } else { (libc::AT_FDCWD, 0) };
        let pi = if call.nr == libc::SYS_execveat { 1 } else { 0 };
        let r = (|| {
            let path = self.path_arg(call, pi)?;
            match self.resolver.resolve(
                call,
                dirfd,
                &path,
                flags & libc::AT_SYMLINK_NOFOLLOW == 0,
                flags & libc::AT_EMPTY_PATH != 0,
            )? {
                Node::Fs(fd) => {
                    let st = fd_statx(&fd, libc::STATX_TYPE)?;
                    match st.stx_mode as u32 & libc::S_IFMT {
                        libc::S_IFREG => Ok(()),
                        libc::S_IFDIR => Err(libc::EACCES),
                        libc::S_IFLNK => Err(libc::ELOOP),
                        _ => Err(libc::EACCES),
                    }
                }
                Node::Proc(_) => {
                    self.note(call, "executing a file under /proc (such as /proc/self/exe)");
                    Err(libc::ENOENT)
                }
            }
        })();
        match r {
            Ok(()) => Reply::Continue,
            Err(e) => Reply::Error(e),
        }
    }

    pub(super) fn chdir(&self, call: &Call) -> Reply {
        let r = (|| {
            let path = self.path_arg(call, 0)?;
            match self.resolver.resolve(call, libc::AT_FDCWD, &path, true, false)? {
                Node::Fs(fd) => {
                    if fd_statx(&fd, libc::STATX_TYPE)?.stx_mode as u32 & libc::S_IFMT != libc::S_IFDIR {
                        return Err(libc::ENOTDIR);
                    }
                    Ok(())
                }
                Node::Proc(_) => {
                    self.note(call, "chdir into /proc");
                    Err(libc::ENOENT)
                }
            }
        })();
        match r {
            Ok(()) => Reply::Continue,
            Err(e) => Reply::Error(e),
        }
    }
}
