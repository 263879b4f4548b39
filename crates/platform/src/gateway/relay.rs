//! An instance's answer on its way to the client, with bounded memory and bounded instance
//! time (docs/architecture.md, "Gateway limits"). The first [`WINDOW`] of the body is read at
//! once: an answer that fits (most do) is sent whole and its instance freed. A larger one is
//! read on into memory within the server's answer budget (`--answer-memory`, [`AnswerMemory`])
//! and its instance freed as soon as it has answered, whether the client reads or not. Only
//! when that budget is full is the rest streamed: a chunk is read from the instance only when
//! the client's connection has room for it, and a client that has not taken the answer within
//! [`CLIENT_HOLD`] loses it (its connection is cut, the instance freed, not stopped).

use super::BodyFailure;
use crate::instances::pool::{Lease, Outcome};
use crate::instances::upstream::{Connection, UpstreamError};
use crate::logs::LogStore;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// What is read of an answer before the gateway decides to send it whole or stream it.
pub const WINDOW: usize = 64 << 10;

/// The longest a client may hold an instance by reading its streamed answer slowly.
pub const CLIENT_HOLD: Duration = Duration::from_secs(10);

/// The default of `fnbox serve --answer-memory`, in MiB.
pub const DEFAULT_ANSWER_MEMORY_MIB: usize = 256;

/// Bytes of answers held in memory for clients at once, shared by all requests.
#[derive(Clone)]
pub struct AnswerMemory {
    room: Arc<Semaphore>,
}

