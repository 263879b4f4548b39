//! The protocol between the platform and a runtime's zygote: every message of that boundary,
//! as the platform writes and reads it (see "Processes and their messages" in
//! docs/architecture.md). Its other end is fnbox's too, in Python and JavaScript
//! (`runtimes/wrapper.py`, `runtimes/wrapper.mjs`): a change here is a change there, and of
//! [`VERSION`], which both wrappers check.
//!
//! The zygote's stdin is one end of a socket pair; on it, one JSON line each way, in order, each
//! with the version in `"v"` ([`fnbox_sandbox::wire`]):
//!
//! ```text
//! zygote → fnbox   {"v":1,"event":"ready","started":T}        interpreter up, wrapper imported
//! fnbox  → zygote  {"v":1,"op":"bind","handler","env":{...},"workdir","check"}
//! zygote → fnbox   {"v":1,"event":"bound","received":T,"forked":T,"imported":T}   serving
//!                | {"v":1,"event":"checked"}                  (a check: then it exits)
//!                | {"v":1,"event":"error","reason","detail"}  (then it exits)
//! ```
//!
//! Times are CLOCK_MONOTONIC seconds. The environment, secrets included, travels only here.
//! Everything the zygote writes is hostile: once the bind request is read, the function's code
//! runs in that process and may write on the socket too (see [`super::channel`]).

use fnbox_sandbox::wire::Protocol;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of this protocol; both ends refuse any other.
pub const VERSION: u32 = 1;

/// The zygote's answers, as the platform reads them.
pub const ANSWER: Protocol = Protocol { peer: "the runtime's zygote", what: "an answer", version: VERSION };
/// The bind request, as the platform writes it (the wrappers check its version themselves).
pub const REQUEST: Protocol = Protocol { peer: "fnbox serve", what: "a bind request", version: VERSION };

/// A line from the zygote.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    /// The interpreter is up and the wrapper imported (and warmed up, in a pre-warmed
    /// sandbox): it waits for the bind request. The interpreter started at `started`.
    Ready { started: f64 },
    /// The handler is loaded and the instance serves on its socket: when the request was
    /// received, when the instance's own process began (the zygote becomes the instance, in
    /// Python and Node alike: the request's receipt; the field is kept for a runtime that
    /// forks), and when the handler was imported.
    Bound { received: f64, forked: f64, imported: f64 },
    /// A check's handler loaded; the zygote exits.
    Checked {},
    /// The handler cannot be loaded (the user's to fix): why, and the traceback of an error
    /// in the user's code (empty when there is none). The zygote exits.
    Error { reason: String, detail: String },
}

impl Answer {
    /// The answer's name, as the line spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Answer::Ready { .. } => "ready",
            Answer::Bound { .. } => "bound",
            Answer::Checked {} => "checked",
            Answer::Error { .. } => "error",
        }
    }
}

/// A line to the zygote.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Become this function's instance: set the environment, change to `workdir`, import the
    /// handler and serve; with `check`, only load the handler, answer and exit (the deploy-time
    /// check).
    Bind { handler: String, env: BTreeMap<String, String>, workdir: String, check: bool },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message survives an encode and a decode unchanged.
    fn round_trips<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(p: &Protocol, all: &[T]) {
        for m in all {
            let line = p.encode_line(m);
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "{line}");
            assert_eq!(&p.decode::<T>(line.as_bytes()).unwrap(), m, "{line}");
        }
    }

    #[test]
    fn messages_round_trip_with_their_version() {
        round_trips(
            &ANSWER,
            &[
                Answer::Ready { started: 1.5 },
                Answer::Bound { received: 1.0, forked: 2.0, imported: 3.0 },
                Answer::Checked {},
                Answer::Error { reason: "SyntaxError: bad".into(), detail: "Traceback...\n".into() },
            ],
        );
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        round_trips(
            &REQUEST,
            &[Request::Bind { handler: "main.handle".into(), env, workdir: "/code".into(), check: true }],
        );
    }

    // The lines the wrappers write, as they write them (json.dumps, JSON.stringify): a change
    // of either side that the other does not follow fails here.
    #[test]
    fn the_wrappers_lines_are_read() {
        let read = |s: &str| ANSWER.decode::<Answer>(s.as_bytes()).unwrap();
        assert_eq!(read(r#"{"v": 1, "event": "ready", "started": 12.25}"#), Answer::Ready { started: 12.25 });
        assert_eq!(read(r#"{"v":1,"event":"ready","started":12}"#), Answer::Ready { started: 12.0 });
        assert_eq!(
            read(r#"{"v":1,"event":"bound","received":1,"forked":2.5,"imported":3}"#),
            Answer::Bound { received: 1.0, forked: 2.5, imported: 3.0 }
        );
        assert_eq!(read(r#"{"v": 1, "event": "checked"}"#), Answer::Checked {});
        assert_eq!(
            read(r#"{"v":1,"event":"error","reason":"r","detail":""}"#),
            Answer::Error { reason: "r".into(), detail: String::new() }
        );
        let req = Request::Bind { handler: "h.f".into(), env: BTreeMap::new(), workdir: "/code".into(), check: false };
        assert_eq!(
            REQUEST.encode(&req),
            r#"{"check":false,"env":{},"handler":"h.f","op":"bind","v":1,"workdir":"/code"}"#
        );
    }

    // Catches: an answer read with defaults (a missing time as none, a misspelt event as not
    // bound), the untyped reading this protocol replaced.
    #[test]
    fn unknown_or_malformed_answers_are_errors_that_say_why() {
        let err = |s: &str| ANSWER.decode::<Answer>(s.as_bytes()).unwrap_err().0;
        for (line, why) in [
            (r#"{"ready": true, "started": 1}"#, "no protocol version"),
            (r#"{"v":2,"event":"ready","started":1}"#, "version 2"),
            (r#"{"v":1,"event":"redy","started":1}"#, "unknown variant `redy`"),
            (r#"{"v":1,"event":"ready"}"#, "missing field `started`"),
            (r#"{"v":1,"event":"ready","started":"soon"}"#, "invalid type"),
            (r#"{"v":1,"event":"bound","received":1,"forked":2}"#, "missing field `imported`"),
            (r#"{"v":1,"event":"checked","ok":true}"#, "unknown field `ok`"),
            (r#"{"v":1,"event":"error","reason":"r"}"#, "missing field `detail`"),
            (r#"{"v":1,"started":1}"#, "missing field `event`"),
            // Not Unicode: why the wrappers replace lone surrogates (a cut pair) before writing.
            (r#"{"v":1,"event":"error","reason":"\ud83d","detail":""}"#, "hex escape"),
            ("[1]", "not a JSON object"),
            ("{\"v\":1,", "not JSON"),
        ] {
            let e = err(line);
            assert!(e.contains(why) && e.contains("the runtime's zygote"), "{line}: {e}");
        }
    }
}
