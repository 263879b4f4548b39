//! HTTP/1.1 to an instance over its Unix socket, with kept-alive connections: a warm request
//! costs one write and one read on a socket that is already open.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::Mutex;

/// The most hyper reads from an instance at once: each chunk of an answer relayed to a
/// client is at most this (docs/architecture.md, "Gateway limits").
pub const READ_CHUNK: usize = 64 << 10;

/// A connection to an instance while an answer is read from it: give it back with
/// [`Upstream::keep`] once the answer's body is all read, or drop it (the connection closes).
pub type Connection = SendRequest<Full<Bytes>>;

/// Why a request to an instance failed.
#[derive(Debug)]
pub enum UpstreamError {
    /// The connection failed or closed: the instance most likely ended.
    Connection(String),
    /// The response body was over the payload limit.
    TooLarge,
}

pub struct Upstream {
    /// The instance's socket, in a directory only fnbox writes (see `launcher.rs`): nothing a
    /// sandbox does changes what this path names.
    path: PathBuf,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Upstream {
    pub fn new(path: PathBuf) -> Self {
        Self { path, idle: Mutex::new(Vec::new()) }
    }

    /// Opens a connection and keeps it for the next request.
    pub async fn warm(&self) -> std::io::Result<()> {
        let s = self.connect().await?;
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(s);
        Ok(())
    }

    async fn connect(&self) -> std::io::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::UnixStream::connect(&self.path).await?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(READ_CHUNK)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Sends a request; returns the answer (its body still to read) and the connection it
    /// came on.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<(Response<Incoming>, Connection), UpstreamError> {
        let idle = match self.take_idle() {
            Some(mut s) => s.ready().await.is_ok().then_some(s),
            None => None,
        };
        let mut sender = match idle {
            Some(s) => s,
            None => self.connect().await.map_err(|e| UpstreamError::Connection(e.to_string()))?,
        };
        let resp = sender.send_request(req).await.map_err(|e| UpstreamError::Connection(e.to_string()))?;
        Ok((resp, sender))
    }

    /// Keeps a connection whose last answer was read whole, for the next request.
    pub fn keep(&self, c: Connection) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(c);
    }
}
