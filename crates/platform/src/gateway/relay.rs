//! An instance's answer on its way to the client, with bounded memory (docs/architecture.md,
//! "Gateway limits"). The first [`WINDOW`] of the body is read at once: an answer that fits
//! (most do) is sent whole and its instance freed. A larger one is streamed: a chunk is read
//! from the instance only when the client's connection has room for it, so a client that
//! reads slowly, or not at all, holds a window of its answer in the server, never the answer;
//! the instance stays leased until its answer is all read (or the client is dropped for
//! taking nothing for `--body-timeout`).

use super::BodyFailure;
use crate::instances::pool::{Lease, Outcome};
use crate::instances::upstream::{Connection, UpstreamError};
use crate::logs::LogStore;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// What is read of an answer before the gateway decides to send it whole or stream it.
pub const WINDOW: usize = 64 << 10;

/// The start of an answer's body: all of it (`done`), or its first [`WINDOW`] or more.
pub struct Start {
    pub bytes: Bytes,
    pub done: bool,
}

/// Reads the first [`WINDOW`] of `body` (a chunk more at most), within `limit` in all.
pub async fn read_start(body: &mut Incoming, limit: usize) -> Result<Start, UpstreamError> {
    if body.size_hint().lower() > limit as u64 {
        return Err(UpstreamError::TooLarge);
    }
    let mut buf = BytesMut::new();
    while buf.len() < WINDOW {
        match body.frame().await {
            None => return Ok(Start { bytes: buf.freeze(), done: true }),
            Some(Err(e)) => return Err(UpstreamError::Connection(e.to_string())),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(UpstreamError::TooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(Start { bytes: buf.freeze(), done: false })
}

/// Who an answer is for, to name in the log when its relay fails.
pub struct Caller {
    pub logs: Arc<LogStore>,
    pub function: String,
    pub request_id: String,
}

/// The rest of an answer, read from the instance as the client takes it. Holds the lease: the
/// instance is freed when the answer is all relayed (and its connection kept), or when this
/// is dropped (the client went away; the connection to the instance is closed).
pub struct Relay {
    first: Option<Bytes>,
    body: Incoming,
    sent: usize,
    limit: usize,
    /// The instance must have sent all of its answer by then (the function's timeout, plus
    /// the time a client may take over each part of it).
    deadline: Pin<Box<Sleep>>,
    lease: Option<Lease>,
    connection: Option<Connection>,
    caller: Caller,
}

impl Relay {
    pub fn new(
        start: Start,
        body: Incoming,
        limit: usize,
        deadline: Instant,
        lease: Lease,
        c: Connection,
        caller: Caller,
    ) -> Self {
        Self {
            sent: start.bytes.len(),
            first: Some(start.bytes),
            body,
            limit,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            lease: Some(lease),
            connection: Some(c),
            caller,
        }
    }

    /// Ends the relay: the instance is freed (killed if it overran `outcome`), the client's
    /// connection cut, and the log says why.
    fn fail(&mut self, outcome: Outcome, why: String) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        self.connection = None;
        if let Some(lease) = self.lease.take() {
            let c = &self.caller;
            c.logs.event(
                &c.function,
                &lease.instance.id,
                format!("request {}: {why}; its answer was cut", c.request_id),
            );
            lease.finish(outcome);
        }
        Poll::Ready(Some(Err(why.into())))
    }
}

impl hyper::body::Body for Relay {
    type Data = Bytes;
    type Error = BodyFailure;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.lease.is_none() {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    if let (Some(lease), Some(c)) = (self.lease.take(), self.connection.take()) {
                        lease.instance.upstream.keep(c);
                        lease.finish(Outcome::Served);
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    return self.fail(Outcome::Served, format!("the instance's answer broke off ({e})"));
                }
                Poll::Ready(Some(Ok(f))) => {
                    let Ok(data) = f.into_data() else {
                        continue; // trailers: not relayed
                    };
                    self.sent += data.len();
                    if self.sent > self.limit {
                        let limit = self.limit >> 20;
                        return self.fail(
                            Outcome::Served,
                            format!("the function answered with a body over the {limit} MiB limit"),
                        );
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Pending => {
                    if self.deadline.as_mut().poll(cx).is_ready() {
                        return self.fail(
                            Outcome::TimedOut,
                            "the instance did not finish its answer in time: it was stopped".into(),
                        );
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// The instance's own length, if it gave one (then the client gets a `Content-Length`).
    fn size_hint(&self) -> SizeHint {
        let first = self.first.as_ref().map_or(0, |b| b.len() as u64);
        match (self.lease.is_some(), self.body.size_hint().exact()) {
            (false, _) => SizeHint::with_exact(first),
            (true, Some(rest)) => SizeHint::with_exact(first + rest),
            (true, None) => SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.lease.is_none()
    }
}
