//! One intercepted syscall: reading its arguments out of the calling thread, and answering
//! it (a value, an error, an installed descriptor, or "run it").

use crate::sys::{self, abi, process, thread_caps};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// An errno to answer with.
pub type Errno = i32;
pub type SysResult<T> = Result<T, Errno>;

/// `io::Error` → errno, for `?` in handlers.
pub fn errno(e: io::Error) -> Errno {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Runs an operation the Sentry makes on its caller for itself (reading or writing its memory,
/// copying one of its descriptors), once more with the Sentry's own capabilities when the
/// kernel refused it while the thread held the caller's (a root caller that is not dumpable:
/// see `Sentry::hold_caps_for`).
fn as_self<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match op() {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) && thread_caps::raise_for_self() => op(),
        r => r,
    }
}

/// A descriptor number of the sandboxed program, as its call names it (a `dirfd`, an `fd`
/// argument): an index into the program's table, read from its registers, never a descriptor
/// of the Sentry's. [`Call::fetch_fd`] turns it into one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramFd(pub i32);

impl ProgramFd {
    /// `AT_FDCWD`: the program's working directory.
    pub const CWD: ProgramFd = ProgramFd(libc::AT_FDCWD);
}

impl std::fmt::Display for ProgramFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How a handler answers.
#[derive(Debug)]
pub enum Reply {
    /// Return this value.
    Value(i64),
    /// Fail with this errno.
    Error(Errno),
    /// Install this descriptor in the caller and return its number.
    Fd { fd: OwnedFd, cloexec: bool },
    /// Let the kernel run the call as the caller made it. Only for calls whose pointer
    /// arguments cannot change what the Sentry checked in a way that matters (`execve` and
    /// `chdir`, resolved by the kernel in the sandbox's own mount namespace; `pidfd_send_signal`
    /// on a descriptor that is not one of the Sentry's `/proc` directories).
    Continue,
    /// Another thread answers (see `Sentry::defer`).
    Deferred,
}

impl From<SysResult<i64>> for Reply {
    fn from(r: SysResult<i64>) -> Self {
        match r {
            Ok(v) => Reply::Value(v),
            Err(e) => Reply::Error(e),
        }
    }
}

/// A received notification.
pub struct Call {
    /// The listener it came from, which must answer it (a sandbox has one per process tree
    /// started in it: the program's, and one per `exec`).
    pub listener: std::sync::Arc<Listener>,
    pub id: u64,
    /// Thread id in the Sentry's (the host's) pid namespace.
    pub tid: libc::pid_t,
    pub nr: i64,
    pub args: [u64; 6],
}

impl Call {
    pub fn arg_fd(&self, i: usize) -> ProgramFd {
        ProgramFd(self.args[i] as i32)
    }

    /// Reads a NUL-terminated string (a path) from the caller's memory. Copied once: the
    /// Sentry never looks at the caller's buffer again, so rewriting it from another thread
    /// changes nothing (no TOCTOU).
    pub fn read_cstr(&self, addr: u64, max: usize) -> SysResult<Vec<u8>> {
        if addr == 0 {
            return Err(libc::EFAULT);
        }
        let mut out = Vec::with_capacity(128);
        let mut chunk = [0u8; 256];
        let mut at = addr;
        while out.len() < max {
            // Never read across a page boundary in one go: the next page may be unmapped
            // while the string ends before it.
            let to_page = 4096 - (at as usize % 4096);
            let want = chunk.len().min(to_page).min(max + 1 - out.len());
            let n = as_self(|| process::read_mem(self.tid, at, &mut chunk[..want])).map_err(errno)?;
            if n == 0 {
                return Err(libc::EFAULT);
            }
            if let Some(z) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
        Err(libc::ENAMETOOLONG)
    }

    /// Reads a path argument (PATH_MAX bytes at most, as the kernel does).
    pub fn path(&self, i: usize) -> SysResult<Vec<u8>> {
        self.read_cstr(self.args[i], libc::PATH_MAX as usize - 1)
    }

    /// Reads `len` bytes from the caller.
    pub fn read_bytes(&self, addr: u64, len: usize) -> SysResult<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let n = as_self(|| process::read_mem(self.tid, addr, &mut buf)).map_err(errno)?;
        if n != len {
            return Err(libc::EFAULT);
        }
        Ok(buf)
    }

