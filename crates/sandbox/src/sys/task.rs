//! Tasks: pidfds of other threads (to reach their descriptors, to signal them with a sender's
//! `siginfo`), and the caller's own namespaces, session and capabilities. Additions of issue
//! 19 (point 6) kept next to `process.rs` while other work changes that file: fold them into
//! it afterwards (with `process::pidfd_getfd` taking a `BorrowedFd`).

use super::{abi, cvt, cvt_long, owned};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// `pidfd_open(2)` with `PIDFD_THREAD`: a pidfd for the thread `tid` itself (Linux 6.9),
/// through which `process::pidfd_getfd` reaches that thread's descriptor table.
pub fn pidfd_open_thread(tid: libc::pid_t) -> io::Result<OwnedFd> {
    const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
    // SAFETY: integer arguments only.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) })?;
    // SAFETY: pidfd_open returned a new descriptor.
    Ok(unsafe { owned(fd as RawFd) })
}

/// `pidfd_send_signal(2)` with the sender's `info` (`None`: as if sent by kill(2)) and `flags`.
pub fn pidfd_send_signal(
    pidfd: BorrowedFd<'_>,
    sig: libc::c_int,
    info: Option<&abi::siginfo>,
    flags: libc::c_uint,
) -> io::Result<()> {
    let info = info.map_or(std::ptr::null(), |i| i as *const abi::siginfo);
    // SAFETY: `info` is null or points to a siginfo (the kernel's size) that outlives the call;
    // the kernel only reads it.
    cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, info, flags) }).map(drop)
}

/// `setns(2)`: moves the caller into the namespace `ns` refers to; `nstype` (`CLONE_NEWUSER`...)
/// checks its kind, 0 accepts any.
pub fn setns(ns: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: a descriptor and an integer; what moves is the caller's own namespaces.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), nstype) }).map(drop)
}

/// `unshare(CLONE_FS)`: gives the calling thread its own working directory, root and umask,
/// so that `fchdir` and [`set_umask`] after it change this thread's only.
pub fn unshare_fs() -> io::Result<()> {
    // SAFETY: an integer flag; CLONE_FS only parts this thread's filesystem context from the
    // other threads' (no memory is shared or released).
    cvt(unsafe { libc::unshare(libc::CLONE_FS) }).map(drop)
}

/// `umask(2)`: sets the file-mode creation mask (the calling thread's after [`unshare_fs`]);
/// returns the previous one.
pub fn set_umask(mask: u32) -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_bits_retain(mask)).bits()
}

/// `setfsuid(2)` on the calling thread only (the raw call: glibc's would reach every thread).
/// Returns nothing: the call reports no error, only the previous id.
pub fn set_thread_fsuid(uid: u32) {
    // SAFETY: an integer argument; the raw call acts on this thread only.
    unsafe { libc::syscall(libc::SYS_setfsuid, uid) };
}

/// `setfsgid(2)` on the calling thread only, as [`set_thread_fsuid`].
pub fn set_thread_fsgid(gid: u32) {
    // SAFETY: an integer argument; the raw call acts on this thread only.
    unsafe { libc::syscall(libc::SYS_setfsgid, gid) };
}

/// `setresuid(uid, -1, -1)` on the calling thread only: its real user id (the effective and
/// saved ones unchanged); errors are not reported, as for [`set_thread_fsuid`].
pub fn set_thread_ruid(uid: u32) {
    // SAFETY: integer arguments; the raw call acts on this thread only.
    unsafe { libc::syscall(libc::SYS_setresuid, uid, -1, -1) };
}

/// `setresgid(gid, -1, -1)` on the calling thread only, as [`set_thread_ruid`].
pub fn set_thread_rgid(gid: u32) {
    // SAFETY: integer arguments; the raw call acts on this thread only.
    unsafe { libc::syscall(libc::SYS_setresgid, gid, -1, -1) };
}

/// `setgroups(2)` on the calling thread only (the raw call, as [`set_thread_fsuid`]).
pub fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length describe `groups` (zero entries: the pointer is not read).
    cvt_long(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(drop)
}

/// `setsid(2)`: a new session (and process group) led by the caller.
pub fn setsid() -> io::Result<()> {
    rustix::process::setsid()?;
    Ok(())
}

/// `capset(2)` on the calling thread: its effective, permitted and inheritable sets (bit
/// masks of capability numbers).
pub fn set_capabilities(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    use rustix::thread::{set_capabilities, CapabilitySet, CapabilitySets};
    let set = CapabilitySet::from_bits_retain;
    Ok(set_capabilities(
        None,
        CapabilitySets { effective: set(effective), permitted: set(permitted), inheritable: set(inheritable) },
    )?)
}
