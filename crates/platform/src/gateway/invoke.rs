//! Invoking a function: check access, read the body (6 MiB at most), lease an instance, send
//! the request over its socket under the function's timeout, and turn every failure into a
//! status and a body that say what happened.

use super::answer::{handler_answer, hop_by_hop};
use super::body::{BodyError, BodyReader, HeldBody, Sender};
use super::{full, relay, text, Body};
use crate::function::{HEADER_MAX, PAYLOAD_MAX};
use crate::instances::pool::{AcquireError, Lease, Outcome, Pool};
use crate::instances::upstream::{Connection, UpstreamError};
use crate::instances::{EndCause, Instance};
use crate::platform::Platform;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Does this `Authorization` value carry one of fnbox's tokens (the admin's, or one of the
/// function's), in whatever form (any scheme or none, any case, tabs, extra spaces)? Those
/// open the gateway and are never the function's to see; any other value is the function's
/// own business and passes.
fn carries_fnbox_token(p: &Platform, name: &str, v: &HeaderValue) -> bool {
    p.tokens.mentions_admin(v.as_bytes())
        || v.as_bytes()
            .split(|b| b.is_ascii_whitespace() || *b == b',')
            .filter(|t| !t.is_empty())
            .any(|t| std::str::from_utf8(t).is_ok_and(|t| p.tokens.may_invoke(name, t)))
}

/// The query string without its parameters that carry the admin token in any form
/// ([`crate::auth::Tokens::carries_admin`]); the others as they came.
fn without_admin(p: &Platform, query: &str) -> String {
    if !p.tokens.carries_admin(query.as_bytes()) {
        return query.to_string();
    }
    query.split(['&', ';']).filter(|kv| !p.tokens.carries_admin(kv.as_bytes())).collect::<Vec<_>>().join("&")
}

/// Headers the client names in its `Connection` header: they are for the gateway's hop only.
fn named_in_connection(headers: &hyper::HeaderMap) -> Vec<String> {
    let values = headers.get_all(hyper::header::CONNECTION).iter().filter_map(|v| v.to_str().ok());
    values.flat_map(|v| v.split(',')).map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect()
}

/// Headers that say who the client is: the gateway is the edge, so what a client sends in them
/// is not to be trusted; the gateway sets them from the connection's peer.
fn forwarding(name: &hyper::header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "forwarded"
            | "x-forwarded-for"
            | "x-real-ip"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "x-forwarded-port"
            | "x-original-forwarded-for"
            | "true-client-ip"
            | "cf-connecting-ip"
            | "x-client-ip"
            | "client-ip"
            | "x-cluster-client-ip"
    )
}

/// `Forwarded: for=` names an IPv6 address quoted and bracketed (RFC 7239).
fn forwarded_value(peer: &SocketAddr) -> String {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => format!("for={ip};proto=http"),
        std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto=http"),
    }
}

/// The size of the header block the instance receives for `req` (request line, headers and
/// the blank line), as hyper writes it.
fn head_size<B>(req: &Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + 2 + v.len() + 2).sum();
    line + headers + 2
}

/// What a function's answer gets when the console shares its origin: an opaque origin of its
/// own, so no script in it reaches the console (no same-origin fetch, no cookies, no storage,
/// no service worker). Everything else a page may do stays allowed. See docs/architecture.md,
/// "Console".
pub const SANDBOX_CSP: &str = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// Headers a function may not send when the console shares its origin: they act on the whole
/// origin (a service worker over `/console/`, wiping the console's cookies).
const ORIGIN_WIDE: [&str; 2] = ["service-worker-allowed", "clear-site-data"];

pub async fn invoke(
    p: &Arc<Platform>,
    bodies: &BodyReader,
    name: &str,
    sub: &str,
    req: Request<Incoming>,
    peer: SocketAddr,
    console_shares_origin: bool,
) -> Response<Body> {
    let t0 = Instant::now();
    let pool = match find(p, name) {
        Ok(pool) => pool,
        Err(resp) => return resp,
    };
    let resp = match prepare(p, bodies, &pool, name, sub, req, peer).await {
        // `_held` keeps the body counted against the server's budget until the answer.
        Ok((up, request_id, _held)) => {
            dispatch(p, &pool, name, up, &request_id, &bodies.answers, bodies.timeout()).await
        }
        Err(resp) => resp,
    };
    finish(p, name, resp, t0, console_shares_origin)
}

