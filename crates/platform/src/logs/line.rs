//! One log line: the text, when it was written, by which function and instance, on which stream.
//! Shared by the in-memory store ([`super`]) and its files on disk ([`super::disk`]), which depend
//! on it and not on each other's types.

use serde::{Deserialize, Serialize};

/// Longest line kept; the rest is cut.
pub const LINE_MAX: usize = 8192;

/// Which stream a line came on; `fnbox logs --stream` chooses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    /// fnbox's own events: instance started, ended, request failed.
    Fnbox,
}

impl Stream {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Fnbox => "fnbox",
        }
    }
}

impl std::str::FromStr for Stream {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "stdout" => Ok(Stream::Stdout),
            "stderr" => Ok(Stream::Stderr),
            "fnbox" => Ok(Stream::Fnbox),
            _ => Err(crate::Error::Invalid(format!("stream '{s}' is not known: use stdout, stderr or fnbox"))),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogLine {
    pub time: String,
    pub function: String,
    pub instance: String,
    pub stream: Stream,
    pub line: String,
}

impl LogLine {
    /// `TIME FUNCTION/INSTANCE STREAM: LINE`
    pub fn to_text(&self) -> String {
        format!("{} {}/{} {}: {}", self.time, self.function, self.instance, self.stream.as_str(), self.line)
    }
}
