//! Asynchronous calls kept in NATS JetStream (`fnbox serve --async-nats URL [--async-stream
//! NAME]`). `POST /async/fn/NAME` stores the call's state in the registry, publishes the
//! request to the stream (subject `fnbox.async.NAME`, the body as payload, the request line
//! and headers in the `Fnbox-Request` header, the call id as `Nats-Msg-Id`) and answers 202
//! only once JetStream has acknowledged it: from then on the request is on the broker's disk.
//! Each function's calls are taken by a durable consumer (`fnbox-async-NAME`) run by the same
//! code as NATS queue triggers ([`super::nats`]): pulled only while the function has room, at
//! most [`calls::IN_FLIGHT`] in flight, acknowledged after the call's end is recorded,
//! redelivered after 1, 2, 4 s on a status of 300 or more. A delivery whose call the registry
//! says has finished is acknowledged without running it: a call accepted before a `kill -9`
//! runs after the restart, once. See docs/architecture.md, "Asynchronous calls in JetStream".

use super::calls::{self, RequestHead};
use super::nats::{self, NatsSource};
use super::nats_client::{Conn, JsError, Msg};
use super::queue::Verdict;
use super::{Source, Trigger};
use crate::error::{Error, Result};
use crate::gateway::reply::{text, Body};
use crate::platform::Platform;
use hyper::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub const DEFAULT_STREAM: &str = "FNBOX_ASYNC";
/// Subjects of the calls: `fnbox.async.FUNCTION`.
const SUBJECTS: &str = "fnbox.async";
/// The request line and headers of a call, as JSON (`calls::RequestHead`).
const REQUEST_HEADER: &str = "Fnbox-Request";
/// JetStream's de-duplication id: the call id (a publication retried by the client is kept once).
const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// Where asynchronous calls are kept.
#[derive(Clone, Debug)]
pub struct AsyncNats {
    /// `nats://HOST:PORT`.
    pub server: String,
    pub stream: String,
}

impl AsyncNats {
    /// Checks `--async-nats URL` and `--async-stream NAME` as a NATS trigger's server and stream are.
    pub fn new(server: &str, stream: Option<String>) -> Result<Self> {
        let stream = stream.unwrap_or_else(|| DEFAULT_STREAM.to_string());
        let src =
            NatsSource::new(format!("{SUBJECTS}.>"), Some(stream), Some(server.to_string()), None, 1).map_err(|e| {
                Error::Invalid(e.to_string().replacen("server: ", "--async-nats: ", 1).replacen(
                    "stream: ",
                    "--async-stream: ",
                    1,
                ))
            })?;
        Ok(Self { server: src.server, stream: src.stream.unwrap_or_default() })
    }
}

fn subject(function: &str) -> String {
    format!("{SUBJECTS}.{function}")
}

/// Why a call was not queued.
pub enum Refused {
    /// Over the server's `max_payload` (bytes).
    TooBig(usize),
    /// The broker cannot be reached or refused it.
    Down(String),
}

impl Refused {
    pub fn answer(&self) -> Response<Body> {
        match self {
            Refused::TooBig(max) => text(
                413,
                format!(
                    "the asynchronous call is over the NATS server's max_payload ({max} bytes with its headers): \
                     send less, call the function directly, or raise max_payload in nats-server's configuration"
                ),
            ),
            Refused::Down(why) => text(503, format!("asynchronous calls cannot be queued now ({why}): retry later")),
        }
    }
}

/// The publishing side: one connection, made again when it ends.
pub struct JetQueue {
    pub config: AsyncNats,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

impl JetQueue {
    pub fn new(config: AsyncNats) -> Self {
        Self { config, conn: tokio::sync::Mutex::new(None) }
    }

    async fn conn(&self) -> std::result::Result<Arc<Conn>, String> {
        let mut held = self.conn.lock().await;
        if let Some(c) = held.as_ref().filter(|c| c.ended().is_none()) {
            return Ok(c.clone());
        }
        // Nothing is pulled on this connection.
        let (tx, _) = mpsc::channel(1);
        let server = &self.config.server;
        let conn = Conn::connect(server, tx).await.map_err(|e| format!("{e} (is nats-server running with -js?)"))?;
        ensure_stream(&conn, &self.config).await?;
        *held = Some(conn.clone());
        Ok(conn)
    }