/// The function's pool, or the answer saying why there is none (404, or 503 when disabled).
#[allow(clippy::result_large_err)]
pub fn find(p: &Platform, name: &str) -> Result<Arc<Pool>, Response<Body>> {
    if let Some(pool) = p.pool(name) {
        return Ok(pool);
    }
    if p.disabled(name).is_some() {
        return Err(text(
            503,
            format!(
                "function '{name}' is disabled: its registry entry cannot be served; `fnbox ls` tells its operator why"
            ),
        ));
    }
    Err(text(404, format!("function '{name}' does not exist: deploy it with `fnbox deploy {name} PATH --runtime ...`")))
}

/// Every answer's last step: Scaleway's CORS defaults, the console's cookie kept from
/// functions, their pages given an origin of their own when the console shares theirs, and
/// the metrics.
fn finish(
    p: &Platform,
    name: &str,
    mut resp: Response<Body>,
    t0: Instant,
    console_shares_origin: bool,
) -> Response<Body> {
    default_cors(resp.headers_mut());
    // A function never sets (or shadows) the console's session cookie.
    let planted = |v: &HeaderValue| crate::console::session::sets_console_cookie(v.as_bytes());
    if resp.headers().get_all("set-cookie").iter().any(planted) {
        let kept: Vec<HeaderValue> =
            resp.headers().get_all("set-cookie").iter().filter(|v| !planted(v)).cloned().collect();
        resp.headers_mut().remove("set-cookie");
        for v in kept {
            resp.headers_mut().append("set-cookie", v);
        }
    }
    if console_shares_origin {
        for h in ORIGIN_WIDE {
            resp.headers_mut().remove(h);
        }
        // Added to the function's own policy, if any: a browser enforces both.
        resp.headers_mut().append("content-security-policy", HeaderValue::from_static(SANDBOX_CSP));
    }
    p.metrics.invocation(name, resp.status().as_u16(), t0.elapsed());
    resp
}

/// A call from inside fnbox (a trigger's message, an asynchronous call).
pub struct Delivery {
    pub method: hyper::Method,
    /// The path the function sees (after `/fn/NAME`), with its query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub request_id: String,
}

/// What the function answered (or what fnbox answered for it: 503 when busy, 504, 502).
pub struct Delivered {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// How long fnbox's own callers (triggers, asynchronous calls) may take to read an answer.
const INTERNAL_READER_TIME: Duration = Duration::from_secs(30);

/// The answer memory of fnbox's own callers, apart from the clients' (`--answer-memory`):
/// they read at once, and at most a few per trigger are in flight.
fn internal_answers() -> &'static relay::AnswerMemory {
    static ANSWERS: std::sync::OnceLock<relay::AnswerMemory> = std::sync::OnceLock::new();
    ANSWERS.get_or_init(|| relay::AnswerMemory::new(64 << 20))
}

/// Sends a delivery to function `name` through [`dispatch`], as the gateway would: the same
/// scaling, queue, timeout, logs and metrics.
pub async fn deliver(p: &Arc<Platform>, name: &str, d: Delivery) -> Delivered {
    let t0 = Instant::now();
    let resp = match p.pool(name) {
        None => text(404, format!("function '{name}' does not exist (any more)")),
        Some(pool) => {
            let mut up = Request::builder()
                .method(d.method)
                .uri(&d.path)
                .header("x-request-id", &d.request_id)
                .header("content-length", d.body.len());
            for (k, v) in &d.headers {
                up = up.header(k.as_str(), v.as_str());
            }
            match up.body(Full::new(d.body)) {
                // fnbox reads the answer itself, at once: the client's share of the relay is short.
                Ok(up) => dispatch(p, &pool, name, up, &d.request_id, internal_answers(), INTERNAL_READER_TIME).await,
                Err(e) => text(400, format!("the call could not be built: {e}")),
            }
        }
    };
    // fnbox itself reads this answer, never a browser.
    let (parts, body) = finish(p, name, resp, t0, false).into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Delivered { status: parts.status.as_u16(), headers: parts.headers, body }
}

