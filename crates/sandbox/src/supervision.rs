//! The protocol between a supervisor (the platform, or anyone running `fnbox run
//! --status-fd N --control-fd M`) and the sandbox's launcher: every message of that boundary,
//! written and read through these types by both ends (see "Processes and their messages" in
//! docs/architecture.md). JSON lines, each with the protocol version in `"v"` ([`crate::wire`]).
//!
//! * Status lines, launcher → supervisor ([`Status`]): `started` when the sandbox exists,
//!   `exec` when its program is about to run, `ended` once, last.
//! * Control requests, supervisor → launcher ([`Request`]), one [`Reply`] line each.
//!   A new request is one more variant of [`Request`] (and its arm in the launcher's
//!   `serve_request`).

use crate::cgroup::MemoryUse;
use crate::wire::Protocol;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The version of this protocol; both ends refuse any other.
pub const VERSION: u32 = 1;

/// Status lines, as the supervisor reads them.
pub const STATUS: Protocol = Protocol { peer: "the sandbox's launcher", what: "a status line", version: VERSION };
/// Control requests, as the launcher reads them.
pub const REQUEST: Protocol = Protocol { peer: "the supervisor", what: "a control request", version: VERSION };
/// Replies to control requests, as the supervisor reads them.
pub const REPLY: Protocol = Protocol { peer: "the sandbox's launcher", what: "a control reply", version: VERSION };

/// A status line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Status {
    /// The sandbox exists: its id, its init's pid, its cgroup directories.
    Started { id: String, pid: i32, cgroup: Vec<PathBuf> },
    /// The program is about to `execve`, at this CLOCK_MONOTONIC time.
    Exec { mono_ns: u64 },
    /// The sandbox has ended (or could not be built): always the last line.
    Ended(Ended),
}

/// How a sandbox ended, as its launcher reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ended {
    pub ending: Ending,
    /// `fnbox run`'s exit status (see `Outcome::code`).
    pub code: i32,
    /// The signal, for `signaled`.
    pub signal: Option<i32>,
    /// The line `fnbox run` prints for endings the program did not choose itself.
    pub message: Option<String>,
    pub oom_kills: u64,
    /// Bytes; 0 when the sandbox was never built.
    pub memory_limit: u64,
    pub peak: MemoryUse,
    pub duration_ms: f64,
}

/// The kinds of [`crate::launch::Ending`], as the status line names them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Exited,
    Signaled,
    Oom,
    Timeout,
    Stopped,
    ExecFailed,
    SetupFailed,
}

/// A control request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Makes a host path visible inside the running sandbox, as `--bind SOURCE:TARGET:MODE`.
    Attach {
        source: String,
        target: String,
        #[serde(default)]
        mode: AttachMode,
    },
    /// Moves the sandbox to another memory tier (and its CPU share) and/or pids limit.
    Limits { memory_mb: Option<u64>, pids: Option<u64> },
    /// Ends the start-up CPU boost (`--cpu-boost`); an error reply ends the sandbox.
    Throttle {},
    /// Ends the sandbox now (reported as `stopped`).
    Kill {},
}

impl Request {
    /// The name of its `op`, which its reply repeats.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Attach { .. } => "attach",
            Self::Limits { .. } => "limits",
            Self::Throttle {} => "throttle",
            Self::Kill {} => "kill",
        }
    }
}

/// How an attached path may be written, as `--bind`'s suffix.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AttachMode {
    #[default]
    Ro,
    Rw,
    Cow,
}

impl AttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ro => "ro",
            Self::Rw => "rw",
            Self::Cow => "cow",
        }
    }
}