    /// Publishes a call and waits for JetStream's acknowledgement (it is stored).
    pub async fn publish(
        &self,
        function: &str,
        id: &str,
        head: &RequestHead,
        body: &[u8],
    ) -> std::result::Result<(), Refused> {
        let conn = self.conn().await.map_err(Refused::Down)?;
        let head = serde_json::to_string(head).map_err(|e| Refused::Down(e.to_string()))?;
        let headers = vec![(MSG_ID_HEADER.to_string(), id.to_string()), (REQUEST_HEADER.to_string(), head)];
        // HPUB's header block: "NATS/1.0\r\n", each "K: V\r\n", "\r\n".
        let size = body.len() + headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 14;
        if size > conn.max_payload() {
            return Err(Refused::TooBig(conn.max_payload()));
        }
        let m = conn.request_with(&subject(function), &headers, body).await.map_err(Refused::Down)?;
        let ack: serde_json::Value = serde_json::from_slice(&m.payload)
            .map_err(|_| Refused::Down("JetStream's acknowledgement is not JSON".into()))?;
        if let Some(err) = ack.get("error") {
            return Err(Refused::Down(format!(
                "JetStream refused it ({}: {})",
                err["code"],
                err["description"].as_str().unwrap_or("")
            )));
        }
        Ok(())
    }
}

/// The stream exists, or is made: a work queue (a message goes once acknowledged) on disk.
async fn ensure_stream(conn: &Conn, c: &AsyncNats) -> std::result::Result<(), String> {
    let s = &c.stream;
    match conn.js(&format!("STREAM.INFO.{s}"), &serde_json::json!({})).await {
        Ok(_) => Ok(()),
        Err(JsError::Api { code: 404, .. }) => {
            let config = serde_json::json!({
                "name": s, "subjects": [format!("{SUBJECTS}.>")], "retention": "workqueue",
                "storage": "file", "discard": "new", "num_replicas": 1,
                "duplicate_window": Duration::from_secs(120).as_nanos() as u64,
            });
            conn.js(&format!("STREAM.CREATE.{s}"), &config)
                .await
                .map(|_| ())
                .map_err(|e| format!("cannot create stream {s} on {}: {e}", c.server))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn consumer_id(function: &str) -> String {
    format!("async-{function}")
}

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
        max_in_flight: calls::IN_FLIGHT as u32,
    };
    p.triggers.start_once(&t.id, || nats::spawn(p.clone(), t.clone(), src));
}

/// A function was removed: its consumer and its calls waiting in the stream go (best effort).
pub fn forget(p: &Platform, function: &str) {
    let Some(q) = &p.async_queue else { return };
    let (c, function) = (q.config.clone(), function.to_string());
    tokio::spawn(async move {
        let (tx, _) = mpsc::channel(1);
        let Ok(conn) = Conn::connect(&c.server, tx).await else { return };
        let s = &c.stream;
        let name = format!("fnbox-{}", consumer_id(&function));
        let _ = conn.js(&format!("CONSUMER.DELETE.{s}.{name}"), &serde_json::json!({})).await;
        let _ = conn.js(&format!("STREAM.PURGE.{s}"), &serde_json::json!({ "filter": subject(&function) })).await;
    });
}

/// Runs delivery `attempt` of a call's message; what to tell JetStream. A call finished (or
/// gone) is acknowledged without running; a failed last attempt is recorded as failed and
/// acknowledged (the registry's `failed` and the callback are its dead letter).
pub(crate) async fn call(p: &Arc<Platform>, t: &Trigger, m: &Msg, attempt: u32) -> Verdict {
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
    match calls::attempt(p, &c, head, m.payload.clone()).await {
        None => Verdict::Done,
        Some(delay) => {
            let _ = p.registry.requeue_call(&c.id, 0);
            Verdict::Retry(delay)
        }
    }
}