/// Scaleway's defaults, so that a browser may call a function out of the box: every answer
/// allows any origin and the Content-Type request header, unless the function set its own.
fn default_cors(headers: &mut hyper::HeaderMap) {
    for (name, value) in [("access-control-allow-origin", "*"), ("access-control-allow-headers", "Content-Type")] {
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

/// A caller's request as its function's instance gets it: access checked (a private
/// function's token), the body read (6 MiB at most), fnbox's tokens removed, the forwarding
/// headers added, the header block's size checked. With its request id and the held body
/// (counted against the server's body budget while held). `Err`: the caller's answer.
#[allow(clippy::result_large_err)]
pub async fn prepare(
    p: &Arc<Platform>,
    bodies: &BodyReader,
    pool: &Arc<Pool>,
    name: &str,
    sub: &str,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<(Request<Full<Bytes>>, String, HeldBody), Response<Body>> {
    if pool.current().function.config.private {
        match req.headers().get("x-auth-token").and_then(|v| v.to_str().ok()) {
            None => {
                return Err(text(
                    401,
                    format!("function '{name}' is private: send a token in the X-Auth-Token header (make one with `fnbox token create {name}`)"),
                ))
            }
            Some(t) if !p.tokens.may_invoke(name, t) => {
                return Err(text(403, format!("the X-Auth-Token given is not valid for function '{name}'")))
            }
            Some(_) => {}
        }
    }
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| crate::auth::random_hex(16));
    let too_large = || text(413, format!("the request body is over the 6 MiB limit of function '{name}'"));
    let declared = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let (parts, body) = req.into_parts();
    // Held (and counted against the server's body budget) until the instance has answered.
    let held = match bodies.read(body, PAYLOAD_MAX, declared, Sender::Anyone(peer.ip())).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(too_large()),
        Err(e) => return Err(e.response(PAYLOAD_MAX)),
    };
    let body = held.bytes.clone();
    let target = match parts.uri.query().map(|q| without_admin(p, q)) {
        Some(q) if !q.is_empty() => format!("{sub}?{q}"),
        _ => sub.to_string(),
    };
    let mut up = Request::builder().method(parts.method).uri(target);
    let connection_named = named_in_connection(&parts.headers);
    for (k, v) in parts.headers.iter() {
        if hop_by_hop(k)
            || connection_named.iter().any(|n| n == k.as_str())
            || forwarding(k)
            || k == "x-auth-token"
            || k == "content-length"
            || k == "x-request-id"
            || (k == "authorization" && carries_fnbox_token(p, name, v))
            || p.tokens.carries_admin(v.as_bytes())
        {
            continue;
        }
        // The console's session is never the function's to see.
        if k == "cookie" {
            if let Some(rest) = v.to_str().ok().and_then(crate::console::session::without_console_cookie) {
                up = up.header(k, rest);
            }
            continue;
        }
        up = up.header(k, v);
    }
    up = up
        .header("x-forwarded-for", peer.ip().to_string())
        .header("x-real-ip", peer.ip().to_string())
        .header("forwarded", forwarded_value(&peer))
        .header("x-forwarded-proto", "http")
        .header("x-request-id", &request_id)
        .header("content-length", body.len());
    let Ok(up) = up.body(Full::new(body)) else {
        return Err(text(400, "the request could not be forwarded: a header or the path is not valid"));
    };
    let head = head_size(&up);
    if head > HEADER_MAX {
        return Err(text(
            431,
            format!(
                "the request's header block is {head} bytes with what the gateway adds, over the {} KiB limit of functions: send fewer or smaller headers",
                HEADER_MAX >> 10
            ),
        ));
    }

    Ok((up, request_id, held))
}

/// The one path every call takes to an instance, from the gateway and from inside fnbox
/// (triggers, asynchronous calls): lease an instance (a free one, a new one, or wait in the
/// function's queue), send the request under the function's timeout, check the answer.
/// `answers`: the memory answers may be held in for their reader (the rest is streamed).
/// `reader_time`: how long the caller may take, beyond the function's timeout, to read a long
/// answer (see relay.rs). Every way out frees the lease: finished with the outcome here, or
/// handed to the relay that streams the answer.
pub async fn dispatch(
    p: &Arc<Platform>,
    pool: &Arc<Pool>,
    name: &str,
    up: Request<Full<Bytes>>,
    request_id: &str,
    answers: &relay::AnswerMemory,
    reader_time: Duration,
) -> Response<Body> {
    let timeout = Duration::from_secs(pool.current().function.config.timeout_s);
    let lease = match acquire(pool, name).await {
        Ok(l) => l,
        Err(resp) => return resp,
    };
    let call = Call { p, name, request_id, timeout };
    match call.answer(&lease, up, answers).await {
        Ok(Answer::Whole(parts, body, connection)) => {
            lease.instance.upstream.keep(connection);
            lease.finish(Outcome::Served);
            Response::from_parts(parts, body)
        }
        Ok(Answer::Streamed { parts, gathered, rest, connection }) => {
            let caller =
                relay::Caller { logs: p.logs.clone(), function: name.to_string(), request_id: request_id.to_string() };
            let deadline = tokio::time::Instant::now() + timeout + reader_time;
            let relay = relay::Relay::new(gathered, rest, PAYLOAD_MAX, deadline, lease, connection, caller);
            Response::from_parts(parts, relay.boxed())
        }
        Err(f) => {
            if let Some(log) = f.log {
                p.logs.event(name, &lease.instance.id, log);
            }
            lease.finish(f.outcome);
            text(f.status, f.answer)
        }
    }
}

/// An instance of the function for one request, or the answer saying why there is none.
#[allow(clippy::result_large_err)]
async fn acquire(pool: &Arc<Pool>, name: &str) -> Result<Lease, Response<Body>> {
    match pool.acquire().await {
        Ok(l) => Ok(l),
        Err(AcquireError::QueueFull { max_queue, max_scale }) => Err(text(
            503,
            format!(
                "function '{name}' is busy: its {max_scale} instance(s) are busy and {max_queue} request(s) already wait; retry later, or raise --max-scale or --max-queue"
            ),
        )),
        Err(AcquireError::QueueTimeout(d)) => Err(text(
            503,
            format!("function '{name}' is busy: no instance became free within {} s; retry later", d.as_secs()),
        )),
        // What the instance printed may say anything (a binary function's stderr could forge
        // a reason): the details go to the function's log only (the pool logs them).
        Err(AcquireError::StartFailed(_)) => Err(text(
            502,
            format!("function '{name}' could not start an instance: its operator finds why in `fnbox logs {name}`"),
        )),
        Err(AcquireError::Removed) => Err(text(404, format!("function '{name}' was removed"))),
    }
}

/// One request on its leased instance.
struct Call<'a> {
    p: &'a Arc<Platform>,
    name: &'a str,
    request_id: &'a str,
    /// The function's timeout: for the answer's head and first window, and again for the rest.
    timeout: Duration,
}

