//! Reading request bodies with bounded memory and time: each body has a deadline, and the
//! bodies of function calls held at once share one budget of bytes, so stalled or slow
//! uploads cannot take the server's memory (excess requests wait briefly, then get 503).

use super::{text, Body};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout_at, Instant};

/// How long a request waits for room in the budget before it gets 503.
const BUDGET_WAIT: Duration = Duration::from_secs(2);
/// The admin's bodies (a code zip, up to 100 MiB) get this many times the body timeout: a
/// deploy over a slow link must not fail, and the caller has shown the admin token.
const ADMIN_TIMEOUT_FACTOR: u32 = 10;
/// The most a login form (a few hundred bytes, from anyone) may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Who sends a body.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sender {
    /// Anyone (a function call): the body counts in the shared budget, under the body timeout.
    Anyone,
    /// The admin (checked before the body is read): not counted, a longer deadline.
    Admin,
    /// Anyone, with a small form (the console's login): counted, and a short deadline.
    Login,
}

/// Reads request bodies: the deadline of one body and the budget shared by all.
#[derive(Clone)]
pub struct BodyReader {
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    timeout: Duration,
}

/// A body read, and its share of the budget, given back when this is dropped.
pub struct HeldBody {
    pub bytes: Bytes,
    _share: Option<OwnedSemaphorePermit>,
}

#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// Over the limit given to [`BodyReader::read`].
    TooLarge,
    /// Not all there by the deadline.
    TimedOut(Duration),
    /// The budget stayed full.
    Busy(usize),
    Read(String),
}

impl BodyError {
    /// The answer to the client (a body over its limit is the caller's to explain).
    pub fn response(&self, limit: usize) -> Response<Body> {
        match self {
            Self::TooLarge => text(413, format!("the request body is over the {} MiB limit", limit >> 20)),
            Self::TimedOut(d) => text(
                408,
                format!(
                    "the request body did not arrive within {} s: send it faster, or in a smaller request",
                    d.as_secs()
                ),
            ),
            Self::Busy(budget) => text(
                503,
                format!(
                    "the server already holds its {} MiB of request bodies (fnbox serve --body-memory): retry later",
                    budget >> 20
                ),
            ),
            Self::Read(e) => text(400, format!("the request body could not be read: {e}")),
        }
    }
}

impl BodyReader {
    /// `budget`: bytes of counted bodies held at once; `timeout`: the most one body may take.
    pub fn new(budget: usize, timeout: Duration) -> Self {
        // The semaphore counts bytes; it cannot hold more permits than this.
        let budget = budget.min(Semaphore::MAX_PERMITS);
        Self { budget: Arc::new(Semaphore::new(budget)), budget_bytes: budget, timeout }
    }

    /// Reads a whole body of at most `limit` bytes (`declared`: its Content-Length, if any).
    pub async fn read(
        &self,
        mut body: Incoming,
        limit: usize,
        declared: Option<usize>,
        sender: Sender,
    ) -> Result<HeldBody, BodyError> {
        if declared.is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge);
        }
        let timeout = match sender {
            Sender::Anyone => self.timeout,
            Sender::Admin => self.timeout * ADMIN_TIMEOUT_FACTOR,
            Sender::Login => self.timeout.min(LOGIN_TIMEOUT),
        };
        let deadline = Instant::now() + timeout;
        let mut share = Share { reader: self, permit: None, held: 0, counted: sender != Sender::Admin };
        // A declared size is taken at once: a request waits for room before any byte is read.
        share.grow(declared.unwrap_or(0), deadline).await?;
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
        loop {
            let frame = match timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(BodyError::TimedOut(timeout)),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            share.grow(buf.len() + data.len(), deadline).await?;
            buf.extend_from_slice(&data);
            share.grow(buf.capacity(), deadline).await?;
        }
        Ok(HeldBody { bytes: buf.freeze(), _share: share.permit })
    }
}

/// The part of the budget a body being read holds.
struct Share<'a> {
    reader: &'a BodyReader,
    permit: Option<OwnedSemaphorePermit>,
    held: usize,
    counted: bool,
}

impl Share<'_> {
    /// Holds at least `bytes`, waiting a little for room.
    async fn grow(&mut self, bytes: usize, deadline: Instant) -> Result<(), BodyError> {
        if !self.counted || bytes <= self.held {
            return Ok(());
        }
        let more = u32::try_from(bytes - self.held).map_err(|_| BodyError::TooLarge)?;
        let budget = self.reader.budget.clone();
        let wait = deadline.min(Instant::now() + BUDGET_WAIT);
        let busy = || BodyError::Busy(self.reader.budget_bytes);
        let p = match budget.clone().try_acquire_many_owned(more) {
            Ok(p) => p,
            Err(_) => match timeout_at(wait, budget.acquire_many_owned(more)).await {
                Ok(Ok(p)) => p,
                _ => return Err(busy()),
            },
        };
        match &mut self.permit {
            Some(held) => held.merge(p),
            None => self.permit = Some(p),
        }
        self.held = bytes;
        Ok(())
    }
}
