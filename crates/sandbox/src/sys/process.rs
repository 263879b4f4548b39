//! Processes: clone3, pidfds, waiting, and reading/writing another process's memory.

use super::abi;
use super::{cvt, cvt_long, owned};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Result of [`clone3_fork`] as seen by each side.
pub enum Forked {
    /// In the parent: the child's pid (in the parent's pid namespace) and its pidfd.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
    /// In the child.
    Child,
}

/// `clone3(2)` with fork semantics (the child runs on a copy of the caller's stack) plus the
/// given namespace flags, returning a pidfd for the child. With `CLONE_PARENT` among the
/// flags the child is the caller's sibling: its parent, told of its end by the signal the
/// caller's own end sends its parent, reaps it; the caller keeps only the pidfd.
///
/// # Safety
/// Same rules as `fork(2)`: the caller must be single-threaded, or the child must restrict
/// itself to async-signal-safe operations until it calls `execve` or `_exit`. The child must
/// never return into code that assumes it is the parent (it should end with `_exit`).
pub unsafe fn clone3_fork(ns_flags: u64, cgroup_fd: Option<RawFd>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = abi::clone_args {
        flags: ns_flags | abi::CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        // The kernel refuses an exit signal with CLONE_PARENT: the child gets the caller's.
        exit_signal: if ns_flags & libc::CLONE_PARENT as u64 != 0 { 0 } else { libc::SIGCHLD as u64 },
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= abi::CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: `args` is a valid clone_args whose pidfd pointer outlives the call; with a zero
    // stack the child continues on a copy of this stack, like fork. The caller upholds the
    // fork-safety contract documented above.
    let pid = cvt_long(unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut abi::clone_args, std::mem::size_of::<abi::clone_args>())
    })?;
    if pid == 0 {
        Ok(Forked::Child)
    } else {
        // SAFETY: CLONE_PIDFD stored a new descriptor in `pidfd`.
        let pidfd = unsafe { owned(pidfd) };
        Ok(Forked::Parent { pid: pid as libc::pid_t, pidfd })
    }
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: pidfd_open returned a new descriptor.
    Ok(unsafe { owned(fd as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_signal(pidfd: &impl AsRawFd, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed and means "as if sent by kill(2)".
    cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0) })
        .map(drop)
}

/// `pidfd_getfd(2)`: duplicates descriptor `target_fd` of the process behind `pidfd`.
pub fn pidfd_getfd(pidfd: RawFd, target_fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target_fd, 0) })?;
    // SAFETY: pidfd_getfd returned a new descriptor (close-on-exec is set by the kernel).
    Ok(unsafe { owned(fd as RawFd) })
}

/// `kill(2)`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
}

impl WaitStatus {
    pub fn from_raw(status: libc::c_int) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(Self::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Self::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// The shell convention: the exit code, or 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(c) => c,
            Self::Signaled(s) => 128 + s,
        }
    }
}

/// `waitpid(2)`: returns `None` when `nohang` and nothing has ended.
pub fn waitpid(pid: libc::pid_t, nohang: bool) -> io::Result<Option<(libc::pid_t, WaitStatus)>> {
    let mut status = 0;
    loop {
        let flags = if nohang { libc::WNOHANG } else { 0 };
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if let Some(ws) = WaitStatus::from_raw(status) {
            return Ok(Some((r, ws)));
        }
    }
}

/// Reads `buf.len()` bytes at `addr` in process `pid` (one `process_vm_readv`). Returns the
/// number of bytes read, which may be short at the end of a mapping.
pub fn read_mem(pid: libc::pid_t, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: `local` describes `buf`; the remote address is only interpreted by the kernel
    // in the other process, where a bad address yields EFAULT rather than undefined behaviour.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Writes `data` at `addr` in process `pid`; fails unless every byte was written.
pub fn write_mem(pid: libc::pid_t, addr: u64, data: &[u8]) -> io::Result<()> {
    let local = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: as in `read_mem`; the local buffer is only read.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// Sets real, effective and saved user and group ids (group first, as required).
pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments only. The raw syscalls are used on purpose: glibc's wrappers
    // broadcast to all threads with signals, which is wrong in a freshly cloned child.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    // SAFETY: as above.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })?;
    Ok(())
}

/// Number of this process's threads, from `/proc/self/status`; used to assert the
/// single-threaded precondition of [`clone3_fork`].
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse().unwrap_or(1))))
        .unwrap_or(1)
}
