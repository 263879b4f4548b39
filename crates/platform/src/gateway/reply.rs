//! The gateway's answers as the rest of the platform builds them: the body type, plain text, JSON
//! and errors. A leaf, so the console and the asynchronous calls answer the same way without
//! depending on the gateway that routes to them (see docs/architecture.md, "Crates and modules").

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::Response;
use std::convert::Infallible;

/// An answer's body. Its error (only a relayed answer has one: see [`super::relay`]) ends the
/// client's connection, which is how HTTP/1.1 says an answer was cut.
pub type Body = BoxBody<Bytes, BodyFailure>;
pub type BodyFailure = Box<dyn std::error::Error + Send + Sync>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never: Infallible| match never {}).boxed()
}

/// A plain-text answer (one sentence and a newline).
pub fn text(status: u16, msg: impl std::fmt::Display) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(full(format!("{msg}\n")))
        .unwrap_or_else(|_| Response::new(full("bad status\n")))
}

pub fn json(status: u16, v: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec_pretty(v).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(body))
        .unwrap_or_else(|_| Response::new(full("bad status\n")))
}

/// The body of an error answer (`{"error": "..."}`), as the server writes it and the CLI
/// client reads it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// What happened and what to do, for a person.
    pub error: String,
}

/// An error as JSON. The server's own failures (500) may name host paths: they go to the
/// server's log, the client gets a reference to it.
pub fn error(e: &crate::error::Error) -> Response<Body> {
    let status = e.status();
    if status != 500 {
        return json(status, &Refusal { error: e.to_string() });
    }
    let reference = crate::auth::random_hex(6);
    eprintln!("fnbox serve: error {reference}: {e}");
    let error = format!("fnbox serve failed to do this (error {reference} in its log): retry, or ask its operator");
    json(status, &Refusal { error })
}
