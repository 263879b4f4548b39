//! A NATS trigger's source as the registry keeps it: subject, stream, server, dead-letter subject
//! and calls in flight, checked when made. A leaf shared by the queue triggers ([`super::nats`])
//! and the asynchronous calls' stream ([`super::jetstream`]).

use super::nats_client::valid_subject;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

pub const DEFAULT_SERVER: &str = "nats://127.0.0.1:4222";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NatsSource {
    pub subject: String,
    /// The stream holding the subject; `None`: found by subject, or made by fnbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    pub max_in_flight: u32,
}

impl NatsSource {
    pub fn new(
        subject: String,
        stream: Option<String>,
        server: Option<String>,
        dead_letter: Option<String>,
        max_in_flight: u32,
    ) -> Result<Self> {
        if !valid_subject(&subject, true) {
            return Err(Error::Invalid(format!(
                "nats: subject '{subject}' is not valid: use dot-separated tokens without spaces (orders.new, orders.*)"
            )));
        }
        if let Some(s) = &stream {
            let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !ok {
                return Err(Error::Invalid(format!(
                    "stream: '{s}' is not a stream name: use 1 to 64 letters, digits, '-' and '_'"
                )));
            }
        }
        if let Some(d) = &dead_letter {
            if !valid_subject(d, false) {
                return Err(Error::Invalid(format!(
                    "dead_letter: '{d}' is not a subject to publish to: dot-separated tokens, no spaces nor wildcards"
                )));
            }
            if subject_matches(&subject, d) {
                return Err(Error::Invalid(format!(
                    "dead_letter: '{d}' is one of the trigger's own subjects ({subject}): dead letters would come back"
                )));
            }
        }
        let server = server.unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let hostport = server.strip_prefix("nats://").unwrap_or(&server);
        let ok = hostport.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            && !hostport.contains('/')
            && !hostport.contains('@');
        if !ok {
            return Err(Error::Invalid(format!(
                "server: '{server}' is not a NATS server address: use nats://HOST:PORT (credentials are not supported)"
            )));
        }
        Ok(Self { subject, stream, server: format!("nats://{hostport}"), dead_letter, max_in_flight })
    }
}

/// Does subject `s` match `pattern` (with `*` and `>`)?
pub(super) fn subject_matches(pattern: &str, s: &str) -> bool {
    let (mut p, mut t) = (pattern.split('.'), s.split('.'));
    loop {
        match (p.next(), t.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}
