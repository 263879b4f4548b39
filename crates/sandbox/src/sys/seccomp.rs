//! seccomp: installing a BPF filter and the user-notification ioctls the Sentry answers
//! calls through (our own: rustix covers neither). See docs/architecture.md, "The two
//! sandboxes".

use super::{abi, cvt, cvt_long, owned};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: installs `prog` on the calling thread (on
/// every thread with `SECCOMP_FILTER_FLAG_TSYNC`); with `SECCOMP_FILTER_FLAG_NEW_LISTENER`,
/// returns the user-notification listener.
pub fn set_filter(prog: &[libc::sock_filter], flags: libc::c_uint) -> io::Result<Option<OwnedFd>> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies it.
    let r = cvt_long(unsafe {
        libc::syscall(libc::SYS_seccomp, abi::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog)
    })?;
    if flags & abi::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new descriptor.
        Ok(Some(unsafe { owned(r as RawFd) }))
    } else {
        Ok(None)
    }
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS`.
pub fn notif_set_flags(listener: BorrowedFd<'_>, flags: u64) -> io::Result<()> {
    // SAFETY: SET_FLAGS takes an integer flag.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), abi::SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) }).map(drop)
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: waits for the next notification.
pub fn notif_recv(listener: BorrowedFd<'_>) -> io::Result<abi::seccomp_notif> {
    let mut n = abi::seccomp_notif::default();
    // SAFETY: `n` is a zeroed seccomp_notif as the kernel requires, which it fills.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), abi::SECCOMP_IOCTL_NOTIF_RECV, &mut n) })?;
    Ok(n)
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: whether notification `id` is still pending.
pub fn notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: ID_VALID reads the u64 `id` points to.
    unsafe { libc::ioctl(listener.as_raw_fd(), abi::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD`: installs a descriptor in the notifying process; its number.
pub fn notif_addfd(listener: BorrowedFd<'_>, add: &abi::seccomp_notif_addfd) -> io::Result<RawFd> {
    // SAFETY: `add` is a valid seccomp_notif_addfd the kernel only reads.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), abi::SECCOMP_IOCTL_NOTIF_ADDFD, add as *const _) })
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answers a notification.
pub fn notif_send(listener: BorrowedFd<'_>, resp: &abi::seccomp_notif_resp) -> io::Result<()> {
    // SAFETY: `resp` is a valid seccomp_notif_resp the kernel only reads.
    cvt(unsafe { libc::ioctl(listener.as_raw_fd(), abi::SECCOMP_IOCTL_NOTIF_SEND, resp as *const _) }).map(drop)
}
