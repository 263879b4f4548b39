//! A small NATS client: the text protocol (`CONNECT`, `PUB`/`HPUB`, `SUB`, `MSG`/`HMSG`,
//! `PING`/`PONG`) over one TCP connection, with request/reply on a private inbox and
//! JetStream's JSON API on top (`$JS.API.*`). What the queue triggers need and no more; why
//! fnbox does not use the `async-nats` crate is in docs/architecture.md, "Triggers".
//!
//! The broker is trusted to speak the protocol, not to be small: every line and payload it
//! sends is bounded, and a subject it gives (a reply) is checked before fnbox writes it back.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

/// Longest protocol line (an `INFO` may list cluster URLs).
const LINE_MAX: usize = 64 << 10;
/// Largest message fnbox takes (NATS' own default is 1 MiB; functions take 6 MiB).
const PAYLOAD_MAX: usize = 8 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A message received.
#[derive(Debug)]
pub struct Msg {
    pub subject: String,
    pub reply: Option<String>,
    /// The status of a JetStream control message (`NATS/1.0 404 No Messages`: 404).
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

struct Shared {
    /// To the writer task, which writes what is queued at once in one `write` (acks of many
    /// calls that end together go out in one system call, see docs/architecture.md "Triggers").
    out: mpsc::Sender<Vec<u8>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Msg>>>,
    /// Why the connection ended, once it has.
    ended: Mutex<Option<String>>,
}

/// One connection to a NATS server.
pub struct Conn {
    shared: Arc<Shared>,
    inbox: String,
    next: AtomicU64,
    /// The largest message the server takes (its `INFO`'s `max_payload`).
    max_payload: usize,
}

/// Protocol writes queued for the writer task at most (each an ack, a pull request or a
/// publication); past it, writers wait.
const WRITES_QUEUED: usize = 256;
/// Bytes the writer task gathers into one `write` at most.
const WRITE_BATCH: usize = 256 << 10;

/// A subject: tokens of printable characters without spaces, separated by dots.
pub fn valid_subject(s: &str, wildcards: bool) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.')
            .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) && (wildcards || (t != "*" && t != ">")))
}

async fn read_line(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Result<String, String> {
    let mut buf = Vec::new();
    let n = (&mut *r).take(LINE_MAX as u64).read_until(b'\n', &mut buf).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    if !buf.ends_with(b"\n") {
        return Err(format!("the server sent a line over {} KiB", LINE_MAX >> 10));
    }
    Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
}

fn status_of(head: &str) -> Option<u16> {
    let first = head.lines().next()?;
    first.strip_prefix("NATS/1.0")?.split_whitespace().next()?.parse().ok()
}

fn headers_of(head: &str) -> Vec<(String, String)> {
    head.lines().skip(1).filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().into(), v.trim().into())).collect()
}

