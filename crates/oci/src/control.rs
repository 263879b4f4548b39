//! The supervisor's control socket: one `SOCK_SEQPACKET` request per connection, a JSON
//! object (with a descriptor for `listener`), answered by one JSON object.
//!
//! * `{"op":"start"}`: let the held program run.
//! * `{"op":"kill","signal":N,"all":false}`: signal the program (all: every process).
//! * `{"op":"listener"}` + descriptor (v2): serve an exec'd process's seccomp listener.
//! * `{"op":"stop"}`: end the container now (`delete --force`).
//!
//! Paths go through `/proc/self/fd/N/`, so a long `--root` never meets the 108-byte limit of
//! socket addresses.

use crate::error::{Error, IoContext, Result};
use fnbox_sandbox::sys::{self, fdpass};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

fn socket() -> Result<OwnedFd> {
    // SAFETY: plain socket creation.
    let fd = sys::cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })
        .what(|| "cannot create a socket".into())?;
    // SAFETY: socket returned a new descriptor.
    Ok(unsafe { sys::owned(fd) })
}

/// Runs `f` with the address of `path`, reached through its directory's descriptor.
fn with_addr<T>(path: &Path, f: impl FnOnce(&libc::sockaddr_un, libc::socklen_t) -> Result<T>) -> Result<T> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dirfd = sys::openat(None, dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .what(|| format!("cannot open {}", dir.display()))?;
    let short = format!("/proc/self/fd/{}/{name}", dirfd.as_raw_fd());
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if short.len() >= addr.sun_path.len() {
        return Err(Error::Usage(format!("socket path {} is too long", path.display())));
    }
    for (i, b) in short.bytes().enumerate() {
        addr.sun_path[i] = b as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + short.len() + 1) as libc::socklen_t;
    f(&addr, len)
}

/// The supervisor's listening socket.
pub fn listen(path: &Path) -> Result<OwnedFd> {
    let s = socket()?;
    let _ = std::fs::remove_file(path);
    with_addr(path, |addr, len| {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        sys::cvt(unsafe { libc::bind(s.as_raw_fd(), (addr as *const libc::sockaddr_un).cast(), len) })
            .what(|| format!("cannot bind {}", path.display()))
    })?;
    // SAFETY: listen on our own socket.
    sys::cvt(unsafe { libc::listen(s.as_raw_fd(), 16) }).what(|| format!("cannot listen on {}", path.display()))?;
    Ok(s)
}

/// Accepts one connection (with a short receive timeout, so a stuck client cannot stall
/// the supervisor) and reads its request.
pub fn accept(listener: RawFd) -> Option<(OwnedFd, serde_json::Value, Vec<OwnedFd>)> {
    // SAFETY: accept4 on our listening socket; null address arguments are allowed.
    let fd = unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: accept4 returned a new descriptor.
    let conn = unsafe { sys::owned(fd) };
    set_timeout(&conn, 2);
    let mut buf = vec![0u8; 8192];
    let (n, fds) = fdpass::recv(&conn, &mut buf).ok()?;
    let req = serde_json::from_slice(&buf[..n]).ok()?;
    Some((conn, req, fds))
}

pub fn reply(conn: &OwnedFd, r: std::result::Result<(), String>) {
    let v = match r {
        Ok(()) => serde_json::json!({"ok": true}),
        Err(e) => serde_json::json!({"error": e}),
    };
    let _ = fdpass::send(conn.as_raw_fd(), v.to_string().as_bytes(), &[]);
}

fn set_timeout(s: &OwnedFd, secs: i64) {
    let tv = libc::timeval { tv_sec: secs, tv_usec: 0 };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `tv` is a valid timeval for the option.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
    }
}

/// Sends one request to the supervisor at `path` and waits for its answer.
pub fn request(path: &Path, req: serde_json::Value, fd: Option<RawFd>) -> Result<()> {
    let s = socket()?;
    with_addr(path, |addr, len| {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        sys::cvt(unsafe { libc::connect(s.as_raw_fd(), (addr as *const libc::sockaddr_un).cast(), len) })
            .what(|| format!("cannot reach the container's supervisor at {}", path.display()))
    })?;
    set_timeout(&s, 30);
    let fds: Vec<RawFd> = fd.into_iter().collect();
    fdpass::send(s.as_raw_fd(), req.to_string().as_bytes(), &fds).what(|| "cannot talk to the supervisor".into())?;
    let mut buf = vec![0u8; 8192];
    let (n, _) = fdpass::recv(&s, &mut buf).what(|| "the supervisor did not answer".into())?;
    let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap_or_default();
    match v["error"].as_str() {
        Some(e) => Err(Error::Usage(e.to_string())),
        None if v["ok"].as_bool() == Some(true) => Ok(()),
        None => Err(Error::Usage("the container's supervisor ended before it answered".into())),
    }
}
