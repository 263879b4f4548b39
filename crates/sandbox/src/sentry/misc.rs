//! Extended attributes, inotify watches and `sysinfo`.

use super::notify::{Call, ProgramFd, Reply, SysResult};
use super::tree::{done, path as as_path};
use super::{host, Sentry};
use crate::sys;
use std::ffi::CStr;
use std::os::fd::AsFd;

const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;

impl Sentry {
    pub(super) fn xattr(&self, call: &Call) -> Reply {
        let follow =
            matches!(call.nr, libc::SYS_setxattr | libc::SYS_getxattr | libc::SYS_listxattr | libc::SYS_removexattr);
        let r = (|| {
            let path = if matches!(
                call.nr,
                libc::SYS_setxattr | libc::SYS_lsetxattr | libc::SYS_removexattr | libc::SYS_lremovexattr
            ) {
                self.path_arg(call, 0)?
            } else {
                call.path(0)?
            };
            let name = if matches!(call.nr, libc::SYS_listxattr | libc::SYS_llistxattr) {
                None
            } else {
                Some(super::resolve::c(&call.read_cstr(call.args[1], XATTR_NAME_MAX)?))
            };
            match call.nr {
                libc::SYS_setxattr | libc::SYS_lsetxattr => {
                    let size = call.args[3] as usize;
                    if size > XATTR_SIZE_MAX {
                        return Err(libc::E2BIG);
                    }
                    let value = if size == 0 { Vec::new() } else { call.read_bytes(call.args[2], size)? };
                    let (name, flags) = (name.as_deref().unwrap_or_default(), call.args[4] as i32);
                    self.on_path_lookup(call, &path, follow, |p| {
                        done(sys::fs::setxattr(as_path(p), follow, name, &value, flags))
                    })
                }
                libc::SYS_getxattr | libc::SYS_lgetxattr => {
                    let name = name.as_deref().unwrap_or_default();
                    self.read_into(call, &path, follow, call.args[2], call.args[3], |p, buf| {
                        sys::fs::getxattr(p, follow, name, buf)
                    })
                }
                libc::SYS_listxattr | libc::SYS_llistxattr => {
                    self.read_into(call, &path, follow, call.args[1], call.args[2], |p, buf| {
                        sys::fs::listxattr(p, follow, buf)
                    })
                }
                _ => {
                    let name = name.as_deref().unwrap_or_default();
                    self.on_path_lookup(call, &path, follow, |p| done(sys::fs::removexattr(as_path(p), follow, name)))
                }
            }
        })();
        Reply::from(r)
    }

    /// A `getxattr`/`listxattr`-style call: the kernel fills a buffer of the caller's `size`
    /// (0 asks for the size only), copied to `dest` in the caller.
    fn read_into(
        &self,
        call: &Call,
        path: &[u8],
        follow: bool,
        dest: u64,
        size: u64,
        f: impl Fn(&std::path::Path, &mut [u8]) -> std::io::Result<usize>,
    ) -> SysResult<i64> {
        let size = (size as usize).min(XATTR_SIZE_MAX);
        let (n, buf) = self.on_path(
            call,
            ProgramFd::CWD,
            path,
            follow,
            |p| {
                let mut buf = vec![0u8; size];
                let n = f(as_path(p), &mut buf).map_err(super::notify::errno)?;
                buf.truncate(if size > 0 { n } else { 0 });
                Ok((n as i64, buf))
            },
            |_| Err(libc::ENOTSUP),
        )?;
        call.write_bytes(dest, &buf)?;
        Ok(n)
    }

    /// `on_path` relative to the cwd, with `/proc` refusing extended attributes.
    fn on_path_lookup(
        &self,
        call: &Call,
        path: &[u8],
        follow: bool,
        op: impl Fn(&CStr) -> SysResult<i64>,
    ) -> SysResult<i64> {
        self.on_path(call, ProgramFd::CWD, path, follow, op, |_| Err(libc::ENOTSUP))
    }

    /// The watch is added to the caller's own inotify instance (a duplicate of its
    /// descriptor), on the path the kernel resolves inside the root.
    pub(super) fn inotify_add_watch(&self, call: &Call) -> Reply {
        let r = (|| {
            let inotify = call.fetch_fd(call.arg_fd(0))?;
            let mask = call.args[2] as u32;
            let path = call.path(1)?;
            let follow = mask & libc::IN_DONT_FOLLOW == 0;
            self.on_path_lookup(call, &path, follow, |p| {
                sys::fs::inotify_add_watch(inotify.as_fd(), as_path(p), mask)
                    .map(i64::from)
                    .map_err(super::notify::errno)
            })
        })();
        Reply::from(r)
    }

    /// `sysinfo`: the sandbox's memory limit and processes, not the host's.
    pub(super) fn sysinfo(&self, call: &Call) -> Reply {
        // Only the uptime is kept from the host.
        let mut si = crate::sys::sysinfo();
        let used = host::cgroup_read("memory.usage_in_bytes")
            .or_else(|| host::cgroup_read("memory.current"))
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let shmem = host::cgroup_read("memory.stat").and_then(|s| crate::cgroup::keyed_value(&s, "shmem")).unwrap_or(0);
        si.totalram = self.info.memory_limit;
        si.freeram = self.info.memory_limit.saturating_sub(used);
        si.sharedram = shmem;
        si.bufferram = 0;
        si.totalswap = 0;
        si.freeswap = 0;
        si.totalhigh = 0;
        si.freehigh = 0;
        si.procs = u16::try_from(super::proc::pids::count()).unwrap_or(u16::MAX);
        si.loads = [0; 3];
        si.mem_unit = 1;
        Reply::from(call.write_struct(call.args[0], &crate::sys::abi::sysinfo::from(&si)).map(|()| 0))
    }
}
