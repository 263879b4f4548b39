//! The supervisor's control socket: one `SOCK_SEQPACKET` request per connection (with a
//! descriptor for `listener`), answered by one [`Reply`]. The verbs (`start`, `kill`, `exec`,
//! `delete`) and the supervisor both speak it through this module's types ([`Request`],
//! [`Reply`]: JSON objects with the protocol version in `"v"`, [`fnbox_sandbox::wire`]); see
//! "Processes and their messages" in docs/architecture.md.
//!
//! * `start`: let the held program run.
//! * `kill` `{"signal":N,"all":false}`: signal the program (all: every process).
//! * `listener` + descriptor (v2): serve an exec'd process's seccomp listener.
//! * `stop`: end the container now (`delete --force`).
//!
//! A request that cannot be read (another version, an unknown op, a misspelt or missing
//! field) is answered with an error and does nothing.
//!
//! Paths go through `/proc/self/fd/N/`, so a long `--root` never meets the 108-byte limit of
//! socket addresses.

use crate::error::{Error, IoContext, Result};
use fnbox_sandbox::sys::{self, fdpass};
use fnbox_sandbox::wire::Protocol;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

/// The version of this protocol; both ends refuse any other.
pub const VERSION: u32 = 1;
const REQUEST: Protocol = Protocol { peer: "an fnbox OCI verb", what: "a supervisor request", version: VERSION };
const REPLY: Protocol = Protocol { peer: "the container's supervisor", what: "a supervisor reply", version: VERSION };

/// A request to the container's supervisor. A new request is one more variant (and its arm
/// in `supervisor.rs`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Start {},
    Kill { signal: i32, all: bool },
    Listener {},
    Stop {},
}

impl Request {
    pub fn op(&self) -> &'static str {
        match self {
            Self::Start {} => "start",
            Self::Kill { .. } => "kill",
            Self::Listener {} => "listener",
            Self::Stop {} => "stop",
        }
    }
}

/// The supervisor's answer: `ok`, or the `error`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

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

/// A request as read: `Err` says why it cannot be.
pub type Received = std::result::Result<Request, String>;

/// Accepts one connection (with a short receive timeout, so a stuck client cannot stall
/// the supervisor) and reads its request.
pub fn accept(listener: RawFd) -> Option<(OwnedFd, Received, Vec<OwnedFd>)> {
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
    let req = REQUEST.decode(&buf[..n]).map_err(|e| e.to_string());
    Some((conn, req, fds))
}

pub fn reply(conn: &OwnedFd, r: std::result::Result<(), String>) {
    let reply = match r {
        Ok(()) => Reply { ok: true, error: None },
        Err(e) => Reply { ok: false, error: Some(e) },
    };
    let _ = fdpass::send(conn.as_raw_fd(), REPLY.encode(&reply).as_bytes(), &[]);
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
pub fn request(path: &Path, req: &Request, fd: Option<RawFd>) -> Result<()> {
    let s = socket()?;
    with_addr(path, |addr, len| {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        sys::cvt(unsafe { libc::connect(s.as_raw_fd(), (addr as *const libc::sockaddr_un).cast(), len) })
            .what(|| format!("cannot reach the container's supervisor at {}", path.display()))
    })?;
    set_timeout(&s, 30);
    let fds: Vec<RawFd> = fd.into_iter().collect();
    fdpass::send(s.as_raw_fd(), REQUEST.encode(req).as_bytes(), &fds)
        .what(|| "cannot talk to the supervisor".into())?;
    let mut buf = vec![0u8; 8192];
    let (n, _) = fdpass::recv(&s, &mut buf).what(|| "the supervisor did not answer".into())?;
    if n == 0 {
        return Err(Error::Usage("the container's supervisor ended before it answered".into()));
    }
    let reply: Reply = REPLY.decode(&buf[..n]).map_err(|e| Error::Usage(e.to_string()))?;
    match reply {
        Reply { ok: true, error: None } => Ok(()),
        Reply { ok: false, error: Some(e) } => Err(Error::Usage(e)),
        r => Err(Error::Usage(format!(
            "the container's supervisor answered {} with a contradictory reply: {r:?}",
            req.op()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        for r in [
            Request::Start {},
            Request::Kill { signal: 9, all: true },
            Request::Kill { signal: 15, all: false },
            Request::Listener {},
            Request::Stop {},
        ] {
            assert_eq!(REQUEST.decode::<Request>(REQUEST.encode(&r).as_bytes()).unwrap(), r);
        }
        for r in [Reply { ok: true, error: None }, Reply { ok: false, error: Some("no".into()) }] {
            assert_eq!(REPLY.decode::<Reply>(REPLY.encode(&r).as_bytes()).unwrap(), r);
        }
        assert_eq!(
            REQUEST.encode(&Request::Kill { signal: 2, all: false }),
            r#"{"all":false,"op":"kill","signal":2,"v":1}"#
        );
    }

    /// A misspelt or missing signal was once SIGTERM; now the request is refused.
    #[test]
    fn a_misspelt_or_unknown_request_is_refused() {
        let err = |s: &str| REQUEST.decode::<Request>(s.as_bytes()).unwrap_err().0;
        assert!(err(r#"{"v":1,"op":"kill","sig":9,"all":false}"#).contains("unknown field `sig`"));
        assert!(err(r#"{"v":1,"op":"kill","all":false}"#).contains("missing field `signal`"));
        assert!(err(r#"{"v":1,"op":"kill","signal":"KILL","all":false}"#).contains("invalid type"));
        assert!(err(r#"{"v":1,"op":"pause"}"#).contains("unknown variant `pause`"));
        assert!(err(r#"{"v":1,"op":"stop","force":true}"#).contains("unknown field `force`"));
        let e = err(r#"{"v":7,"op":"start"}"#);
        assert!(e.contains("version 7") && e.contains("version 1") && e.contains("OCI verb"), "{e}");
        let r = |s: &str| REPLY.decode::<Reply>(s.as_bytes()).unwrap_err().0;
        assert!(r(r#"{"v":1,"error":"x"}"#).contains("missing field `ok`"));
        assert!(r(r#"{"ok":true}"#).contains("no protocol version"));
    }
}
