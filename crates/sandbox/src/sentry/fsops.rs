//! The file syscalls the Sentry makes for itself on paths and descriptors it holds (`readlink`,
//! `statx`), answering an errno as a reply carries it. Used by the path walk (`resolve.rs`),
//! the window on the host's `/proc` (`host.rs`) and the handlers alike.

use super::notify::{errno, SysResult};
use crate::sys;
use std::os::fd::{AsFd, BorrowedFd};

/// `readlinkat(dir, path)` into a vector (`path` may be empty for an `O_PATH` symlink fd;
/// `dir` `None`: the Sentry's working directory, the sandbox's root).
pub fn readlinkat(dir: Option<BorrowedFd<'_>>, path: &[u8]) -> SysResult<Vec<u8>> {
    let c = super::notify::cstring(path);
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = sys::fs::readlinkat(dir, &c, &mut buf).map_err(errno)?;
    buf.truncate(n);
    Ok(buf)
}

/// `statx(dir, path, flags, mask)`.
pub fn sys_statx_mask(dir: Option<BorrowedFd<'_>>, path: &[u8], flags: i32, mask: u32) -> SysResult<libc::statx> {
    sys::fs::statx(dir, &super::notify::cstring(path), flags, mask).map_err(errno)
}

/// `statx` of an open (possibly `O_PATH`) descriptor.
pub fn fd_statx(fd: impl AsFd, mask: u32) -> SysResult<libc::statx> {
    sys::fs::statx(Some(fd.as_fd()), c"", libc::AT_EMPTY_PATH, mask).map_err(errno)
}
