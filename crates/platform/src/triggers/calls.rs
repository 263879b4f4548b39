//! Asynchronous calls: `POST /async/fn/NAME/...` answers 202 with an id at once; the request
//! is stored in the registry (durable across restarts, `kill -9` included: a call that was
//! running runs again, at least once) and run through the gateway's path by a worker that
//! takes calls only while the function has room (back-pressure, as the queue triggers), at
//! most [`IN_FLIGHT`] per function. With `fnbox serve --async-nats URL` the request is kept in
//! a JetStream stream instead and run by the NATS queue consumer ([`super::calls_js`]); the
//! registry keeps only its state and answer. Retried as queue messages are (3 times on a
//! status of 300 or more). `GET /api/v1/invocations/ID` gives its state and answer;
//! `X-Callback-Url` gets the answer POSTed to it.

use super::{Run, Source, Trigger, RETRIES};
use crate::error::{Error, Result};
use crate::gateway::body::BodyReader;
use crate::gateway::invoke::{find, prepare};
use crate::gateway::reply::{json, text, Body};
use crate::platform::Platform;
use crate::registry::now_s;
use crate::triggers::store::StoredCall;
use base64::Engine;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Calls of one function running at once.
pub const IN_FLIGHT: usize = 10;
/// Calls of one function waiting at most; past it, 503.
pub const QUEUE_MAX: u64 = 10_000;
/// Finished calls are kept this long for `GET /api/v1/invocations/ID`.
pub const KEEP_S: u64 = 24 * 3600;
const CALLBACK_HEADER: &str = "x-callback-url";
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A request's line and headers, as the registry stores them and a JetStream message carries
/// them (its `Fnbox-Request` header).
#[derive(Serialize, Deserialize)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// A request stored in the registry.
#[derive(Serialize, Deserialize)]
struct StoredRequest {
    #[serde(flatten)]
    head: RequestHead,
    /// Base64.
    body: String,
}

/// Where asynchronous calls wait: the registry's column `queue`.
pub const REGISTRY_QUEUE: &str = "registry";
pub const JETSTREAM_QUEUE: &str = "jetstream";