/// The answer to one request: `reply` is the request's op (`?` for a request that could not
/// be read), then `ok` or the `error`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub reply: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn new(op: &str, r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Self { reply: op.into(), ok: true, error: None },
            Err(e) => Self { reply: op.into(), ok: false, error: Some(e) },
        }
    }

    /// `Err` carries the launcher's reason.
    pub fn into_result(self) -> Result<(), String> {
        match (self.ok, self.error) {
            (true, None) => Ok(()),
            (false, Some(e)) => Err(e),
            (ok, e) => Err(format!("the launcher's reply to {:?} is contradictory (ok {ok}, error {e:?})", self.reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::round_trips;

    fn ended(ending: Ending) -> Ended {
        Ended {
            ending,
            code: 137,
            signal: Some(9),
            message: Some("fnbox: killed".into()),
            oom_kills: 1,
            memory_limit: 128 << 20,
            peak: MemoryUse { total: 3, in_memory_files: 1, anon: 2 },
            duration_ms: 12.5,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let mut all = vec![
            Status::Started { id: "a1".into(), pid: 42, cgroup: vec!["/sys/fs/cgroup/memory/x".into()] },
            Status::Exec { mono_ns: 123_456_789 },
        ];
        for e in [
            Ending::Exited,
            Ending::Signaled,
            Ending::Oom,
            Ending::Timeout,
            Ending::Stopped,
            Ending::ExecFailed,
            Ending::SetupFailed,
        ] {
            all.push(Status::Ended(ended(e)));
        }
        round_trips(&STATUS, &all);
        let reqs = [
            Request::Attach { source: "/h".into(), target: "/code".into(), mode: AttachMode::Cow },
            Request::Attach { source: "/h".into(), target: "/code".into(), mode: AttachMode::Rw },
            Request::Limits { memory_mb: Some(256), pids: None },
            Request::Throttle {},
            Request::Kill {},
        ];
        round_trips(&REQUEST, &reqs);
        round_trips(&REPLY, &[Reply::new("attach", Ok(())), Reply::new("?", Err("no".into()))]);
    }

    #[test]
    fn the_wire_shape_is_the_documented_one() {
        assert_eq!(REQUEST.encode(&Request::Kill {}), r#"{"op":"kill","v":1}"#);
        let a: Request = REQUEST.decode(br#"{"v":1,"op":"attach","source":"/s","target":"/t"}"#).unwrap();
        assert_eq!(a, Request::Attach { source: "/s".into(), target: "/t".into(), mode: AttachMode::Ro });
        assert_eq!(REPLY.encode(&Reply::new("limits", Ok(()))), r#"{"ok":true,"reply":"limits","v":1}"#);
        let line = STATUS.encode(&Status::Exec { mono_ns: 5 });
        assert_eq!(line, r#"{"event":"exec","mono_ns":5,"v":1}"#);
    }

    #[test]
    fn unknown_misspelt_and_old_messages_are_errors() {
        let req = |s: &str| REQUEST.decode::<Request>(s.as_bytes()).unwrap_err().0;
        assert!(req(r#"{"v":1,"op":"frobnicate"}"#).contains("unknown variant `frobnicate`"));
        assert!(req(r#"{"v":1,"op":"kill","now":true}"#).contains("unknown field `now`"));
        assert!(req(r#"{"v":1,"op":"limits","memory":128}"#).contains("unknown field `memory`"));
        assert!(
            req(r#"{"v":1,"op":"attach","source":"/s","target":"/t","mode":"rx"}"#).contains("unknown variant `rx`")
        );
        assert!(req(r#"{"op":"kill"}"#).contains("no protocol version"));
        let e = req(r#"{"v":2,"op":"kill"}"#);
        assert!(e.contains("version 2") && e.contains("version 1"), "{e}");
        let st = |s: &str| STATUS.decode::<Status>(s.as_bytes()).unwrap_err().0;
        assert!(st(r#"{"v":1,"event":"exec"}"#).contains("missing field `mono_ns`"));
        assert!(
            st(r#"{"v":1,"event":"ended","ending":"setup_failed","code":125,"message":"x"}"#).contains("missing field")
        );
        assert!(st(r#"{"v":1,"event":"ended","ending":"melted"}"#).contains("unknown variant `melted`"));
        assert!(Reply { reply: "kill".into(), ok: true, error: Some("x".into()) }.into_result().is_err());
        assert_eq!(Reply::new("kill", Err("why".into())).into_result(), Err("why".into()));
    }
}
