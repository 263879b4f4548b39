//! The file syscalls the Sentry makes for itself on paths and descriptors it holds (`readlink`,
//! `statx`), answering an errno as a reply carries it. Used by the path walk (`resolve.rs`),
//! the window on the host's `/proc` (`host.rs`) and the handlers alike.

use super::notify::SysResult;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// `readlinkat(dir, path)` into a vector (`path` may be empty for an `O_PATH` symlink fd).
pub fn readlinkat(dir: RawFd, path: &[u8]) -> SysResult<Vec<u8>> {
    let c = super::notify::cstring(path);
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` is writable for its length; `c` is NUL-terminated.
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// `statx(dir, path, flags, mask)`.
pub fn sys_statx_mask(dir: RawFd, path: &[u8], flags: i32, mask: u32) -> SysResult<libc::statx> {
    let c = super::notify::cstring(path);
    // SAFETY: statx is plain data.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` a writable statx.
    let r = unsafe { libc::statx(dir, c.as_ptr(), flags, mask, &mut st) };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
    }
    Ok(st)
}

/// `statx` of an open (possibly `O_PATH`) descriptor.
pub fn fd_statx(fd: &OwnedFd, mask: u32) -> SysResult<libc::statx> {
    // SAFETY: statx is plain data.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the empty path is NUL-terminated; `st` is writable.
    let r = unsafe { libc::statx(fd.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, mask, &mut st) };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO));
    }
    Ok(st)
}
