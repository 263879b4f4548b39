//! Reading request bodies with bounded memory and time (docs/architecture.md, "Gateway
//! limits"): each body has a deadline, and the bodies of function calls held at once share one
//! budget of bytes, charged as the bytes arrive (a declared `Content-Length` reserves nothing),
//! of which one client (an IPv4 address, an IPv6 /64) may hold a share only. Stalled or slow
//! uploads cannot take the server's memory, and one client's cannot take its neighbours' room:
//! a body that finds no room waits briefly, then gets 503.

use super::{text, Body};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Response;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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
    /// Anyone (a function call), from this address: the body counts in the shared budget and
    /// in its client's share, under the body timeout.
    Anyone(IpAddr),
    /// The admin (checked before the body is read): not counted, a longer deadline.
    Admin,
    /// Anyone, with a small form (the console's login): counted, and a short deadline.
    Login,
}

/// The client a connection counts for in per-client limits: an IPv4 address, or the /64 of
/// an IPv6 one (one host commonly holds a whole /64). IPv4-mapped IPv6 counts as IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

/// Reads request bodies: the deadline of one body, the budget shared by all and each
/// client's share of it.
#[derive(Clone)]
pub struct BodyReader {
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    per_client: usize,
    /// The clients holding bytes now, each with the room left in its share.
    clients: Arc<Mutex<HashMap<IpAddr, Arc<Semaphore>>>>,
    timeout: Duration,
    /// The budget of answers held for clients (`--answer-memory`): requests carry both.
    pub answers: super::relay::AnswerMemory,
}

/// A body read, and its share of the budget, given back when this is dropped.
pub struct HeldBody {
    pub bytes: Bytes,
    _share: Option<Charge>,
}

#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// Over the limit given to [`BodyReader::read`].
    TooLarge,
    /// Not all there by the deadline.
    TimedOut(Duration),
    /// The budget stayed full.
    Busy(usize),
    /// The client's share of the budget stayed full.
    ClientBusy(usize),
    Read(String),
}

impl BodyError {
    /// The answer to the client (a body over its limit is the caller's to explain).
    pub fn response(&self, limit: usize) -> Response<Body> {
        let mib = |n: &usize| n.div_ceil(1 << 20);
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
                    mib(budget)
                ),
            ),
            Self::ClientBusy(share) => text(
                503,
                format!(
                    "your other requests already hold this client's {} MiB of request bodies (fnbox serve --client-body-memory): finish them first, then retry",
                    mib(share)
                ),
            ),
            Self::Read(e) => text(400, format!("the request body could not be read: {e}")),
        }
    }
}

impl BodyReader {
    /// `budget`: bytes of counted bodies held at once; `per_client`: the most of it one client
    /// may hold; `timeout`: the most one body may take.
    pub fn new(budget: usize, per_client: usize, timeout: Duration) -> Self {
        // The semaphores count bytes; they cannot hold more permits than this.
        let budget = budget.min(Semaphore::MAX_PERMITS);
        Self {
            budget: Arc::new(Semaphore::new(budget)),
            budget_bytes: budget,
            per_client: per_client.min(budget),
            clients: Arc::default(),
            timeout,
            answers: super::relay::AnswerMemory::new(super::relay::DEFAULT_ANSWER_MEMORY_MIB << 20),
        }
    }

    /// The most one body may take to arrive (and a client to take a part of an answer).
    pub fn timeout(&self) -> Duration {
        self.timeout
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
            Sender::Anyone(_) => self.timeout,
            Sender::Admin => self.timeout * ADMIN_TIMEOUT_FACTOR,
            Sender::Login => self.timeout.min(LOGIN_TIMEOUT),
        };
        let deadline = Instant::now() + timeout;
        let mut share = match sender {
            Sender::Anyone(ip) => Some(self.charge(ip)),
            // Login forms are counted as one client of their own: however many arrive at once,
            // they hold at most one client's share of the budget.
            Sender::Login => Some(self.charge(IpAddr::from([0, 0, 0, 0]))),
            Sender::Admin => None,
        };
        // Memory is taken (and charged) as bytes arrive, never from what the client declares:
        // the buffer grows by doubling, each step charged before it is allocated.
        let mut buf: Vec<u8> = Vec::new();
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
            let needed = buf.len() + data.len();
            if needed > limit {
                return Err(BodyError::TooLarge);
            }
            if needed > buf.capacity() {
                let room = needed.max(buf.capacity() * 2).min(limit).max(needed);
                if let Some(share) = &mut share {
                    share.grow(room, deadline).await?;
                }
                buf.reserve_exact(room - buf.len());
            }
            buf.extend_from_slice(&data);
        }
        Ok(HeldBody { bytes: Bytes::from(buf), _share: share })
    }

    /// An empty charge on `ip`'s share.
    fn charge(&self, ip: IpAddr) -> Charge {
        let key = client_key(ip);
        let room = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_client)))
            .clone();
        Charge { reader: self.clone(), key, room, permits: None, held: 0 }
    }
}

/// What a body being read holds of the budget and of its client's share.
struct Charge {
    reader: BodyReader,
    key: IpAddr,
    room: Arc<Semaphore>,
    permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
    held: usize,
}

/// Takes `n` permits of `s`, waiting until `until` for them.
async fn take(s: &Arc<Semaphore>, n: u32, until: Instant) -> Option<OwnedSemaphorePermit> {
    match s.clone().try_acquire_many_owned(n) {
        Ok(p) => Some(p),
        Err(_) => timeout_at(until, s.clone().acquire_many_owned(n)).await.ok()?.ok(),
    }
}

impl Charge {
    /// Holds at least `bytes`, waiting a little for room: first in the client's share (so a
    /// client over it waits without taking the others' room), then in the budget.
    async fn grow(&mut self, bytes: usize, deadline: Instant) -> Result<(), BodyError> {
        if bytes <= self.held {
            return Ok(());
        }
        let more = u32::try_from(bytes - self.held).map_err(|_| BodyError::TooLarge)?;
        let wait = deadline.min(Instant::now() + BUDGET_WAIT);
        let mine = take(&self.room, more, wait).await.ok_or(BodyError::ClientBusy(self.reader.per_client))?;
        let all = take(&self.reader.budget, more, wait).await.ok_or(BodyError::Busy(self.reader.budget_bytes))?;
        match &mut self.permits {
            Some((m, a)) => {
                m.merge(mine);
                a.merge(all);
            }
            None => self.permits = Some((mine, all)),
        }
        self.held = bytes;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.permits = None;
        // The last charge of a client takes its entry away (the map holds one Arc, we another).
        let mut clients = self.reader.clients.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&self.room) == 2 && clients.get(&self.key).is_some_and(|r| Arc::ptr_eq(r, &self.room)) {
            clients.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_by_address_and_ipv6_by_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_key(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("2001:db8:1:2::1")), client_key(ip("2001:db8:1:2:ffff::9")));
    }

    #[tokio::test]
    async fn a_client_holds_its_share_only_and_gives_it_back() {
        let r = BodyReader::new(100, 40, Duration::from_secs(5));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let soon = Instant::now() + Duration::from_millis(50);
        let mut first = r.charge(a);
        first.grow(40, soon).await.unwrap();
        let mut second = r.charge(a);
        assert_eq!(second.grow(1, soon).await, Err(BodyError::ClientBusy(40)));
        let mut other = r.charge(b);
        other.grow(40, soon).await.unwrap();
        drop((first, second, other));
        assert!(r.clients.lock().unwrap().is_empty(), "entries of clients holding nothing are kept");
        assert_eq!(r.budget.available_permits(), 100);
    }
}
