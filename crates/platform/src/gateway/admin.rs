//! The admin API (`/api/v1`), for the CLI and scripts. Every call needs the admin token
//! (`Authorization: Bearer TOKEN`).
//!
//! ```text
//! POST   /api/v1/code                          zip body → {"digest"}
//! POST   /api/v1/code?build=RUNTIME&sandbox=V  zip body → NDJSON build events, the last `done`
//!                                              {"digest"} or `failed` (see crate::build)
//! GET    /api/v1/functions                     → [function]
//! GET    /api/v1/functions/NAME                → function
//! PUT    /api/v1/functions/NAME                {runtime, code, handler, ...} → function
//! DELETE /api/v1/functions/NAME
//! DELETE /api/v1/functions/NAME/instances      stop its instances: the next request is a cold start
//! GET    /api/v1/functions/NAME/logs           ?tail=N&follow=1&format=json&since=1h&instance=ID&stream=S&grep=TEXT
//! POST   /api/v1/functions/NAME/tokens         → {"id", "token"} (the only time it is shown)
//! GET    /api/v1/functions/NAME/tokens         → [{"id", "created_at"}]
//! DELETE /api/v1/functions/NAME/tokens/ID
//! POST   /api/v1/functions/NAME/triggers       {cron, data, name} or {nats, stream, server, ...} → trigger
//! GET    /api/v1/functions/NAME/triggers       → [trigger] (with next runs, or the consumer's state)
//! GET    /api/v1/triggers                      → [trigger]
//! DELETE /api/v1/triggers/ID
//! GET    /api/v1/invocations/ID                an asynchronous call: its state and answer
//! GET    /api/v1/functions/NAME/versions       → [version] (newest first; secret names only)
//! POST   /api/v1/functions/NAME/rollback       {"version": N} or nothing (the one before) → function
//! ```

use super::body::{BodyError, BodyReader, Sender};
use super::{error, full, json, text, Body};
use crate::codestore::ZIP_MAX;
use crate::error::Error;
use crate::function::DeployRequest;
use crate::platform::Platform;
use crate::triggers::CreateTrigger;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The admin token a request carries (`Authorization: Bearer` or `X-Auth-Token`).
pub(super) fn admin_token(req: &Request<Incoming>) -> Option<&str> {
    let h = req.headers();
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| h.get("x-auth-token").and_then(|v| v.to_str().ok()))
}

/// Reads a body as `sender`: the admin's (once the caller has shown the admin token or a
/// console session) are not counted in the body budget (a code zip may be larger than all of
/// it) and get a longer deadline; a login form is counted and gets a short one.
pub(crate) async fn read_body(
    bodies: &BodyReader,
    req: Request<Incoming>,
    limit: usize,
    what: &str,
    sender: Sender,
) -> Result<Bytes, Error> {
    let declared = req.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    match bodies.read(req.into_body(), limit, declared, sender).await {
        Ok(b) => Ok(b.bytes),
        Err(BodyError::TooLarge) if limit < 1 << 20 => {
            Err(Error::TooLarge(format!("{what} is over the {} KiB limit", limit >> 10)))
        }
        Err(BodyError::TooLarge) => Err(Error::TooLarge(format!("{what} is over the {} MiB limit", limit >> 20))),
        Err(BodyError::TimedOut(d)) => Err(Error::Invalid(format!("{what} did not arrive within {} s", d.as_secs()))),
        Err(BodyError::Read(e)) => Err(Error::Invalid(format!("{what} could not be read: {e}"))),
        // Only counted senders (a login form) meet a full budget.
        Err(BodyError::Busy(_) | BodyError::ClientBusy(_)) => {
            Err(Error::Disabled(format!("the server holds too many request bodies to read {what} now: retry later")))
        }
    }
}