/// An answer as `GET /api/v1/invocations/ID` and the callback show it.
#[derive(Serialize, Deserialize)]
struct StoredResponse {
    #[serde(rename = "statusCode")]
    status_code: u16,
    headers: std::collections::BTreeMap<String, String>,
    body: String,
    #[serde(rename = "isBase64Encoded")]
    is_base64_encoded: bool,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// `http://HOST[:PORT]/PATH`: the callback address, checked. HTTPS is not spoken by fnbox's
/// client.
fn check_callback(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or("use an http:// URL (fnbox's client does not speak https)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || url.len() > 2048 {
        return Err("the host is missing, has credentials, or the URL is over 2048 bytes".into());
    }
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// `POST /async/fn/NAME/...`.
pub async fn accept(
    p: &Arc<Platform>,
    bodies: &BodyReader,
    name: &str,
    sub: &str,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let pool = match find(p, name) {
        Ok(pool) => pool,
        Err(resp) => return resp,
    };
    let callback = req.headers().get(CALLBACK_HEADER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(url) = &callback {
        // A callback makes the server connect where the caller says: only for callers who
        // hold a token (the admin's, or one of the function's).
        let h = req.headers();
        let token = h
            .get("x-auth-token")
            .or_else(|| h.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
        if !token.is_some_and(|t| p.tokens.may_invoke(name, t)) {
            return text(
                403,
                format!("X-Callback-Url: only callers with a token of function '{name}' (X-Auth-Token) or the admin token may ask for a callback"),
            );
        }
        if let Err(why) = check_callback(url) {
            return text(400, format!("X-Callback-Url: '{url}' is not valid: {why}"));
        }
    }
    let (up, request_id, held) = match prepare(p, bodies, &pool, name, sub, req, peer).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    match p.registry.queued_calls(name) {
        Ok(n) if n >= QUEUE_MAX => {
            return text(503, format!("function '{name}' has {n} asynchronous calls waiting: retry later"))
        }
        Err(e) => return crate::gateway::reply::error(&e),
        Ok(_) => {}
    }
    let (parts, _) = up.into_parts();
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| *k != "content-length" && *k != CALLBACK_HEADER)
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let head = RequestHead { method: parts.method.to_string(), path, headers };
    let id = format!("inv-{request_id}");
    let id = if id.len() > 100 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        format!("inv-{}", crate::auth::random_hex(16))
    } else {
        id
    };
    // In JetStream, the registry keeps only the call's state: the request is the message.
    let (request, queue) = match &p.async_queue {
        Some(_) => (String::new(), JETSTREAM_QUEUE),
        None => {
            let stored = StoredRequest { head, body: b64().encode(&held.bytes) };
            let request = serde_json::to_string(&stored).unwrap_or_default();
            return match add_call(p, &id, name, &request, callback.as_deref(), REGISTRY_QUEUE) {
                Ok(id) => queued(p, &id),
                Err(e) => crate::gateway::reply::error(&e),
            };
        }
    };
    let id = match add_call(p, &id, name, &request, callback.as_deref(), queue) {
        Ok(id) => id,
        Err(e) => return crate::gateway::reply::error(&e),
    };
    if let Some(q) = &p.async_queue {
        if let Err(refused) = q.publish(name, &id, &head, &held.bytes).await {
            let _ = p.registry.drop_call(&id);
            return refused.answer();
        }
        super::calls_js::ensure_consumer(p, name);
    }
    queued(p, &id)
}

/// Stores a call under `id`, or under a fresh id if `id` (the caller's X-Request-ID) is taken.
fn add_call(p: &Platform, id: &str, name: &str, request: &str, callback: Option<&str>, queue: &str) -> Result<String> {
    if let Err(e) = p.registry.add_call(id, name, request, callback, queue) {
        let id2 = format!("inv-{}", crate::auth::random_hex(16));
        return match p.registry.add_call(&id2, name, request, callback, queue) {
            Ok(()) => Ok(id2),
            Err(_) => Err(e),
        };
    }
    Ok(id.to_string())
}

fn queued(p: &Platform, id: &str) -> Response<Body> {
    p.calls_waiting.notify_one();
    let mut resp = json(
        202,
        &serde_json::json!({ "id": id, "status": "queued", "status_url": format!("/api/v1/invocations/{id}") }),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("/api/v1/invocations/{id}")) {
        resp.headers_mut().insert("location", v);
    }
    resp
}

/// `GET /api/v1/invocations/ID`.
pub fn status(p: &Platform, id: &str) -> Result<serde_json::Value> {
    let c = p.registry.call(id)?.ok_or_else(|| {
        Error::NotFound(format!(
            "no asynchronous call '{id}' (finished calls are kept {} h): check the id the 202 answer gave",
            KEEP_S / 3600
        ))
    })?;
    let response: Option<serde_json::Value> = c.response.as_deref().and_then(|r| serde_json::from_str(r).ok());
    Ok(serde_json::json!({
        "id": c.id,
        "function": c.function,
        "status": c.state,
        "queue": c.queue,
        "attempts": c.attempts,
        "created_at": c.created_at,
        "finished_at": c.finished_at,
        "callback": c.callback,
        "response": response,
    }))
}

/// Starts the worker: it runs the calls a previous server left (those it was running, again).
pub fn start(p: Arc<Platform>) -> Result<()> {
    let again = p.registry.requeue_running_calls()?;
    if again > 0 {
        eprintln!("fnbox serve: {again} asynchronous call(s) the previous run was making will run again");
    }
    if p.async_queue.is_some() {
        // Their messages wait in JetStream: each function's consumer takes them up.
        for f in p.registry.functions_with_calls_in(JETSTREAM_QUEUE)? {
            if p.pool(&f).is_some() {
                super::calls_js::ensure_consumer(&p, &f);
            }
        }
    }
    let running: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    tokio::spawn(async move {
        let mut sweep = 0u32;
        loop {
            // New calls wake the worker; retries and room freed up are seen within 100 ms.
            let _ = tokio::time::timeout(Duration::from_millis(100), p.calls_waiting.notified()).await;
            sweep = sweep.wrapping_add(1);
            if sweep.is_multiple_of(3000) {
                let _ = p.registry.expire_calls(KEEP_S);
            }
            let functions = p.registry.functions_with_calls().unwrap_or_default();
            for f in functions {
                let Some(pool) = p.pool(&f) else { continue };
                let busy = running.lock().unwrap_or_else(|e| e.into_inner()).get(&f).copied().unwrap_or(0);
                let room = IN_FLIGHT.saturating_sub(busy).min(pool.spare());
                if room == 0 {
                    continue;
                }
                let calls = match p.registry.take_calls(&f, room) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("fnbox serve: asynchronous calls of {f} cannot be read: {e}");
                        continue;
                    }
                };
                for c in calls {
                    *running.lock().unwrap_or_else(|e| e.into_inner()).entry(f.clone()).or_default() += 1;
                    let (p, running, f) = (p.clone(), running.clone(), f.clone());
                    tokio::spawn(async move {
                        run(&p, c).await;
                        if let Some(n) = running.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&f) {
                            *n = n.saturating_sub(1);
                        }
                        p.calls_waiting.notify_one();
                    });
                }
            }
        }
    });
    Ok(())
}

