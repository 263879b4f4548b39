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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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
    sys::net::unix_socket(libc::SOCK_SEQPACKET).what(|| "cannot create a socket".into())
}

/// Runs `f` with a short path to `path`, reached through its directory's descriptor.
fn with_addr<T>(path: &Path, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dirfd = sys::openat(None, dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .what(|| format!("cannot open {}", dir.display()))?;
    let short = format!("/proc/self/fd/{}/{name}", dirfd.as_raw_fd());
    // sun_path's 108 bytes, with the terminating NUL.
    if short.len() >= 108 {
        return Err(Error::Usage(format!("socket path {} is too long", path.display())));
    }
    f(Path::new(&short))
}

/// The supervisor's listening socket.
pub fn listen(path: &Path) -> Result<OwnedFd> {
    let s = socket()?;
    let _ = std::fs::remove_file(path);
    with_addr(path, |addr| sys::net::bind_unix(s.as_fd(), addr).what(|| format!("cannot bind {}", path.display())))?;
    sys::net::listen(s.as_fd(), 16).what(|| format!("cannot listen on {}", path.display()))?;
    Ok(s)
}

/// A request as read: `Err` says why it cannot be.
pub type Received = std::result::Result<Request, String>;

/// Accepts one connection (with a short receive timeout, so a stuck client cannot stall
/// the supervisor) and reads its request.
pub fn accept(listener: BorrowedFd<'_>) -> Option<(OwnedFd, Received, Vec<OwnedFd>)> {
    let conn = sys::net::accept(listener).ok()?;
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
    let _ = fdpass::sendmsg(conn.as_fd(), REPLY.encode(&reply).as_bytes(), &[]);
}

fn set_timeout(s: &OwnedFd, secs: u64) {
    let _ = sys::net::set_timeouts(s.as_fd(), std::time::Duration::from_secs(secs));
}

/// Sends one request to the supervisor at `path` and waits for its answer.
pub fn request(path: &Path, req: &Request, fd: Option<BorrowedFd<'_>>) -> Result<()> {
    let s = socket()?;
    with_addr(path, |addr| {
        sys::net::connect_unix(s.as_fd(), addr)
            .what(|| format!("cannot reach the container's supervisor at {}", path.display()))
    })?;
    set_timeout(&s, 30);
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    fdpass::sendmsg(s.as_fd(), REQUEST.encode(req).as_bytes(), &fds).what(|| "cannot talk to the supervisor".into())?;
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