pub async fn handle(p: &Arc<Platform>, bodies: &BodyReader, req: Request<Incoming>) -> Response<Body> {
    if !admin_token(&req).is_some_and(|t| p.tokens.is_admin(t)) {
        return unauthorized("the admin API");
    }
    let path = req.uri().path().trim_end_matches('/').to_string();
    let parts: Vec<&str> = path.trim_start_matches("/api/v1").split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    let result = match (&method, parts.as_slice()) {
        (&Method::POST, ["code"]) if req.uri().query().is_some_and(|q| q.contains("build=")) => {
            build(p, bodies, req).await
        }
        (&Method::POST, ["code"]) => {
            match read_body(bodies, req, ZIP_MAX as usize, "the code zip", Sender::Admin).await {
                Ok(zip) => p.upload(zip).await.map(|digest| json(200, &crate::api::Uploaded { digest })),
                Err(e) => Err(e),
            }
        }
        (&Method::GET, ["functions"]) => Ok(json(200, &p.list())),
        (&Method::GET, ["functions", name]) => p.view(name).map(|v| json(200, &v)),
        (&Method::PUT, ["functions", name]) => {
            match read_body(bodies, req, 1 << 20, "the deploy request", Sender::Admin).await {
                Ok(b) => match serde_json::from_slice::<DeployRequest>(&b) {
                    Ok(d) => p.deploy(name, d).await.map(|(function, created, changed)| {
                        json(if created { 201 } else { 200 }, &crate::api::Deployed { function, changed })
                    }),
                    Err(e) => Err(Error::Invalid(format!("the deploy request is not valid: {e}"))),
                },
                Err(e) => Err(e),
            }
        }
        (&Method::DELETE, ["functions", name]) => {
            crate::triggers::remove_function(p, name).map(|_| json(200, &serde_json::json!({ "removed": name })))
        }
        (&Method::DELETE, ["functions", name, "instances"]) => {
            p.recycle(name).await.map(|n| json(200, &serde_json::json!({ "stopped": n })))
        }
        (&Method::GET, ["functions", name, "logs"]) => {
            logs(p, name, &crate::urlenc::pairs(req.uri().query().unwrap_or("")), None).await
        }
        (&Method::GET, ["functions", name, "versions"]) => p.versions(name).map(|v| json(200, &v)),
        (&Method::POST, ["functions", name, "rollback"]) => {
            match read_body(bodies, req, 4096, "the rollback request", Sender::Admin).await {
                Ok(b) => match rollback_version(&b) {
                    Ok(v) => p.rollback(name, v).await.map(|f| json(200, &f)),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        (&Method::POST, ["functions", name, "tokens"]) => p.create_token(name).map(|v| json(201, &v)),
        (&Method::GET, ["functions", name, "tokens"]) => p.list_tokens(name).map(|v| json(200, &v)),
        (&Method::DELETE, ["functions", name, "tokens", id]) => {
            p.remove_token(name, id).map(|_| json(200, &serde_json::json!({ "removed": id })))
        }
        (&Method::POST, ["functions", name, "triggers"]) => {
            match read_body(bodies, req, 1 << 20, "the trigger request", Sender::Admin).await {
                Ok(b) => match serde_json::from_slice::<CreateTrigger>(&b) {
                    Ok(t) => crate::triggers::create(p, name, t).map(|v| json(201, &v)),
                    Err(e) => Err(Error::Invalid(format!("the trigger request is not valid: {e}"))),
                },
                Err(e) => Err(e),
            }
        }
        (&Method::GET, ["functions", name, "triggers"]) => crate::triggers::list(p, Some(name)).map(|v| json(200, &v)),
        (&Method::GET, ["triggers"]) => crate::triggers::list(p, None).map(|v| json(200, &v)),
        (&Method::DELETE, ["triggers", id]) => crate::triggers::remove(p, id).map(|v| json(200, &v)),
        (&Method::GET, ["invocations", id]) => crate::triggers::calls::status(p, id).map(|v| json(200, &v)),
        _ => {
            Err(Error::NotFound(format!("no admin route {method} {path}: see `fnbox --help` for what the API offers")))
        }
    };
    result.unwrap_or_else(|e| error(&e))
}

/// An upload to build (`fnbox deploy --build`): what can be checked before the build is
/// answered as an error; then 200 and the build's events as they come.
async fn build(p: &Arc<Platform>, bodies: &BodyReader, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let what = crate::build::BuildRequest::from_query(&crate::urlenc::pairs(req.uri().query().unwrap_or("")))?;
    let zip = read_body(bodies, req, ZIP_MAX as usize, "the code zip", Sender::Admin).await?;
    let events = crate::build::start(p.clone(), what, zip).await?;
    streamed("application/x-ndjson", events)
}

/// An answer whose body is the chunks `rx` gives, until its sender goes.
fn streamed(content_type: &str, rx: tokio::sync::mpsc::Receiver<Bytes>) -> Result<Response<Body>, Error> {
    Response::builder()
        .header("content-type", content_type)
        .body(ChannelBody(rx).map_err(|never: Infallible| match never {}).boxed())
        .map_err(|e| Error::Internal(e.to_string()))
}

/// The version a rollback request names: `{"version": N}`; an empty body or `{}`: the one
/// before the serving version.
fn rollback_version(body: &[u8]) -> Result<Option<u64>, Error> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rollback {
        version: Option<u64>,
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    serde_json::from_slice::<Rollback>(body).map(|r| r.version).map_err(|e| {
        Error::Invalid(format!("the rollback request is not valid ({e}): send {{\"version\": N}} or nothing"))
    })
}

/// 401 for what needs the admin token. Where the token is kept is the operator's business:
/// no host path in an answer.
pub(super) fn unauthorized(what: &str) -> Response<Body> {
    text(
        401,
        format!("{what} needs the admin token: send 'Authorization: Bearer TOKEN' (`fnbox serve` writes it to admin.token in its data directory)"),
    )
}

/// A body fed by a channel: followed logs.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A future that ends a live stream (the console session that opened it ending).
pub(crate) type StreamEnd = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A function's logs; with `follow`, a stream of the new lines that runs until the client
/// goes or `ends` resolves.
pub(crate) async fn logs(
    p: &Arc<Platform>,
    name: &str,
    q: &HashMap<String, String>,
    ends: Option<StreamEnd>,
) -> Result<Response<Body>, Error> {
    // A disabled function's logs say why it is.
    if p.disabled(name).is_none() {
        p.view(name)?;
    }
    let tail = q.get("tail").and_then(|t| t.parse().ok()).unwrap_or(200usize);
    let as_json = q.get("format").is_some_and(|f| f == "json");
    let follow = q.get("follow").is_some_and(|f| f == "1" || f == "true");
    // For a page: control characters shown as `\xNN`, as on a terminal.
    let escape = q.get("escape").is_some_and(|f| f == "1");
    let filter = crate::logs::disk::Filter::from_query(q)?;
    let render = move |l: &crate::logs::LogLine| -> Bytes {
        let mut s = if as_json { serde_json::to_string(l).unwrap_or_default() } else { l.to_text() };
        s.push('\n');
        match escape {
            true => Bytes::from(crate::client::for_terminal(s.as_bytes(), true)),
            false => Bytes::from(s),
        }
    };
    let (lines, mut rx) = p.logs.query_async(name, &filter, tail).await;
    let ctype = if as_json { "application/x-ndjson" } else { "text/plain; charset=utf-8" };
    if !follow {
        let body: Vec<u8> = lines.iter().flat_map(|l| render(l).to_vec()).collect();
        return Response::builder()
            .header("content-type", ctype)
            .body(full(body))
            .map_err(|e| Error::Internal(e.to_string()));
    }
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let pump = async move {
        for l in &lines {
            if tx.send(render(l)).await.is_err() {
                return;
            }
        }
        loop {
            match rx.recv().await {
                Ok(l) if !filter.matches(&l) => {}
                Ok(l) => {
                    if tx.send(render(&l)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ =
                        tx.send(Bytes::from(format!("fnbox: {n} log lines skipped (the reader was too slow)\n"))).await;
                }
                Err(_) => return,
            }
        }
    };
    let ends = ends.unwrap_or_else(|| Box::pin(std::future::pending()));
    // The stream's sender is dropped with `pump`: the body ends.
    tokio::spawn(async move {
        tokio::select! {
            _ = pump => {}
            _ = ends => {}
        }
    });
    streamed(ctype, body_rx)
}