async fn run(p: &Arc<Platform>, c: StoredCall) {
    let Ok(req) = serde_json::from_str::<StoredRequest>(&c.request) else {
        let _ = p.registry.finish_call(&c.id, "failed", "{}");
        return;
    };
    let body = Bytes::from(b64().decode(&req.body).unwrap_or_default());
    if let Some(delay) = attempt(p, &c, req.head, body).await {
        let _ = p.registry.requeue_call(&c.id, now_s() + delay.as_secs());
    }
}

/// Makes attempt `c.attempts` of a call. When it succeeded or was the last, records the
/// answer and POSTs it to the callback; otherwise returns the delay before the next attempt
/// (1, 2, 4 s), for the queue holding the call to schedule it.
pub(crate) async fn attempt(p: &Arc<Platform>, c: &StoredCall, head: RequestHead, body: Bytes) -> Option<Duration> {
    let trigger = Trigger {
        id: "async".into(),
        function: c.function.clone(),
        name: "async".into(),
        source: Source::Async,
        created_at: c.created_at,
    };
    let last_attempt = c.attempts > RETRIES;
    let run = Run {
        trigger: &trigger,
        source_id: c.id.clone(),
        what: format!("call {}", c.id),
        method: head.method.parse().unwrap_or(hyper::Method::POST),
        path: head.path,
        headers: [head.headers, vec![(super::MESSAGE_ID_HEADER.to_string(), c.id.clone())]].concat(),
        body,
        attempt: c.attempts,
        published: UNIX_EPOCH + Duration::from_secs(c.created_at),
        last_attempt,
    };
    let (ok, got) = match run.call(p).await {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    if !ok && !last_attempt {
        return Some(Duration::from_secs(1u64 << c.attempts.saturating_sub(1).min(6)));
    }
    let headers =
        got.headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let (body, is_base64_encoded) = match std::str::from_utf8(&got.body) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (b64().encode(&got.body), true),
    };
    let resp = StoredResponse { status_code: got.status, headers, body, is_base64_encoded };
    let state = if ok { "succeeded" } else { "failed" };
    let resp_json = serde_json::to_string(&resp).unwrap_or_default();
    if let Err(e) = p.registry.finish_call(&c.id, state, &resp_json) {
        eprintln!("fnbox serve: asynchronous call {} cannot be recorded: {e}", c.id);
    }
    if let Some(url) = &c.callback {
        let payload = serde_json::json!({ "id": c.id, "function": c.function, "status": state, "response": resp });
        let said = match callback(url, &c.id, state, payload.to_string()).await {
            Ok(status) => format!("HTTP {status}"),
            Err(e) => format!("failed: {e}"),
        };
        p.logs.event(&c.function, "-", format!("asynchronous call {}: callback to {url}: {said}", c.id));
    }
    None
}

/// POSTs the result to the callback, once, within [`CALLBACK_TIMEOUT`].
async fn callback(url: &str, id: &str, state: &str, body: String) -> std::result::Result<u16, String> {
    use http_body_util::Full;
    let (authority, path) = check_callback(url)?;
    let go = async {
        let stream = tokio::net::TcpStream::connect(&authority).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::post(path)
            .header("host", &authority)
            .header("content-type", "application/json")
            .header("x-fnbox-invocation-id", id)
            .header("x-fnbox-invocation-status", state)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok::<u16, String>(resp.status().as_u16())
    };
    tokio::time::timeout(CALLBACK_TIMEOUT, go).await.map_err(|_| "no answer within 10 s".to_string())?
}

/// When a message was published, as the lag's origin.
pub(crate) fn since_epoch(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}
