//! What the queue triggers (NATS JetStream, SQS) share: the consumer task that reconnects
//! with backoff and says its state for `fnbox trigger ls`, the in-flight count that makes
//! back-pressure, and the call of one message with its retry decision. Each queue kind adds
//! only its protocol: how messages are fetched, acknowledged, retried and dead-lettered.
//! See docs/architecture.md, "Triggers".

use super::runner::Handle;
use super::{Run, Trigger, MESSAGE_ID_HEADER, RETRIES};
use crate::platform::Platform;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

const RETRY_MAX: Duration = Duration::from_secs(30);
/// Messages a consumer may have waiting in its function's queue, so that an instance that
/// finishes finds the next one there rather than after a fetch's round trip: one per
/// instance, at least this many.
const PREFETCH: i64 = 2;

/// What a consumer's session tells the task running it.
#[derive(Clone)]
pub struct Session {
    status: Arc<Mutex<String>>,
    connected: Arc<AtomicBool>,
}

impl Session {
    pub fn set(&self, s: String) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// The session reached its queue: the next failure is retried after 1 s again.
    pub fn connected(&self, s: String) {
        self.connected.store(true, Ordering::SeqCst);
        self.set(s);
    }
}

/// Runs `session` until the trigger is removed: each session returns why it ended, which
/// becomes the trigger's state (`error: ...; retrying in N s`) and, when it changed, a line
/// in the function's log; the next session starts after 1, 2, 4 ... 30 s.
pub fn spawn<F, Fut>(p: Arc<Platform>, t: Trigger, first: String, session: F) -> Handle
where
    F: Fn(Arc<Platform>, Trigger, Session) -> Fut + Send + 'static,
    Fut: Future<Output = String> + Send,
{
    let status = Arc::new(Mutex::new(first));
    let s = Session { status: status.clone(), connected: Arc::new(AtomicBool::new(false)) };
    let function = t.function.clone();
    let task = tokio::spawn(async move {
        let mut delay = Duration::from_secs(1);
        let mut last_error = String::new();
        loop {
            let err = session(p.clone(), t.clone(), s.clone()).await;
            if s.connected.swap(false, Ordering::SeqCst) {
                delay = Duration::from_secs(1);
            }
            s.set(format!("error: {err}; retrying in {} s", delay.as_secs()));
            if err != last_error {
                p.logs.event(
                    &t.function,
                    "-",
                    format!("{} trigger {} ({}): {err}; retrying in the background", t.source.kind(), t.name, t.id),
                );
                last_error = err;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    });
    Handle::new(function, status, task.abort_handle())
}

/// A consumer's calls in flight: what back-pressure counts.
#[derive(Clone)]
pub struct Flow {
    max: usize,
    in_flight: Arc<AtomicUsize>,
    done: Arc<Notify>,
}

impl Flow {
    pub fn new(max_in_flight: u32) -> Self {
        Self { max: max_in_flight as usize, in_flight: Arc::default(), done: Arc::default() }
    }

    /// How many messages to fetch now: the trigger's free places, and no more than the
    /// function can take (`Pool::room`, plus a few waiting in its queue). Zero when the
    /// function is at max scale with every instance busy: the messages wait in the queue.
    pub fn room(&self, p: &Platform, function: &str) -> Option<usize> {
        let pool = p.pool(function)?;
        let prefetch = PREFETCH.max(pool.instance_count() as i64);
        Some(
            self.max
                .saturating_sub(self.in_flight.load(Ordering::SeqCst))
                .min((pool.room() + prefetch).max(0) as usize),
        )
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until a call ends (or 200 ms).
    pub async fn wait(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(200), self.done.notified()).await;
    }

    /// Runs a message's call, counted in flight until it ends, however it ends.
    pub fn start<Fut: Future<Output = ()> + Send + 'static>(&self, call: Fut) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let counted = InFlight(self.clone());
        tokio::spawn(async move {
            call.await;
            drop(counted);
        });
    }
}

/// One call of a [`Flow`] in flight: uncounted, and the consumer woken, when dropped.
struct InFlight(Flow);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.done.notify_one();
    }
}

/// One message of a queue, as the function gets it.
pub struct Message {
    /// Its id in the queue (the `X-Fnbox-Message-Id` header).
    pub id: String,
    /// What the log says it is: "message ID on SUBJECT".
    pub what: String,
    /// 1 for its first delivery.
    pub attempt: u32,
    pub published: SystemTime,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
}

/// What to do with a message after its call.
pub enum Verdict {
    /// The function answered < 300: acknowledge (delete) it.
    Done,
    /// It failed with attempts left: deliver it again after this delay.
    Retry(Duration),
    /// Its last attempt failed (with this status): dead-letter it, or drop it.
    GiveUp(u16),
}

/// Calls the function with a message; says what to do with the message.
pub async fn call(p: &Arc<Platform>, t: &Trigger, m: Message) -> Verdict {
    let last_attempt = m.attempt > RETRIES;
    let run = Run {
        trigger: t,
        source_id: t.id.clone(),
        method: hyper::Method::POST,
        path: "/".into(),
        what: m.what,
        headers: [vec![(MESSAGE_ID_HEADER.to_string(), m.id)], m.headers].concat(),
        body: m.body,
        attempt: m.attempt,
        published: m.published,
        last_attempt,
    };
    match run.call(p).await {
        Ok(_) => Verdict::Done,
        // Delivered again after 1, 2, 4 s.
        Err(_) if !last_attempt => Verdict::Retry(Duration::from_secs(1 << m.attempt.saturating_sub(1).min(6))),
        Err(got) => Verdict::GiveUp(got.status),
    }
}

/// Logs the end of a message whose attempts all failed: `said` is where it went.
pub fn gave_up(p: &Platform, t: &Trigger, id: &str, attempts: u32, said: &str) {
    p.logs.event(&t.function, "-", format!("message {id} failed {attempts} times: {said}"));
}

#[cfg(test)]
mod tests {
    use super::Flow;
    use std::time::Duration;

    /// A call counts in flight while it runs, and stops counting however it ends: a call that
    /// panics frees its place too (back-pressure would otherwise stall the consumer).
    #[tokio::test]
    async fn a_call_leaves_the_flow_however_it_ends() {
        let flow = Flow::new(2);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        flow.start(async move {
            let _ = rx.await;
        });
        flow.start(async { panic!("a call that panics (expected in this test)") });
        for _ in 0..200 {
            if flow.in_flight() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(flow.in_flight(), 1, "the panicked call is still counted");
        let _ = tx.send(());
        flow.wait().await;
        for _ in 0..200 {
            if flow.in_flight() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(flow.in_flight(), 0);
    }
}
