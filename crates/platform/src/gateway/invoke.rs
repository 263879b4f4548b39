//! Invoking a function: check access, read the body (6 MiB at most), lease an instance, send
//! the request over its socket under the function's timeout, and turn every failure into a
//! status and a body that say what happened.

use super::answer::{handler_answer, hop_by_hop};
use super::body::{BodyError, BodyReader, Sender};
use super::{full, text, Body};
use crate::function::{HEADER_MAX, PAYLOAD_MAX};
use crate::instances::pool::{AcquireError, Outcome};
use crate::instances::upstream::UpstreamError;
use crate::instances::EndCause;
use crate::platform::Platform;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Is this `Authorization` value one of fnbox's tokens (the admin's, or one of the
/// function's)? Those open the gateway and are never the function's to see; any other
/// scheme or token is the function's own business and passes.
fn carries_fnbox_token(p: &Platform, name: &str, v: &HeaderValue) -> bool {
    v.to_str()
        .ok()
        .and_then(|v| v.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).map(|_| v[7..].trim()))
        .is_some_and(|t| p.tokens.may_invoke(name, t))
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
    let Some(pool) = p.pool(name) else {
        if p.disabled(name).is_some() {
            return text(
                503,
                format!("function '{name}' is disabled: its registry entry cannot be served; `fnbox ls` tells its operator why"),
            );
        }
        return text(
            404,
            format!("function '{name}' does not exist: deploy it with `fnbox deploy {name} PATH --runtime ...`"),
        );
    };
    let mut resp = call(p, bodies, &pool, name, sub, req, peer).await;
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

/// Scaleway's defaults, so that a browser may call a function out of the box: every answer
/// allows any origin and the Content-Type request header, unless the function set its own.
fn default_cors(headers: &mut hyper::HeaderMap) {
    for (name, value) in [("access-control-allow-origin", "*"), ("access-control-allow-headers", "Content-Type")] {
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

async fn call(
    p: &Arc<Platform>,
    bodies: &BodyReader,
    pool: &Arc<crate::instances::pool::Pool>,
    name: &str,
    sub: &str,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let deployed = pool.current();
    let cfg = &deployed.function.config;
    if cfg.private {
        match req.headers().get("x-auth-token").and_then(|v| v.to_str().ok()) {
            None => {
                return text(
                    401,
                    format!("function '{name}' is private: send a token in the X-Auth-Token header (make one with `fnbox token create {name}`)"),
                )
            }
            Some(t) if !p.tokens.may_invoke(name, t) => {
                return text(403, format!("the X-Auth-Token given is not valid for function '{name}'"))
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
    let held = match bodies.read(body, PAYLOAD_MAX, declared, Sender::Anyone).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(e) => return e.response(PAYLOAD_MAX),
    };
    let body = held.bytes.clone();
    let target = match parts.uri.query() {
        Some(q) => format!("{sub}?{q}"),
        None => sub.to_string(),
    };
    let mut up = Request::builder().method(parts.method).uri(target);
    let mut forwarded_for = None;
    for (k, v) in parts.headers.iter() {
        if hop_by_hop(k)
            || k == "x-auth-token"
            || k == "content-length"
            || k == "x-request-id"
            || (k == "authorization" && carries_fnbox_token(p, name, v))
        {
            continue;
        }
        if k == "x-forwarded-for" {
            forwarded_for = v.to_str().ok().map(str::to_string);
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
    let xff = match forwarded_for {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    up = up
        .header("x-forwarded-for", xff)
        .header("x-forwarded-proto", "http")
        .header("x-request-id", &request_id)
        .header("content-length", body.len());
    let Ok(up) = up.body(Full::new(body)) else {
        return text(400, "the request could not be forwarded: a header or the path is not valid");
    };
    let head = head_size(&up);
    if head > HEADER_MAX {
        return text(
            431,
            format!(
                "the request's header block is {head} bytes with what the gateway adds, over the {} KiB limit of functions: send fewer or smaller headers",
                HEADER_MAX >> 10
            ),
        );
    }

    let lease = match pool.acquire().await {
        Ok(l) => l,
        Err(AcquireError::QueueFull { max_queue, max_scale }) => {
            return text(
                503,
                format!(
                    "function '{name}' is busy: its {max_scale} instance(s) are busy and {max_queue} request(s) already wait; retry later, or raise --max-scale or --max-queue"
                ),
            )
        }
        Err(AcquireError::QueueTimeout(d)) => {
            return text(503, format!("function '{name}' is busy: no instance became free within {} s; retry later", d.as_secs()))
        }
        Err(AcquireError::StartFailed(e)) => {
            return text(502, format!("function '{name}' could not start an instance: {}", p.without_host_paths(&e.message)))
        }
        Err(AcquireError::Removed) => return text(404, format!("function '{name}' was removed")),
    };
    let timeout = Duration::from_secs(cfg.timeout_s);
    let inst = lease.instance.clone();
    let sent = tokio::time::timeout(timeout, inst.upstream.send(up, PAYLOAD_MAX)).await;
    let resp = match sent {
        Err(_) => {
            p.logs.event(
                name,
                &inst.id,
                format!("request {request_id} timed out after {} s: instance killed", timeout.as_secs()),
            );
            lease.finish(Outcome::TimedOut);
            return text(
                504,
                format!(
                    "function '{name}' timed out after {} s (its --timeout); its instance was stopped",
                    timeout.as_secs()
                ),
            );
        }
        Ok(Err(UpstreamError::TooLarge)) => {
            lease.finish(Outcome::Served);
            return text(502, format!("function '{name}' answered with a body over the 6 MiB limit"));
        }
        Ok(Err(UpstreamError::Connection(e))) => {
            let ended = inst.ended_within(Duration::from_secs(3)).await;
            lease.finish(Outcome::InstanceFailed);
            let why = match ended {
                Some(end) if end.cause == EndCause::OutOfMemory => {
                    format!("its instance ran {}", end.message)
                }
                Some(end) => format!("its instance crashed: {}", end.message),
                None => format!("the connection to its instance failed ({e})"),
            };
            p.logs.event(name, &inst.id, format!("request {request_id} failed: {why}"));
            let why = p.without_host_paths(&why);
            return text(502, format!("function '{name}' failed: {why}; the next request gets a new instance"));
        }
        Ok(Ok(r)) => r,
    };
    if let Some((started, path)) = lease.cold_start {
        p.metrics.cold_start(name, path, None, &[("first_response", Some(started.elapsed()))]);
        // The cold start is over: now the warm pool may spend CPU on replacing its sandbox,
        // after this response (its accounting reads cgroup files).
        if let (true, Some(w)) = (path.pooled, &p.warm) {
            let w = w.clone();
            tokio::spawn(async move { w.fill() });
        }
    }
    lease.finish(Outcome::Served);
    let (mut parts, body) = resp.into_parts();
    if let Err(why) = handler_answer(&mut parts) {
        p.logs.event(name, &inst.id, format!("request {request_id}: the handler's answer is not valid HTTP: {why}"));
        return text(500, format!("function '{name}' returned an answer that is not valid HTTP: {why}"));
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        parts.headers.insert("x-request-id", v);
    }
    Response::from_parts(parts, full(body))
}
