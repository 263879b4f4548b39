//! A small HTTP/1.1 client for the CLI verbs: one connection per call, to the server given by
//! `--server` / `FNBOX_SERVER`.

use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

pub struct Client {
    /// `host:port`
    authority: String,
    base: String,
    token: Option<String>,
}

pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The server's JSON, or its error ([`crate::api::Refusal`]) as an `Error`.
    pub fn json(&self) -> Result<serde_json::Value> {
        let v: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        if self.status >= 400 {
            let msg = match (&v, v.as_ref().map(|v| crate::api::read::<crate::api::Refusal>(v, "any"))) {
                (_, Some(Ok(refusal))) => refusal.error,
                // Not an answer of fnbox's (a proxy's page, a plain-text error): its text.
                (None, _) => String::from_utf8_lossy(&self.body).trim().to_string(),
                (Some(_), _) => "the server refused the request".to_string(),
            };
            return Err(match self.status {
                401 => Error::Unauthorized(msg),
                404 => Error::NotFound(msg),
                413 => Error::TooLarge(msg),
                _ => Error::Invalid(msg),
            });
        }
        // A success that is not JSON: its text, as an error answer's would be.
        Ok(v.unwrap_or_else(|| serde_json::json!({ "error": String::from_utf8_lossy(&self.body).trim().to_string() })))
    }
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        let rest = server.strip_prefix("http://").ok_or_else(|| {
            Error::Invalid(format!("server '{server}' is not an http:// URL: use for example http://127.0.0.1:8080"))
        })?;
        let authority = rest.trim_end_matches('/').to_string();
        if authority.is_empty() || authority.contains('/') {
            return Err(Error::Invalid(format!("server '{server}' is not valid: use http://HOST:PORT")));
        }
        Ok(Self { base: format!("http://{authority}"), authority, token })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send<B>(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: B,
    ) -> Result<Response<Incoming>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = tokio::net::TcpStream::connect(&self.authority).await.map_err(|e| {
            Error::Invalid(format!(
                "cannot reach the fnbox server at {} ({e}): start it with `fnbox serve`, or give --server / FNBOX_SERVER",
                self.base
            ))
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Invalid(format!("cannot talk HTTP to {}: {e}", self.base)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder().method(method).uri(path).header("host", &self.authority);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(body)
            .map_err(|e| Error::Invalid(format!("the request cannot be built (bad path or header?): {e}")))?;
        sender.send_request(req).await.map_err(|e| Error::Invalid(format!("the request to {} failed: {e}", self.base)))
    }

    pub async fn call(&self, method: Method, path: &str, headers: &[(String, String)], body: Bytes) -> Result<Reply> {
        let resp = self.send(method, path, headers, Full::new(body)).await?;
        self.reply(resp).await
    }

    /// POSTs `data` in frames of [`UPLOAD_FRAME`] bytes, telling `sent` (bytes sent so far,
    /// total) as each is taken; the answer is read by [`Client::reply`] or [`Client::each_chunk`].
    pub async fn upload(
        &self,
        path: &str,
        headers: &[(String, String)],
        data: Bytes,
        sent: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<Response<Incoming>> {
        let mut headers = headers.to_vec();
        headers.push(("content-length".into(), data.len().to_string()));
        self.send(Method::POST, path, &headers, Counted { data, at: 0, sent: Box::new(sent) }).await
    }

    /// An answer read whole.
    pub async fn reply(&self, resp: Response<Incoming>) -> Result<Reply> {
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Error::Invalid(format!("the answer of {} was cut: {e}", self.base)))?
            .to_bytes();
        Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
    }

    /// Hands each chunk of an answer to `each` as it comes.
    pub async fn each_chunk(&self, resp: Response<Incoming>, mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::Invalid(format!("the stream from {} broke: {e}", self.base)))?;
            if let Some(d) = frame.data_ref() {
                each(d)?;
            }
        }
        Ok(())
    }

    /// Calls `path` and hands each chunk of the answer to `each` as it comes.
    pub async fn stream(&self, path: &str, mut each: impl FnMut(&[u8])) -> Result<u16> {
        let resp = self.send(Method::GET, path, &[], Full::new(Bytes::new())).await?;
        let status = resp.status().as_u16();
        self.each_chunk(resp, |d| {
            each(d);
            Ok(())
        })
        .await?;
        Ok(status)
    }
}

/// Bytes of an upload handed to the connection at once: the unit of its progress.
pub const UPLOAD_FRAME: usize = 64 << 10;

/// An upload's body: `data` in frames, each counted as the connection takes it (it takes the
/// next only when it has written the last, so the count follows the socket).
struct Counted {
    data: Bytes,
    at: usize,
    sent: Box<dyn FnMut(u64, u64) + Send>,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.at >= this.data.len() {
            return std::task::Poll::Ready(None);
        }
        let end = (this.at + UPLOAD_FRAME).min(this.data.len());
        let frame = this.data.slice(this.at..end);
        this.at = end;
        (this.sent)(end as u64, this.data.len() as u64);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.at >= self.data.len()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact((self.data.len() - self.at) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn an_upload_is_counted_frame_by_frame() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let data = Bytes::from(vec![7u8; UPLOAD_FRAME * 2 + 10]);
        let body = Counted { data, at: 0, sent: Box::new(move |sent, total| log.lock().unwrap().push((sent, total))) };
        assert_eq!(hyper::body::Body::size_hint(&body).exact(), Some(UPLOAD_FRAME as u64 * 2 + 10));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let all = rt.block_on(body.collect()).unwrap().to_bytes();
        assert_eq!(all.len(), UPLOAD_FRAME * 2 + 10);
        let total = all.len() as u64;
        let want = [(UPLOAD_FRAME as u64, total), (UPLOAD_FRAME as u64 * 2, total), (total, total)];
        assert_eq!(*seen.lock().unwrap(), want);
    }
}
