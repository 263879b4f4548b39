//! The asynchronous calls' JetStream stream (`fnbox serve --async-nats`), as the platform's state
//! holds it: where it is ([`AsyncNats`]), the publishing connection ([`JetQueue`]), the stream made
//! when missing, and what a removed function leaves there. A leaf, so that state needs none of the
//! code that runs the calls ([`super::calls_js`]), which takes the platform (see
//! docs/architecture.md, "Asynchronous calls in JetStream").

use super::nats_client::{Conn, JsError};
use super::nats_source::NatsSource;
use crate::error::{Error, Result};
use crate::gateway::reply::{text, Body};
use hyper::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub const DEFAULT_STREAM: &str = "FNBOX_ASYNC";
/// Subjects of the calls: `fnbox.async.FUNCTION`.
pub(super) const SUBJECTS: &str = "fnbox.async";
/// The request line and headers of a call, as JSON (`async_call::RequestHead`).
pub(super) const REQUEST_HEADER: &str = "Fnbox-Request";
/// JetStream's de-duplication id: the call id (a publication retried by the client is kept once).
pub(super) const MSG_ID_HEADER: &str = "Nats-Msg-Id";

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

pub(super) fn subject(function: &str) -> String {
    format!("{SUBJECTS}.{function}")
}

pub(super) fn consumer_id(function: &str) -> String {
    format!("async-{function}")
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
        head: &impl serde::Serialize,
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

    /// A function was removed: its consumer and its calls waiting in the stream go (best effort).
    pub fn forget(&self, function: &str) {
        let (c, function) = (self.config.clone(), function.to_string());
        tokio::spawn(async move {
            let (tx, _) = mpsc::channel(1);
            let Ok(conn) = Conn::connect(&c.server, tx).await else { return };
            let s = &c.stream;
            let name = format!("fnbox-{}", consumer_id(&function));
            let _ = conn.js(&format!("CONSUMER.DELETE.{s}.{name}"), &serde_json::json!({})).await;
            let _ = conn.js(&format!("STREAM.PURGE.{s}"), &serde_json::json!({ "filter": subject(&function) })).await;
        });
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
