//! A program's terminal (`terminal: true` in an OCI process): a pseudo-terminal from the
//! sandbox's own devpts instance becomes the program's controlling terminal and standard
//! streams; its master side goes back to the launcher, which hands it to the console socket.

use super::protocol::FromSandbox;
use crate::sys::{self, fdpass};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// `TIOCGPTPEER`: opens the peer (slave) of a master without a path lookup (Linux 4.13).
const TIOCGPTPEER: libc::c_ulong = 0x5441;

/// Runs in the program's process after `setsid`.
pub fn attach(report: RawFd, uid: u32, gid: u32) -> Result<(), String> {
    let master = sys::openat(None, Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC, 0)
        .map_err(|e| format!("cannot open /dev/ptmx for the terminal: {e}"))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int; TIOCGPTPEER takes open flags and returns a descriptor.
    let slave = unsafe {
        sys::cvt(libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock)).map_err(|e| format!("unlockpt: {e}"))?;
        sys::cvt(libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY))
            .map_err(|e| format!("cannot open the terminal's slave side: {e}"))?
    };
    // SAFETY: fchown, ioctl and dup2 on descriptors this process owns.
    unsafe {
        let _ = libc::fchown(slave, uid, gid);
        sys::cvt(libc::ioctl(slave, libc::TIOCSCTTY, 0))
            .map_err(|e| format!("cannot set the controlling terminal: {e}"))?;
        for fd in 0..3 {
            libc::dup2(slave, fd);
        }
        if slave > 2 {
            libc::close(slave);
        }
    }
    fdpass::send(report, &FromSandbox::Console.encode(), &[master.as_raw_fd()])
        .map_err(|e| format!("cannot send the terminal: {e}"))
}

/// Launcher side: sends a terminal's master to an OCI console socket, as runc does (one
/// message, `SCM_RIGHTS`, the name as data).
pub fn send_to_console_socket(socket: &Path, master: &impl AsRawFd) -> crate::Result<()> {
    use std::os::unix::net::UnixStream;
    let s = UnixStream::connect(socket)
        .map_err(|e| crate::Error::Setup(format!("cannot connect to the console socket {}: {e}", socket.display())))?;
    fdpass::send(s.as_raw_fd(), b"/dev/ptmx", &[master.as_raw_fd()])
        .map_err(|e| crate::Error::Setup(format!("cannot send the terminal to {}: {e}", socket.display())))
}
