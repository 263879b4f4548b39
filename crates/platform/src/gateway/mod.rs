//! The HTTP front door, one port for everything:
//! `/fn/NAME/...` invokes NAME (see [`invoke`]), `/async/fn/NAME/...` queues a call of it
//! (see [`crate::triggers::calls`]), `/api/v1/...` is the admin API (see [`admin`]),
//! `/metrics` is Prometheus' text format, `/healthz` says the server is up, `/` and
//! `/console/` are the web console ([`crate::console`]), unless it has a port of its own
//! ([`Face`]).

pub mod admin;
pub mod answer;
pub mod body;
pub mod conn;
pub mod invoke;
pub mod relay;
pub mod reply;

pub use reply::{error, full, json, text, Body, BodyFailure};

use crate::platform::Platform;
use body::BodyReader;
use conn::{ClientLimits, StallGuard};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What a listening port serves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Face {
    /// Everything, the console too: functions' answers then get an origin of their own
    /// ([`invoke::SANDBOX_CSP`]), since they share the console's.
    Shared,
    /// Functions, the admin API, metrics; the console is on another port.
    Functions,
    /// The console only (and `/healthz`).
    Console,
}

/// Serves each listener as its face says until `shutdown` resolves, within `limits` (the
/// connection cap and the body budget are shared by all).
pub async fn serve(
    listeners: Vec<(TcpListener, Face)>,
    platform: Arc<Platform>,
    limits: ClientLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut bodies = BodyReader::new(limits.body_memory, limits.client_body_memory, limits.body_timeout);
    bodies.answers = relay::AnswerMemory::new(limits.answer_memory);
    let per_client = conn::PerClient::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|(listener, face)| {
            let (p, b, s, l) = (platform.clone(), bodies.clone(), slots.clone(), limits.clone());
            tokio::spawn(accept(listener, face, p, b, s, per_client.clone(), l))
        })
        .collect();
    shutdown.await;
    for l in loops {
        l.abort();
    }
}

async fn accept(
    listener: TcpListener,
    face: Face,
    platform: Arc<Platform>,
    bodies: BodyReader,
    slots: Arc<tokio::sync::Semaphore>,
    per_client: conn::PerClient,
    limits: ClientLimits,
) {
    let mut starved = 0u32;
    loop {
        // At the cap, connections wait in the listen backlog until one closes.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) if conn::out_of_resources(&e) => {
                    if starved == 0 {
                        eprintln!("fnbox serve: cannot accept connections ({e}): pausing; lower --max-connections or raise the open-file limit");
                    }
                    tokio::time::sleep(conn::accept_backoff(starved)).await;
                    starved = starved.saturating_add(1);
                    continue;
                }
                Err(_) => continue,
            },
        };
        starved = 0;
        let Some(client) = per_client.admit(peer.ip(), limits.max_connections_per_client) else {
            // One try, never a wait: the socket buffer of a new connection takes this whole.
            let _ = stream.try_write(conn::TOO_MANY_CONNECTIONS);
            continue;
        };
        let _ = stream.set_nodelay(true);
        conn::modest_send_buffer(&stream);
        let platform = platform.clone();
        let bodies = bodies.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let platform = platform.clone();
                let bodies = bodies.clone();
                async move { Ok::<_, Infallible>(route(&platform, &bodies, req, peer, face).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                // A header block over 64 KiB gets 431 anyway: hyper need not buffer ~400 KiB of
                // one per connection while it waits (the floor hyper accepts is 8 KiB).
                .max_buf_size(crate::function::HEADER_MAX + (16 << 10))
                .keep_alive(true)
                // Answers are copied into that one bounded buffer, not queued as they come
                // (up to 16 chunks of the instance's): a client that reads slowly holds a
                // window of its answer, no more (docs/architecture.md, "Gateway limits").
                .writev(false)
                .serve_connection(TokioIo::new(StallGuard::new(stream, limits.body_timeout)), svc)
                .await;
            drop((slot, client));
        });
    }
}

async fn route(
    p: &Arc<Platform>,
    bodies: &BodyReader,
    req: Request<Incoming>,
    peer: SocketAddr,
    face: Face,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    // A tunnel is nothing a function serves, and Node ends an instance that receives one.
    if req.method() == hyper::Method::CONNECT {
        return text(405, "CONNECT is not served: call a function with GET, POST, ... on /fn/NAME/".to_string());
    }
    let console = path == "/" || path == "/console" || path.starts_with("/console/");
    match face {
        Face::Console if console => return crate::console::handle(p, bodies, req).await,
        Face::Console if path == "/healthz" => return text(200, "ok"),
        Face::Console => {
            return text(404, format!("no route for {path}: this port serves the console only (at /console/)"))
        }
        Face::Functions if path == "/" => {
            return text(200, "fnbox: functions are at /fn/NAME/, the admin API at /api/v1/, metrics at /metrics")
        }
        Face::Functions if console => {
            return text(404, "the console is not on this port: it has its own (fnbox serve --console-listen)")
        }
        Face::Shared if console => return crate::console::handle(p, bodies, req).await,
        Face::Functions | Face::Shared => {}
    }
    if let Some(rest) = path.strip_prefix("/fn/") {
        let (name, sub) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        return invoke::invoke(p, bodies, name, sub, req, peer, face == Face::Shared).await;
    }
    if let Some(rest) = path.strip_prefix("/async/fn/") {
        let (name, sub) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        return crate::triggers::calls::accept(p, bodies, name, sub, req, peer).await;
    }
    if path == "/api/v1" || path.starts_with("/api/v1/") {
        return admin::handle(p, bodies, req).await;
    }
    match path.as_str() {
        "/metrics" if !p.metrics_public && !admin::admin_token(&req).is_some_and(|t| p.tokens.is_admin(t)) => {
            admin::unauthorized("/metrics (it lists every function; `fnbox serve --metrics-public` opens it)")
        }
        "/metrics" => Response::builder()
            .header("content-type", "text/plain; version=0.0.4")
            .body(full(p.render_metrics()))
            .unwrap_or_else(|_| text(500, "metrics")),
        "/healthz" => text(200, "ok"),
        _ => text(
            StatusCode::NOT_FOUND.as_u16(),
            format!("no route for {path}: functions are at /fn/NAME/, the admin API at /api/v1/"),
        ),
    }
}
