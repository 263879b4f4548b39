//! Pseudo-terminals: a master's peer opened without a path lookup, and a terminal made the
//! caller's controlling one (`launch/terminal.rs`, for an OCI process's `terminal: true`).

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `TIOCGPTPEER`: opens the peer (slave) of a master without a path lookup (Linux 4.13).
const TIOCGPTPEER: libc::c_ulong = 0x5441;

/// `TIOCSPTLCK` to 0 (`unlockpt`): the master's peer may be opened.
pub fn unlock(master: BorrowedFd<'_>) -> io::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int, which `unlock` is for the call.
    cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) }).map(drop)
}

/// `TIOCGPTPEER`: the master's peer, opened with `flags` (`O_RDWR | O_NOCTTY`...).
pub fn open_peer(master: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags (an integer) and returns a new descriptor.
    let fd = cvt(unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, flags) })?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `TIOCSCTTY`: `tty` becomes the controlling terminal of the caller (a session leader).
pub fn set_controlling(tty: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer (0: do not steal it from another session).
    cvt(unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}
