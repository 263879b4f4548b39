//! Asynchronous calls kept in NATS JetStream (`fnbox serve --async-nats URL [--async-stream
//! NAME]`). `POST /async/fn/NAME` stores the call's state in the registry, publishes the
//! request to the stream (subject `fnbox.async.NAME`, the body as payload, the request line
//! and headers in the `Fnbox-Request` header, the call id as `Nats-Msg-Id`) and answers 202
//! only once JetStream has acknowledged it: from then on the request is on the broker's disk.
//! Each function's calls are taken by a durable consumer (`fnbox-async-NAME`) run by the same
//! code as NATS queue triggers ([`super::nats`]): pulled only while the function has room, at
//! most [`IN_FLIGHT`] in flight, acknowledged after the call's end is recorded,
//! redelivered after 1, 2, 4 s on a status of 300 or more. A delivery whose call the registry
//! says has finished is acknowledged without running it: a call accepted before a `kill -9`
//! runs after the restart, once. See docs/architecture.md, "Asynchronous calls in JetStream".

use super::async_call::{self, RequestHead, IN_FLIGHT};
use super::jetstream::{consumer_id, subject, MSG_ID_HEADER, REQUEST_HEADER};
pub use super::jetstream::{AsyncNats, JetQueue, Refused, DEFAULT_STREAM};
use super::nats::{self, Delivery, NatsSource};
use super::nats_client::Msg;
use super::queue::Verdict;
use super::{Source, Trigger};
use crate::instances::BoxFuture;
use crate::platform::Platform;
use std::sync::Arc;
use std::time::Duration;

/// Starts the consumer of a function's calls, unless it runs.
pub fn ensure_consumer(p: &Arc<Platform>, function: &str) {
    let Some(q) = &p.async_queue else { return };
    let t = Trigger {
        id: consumer_id(function),
        function: function.to_string(),
        name: "async".into(),
        source: Source::Async,
        created_at: 0,
    };
    let src = NatsSource {
        subject: subject(function),
        stream: Some(q.config.stream.clone()),
        server: q.config.server.clone(),
        dead_letter: None,
        max_in_flight: IN_FLIGHT as u32,
    };
    p.triggers.start_once(&t.id, || nats::spawn_with(p.clone(), t.clone(), src, on_message));
}

/// What the consumer of calls does with a message: [`call`] with its delivery count.
fn on_message<'a>(p: &'a Arc<Platform>, t: &'a Trigger, m: &'a Msg, d: &'a Delivery) -> BoxFuture<'a, Verdict> {
    Box::pin(call(p, t, m, d.delivered))
}

/// Runs delivery `attempt` of a call's message; what to tell JetStream. A call finished (or
/// gone) is acknowledged without running; a failed last attempt is recorded as failed and
/// acknowledged (the registry's `failed` and the callback are its dead letter).
async fn call(p: &Arc<Platform>, t: &Trigger, m: &Msg, attempt: u32) -> Verdict {
    let header = |k: &str| m.headers.iter().find(|(h, _)| h.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
    let head = header(REQUEST_HEADER).and_then(|h| serde_json::from_str::<RequestHead>(h).ok());
    let (Some(id), Some(head)) = (header(MSG_ID_HEADER), head) else {
        p.logs.event(&t.function, "-", format!("a message on {} is not an asynchronous call: dropped", m.subject));
        return Verdict::Done;
    };
    let c = match p.registry.start_call(id, attempt) {
        Ok(Some(c)) => c,
        Ok(None) => return Verdict::Done,
        Err(e) => {
            eprintln!("fnbox serve: asynchronous call {id} cannot be marked running: {e}");
            return Verdict::Retry(Duration::from_secs(1));
        }
    };
    match async_call::attempt(p, &c, head, m.payload.clone()).await {
        None => Verdict::Done,
        Some(delay) => {
            let _ = p.registry.requeue_call(&c.id, 0);
            Verdict::Retry(delay)
        }
    }
}