impl AnswerMemory {
    pub fn new(bytes: usize) -> Self {
        Self { room: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))) }
    }

    /// Takes `n` more bytes into `held`, if the budget has them now.
    fn grow(&self, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> bool {
        let Ok(more) = u32::try_from(n) else { return false };
        match self.room.clone().try_acquire_many_owned(more) {
            Ok(p) => {
                match held {
                    Some(h) => h.merge(p),
                    None => *held = Some(p),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes free now.
    pub fn available(&self) -> usize {
        self.room.available_permits()
    }
}

/// An answer read on from its start into memory, as the chunks the instance sent (no copy,
/// no buffer grown by doubling: what it holds is what is charged): all of it (`done`) or,
/// when the budget ran out, as much as was read, the rest to stream. `memory` is what it holds
/// of the budget, to keep until the client has it.
pub struct Gathered {
    pub chunks: VecDeque<Bytes>,
    pub done: bool,
    pub memory: Option<OwnedSemaphorePermit>,
}

/// Reads the rest of `body` after `start` into memory while `budget` has room, within
/// `limit` in all.
pub async fn gather(
    budget: &AnswerMemory,
    start: Start,
    body: &mut Incoming,
    limit: usize,
) -> Result<Gathered, UpstreamError> {
    let mut memory = None;
    let mut len = start.bytes.len();
    let room = budget.grow(&mut memory, len);
    let mut chunks = VecDeque::from([start.bytes]);
    if !room {
        return Ok(Gathered { chunks, done: false, memory });
    }
    loop {
        match body.frame().await {
            None => return Ok(Gathered { chunks, done: true, memory }),
            Some(Err(e)) => return Err(UpstreamError::Connection(e.to_string())),
            Some(Ok(f)) => {
                let Ok(data) = f.into_data() else { continue };
                len += data.len();
                if len > limit {
                    return Err(UpstreamError::TooLarge);
                }
                // The chunk is in memory already: a full budget only stops reading more.
                let room = budget.grow(&mut memory, data.len());
                chunks.push_back(data);
                if !room {
                    return Ok(Gathered { chunks, done: false, memory });
                }
            }
        }
    }
}

/// A whole answer in memory, holding its part of the answer budget until it is sent.
pub struct Held {
    chunks: VecDeque<Bytes>,
    _memory: Option<OwnedSemaphorePermit>,
}

impl Held {
    pub fn new(g: Gathered) -> Self {
        Self { chunks: g.chunks, _memory: g.memory }
    }
}

impl hyper::body::Body for Held {
    type Data = Bytes;
    type Error = BodyFailure;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        Poll::Ready(self.chunks.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.chunks.iter().map(|b| b.len() as u64).sum())
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }
}

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
/// instance is freed when the answer is all relayed (and its connection kept), when this
/// is dropped (the client went away; the connection to the instance is closed), or when the
/// client has held it for [`CLIENT_HOLD`] (the answer is cut).
pub struct Relay {
    first: VecDeque<Bytes>,
    body: Incoming,
    sent: usize,
    limit: usize,
    /// The instance must have sent all of its answer by then (the function's timeout, plus
    /// the time a client may take over each part of it).
    deadline: Pin<Box<Sleep>>,
    /// The lease and its connection, shared with the timer that ends the client's hold.
    leased: Arc<Mutex<Leased>>,
    caller: Arc<Caller>,
    /// The part of the answer budget its first bytes hold.
    _memory: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Leased {
    lease: Option<Lease>,
    connection: Option<Connection>,
    /// Why the answer was cut by the hold timer.
    cut: Option<String>,
}

impl Leased {
    /// Frees the instance (stopped if it overran: `outcome`) and logs why its answer was cut.
    fn cut(&mut self, caller: &Caller, outcome: Outcome, why: String) {
        self.connection = None;
        if let Some(lease) = self.lease.take() {
            caller.logs.event(
                &caller.function,
                &lease.instance.id,
                format!("request {}: {why}; its answer was cut", caller.request_id),
            );
            lease.finish(outcome);
        }
        self.cut = Some(why);
    }
}

impl Relay {
    pub fn new(
        gathered: Gathered,
        body: Incoming,
        limit: usize,
        deadline: Instant,
        lease: Lease,
        c: Connection,
        caller: Caller,
    ) -> Self {
        let leased = Arc::new(Mutex::new(Leased { lease: Some(lease), connection: Some(c), cut: None }));
        let caller = Arc::new(caller);
        let (weak, who) = (Arc::downgrade(&leased), caller.clone());
        tokio::spawn(async move {
            tokio::time::sleep(CLIENT_HOLD).await;
            if let Some(l) = weak.upgrade() {
                let mut l = l.lock().unwrap_or_else(|p| p.into_inner());
                if l.lease.is_some() {
                    let why = format!("the client did not take the answer within {} s", CLIENT_HOLD.as_secs());
                    l.cut(&who, Outcome::Served, why);
                }
            }
        });
        Self {
            sent: gathered.chunks.iter().map(Bytes::len).sum(),
            first: gathered.chunks,
            body,
            limit,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            leased,
            caller,
            _memory: gathered.memory,
        }
    }

    fn leased(&self) -> std::sync::MutexGuard<'_, Leased> {
        self.leased.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the relay: the instance is freed (killed if it overran `outcome`), the client's
    /// connection cut, and the log says why.
    fn fail(&mut self, outcome: Outcome, why: String) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        self.leased().cut(&self.caller, outcome, why.clone());
        Poll::Ready(Some(Err(why.into())))
    }
}

impl hyper::body::Body for Relay {
    type Data = Bytes;
    type Error = BodyFailure;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        if let Some(first) = self.first.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        {
            let l = self.leased();
            if let Some(why) = &l.cut {
                return Poll::Ready(Some(Err(why.clone().into())));
            }
            if l.lease.is_none() {
                return Poll::Ready(None);
            }
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    let mut l = self.leased();
                    if let (Some(lease), Some(c)) = (l.lease.take(), l.connection.take()) {
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
        let first = self.first.iter().map(|b| b.len() as u64).sum();
        match (self.leased().lease.is_some(), self.body.size_hint().exact()) {
            (false, _) => SizeHint::with_exact(first),
            (true, Some(rest)) => SizeHint::with_exact(first + rest),
            (true, None) => SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_empty() && self.leased().lease.is_none()
    }
}
