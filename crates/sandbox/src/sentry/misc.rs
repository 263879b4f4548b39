//! Extended attributes, inotify watches and `sysinfo`.

use super::notify::{Call, Reply, SysResult};
use super::resolve::{c, Node, Parent};
use super::Sentry;
use std::os::fd::AsRawFd;

const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;

fn ret(r: isize) -> SysResult<i64> {
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(r as i64)
    }
}

impl Sentry {
    /// The path naming the file path argument 0 resolves to, for the `*xattr` calls: a
    /// followed file is named through the Sentry's own descriptor; a symlink itself (the `l*`
    /// variants) through its parent's descriptor and its name.
    fn xattr_target(&self, call: &Call, follow: bool) -> SysResult<(std::ffi::CString, std::os::fd::OwnedFd)> {
        let path = self.path_arg(call, 0)?;
        if follow {
            return match self.resolver.resolve(call, libc::AT_FDCWD, &path, true, false)? {
                Node::Fs(fd) => Ok((c(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes()), fd)),
                Node::Proc(_) => Err(libc::ENOTSUP),
            };
        }
        match self.resolver.resolve_parent(call, libc::AT_FDCWD, &path)? {
            Parent::Fs { dir, name } => {
                let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
                p.extend_from_slice(&name);
                Ok((c(&p), dir))
            }
            Parent::Proc => Err(libc::ENOTSUP),
        }
    }

    pub(super) fn xattr(&self, call: &Call) -> Reply {
        let follow =
            matches!(call.nr, libc::SYS_setxattr | libc::SYS_getxattr | libc::SYS_listxattr | libc::SYS_removexattr);
        let r = (|| {
            let (path, _keep) = self.xattr_target(call, follow)?;
            let p = path.as_ptr();
            match call.nr {
                libc::SYS_setxattr | libc::SYS_lsetxattr => {
                    let name = c(&call.read_cstr(call.args[1], XATTR_NAME_MAX)?);
                    let size = call.args[3] as usize;
                    if size > XATTR_SIZE_MAX {
                        return Err(libc::E2BIG);
                    }
                    let value = if size == 0 { Vec::new() } else { call.read_bytes(call.args[2], size)? };
                    let f = if follow { libc::setxattr } else { libc::lsetxattr };
                    // SAFETY: NUL-terminated strings; `value` holds `size` bytes.
                    ret(unsafe { f(p, name.as_ptr(), value.as_ptr().cast(), size, call.args[4] as i32) } as isize)
                }
                libc::SYS_getxattr | libc::SYS_lgetxattr => {
                    let name = c(&call.read_cstr(call.args[1], XATTR_NAME_MAX)?);
                    let size = (call.args[3] as usize).min(XATTR_SIZE_MAX);
                    let mut buf = vec![0u8; size];
                    let f = if follow { libc::getxattr } else { libc::lgetxattr };
                    // SAFETY: `buf` is writable for `size` bytes (or size is 0: a size query).
                    let n = ret(unsafe { f(p, name.as_ptr(), buf.as_mut_ptr().cast(), size) })?;
                    if size > 0 {
                        call.write_bytes(call.args[2], &buf[..n as usize])?;
                    }
                    Ok(n)
                }
                libc::SYS_listxattr | libc::SYS_llistxattr => {
                    let size = (call.args[2] as usize).min(XATTR_SIZE_MAX);
                    let mut buf = vec![0u8; size];
                    let f = if follow { libc::listxattr } else { libc::llistxattr };
                    // SAFETY: as above.
                    let n = ret(unsafe { f(p, buf.as_mut_ptr().cast(), size) })?;
                    if size > 0 {
                        call.write_bytes(call.args[1], &buf[..n as usize])?;
                    }
                    Ok(n)
                }
                _ => {
                    let name = c(&call.read_cstr(call.args[1], XATTR_NAME_MAX)?);
                    let f = if follow { libc::removexattr } else { libc::lremovexattr };
                    // SAFETY: NUL-terminated strings.
                    ret(unsafe { f(p, name.as_ptr()) } as isize)
                }
            }
        })();
        Reply::from(r)
    }

    /// The watch is added to the caller's own inotify instance (a duplicate of its
    /// descriptor), on the file the Sentry resolved.
    pub(super) fn inotify_add_watch(&self, call: &Call) -> Reply {
        let r = (|| {
            let inotify = call.fetch_fd(call.arg_fd(0))?;
            let mask = call.args[2] as u32;
            let path = self.path_arg(call, 1)?;
            let follow = mask & libc::IN_DONT_FOLLOW == 0;
            let target = match self.resolver.resolve(call, libc::AT_FDCWD, &path, follow, false)? {
                Node::Fs(fd) => fd,
                Node::Proc(_) => return Err(libc::ENOTSUP),
            };
            // A symlink itself is watched through its O_PATH descriptor with IN_DONT_FOLLOW.
            let p = c(format!("/proc/self/fd/{}", target.as_raw_fd()).as_bytes());
            // SAFETY: NUL-terminated path; integer descriptor and mask.
            let r = unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), p.as_ptr(), mask & !libc::IN_DONT_FOLLOW) };
            ret(r as isize)
        })();
        Reply::from(r)
    }

    /// `sysinfo`: the sandbox's memory limit and processes, not the host's.
    pub(super) fn sysinfo(&self, call: &Call) -> Reply {
        // SAFETY: sysinfo is plain data.
        let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
        // SAFETY: `si` is writable; used for uptime and loads only.
        unsafe { libc::sysinfo(&mut si) };
        let mem = crate::cgroup::MemoryUse::default();
        let used = self.memory_used().unwrap_or(mem.total);
        si.totalram = self.info.memory_limit;
        si.freeram = self.info.memory_limit.saturating_sub(used);
        si.sharedram = self.memory_shmem();
        si.bufferram = 0;
        si.totalswap = 0;
        si.freeswap = 0;
        si.totalhigh = 0;
        si.freehigh = 0;
        si.procs = super::proc::pids::list(&self.info.procs_files()).len() as u16;
        si.loads = [0; 3];
        si.mem_unit = 1;
        Reply::from(call.write_struct(call.args[0], &si).map(|()| 0))
    }

    fn memory_used(&self) -> Option<u64> {
        let dir = self.info.cgroup.first()?;
        ["memory.usage_in_bytes", "memory.current"]
            .iter()
            .find_map(|f| std::fs::read_to_string(dir.join(f)).ok().and_then(|s| s.trim().parse().ok()))
    }

    fn memory_shmem(&self) -> u64 {
        let Some(dir) = self.info.cgroup.first() else { return 0 };
        let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        crate::cgroup::keyed_value(&stat, "shmem").unwrap_or(0)
    }
}
