//! Thin, safe wrappers over the Linux system calls fnbox needs. Every function here checks the
//! kernel's return value and turns failures into `std::io::Error`; callers add context.
//!
//! Keeping the `unsafe` in one place makes the rest of the crate safe Rust and lets each
//! `unsafe` block state, next to the call, why the arguments are valid.

pub mod abi;
pub mod fd;
pub mod fdpass;
pub mod fs;
pub mod loopdev;
pub mod mount;
pub mod net;
pub mod process;
pub mod seccomp;
pub mod signal;
pub mod thread_caps;
pub mod tty;

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Turns a C-style `-1 + errno` return into an `io::Result`.
pub fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Same as [`cvt`] for `syscall(2)`, whose return type is `c_long`.
pub fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Converts a path to a NUL-terminated string for the kernel.
pub fn cpath(p: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(p.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// Wraps a freshly returned file descriptor.
///
/// # Safety
/// `fd` must be a valid, open descriptor that nothing else owns.
pub unsafe fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub use fs::{
    fchdir, fchmodat, fstat, lchownat, mkdirat, mknodat, open_in_root, openat, openat2, symlinkat, write_file,
};

/// `close_range(first, ~0, flags)`: closes (or marks close-on-exec) every descriptor from
/// `first` up.
pub fn close_from(first: u32, cloexec_only: bool) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let flags = if cloexec_only { CLOSE_RANGE_CLOEXEC } else { 0 };
    // SAFETY: close_range takes plain integers.
    cvt_long(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) }).map(drop)
}

/// Renumbers `fds` as 3, 4, ... (close-on-exec) and closes every other descriptor above 2:
/// what a process that must not keep its parent's descriptors calls first. Returns them under
/// their new numbers, in order.
pub fn keep_only(fds: Vec<OwnedFd>) -> Vec<OwnedFd> {
    // Move all out of the way first so that the dup3s below cannot clobber one of them.
    let high: Vec<RawFd> = fds
        .iter()
        // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor numbered 100 or more.
        .map(|f| unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) })
        .collect();
    drop(fds);
    let kept: Vec<OwnedFd> = (3..)
        .zip(&high)
        .map(|(to, &from)| {
            // SAFETY: dup3 onto a low number (close-on-exec); everything above is closed next.
            let r = unsafe { libc::dup3(from, to, libc::O_CLOEXEC) };
            // Both calls fail only without descriptors to spare below 100 (or in a race with
            // another thread, which the callers do not have): a broken process, said loudly.
            assert_eq!(r, to, "cannot renumber descriptor {from} as {to}: {}", io::Error::last_os_error());
            // SAFETY: `to` is now a copy of `from` that nothing else owns (what it numbered
            // before was replaced: one of the descriptors this function discards).
            unsafe { OwnedFd::from_raw_fd(to) }
        })
        .collect();
    let _ = close_from(3 + kept.len() as u32, false);
    kept
}

/// `prctl(2)` with integer arguments.
pub fn prctl(option: libc::c_int, a2: libc::c_ulong, a3: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: every prctl option used by fnbox takes integer arguments.
    cvt(unsafe { libc::prctl(option, a2, a3, 0 as libc::c_ulong, 0 as libc::c_ulong) })
}

/// Fills `buf` with random bytes from the kernel.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::rand::getrandom(&mut buf[done..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `bytes` random bytes from the kernel, in hex (`2 * bytes` characters): identifiers and
/// tokens alike, so there is no weaker fallback. `getrandom(2)` without flags fails only for a
/// bad buffer (or before Linux 3.17, which fnbox does not run on); that is a bug, so it panics.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    random_bytes(&mut buf).expect("getrandom(2) failed");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.iter().flat_map(|b| [HEX[(b >> 4) as usize] as char, HEX[(b & 15) as usize] as char]).collect()
}

/// `flock(2)` on an open descriptor. Returns `Ok(false)` when `nonblocking` and the lock is
/// held elsewhere.
pub fn flock(fd: &impl AsFd, exclusive: bool, nonblocking: bool) -> io::Result<bool> {
    use rustix::fs::FlockOperation as Op;
    let op = match (exclusive, nonblocking) {
        (true, false) => Op::LockExclusive,
        (true, true) => Op::NonBlockingLockExclusive,
        (false, false) => Op::LockShared,
        (false, true) => Op::NonBlockingLockShared,
    };
    loop {
        match rustix::fs::flock(fd, op) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)`: the clock the launcher's status lines and the programs'
/// wrappers report in (`time.monotonic()`, `process.hrtime()`).
pub fn monotonic() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a writable timespec; CLOCK_MONOTONIC always exists, so the call cannot
    // fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `sysinfo(2)`: the machine's memory, swap and load figures.
pub fn sysinfo() -> libc::sysinfo {
    // SAFETY: sysinfo is plain data (integers and arrays of them): all zeroes is a valid value.
    let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `si` is a valid out-pointer, which is sysinfo's only way to fail.
    unsafe { libc::sysinfo(&mut si) };
    si
}

/// The running kernel's release and version, as `uname -r` and `uname -v` print them.
pub fn kernel_release() -> (String, String) {
    let u = rustix::system::uname();
    let s = |c: &std::ffi::CStr| c.to_bytes().iter().map(|&b| b as char).collect::<String>();
    (s(u.release()), s(u.version()))
}

/// Whether the caller runs as root (its effective uid is 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The bytes free on the filesystem holding `path` (`statvfs(2)`'s free blocks).
pub fn fs_free(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bfree.saturating_mul(st.f_frsize))
}

/// Raises the soft limit of open descriptors to the hard one (no privilege needed) and
/// returns the soft limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut rl = getrlimit(Resource::Nofile);
    if rl.current < rl.maximum
        && setrlimit(Resource::Nofile, rustix::process::Rlimit { current: rl.maximum, ..rl }).is_ok()
    {
        rl.current = rl.maximum;
    }
    rl.current.unwrap_or(u64::MAX)
}

/// `SO_SNDBUF` of a socket: the kernel memory it may queue for its peer (Linux doubles it
/// for its bookkeeping).
pub fn set_send_buffer(socket: &impl AsFd, bytes: usize) -> io::Result<()> {
    Ok(rustix::net::sockopt::set_socket_send_buffer_size(socket, bytes)?)
}

/// [`inherited_file`], for a descriptor that must be a socket (`--listen-fd`).
pub fn inherited_socket(fd: RawFd) -> io::Result<OwnedFd> {
    let f = OwnedFd::from(inherited_file(fd)?);
    if fstat(&f)?.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("descriptor {fd} is not a socket")));
    }
    Ok(f)
}

/// The text of an errno value, without Rust's "(os error N)" suffix.
pub fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Takes ownership of a descriptor inherited from the parent process (`--status-fd`), after
/// checking it is open, and marks it close-on-exec so no sandbox inherits it. A bare number:
/// it comes from the command line, and nothing in this process owns it before this call.
pub fn inherited_file(fd: RawFd) -> io::Result<std::fs::File> {
    // SAFETY: F_GETFD only queries the descriptor.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("descriptor {fd} is not open")));
    }
    // SAFETY: F_SETFD on an open descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the descriptor is open and, by the caller's contract, ours to own from now on.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}