/// An answer checked and read far enough for the lease to be settled.
enum Answer {
    /// All of it, in memory: the instance is free, its connection kept.
    Whole(hyper::http::response::Parts, Body, Connection),
    /// Over the answer memory: the rest is relayed as the client reads it.
    Streamed { parts: hyper::http::response::Parts, gathered: relay::Gathered, rest: Incoming, connection: Connection },
}

/// Why a leased request failed: what becomes of its instance, what the function's log says,
/// and the caller's answer. [`dispatch`] settles the lease with it.
struct Failure {
    outcome: Outcome,
    log: Option<String>,
    status: u16,
    answer: String,
}

impl Call<'_> {
    async fn answer(
        &self,
        lease: &Lease,
        up: Request<Full<Bytes>>,
        answers: &relay::AnswerMemory,
    ) -> Result<Answer, Failure> {
        let (mut parts, mut rest, start, connection) = self.first_window(&lease.instance, up).await?;
        self.cold_start_over(lease);
        if let Err(why) = handler_answer(&mut parts) {
            return Err(Failure {
                outcome: Outcome::Served,
                log: Some(format!("request {}: the handler's answer is not valid HTTP: {why}", self.request_id)),
                status: 500,
                answer: format!("function '{}' returned an answer that is not valid HTTP: {why}", self.name),
            });
        }
        if let Ok(v) = HeaderValue::from_str(self.request_id) {
            parts.headers.insert("x-request-id", v);
        }
        if start.done {
            return Ok(Answer::Whole(parts, full(start.bytes), connection));
        }
        // Read on into memory (within the answer budget) so that the instance is free whether
        // the client reads or not; the instance has its timeout again for the rest.
        let gathered = self.read_on(answers, start, &mut rest).await?;
        if gathered.done {
            return Ok(Answer::Whole(parts, relay::Held::new(gathered).boxed(), connection));
        }
        Ok(Answer::Streamed { parts, gathered, rest, connection })
    }

    /// Sends the request and reads the answer's head and first window, within the timeout
    /// (a longer answer has as long again, plus the client's time, to be relayed: relay.rs).
    async fn first_window(
        &self,
        inst: &Arc<Instance>,
        up: Request<Full<Bytes>>,
    ) -> Result<(hyper::http::response::Parts, Incoming, relay::Start, Connection), Failure> {
        let sent = tokio::time::timeout(self.timeout, async {
            let (resp, connection) = inst.upstream.send(up).await?;
            let (parts, mut body) = resp.into_parts();
            let start = relay::read_start(&mut body, PAYLOAD_MAX).await?;
            Ok((parts, body, start, connection))
        })
        .await;
        let (name, secs) = (self.name, self.timeout.as_secs());
        match sent {
            Err(_) => Err(Failure {
                outcome: Outcome::TimedOut,
                log: Some(format!("request {} timed out after {secs} s: instance killed", self.request_id)),
                status: 504,
                answer: format!("function '{name}' timed out after {secs} s (its --timeout); its instance was stopped"),
            }),
            Ok(Err(UpstreamError::TooLarge)) => Err(self.too_large()),
            Ok(Err(UpstreamError::Connection(e))) => {
                let why = match inst.ended_within(Duration::from_secs(3)).await {
                    Some(end) if end.cause == EndCause::OutOfMemory => format!("its instance ran {}", end.message),
                    Some(end) => format!("its instance crashed: {}", end.message),
                    None => format!("the connection to its instance failed ({e})"),
                };
                Err(Failure {
                    outcome: Outcome::InstanceFailed,
                    log: Some(format!("request {} failed: {why}", self.request_id)),
                    status: 502,
                    answer: format!(
                        "function '{name}' failed: {}; the next request gets a new instance",
                        self.p.without_host_paths(&why)
                    ),
                })
            }
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Reads the answer on after its first window, within the timeout again.
    async fn read_on(
        &self,
        answers: &relay::AnswerMemory,
        start: relay::Start,
        rest: &mut Incoming,
    ) -> Result<relay::Gathered, Failure> {
        let name = self.name;
        match tokio::time::timeout(self.timeout, relay::gather(answers, start, rest, PAYLOAD_MAX)).await {
            Ok(Ok(g)) => Ok(g),
            Ok(Err(UpstreamError::TooLarge)) => Err(self.too_large()),
            Ok(Err(UpstreamError::Connection(e))) => Err(Failure {
                outcome: Outcome::InstanceFailed,
                log: Some(format!("request {} failed: its answer broke off ({e})", self.request_id)),
                status: 502,
                answer: format!("function '{name}' failed: its answer broke off; the next request gets a new instance"),
            }),
            Err(_) => Err(Failure {
                outcome: Outcome::TimedOut,
                log: Some(format!("request {} timed out while answering: instance killed", self.request_id)),
                status: 504,
                answer: format!(
                    "function '{name}' timed out while answering (its --timeout); its instance was stopped"
                ),
            }),
        }
    }

    fn too_large(&self) -> Failure {
        Failure {
            outcome: Outcome::Served,
            log: None,
            status: 502,
            answer: format!("function '{}' answered with a body over the 6 MiB limit", self.name),
        }
    }

    /// The instance's first answer ends its cold start: counted, and the warm pool may now
    /// spend CPU on replacing the sandbox it gave (its accounting reads cgroup files), once
    /// the cold starts arriving with this one are served too.
    fn cold_start_over(&self, lease: &Lease) {
        let Some((started, path)) = lease.cold_start else { return };
        self.p.metrics.cold_start(self.name, path, None, &[("first_response", Some(started.elapsed()))]);
        if let (true, Some(w)) = (path.pooled, &self.p.warm) {
            let w = w.clone();
            tokio::spawn(async move { w.fill_when_quiet() });
        }
    }
}
