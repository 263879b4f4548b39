//! The Sentry's window on the host: its `/proc` (for the sandbox's own processes only) and
//! the sandbox's memory cgroup, held as descriptors opened before the Sentry chrooted itself
//! into the sandbox root.

use super::notify::{errno, SysResult};
use crate::sys;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

struct Host {
    proc_dir: OwnedFd,
    cgroup: Option<OwnedFd>,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// Records the descriptors (once, at start-up).
pub fn init(proc_dir: OwnedFd, cgroup: Option<OwnedFd>) {
    let _ = HOST.set(Host { proc_dir, cgroup });
}

/// The host's `/proc` directory descriptor; `EBADF` before [`init`] (never in the running
/// Sentry, which calls it before serving).
pub fn proc_fd() -> SysResult<BorrowedFd<'static>> {
    HOST.get().map(|h| h.proc_dir.as_fd()).ok_or(libc::EBADF)
}

fn read_at(dir: BorrowedFd<'_>, rel: &str) -> SysResult<Vec<u8>> {
    let fd = sys::openat(Some(dir), std::path::Path::new(rel), libc::O_RDONLY, 0).map_err(errno)?;
    let mut out = Vec::with_capacity(4096);
    let mut buf = [0u8; 8192];
    loop {
        match sys::fd::read(&fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(errno(e)),
        }
    }
}

/// Reads `/proc/<rel>` of the host.
pub fn read(rel: &str) -> SysResult<Vec<u8>> {
    read_at(proc_fd()?, rel)
}

pub fn read_string(rel: &str) -> SysResult<String> {
    read(rel).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `readlink` of `/proc/<rel>` of the host.
pub fn read_link(rel: &str) -> SysResult<Vec<u8>> {
    super::fsops::readlinkat(Some(proc_fd()?), rel.as_bytes())
}

pub fn exists(rel: &str) -> bool {
    proc_fd().is_ok_and(|p| sys::fs::exists_at(p, &super::notify::cstring(rel.as_bytes())))
}

/// Entry names of the host directory `/proc/<rel>`.
pub fn list(rel: &str) -> SysResult<Vec<Vec<u8>>> {
    let fd = sys::openat(Some(proc_fd()?), std::path::Path::new(rel), libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(errno)?;
    list_fd(&fd)
}

/// Entry names of an open directory (without `.` and `..`).
pub fn list_fd(fd: &OwnedFd) -> SysResult<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    let mut buf = vec![0u8; 16384];
    loop {
        let n = sys::fs::getdents64(fd.as_fd(), &mut buf).map_err(errno)?;
        if n == 0 {
            return Ok(names);
        }
        let mut off = 0usize;
        while off + 19 < n {
            // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name...
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
            off += reclen;
        }
    }
}

/// Reads a file of the sandbox's memory cgroup.
pub fn cgroup_read(file: &str) -> Option<String> {
    let dir = HOST.get()?.cgroup.as_ref()?;
    read_at(dir.as_fd(), file).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `self/fd/<fd>` (relative to the host `/proc`): names the file behind one of the Sentry's
/// own descriptors.
pub fn self_fd(fd: &OwnedFd) -> String {
    format!("self/fd/{}", fd.as_raw_fd())
}
