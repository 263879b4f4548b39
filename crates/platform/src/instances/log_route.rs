//! Where a sandbox's stdout and stderr go ([`LogRoute`]): the server's stderr, a function's
//! logs, a build's client, or nowhere, switched when a pre-warmed sandbox is bound; the last
//! lines of stderr kept to explain a failed start. The reading itself, bounded and paced, is
//! [`output`](super::output)'s.

use super::output::{pump, OutputPace};
use crate::logs::{LogStore, Stream};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Lines of stderr kept to explain a sandbox that failed to start.
const TAIL_LINES: usize = 8;

/// Where a sandbox's output goes: the function's logs once it is bound to one. The last lines
/// of stderr are kept wherever they go, to explain a failed start.
#[derive(Clone)]
pub struct LogRoute {
    logs: Arc<LogStore>,
    to: Arc<Mutex<Dest>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Shared by the sandbox's stdout and stderr.
    pace: OutputPace,
}

enum Dest {
    /// The server's stderr (a pre-warmed sandbox, not yet bound).
    Server,
    /// A function's logs: (function, instance).
    Function(String, String),
    /// Only the tail (a deploy-time check: its output explains a refusal).
    Nowhere,
    /// Each line to a function of fnbox's (a build's output, streamed to its client).
    Sink(LineSink),
}

/// Takes a sandbox's output lines (already cut and escaped: see `instances/output.rs`).
pub type LineSink = Arc<dyn Fn(Stream, String) + Send + Sync>;

impl LogRoute {
    fn new(logs: Arc<LogStore>, to: Dest) -> Self {
        Self { logs, to: Arc::new(Mutex::new(to)), tail: Arc::default(), pace: OutputPace::default() }
    }

    /// Output of a sandbox not yet bound to a function goes to the server's stderr.
    pub fn unbound(logs: Arc<LogStore>) -> Self {
        Self::new(logs, Dest::Server)
    }

    /// Output is only kept to explain a failure.
    pub fn quiet(logs: Arc<LogStore>) -> Self {
        Self::new(logs, Dest::Nowhere)
    }

    /// Each line goes to `sink`.
    pub fn to_sink(logs: Arc<LogStore>, sink: LineSink) -> Self {
        Self::new(logs, Dest::Sink(sink))
    }

    pub fn to(logs: Arc<LogStore>, function: &str, instance: &str) -> Self {
        Self::new(logs, Dest::Function(function.to_string(), instance.to_string()))
    }

    /// From now on, lines go to `function`'s logs, tagged with `instance`.
    pub fn bind(&self, function: &str, instance: &str) {
        *self.to.lock().unwrap_or_else(|p| p.into_inner()) = Dest::Function(function.to_string(), instance.to_string());
    }

    fn push(&self, stream: Stream, line: String, keep: bool) {
        if keep {
            let mut t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.clone());
        }
        match &*self.to.lock().unwrap_or_else(|p| p.into_inner()) {
            Dest::Function(function, instance) => self.logs.push(function, instance, stream, line),
            Dest::Server => eprintln!("fnbox serve: pre-warmed sandbox: {line}"),
            Dest::Nowhere => {}
            Dest::Sink(sink) => sink(stream, line),
        }
    }

    /// The last lines of stderr.
    pub fn tail(&self) -> Vec<String> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Copies an output stream of the sandbox to where this route says, line by line (see
    /// [`output`](super::output): bounded, paced, never closed early), in a task of its own.
    pub fn copy_from(&self, out: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>, stream: Stream) {
        let Some(out) = out else {
            return;
        };
        let route = self.clone();
        tokio::spawn(async move {
            let pace = route.pace.clone();
            pump(out, stream, pace, |stream, line| route.push(stream, line, stream == Stream::Stderr)).await;
        });
    }
}
