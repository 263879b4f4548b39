//! Asynchronous calls: `POST /async/fn/NAME/...` answers 202 with an id at once; the request
//! is stored in the registry (durable across restarts, `kill -9` included: a call that was
//! running runs again, at least once) and run through the gateway's path by a worker that
//! takes calls only while the function has room (back-pressure, as the queue triggers), at
//! most [`IN_FLIGHT`] per function. With `fnbox serve --async-nats URL` the request is kept in
//! a JetStream stream instead and run by the NATS queue consumer ([`super::calls_js`]); the
//! registry keeps only its state and answer. Both run a call's attempts with
//! [`super::async_call`]: retried as queue messages are (3 times on a status of 300 or
//! more). `GET /api/v1/invocations/ID` gives its state and answer; `X-Callback-Url` gets the
//! answer POSTed to it.

use super::async_call::{attempt, b64, check_callback, refused_at_once};
pub use super::async_call::{RequestHead, IN_FLIGHT};
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
use std::time::Duration;

/// Calls of one function waiting at most; past it, 503.
pub const QUEUE_MAX: u64 = 10_000;
/// Finished calls are kept this long for `GET /api/v1/invocations/ID`.
pub const KEEP_S: u64 = 24 * 3600;
const CALLBACK_HEADER: &str = "x-callback-url";

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
        let checked =
            check_callback(url).and_then(|(authority, _)| match refused_at_once(&authority, &p.callback_net) {
                Some(why) => Err(why),
                None => Ok(()),
            });
        if let Err(why) = checked {
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

/// `POST /async/fn/NAME/...`'s 202: where to ask for the call's state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Queued {
    pub id: String,
    pub status: String,
    pub status_url: String,
}

fn queued(p: &Platform, id: &str) -> Response<Body> {
    p.calls_waiting.notify_one();
    let status_url = format!("/api/v1/invocations/{id}");
    let location = hyper::header::HeaderValue::from_str(&status_url);
    let mut resp = json(202, &Queued { id: id.to_string(), status: "queued".into(), status_url });
    if let Ok(v) = location {
        resp.headers_mut().insert("location", v);
    }
    resp
}

/// `GET /api/v1/invocations/ID`: a call's state, and its answer once it has one (the fields
/// in name order, as the answer has always had them).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvocationView {
    pub attempts: u32,
    pub callback: Option<String>,
    pub created_at: u64,
    pub finished_at: Option<u64>,
    pub function: String,
    pub id: String,
    /// Where its request waits: `registry` or `jetstream`.
    pub queue: String,
    /// The answer as the callback got it: `statusCode`, `headers`, `body`, `isBase64Encoded`.
    pub response: Option<serde_json::Value>,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
}

/// `GET /api/v1/invocations/ID`.
pub fn status(p: &Platform, id: &str) -> Result<InvocationView> {
    let c = p.registry.call(id)?.ok_or_else(|| {
        Error::NotFound(format!(
            "no asynchronous call '{id}' (finished calls are kept {} h): check the id the 202 answer gave",
            KEEP_S / 3600
        ))
    })?;
    let response = c.response.as_deref().and_then(|r| serde_json::from_str(r).ok());
    Ok(InvocationView {
        attempts: c.attempts,
        callback: c.callback,
        created_at: c.created_at,
        finished_at: c.finished_at,
        function: c.function,
        id: c.id,
        queue: c.queue,
        response,
        status: c.state,
    })
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
    let running = Running::default();
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
                let room = IN_FLIGHT.saturating_sub(running.of(&f)).min(pool.spare());
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
                    let counted = running.count(&f);
                    let p = p.clone();
                    tokio::spawn(async move {
                        run(&p, c).await;
                        drop(counted);
                        p.calls_waiting.notify_one();
                    });
                }
            }
        }
    });
    Ok(())
}

/// The registry worker's calls running, per function.
#[derive(Clone, Default)]
struct Running(Arc<Mutex<HashMap<String, usize>>>);

/// One call counted as running for its function until dropped, however the call ends.
struct Counted {
    running: Running,
    function: String,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn of(&self, function: &str) -> usize {
        self.lock().get(function).copied().unwrap_or(0)
    }

    fn count(&self, function: &str) -> Counted {
        *self.lock().entry(function.to_string()).or_default() += 1;
        Counted { running: self.clone(), function: function.to_string() }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut running = self.running.lock();
        if let Some(n) = running.get_mut(&self.function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.function);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::Running;

    /// The worker's count per function follows the calls' guards, and a function with none
    /// running leaves no entry behind.
    #[test]
    fn running_calls_are_counted_until_their_guard_drops() {
        let running = Running::default();
        let (a, b) = (running.count("f"), running.count("f"));
        let g = running.count("g");
        assert_eq!((running.of("f"), running.of("g"), running.of("h")), (2, 1, 0));
        drop(a);
        assert_eq!(running.of("f"), 1);
        drop((b, g));
        assert_eq!((running.of("f"), running.of("g")), (0, 0));
        assert!(running.lock().is_empty());
    }
}