impl Conn {
    /// Connects to `server` (`nats://HOST:PORT`). Pulled messages (on the inbox's `pull.*` subjects) go to
    /// `pulls`; its sender is dropped when the connection ends.
    pub async fn connect(server: &str, pulls: mpsc::Sender<Msg>) -> Result<Arc<Self>, String> {
        let addr = server.strip_prefix("nats://").unwrap_or(server);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("no answer from {server} within {} s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot connect to {server}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::with_capacity(64 << 10, r);
        let handshake = async {
            let info = read_line(&mut r).await?;
            let info: serde_json::Value = info
                .strip_prefix("INFO ")
                .and_then(|j| serde_json::from_str(j).ok())
                .ok_or_else(|| format!("{server} is not a NATS server (it said {info:.60})"))?;
            if info["headers"] != serde_json::Value::Bool(true) {
                return Err(format!("{server} does not support message headers (NATS 2.2 or newer is needed)"));
            }
            if info["jetstream"] != serde_json::Value::Bool(true) {
                return Err(format!("{server} does not have JetStream enabled: start nats-server with -js"));
            }
            let max_payload = info["max_payload"].as_u64().unwrap_or(1 << 20).min(PAYLOAD_MAX as u64) as usize;
            let connect = serde_json::json!({
                "verbose": false, "pedantic": false, "headers": true, "no_responders": true,
                "lang": "rust", "name": "fnbox", "version": env!("CARGO_PKG_VERSION"), "protocol": 1,
            });
            w.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes()).await.map_err(|e| e.to_string())?;
            loop {
                let line = read_line(&mut r).await?;
                match line.as_str() {
                    "PONG" => return Ok(max_payload),
                    l if l.starts_with("-ERR") => return Err(format!("{server} refused the connection: {l}")),
                    _ => {}
                }
            }
        };
        let max_payload = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| format!("{server} did not finish the handshake within {} s", CONNECT_TIMEOUT.as_secs()))??;
        let inbox = format!("_INBOX.fnbox{}", crate::auth::random_hex(8));
        // Replies on sid 1; pulled messages on sid 2 (they keep their own subject).
        w.write_all(format!("SUB {inbox}.* 1\r\nSUB {inbox}.pull.* 2\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let (out, writes) = mpsc::channel(WRITES_QUEUED);
        let shared = Arc::new(Shared { out, pending: Mutex::new(HashMap::new()), ended: Mutex::new(None) });
        let conn =
            Arc::new(Self { shared: shared.clone(), inbox: inbox.clone(), next: AtomicU64::new(0), max_payload });
        let writer = tokio::spawn(write_loop(w, writes));
        tokio::spawn(async move {
            let why = read_loop(&mut r, &shared, &inbox, &pulls).await;
            *shared.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            writer.abort();
            // Requests waiting for a reply get an error (their sender is dropped).
            shared.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
            drop(pulls);
        });
        Ok(conn)
    }

    /// Why the connection ended, if it has.
    pub fn ended(&self) -> Option<String> {
        self.shared.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The subject pulled messages arrive on.
    pub fn pull_inbox(&self) -> String {
        format!("{}.pull.1", self.inbox)
    }

    /// The largest message (headers and payload) the server takes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    async fn write(&self, bytes: Vec<u8>) -> Result<(), String> {
        self.shared.out.send(bytes).await.map_err(|_| {
            let why = self.ended().unwrap_or_else(|| "closed".into());
            format!("the connection to the NATS server broke: {why}")
        })
    }

    /// Publishes `payload` on `subject`, with `headers` if any.
    pub async fn publish(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: &[(String, String)],
        payload: &[u8],
    ) -> Result<(), String> {
        for s in std::iter::once(subject).chain(reply) {
            if !valid_subject(s, false) {
                return Err(format!("'{s:.80}' is not a subject fnbox publishes to"));
            }
        }
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        let mut out = Vec::with_capacity(payload.len() + 128);
        if headers.is_empty() {
            out.extend_from_slice(format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes());
        } else {
            let mut head = String::from("NATS/1.0\r\n");
            for (k, v) in headers {
                let clean = |s: &str| s.replace(['\r', '\n'], " ");
                head.push_str(&format!("{}: {}\r\n", clean(k), clean(v)));
            }
            head.push_str("\r\n");
            let total = head.len() + payload.len();
            out.extend_from_slice(format!("HPUB {subject}{reply} {} {total}\r\n{head}", head.len()).as_bytes());
        }
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        self.write(out).await
    }

    /// Publishes and waits for one reply.
    pub async fn request(&self, subject: &str, payload: &[u8]) -> Result<Msg, String> {
        self.request_with(subject, &[], payload).await
    }

    /// Publishes with headers and waits for one reply.
    pub async fn request_with(
        &self,
        subject: &str,
        headers: &[(String, String)],
        payload: &[u8],
    ) -> Result<Msg, String> {
        let token = self.next.fetch_add(1, Ordering::Relaxed).to_string();
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(token.clone(), tx);
        let reply = format!("{}.{token}", self.inbox);
        let sent = self.publish(subject, Some(&reply), headers, payload).await;
        let got = match sent {
            Ok(()) => Some(tokio::time::timeout(REQUEST_TIMEOUT, rx).await),
            Err(_) => None,
        };
        self.shared.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&token);
        sent?;
        let got = got.ok_or("not sent")?;
        match got {
            Ok(Ok(m)) if m.status == Some(503) => Err(format!("no one answers on {subject} (is JetStream enabled?)")),
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err("the connection to the NATS server broke".into()),
            Err(_) => Err(format!("no answer on {subject} within {} s", REQUEST_TIMEOUT.as_secs())),
        }
    }

