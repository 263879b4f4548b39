//! A program's terminal (`terminal: true` in an OCI process): a pseudo-terminal from the
//! sandbox's own devpts instance becomes the program's controlling terminal and standard
//! streams; its master side goes back to the launcher, which hands it to the console socket.

use super::protocol::FromSandbox;
use crate::sys::{self, fdpass};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd};
use std::path::Path;

/// Runs in the program's process after `setsid`.
pub fn attach(report: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), String> {
    let master = sys::openat(None, Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC, 0)
        .map_err(|e| format!("cannot open /dev/ptmx for the terminal: {e}"))?;
    sys::tty::unlock(master.as_fd()).map_err(|e| format!("unlockpt: {e}"))?;
    let slave = sys::tty::open_peer(master.as_fd(), libc::O_RDWR | libc::O_NOCTTY)
        .map_err(|e| format!("cannot open the terminal's slave side: {e}"))?;
    let _ = sys::fs::fchown(slave.as_fd(), uid, gid);
    sys::tty::set_controlling(slave.as_fd()).map_err(|e| format!("cannot set the controlling terminal: {e}"))?;
    sys::fd::redirect_std_streams(slave.as_fd(), &[0, 1, 2]);
    if slave.as_raw_fd() <= 2 {
        // It is one of the standard streams now: kept open, no longer ours to close.
        let _ = slave.into_raw_fd();
    }
    fdpass::sendmsg(report, &FromSandbox::Console.encode(), &[master.as_fd()])
        .map_err(|e| format!("cannot send the terminal: {e}"))
}

/// Launcher side: sends a terminal's master to an OCI console socket, as runc does (one
/// message, `SCM_RIGHTS`, the name as data).
pub fn send_to_console_socket(socket: &Path, master: &impl AsFd) -> crate::Result<()> {
    use std::os::unix::net::UnixStream;
    let s = UnixStream::connect(socket)
        .map_err(|e| crate::Error::Setup(format!("cannot connect to the console socket {}: {e}", socket.display())))?;
    fdpass::sendmsg(s.as_fd(), b"/dev/ptmx", &[master.as_fd()])
        .map_err(|e| crate::Error::Setup(format!("cannot send the terminal to {}: {e}", socket.display())))
}
