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
    /// The server's JSON, or its error as an `Error`.
    pub fn json(&self) -> Result<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| serde_json::json!({ "error": String::from_utf8_lossy(&self.body).trim().to_string() }));
        if self.status >= 400 {
            let msg = v["error"].as_str().unwrap_or("the server refused the request").to_string();
            return Err(match self.status {
                401 => Error::Unauthorized(msg),
                404 => Error::NotFound(msg),
                413 => Error::TooLarge(msg),
                _ => Error::Invalid(msg),
            });
        }
        Ok(v)
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

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Response<Incoming>> {
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
            .body(Full::new(body))
            .map_err(|e| Error::Invalid(format!("the request cannot be built (bad path or header?): {e}")))?;
        sender.send_request(req).await.map_err(|e| Error::Invalid(format!("the request to {} failed: {e}", self.base)))
    }

    pub async fn call(&self, method: Method, path: &str, headers: &[(String, String)], body: Bytes) -> Result<Reply> {
        let resp = self.send(method, path, headers, body).await?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Error::Invalid(format!("the answer of {} was cut: {e}", self.base)))?
            .to_bytes();
        Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
    }

    /// Calls `path` and hands each chunk of the answer to `each` as it comes.
    pub async fn stream(&self, path: &str, mut each: impl FnMut(&[u8])) -> Result<u16> {
        let resp = self.send(Method::GET, path, &[], Bytes::new()).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::Invalid(format!("the stream from {} broke: {e}", self.base)))?;
            if let Some(d) = frame.data_ref() {
                each(d);
            }
        }
        Ok(status)
    }
}