    /// Writes `data` into the caller's memory.
    pub fn write_bytes(&self, addr: u64, data: &[u8]) -> SysResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        as_self(|| process::write_mem(self.tid, addr, data)).map_err(errno)
    }

    /// Writes a kernel structure into the caller's memory (one without padding bytes, see
    /// [`abi::KernelOut`]).
    pub fn write_struct<T: abi::KernelOut>(&self, addr: u64, v: &T) -> SysResult<()> {
        self.write_bytes(addr, v.out_bytes())
    }

    /// Reads a kernel structure from the caller's memory: only a type that any bytes make a
    /// valid value of (`zerocopy::FromBytes`, checked at compile time).
    pub fn read_struct<T: zerocopy::FromBytes>(&self, addr: u64) -> SysResult<T> {
        let b = self.read_bytes(addr, std::mem::size_of::<T>())?;
        T::read_from_bytes(&b).map_err(|_| libc::EFAULT)
    }

    /// A duplicate of the caller's descriptor `fd` (same open file description).
    pub fn fetch_fd(&self, fd: ProgramFd) -> SysResult<OwnedFd> {
        if fd.0 < 0 {
            return Err(libc::EBADF);
        }
        let pidfd = process::pidfd_open_thread(self.tid).map_err(errno)?;
        as_self(|| process::pidfd_getfd(pidfd.as_fd(), fd.0)).map_err(|e| match errno(e) {
            libc::EBADF => libc::EBADF,
            e => e,
        })
    }
}

/// The seccomp notification listener.
pub struct Listener(pub OwnedFd);

impl Listener {
    /// Asks the kernel to wake the Sentry on the caller's CPU and switch straight back: a
    /// 10x shorter round trip on our machines (docs/architecture.md, "The two sandboxes").
    pub fn set_sync_wakeup(&self) -> io::Result<()> {
        sys::seccomp::notif_set_flags(self.0.as_fd(), abi::SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
    }

    /// Waits for the next call. `Ok(None)` when every thread using the filter is gone.
    pub fn recv(self: &std::sync::Arc<Self>) -> io::Result<Option<Call>> {
        loop {
            let e = match sys::seccomp::notif_recv(self.0.as_fd()) {
                Ok(n) => {
                    return Ok(Some(Call {
                        listener: std::sync::Arc::clone(self),
                        id: n.id,
                        tid: n.pid as i32,
                        nr: n.data.nr as i64,
                        args: n.data.args,
                    }))
                }
                Err(e) => e,
            };
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The caller went away between the wakeup and our receive.
                Some(libc::ENOENT) => continue,
                _ => {
                    if self.hung_up() {
                        return Ok(None);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The listener's state now, without waiting (`poll`'s `revents`).
    fn state(&self) -> i16 {
        let mut p = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let _ = sys::fd::poll(std::slice::from_mut(&mut p), 0);
        p.revents
    }

    /// Whether a call waits to be received now (or every task is gone): the Sentry's worker
    /// asks every few calls, to call in its helpers when calls queue up.
    pub fn pending(&self) -> bool {
        self.state() != 0
    }

    /// True when no task uses the filter any more.
    pub fn hung_up(&self) -> bool {
        self.state() & libc::POLLHUP != 0
    }

    /// Whether the call is still pending (its thread alive and waiting). Checked after
    /// reading the caller's memory, so a reused thread id can never make the Sentry act on
    /// another process's data.
    pub fn valid(&self, id: u64) -> bool {
        sys::seccomp::notif_id_valid(self.0.as_fd(), id)
    }

    /// Sends the answer. Errors (the caller died meanwhile) are ignored: there is nobody to
    /// answer.
    pub fn respond(&self, id: u64, reply: Reply) {
        match reply {
            Reply::Fd { fd, cloexec } => {
                // Installed, then the Sentry's copy closed, then answered (not atomically with
                // SECCOMP_ADDFD_FLAG_SEND): when the program resumes it must hold the only
                // reference, or its own close would not be the last one and the file would
                // stay open a moment longer (no IN_CLOSE_WRITE yet, ETXTBSY when it runs a
                // file it just wrote). The price: a call interrupted between the two ioctls
                // leaves the descriptor in the program.
                let add = abi::seccomp_notif_addfd {
                    id,
                    flags: 0,
                    srcfd: fd.as_raw_fd() as u32,
                    newfd: 0,
                    newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
                };
                let r = sys::seccomp::notif_addfd(self.0.as_fd(), &add);
                drop(fd);
                let e = match r {
                    Ok(n) => {
                        self.respond(id, Reply::Value(n as i64));
                        return;
                    }
                    Err(e) => e.raw_os_error().unwrap_or(libc::EIO),
                };
                if e != libc::ENOENT {
                    // Installing failed (EMFILE, say): the call must still be answered.
                    self.respond(id, Reply::Error(e));
                }
            }
            Reply::Deferred => {}
            other => {
                let mut resp = abi::seccomp_notif_resp { id, val: 0, error: 0, flags: 0 };
                match other {
                    Reply::Value(v) => resp.val = v,
                    Reply::Error(e) => resp.error = -e,
                    Reply::Continue => resp.flags = abi::SECCOMP_USER_NOTIF_FLAG_CONTINUE,
                    Reply::Fd { .. } | Reply::Deferred => unreachable!("handled above"),
                }
                let _ = sys::seccomp::notif_send(self.0.as_fd(), &resp);
            }
        }
    }
}

/// A path as a C string (paths read from callers never contain NUL).
pub fn cstring(p: &[u8]) -> CString {
    CString::new(p).unwrap_or_default()
}
