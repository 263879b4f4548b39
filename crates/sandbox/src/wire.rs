//! The one encoding of the JSON messages fnbox's processes exchange (see "Processes and their
//! messages" in docs/architecture.md): a JSON object per message, its protocol version in
//! `"v"` beside the message's own fields. Each boundary declares its messages as serde types
//! (a tagged enum per direction) and its version in one module shared by both ends; this module
//! only adds and checks the version and turns every unreadable message into an error that says
//! who sent it, what it was, and what was expected.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// How much of an unreadable message an error quotes.
const QUOTED: usize = 300;

/// A message that cannot be read: wrong version, not JSON, unknown or misspelt fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

/// One boundary's protocol: who is at the other end (for errors) and the version both ends
/// must speak.
#[derive(Clone, Copy, Debug)]
pub struct Protocol {
    /// What sends the messages this end reads, as an error names it ("the sandbox's launcher").
    pub peer: &'static str,
    /// What the messages are ("a status line"), for errors.
    pub what: &'static str,
    pub version: u32,
}

impl Protocol {
    /// `msg` as one JSON object with the version in `"v"` (no newline).
    pub fn encode<T: Serialize>(&self, msg: &T) -> String {
        let mut v = serde_json::to_value(msg).unwrap_or_else(|e| panic!("a {} does not encode: {e}", self.what));
        match v.as_object_mut() {
            Some(o) => o.insert("v".into(), self.version.into()),
            None => panic!("a {} must encode as a JSON object", self.what),
        };
        v.to_string()
    }

    /// [`Protocol::encode`] with a newline: one line of a line-based channel.
    pub fn encode_line<T: Serialize>(&self, msg: &T) -> String {
        let mut s = self.encode(msg);
        s.push('\n');
        s
    }

    /// Reads one message: its version must be this protocol's, its fields exactly those of
    /// one of `T`'s messages.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, WireError> {
        let fail = |why: String| {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim_end();
            let cut = text.char_indices().nth(QUOTED).map_or(text.len(), |(i, _)| i);
            let more = if cut < text.len() { "..." } else { "" };
            WireError(format!("{} sent {} fnbox cannot read ({why}): {}{more}", self.peer, self.what, &text[..cut]))
        };
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| fail(format!("not JSON: {e}")))?;
        let serde_json::Value::Object(mut o) = v else {
            return Err(fail("not a JSON object".into()));
        };
        match o.remove("v") {
            None => return Err(fail(format!("no protocol version \"v\"; expected \"v\":{}", self.version))),
            Some(v) if v.as_u64() == Some(u64::from(self.version)) => {}
            Some(v) => {
                return Err(fail(format!(
                    "it speaks protocol version {v}, this fnbox speaks version {}: run both ends from the same fnbox \
                     installation",
                    self.version
                )))
            }
        }
        T::deserialize(serde_json::Value::Object(o)).map_err(|e| fail(format!("expected {}: {e}", self.what)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde::Deserialize;

    /// Asserts that every message survives an encode and a decode unchanged.
    pub fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(p: &Protocol, all: &[T]) {
        for m in all {
            let line = p.encode_line(m);
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "{line}");
            assert_eq!(&p.decode::<T>(line.as_bytes()).unwrap(), m, "{line}");
        }
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
    enum Test {
        Go { speed: u32 },
        Halt,
    }

    const P: Protocol = Protocol { peer: "the tester", what: "a test message", version: 3 };

    #[test]
    fn messages_round_trip_with_their_version() {
        round_trips(&P, &[Test::Go { speed: 7 }, Test::Halt]);
        assert_eq!(P.encode(&Test::Halt), r#"{"op":"halt","v":3}"#);
    }

    #[test]
    fn unreadable_messages_are_errors_that_say_why() {
        let err = |s: &str| P.decode::<Test>(s.as_bytes()).unwrap_err().0;
        let e = err(r#"{"v":2,"op":"halt"}"#);
        assert!(e.contains("version 2") && e.contains("version 3") && e.contains("the tester"), "{e}");
        assert!(err(r#"{"op":"halt"}"#).contains("no protocol version"));
        assert!(err(r#"{"v":3,"op":"fly"}"#).contains("unknown variant `fly`"));
        assert!(err(r#"{"v":3,"op":"go","sped":1}"#).contains("unknown field `sped`"));
        assert!(err(r#"{"v":3,"op":"go"}"#).contains("missing field `speed`"));
        assert!(err(r#"{"v":3,"op":"go","speed":"fast"}"#).contains("invalid type"));
        assert!(err("[1]").contains("not a JSON object"));
        assert!(err("{").contains("not JSON"));
        assert!(err(&format!("{{\"v\":3,\"op\":\"{}\"}}", "x".repeat(1000))).ends_with("..."));
    }
}
