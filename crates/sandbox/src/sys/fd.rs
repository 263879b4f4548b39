//! Descriptors' plumbing: pipes, eventfds, waiting with `poll`, status flags, the standard
//! streams and plain reads. On rustix except `poll`, whose callers build `libc::pollfd` arrays.

use super::cvt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// A non-blocking, close-on-exec eventfd starting at 0.
pub fn eventfd_nonblocking() -> io::Result<OwnedFd> {
    use rustix::event::{eventfd, EventfdFlags};
    Ok(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?)
}

/// `poll(2)` on `fds` for at most `timeout_ms` milliseconds (-1: no limit); the number of
/// ready entries. An interruption is an error (`Interrupted`), as `poll` reports it.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfds for the call.
    cvt(unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }).map(|n| n as usize)
}

/// `fcntl(F_GETFL)`: the status flags of an open file (`O_NONBLOCK`, `O_APPEND`...).
pub fn status_flags(fd: impl AsFd) -> io::Result<libc::c_int> {
    Ok(rustix::fs::fcntl_getfl(fd)?.bits() as libc::c_int)
}

/// `fcntl(F_SETFL)`: sets the status flags of an open file (`O_NONBLOCK`, `O_APPEND`...; the
/// kernel ignores the access mode and creation flags).
pub fn set_status_flags(fd: impl AsFd, flags: libc::c_int) -> io::Result<()> {
    Ok(rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::from_bits_retain(flags as u32))?)
}

/// Points the standard streams `streams` (0, 1 or 2) at `file` (`dup2`), as a process that
/// must not keep its parent's terminal or pipes does. Bare numbers: the standard streams
/// belong to the process, not to an `OwnedFd`.
pub fn redirect_std_streams(file: BorrowedFd<'_>, streams: &[RawFd]) {
    for &s in streams {
        assert!((0..=2).contains(&s), "{s} is not a standard stream");
        // SAFETY: dup2 onto a standard stream, which no OwnedFd of this process owns: whatever
        // it pointed at is replaced, nothing in Rust held it.
        unsafe { libc::dup2(file.as_raw_fd(), s) };
    }
}

/// `fcntl(F_SETFD, 0)`: leaves `fd` open across `execve` (clears close-on-exec).
pub fn set_inheritable(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?)
}

/// `read(2)` into `buf`, once: the byte count, 0 at end of file.
pub fn read(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    Ok(rustix::io::read(fd, buf)?)
}