    /// A JetStream API call: its JSON answer, or the error it names.
    pub async fn js(&self, api: &str, body: &serde_json::Value) -> Result<serde_json::Value, JsError> {
        let m =
            self.request(&format!("$JS.API.{api}"), body.to_string().as_bytes()).await.map_err(JsError::Transport)?;
        let v: serde_json::Value = serde_json::from_slice(&m.payload)
            .map_err(|e| JsError::Transport(format!("JetStream answered {api} with something not JSON: {e}")))?;
        if let Some(err) = v.get("error") {
            return Err(JsError::Api {
                code: err["code"].as_u64().unwrap_or(0) as u16,
                description: err["description"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok(v)
    }
}

#[derive(Debug)]
pub enum JsError {
    /// The connection failed or timed out.
    Transport(String),
    /// JetStream said no.
    Api { code: u16, description: String },
}

impl std::fmt::Display for JsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsError::Transport(s) => f.write_str(s),
            JsError::Api { code, description } => write!(f, "JetStream refused it ({code}: {description})"),
        }
    }
}

/// Writes what is queued, gathering what waits into one write, until the connection ends.
async fn write_loop(mut w: OwnedWriteHalf, mut writes: mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(64 << 10);
    while let Some(first) = writes.recv().await {
        if first.len() >= WRITE_BATCH {
            if w.write_all(&first).await.is_err() {
                return;
            }
            continue;
        }
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH {
            match writes.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if w.write_all(&batch).await.is_err() {
            return;
        }
    }
}

/// Reads messages until the connection ends, and says why it did.
async fn read_loop(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    shared: &Shared,
    inbox: &str,
    pulls: &mpsc::Sender<Msg>,
) -> String {
    let prefix = format!("{inbox}.");
    loop {
        let line = match read_line(r).await {
            Ok(l) => l,
            Err(e) => return e,
        };
        let mut words = line.split_whitespace();
        let op = words.next().unwrap_or("").to_ascii_uppercase();
        let args: Vec<&str> = words.collect();
        let (subject, sid, reply, head_len, total) = match (op.as_str(), args.as_slice()) {
            ("MSG", [s, sid, n]) => (*s, *sid, None, 0, n.parse().ok()),
            ("MSG", [s, sid, rp, n]) => (*s, *sid, Some(*rp), 0, n.parse().ok()),
            ("HMSG", [s, sid, h, n]) => (*s, *sid, None, h.parse().unwrap_or(usize::MAX), n.parse().ok()),
            ("HMSG", [s, sid, rp, h, n]) => (*s, *sid, Some(*rp), h.parse().unwrap_or(usize::MAX), n.parse().ok()),
            ("PING", _) => {
                if shared.out.send(b"PONG\r\n".to_vec()).await.is_err() {
                    return "the connection broke".into();
                }
                continue;
            }
            ("-ERR", _) => return format!("the server said {line}"),
            _ => continue,
        };
        let Some(total) = total.filter(|t| *t <= PAYLOAD_MAX && head_len <= *t) else {
            return format!("the server sent a message over {} MiB, or a bad length", PAYLOAD_MAX >> 20);
        };
        let mut buf = vec![0u8; total + 2];
        if let Err(e) = r.read_exact(&mut buf).await {
            return e.to_string();
        }
        buf.truncate(total);
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        let msg = Msg {
            subject: subject.to_string(),
            reply: reply.filter(|r| valid_subject(r, false)).map(str::to_string),
            status: status_of(&head),
            headers: headers_of(&head),
            payload: Bytes::from(buf).slice(head_len..),
        };
        if sid == "2" {
            if pulls.send(msg).await.is_err() {
                return "the consumer stopped".into();
            }
            continue;
        }
        let Some(token) = subject.strip_prefix(&prefix) else { continue };
        if let Some(tx) = shared.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(token) {
            let _ = tx.send(msg);
        }
    }
}
