//! A small SQS client: the AWS JSON 1.0 protocol (`POST /` with `X-Amz-Target:
//! AmazonSQS.ACTION` and a JSON body), signed with SigV4 ([`super::sigv4`]), over HTTP/1.1
//! (HTTPS with the system's CA store, through OpenSSL). Connections are kept and reused.
//! Every wait is bounded and every answer's size capped. See docs/architecture.md, "SQS".

use super::sigv4::{amz_date, authorization, Credentials, Scope};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An answer, at most: ten messages of 1 MiB each, JSON-escaped, fit.
const ANSWER_MAX: usize = 32 << 20;
/// Connections kept for reuse, at most.
const IDLE_MAX: usize = 16;

/// Where a queue is: `http[s]://HOST[:PORT]/PATH`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// `HOST` or `HOST:PORT` as the URL gives it: the `Host` header.
    pub authority: String,
    pub url: String,
}

impl QueueUrl {
    /// The URL, checked; `field` names it in errors.
    pub fn parse(url: &str, field: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("{field}: '{url}' is not an SQS queue URL ({why}): use https://HOST/ACCOUNT/QUEUE, e.g. https://sqs.mnq.fr-par.scaleway.com/project-.../my-queue")
        };
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("it must start with https:// or http://"));
        };
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no queue path"))?;
        if path.trim_matches('/').is_empty() {
            return Err(bad("no queue path"));
        }
        if url.len() > 1024 || url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(bad("over 1024 characters, or spaces in it"));
        }
        if authority.contains('@') {
            return Err(bad("credentials do not go in the URL: give them with --credentials"));
        }
        if path.contains('?') || path.contains('#') {
            return Err(bad("a query or fragment"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("the port is not a number"))?),
            None => (authority, if https { 443 } else { 80 }),
        };
        let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
        if !host_ok {
            return Err(bad("the host name is not valid"));
        }
        Ok(Self { https, host: host.to_string(), port, authority: authority.to_string(), url: url.to_string() })
    }

    /// The region the URL names (`sqs.REGION.amazonaws.com`, `sqs.mnq.REGION.scaleway.com`).
    pub fn region(&self) -> Option<String> {
        let parts: Vec<&str> = self.host.split('.').collect();
        match parts.as_slice() {
            ["sqs", region, "amazonaws", ..] => Some(region.to_string()),
            ["sqs", "mnq", region, "scaleway", "com"] => Some(region.to_string()),
            _ => None,
        }
    }

    /// The same endpoint (and so the same credentials) as `other`?
    pub fn same_endpoint(&self, other: &QueueUrl) -> bool {
        (self.https, &self.host, self.port) == (other.https, &other.host, other.port)
    }
}

/// One SQS endpoint, with its credentials.
pub struct Client {
    queue: QueueUrl,
    creds: Credentials,
    region: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// The TLS set-up of every SQS client: the host's CA certificates (as OpenSSL finds them,
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` included), read once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no CA certificate found on this host ({} error(s) reading them): install Debian's ca-certificates, or set SSL_CERT_FILE",
                    found.errors.len()
                ));
            }
            // ring, the one crypto provider built in (see Cargo.toml).
            let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

impl Client {
    pub fn new(queue: QueueUrl, creds: Credentials, region: String) -> Self {
        Self { queue, creds, region, idle: Mutex::new(Vec::new()) }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let q = &self.queue;
        let go = async {
            let tcp = tokio::net::TcpStream::connect((q.host.as_str(), q.port))
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", q.authority))?;
            let _ = tcp.set_nodelay(true);
            if q.https {
                let name = rustls::pki_types::ServerName::try_from(q.host.clone())
                    .map_err(|e| format!("{} is no name TLS can check: {e}", q.host))?;
                let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {} failed: {e}", q.authority))?;
                handshake(hyper_util::rt::TokioIo::new(tls)).await
            } else {
                handshake(hyper_util::rt::TokioIo::new(tcp)).await
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, go).await.map_err(|_| {
            format!("cannot connect to {}: no answer within {} s", q.authority, CONNECT_TIMEOUT.as_secs())
        })?
    }

    /// Calls `action` with `body`; the whole call (connection included) within `timeout`.
    pub async fn call(
        &self,
        action: &str,
        body: serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        tokio::time::timeout(timeout, self.call_unbounded(action, body))
            .await
            .map_err(|_| format!("{action}: no answer from {} within {} s", self.queue.authority, timeout.as_secs()))?
    }

    async fn call_unbounded(&self, action: &str, body: serde_json::Value) -> Result<serde_json::Value, String> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|s| !s.is_closed());
            idle.pop()
        };
        let mut sender = match reused {
            Some(s) => s,
            None => self.connect().await?,
        };
        let body = Bytes::from(body.to_string());
        let date = amz_date(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
        let target = format!("AmazonSQS.{action}");
        let headers = [
            ("host", self.queue.authority.as_str()),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-date", date.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        let scope = Scope { region: &self.region, service: "sqs" };
        let auth = authorization(&self.creds, &scope, "POST", "/", "", &headers, &body);
        let mut req = hyper::Request::post("/");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.header("authorization", auth).body(Full::new(body)).map_err(|e| e.to_string())?;
        sender
            .ready()
            .await
            .map_err(|e| format!("{action}: the connection to {} failed: {e}", self.queue.authority))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{action}: the connection to {} failed: {e}", self.queue.authority))?;
        let status = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), ANSWER_MAX)
            .collect()
            .await
            .map_err(|e| {
                format!(
                    "{action}: the answer of {} cannot be read (over {} MiB?): {e}",
                    self.queue.authority,
                    ANSWER_MAX >> 20
                )
            })?
            .to_bytes();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_MAX {
                idle.push(sender);
            }
        }
        let v: serde_json::Value = if bytes.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                format!("{action}: {} answered HTTP {status} with something that is not JSON: {start:?} (does it speak SQS's JSON protocol?)", self.queue.authority)
            })?
        };
        if status != 200 {
            let kind = v["__type"].as_str().unwrap_or("").rsplit('#').next().unwrap_or("").to_string();
            let msg = v["message"].as_str().or(v["Message"].as_str()).unwrap_or("");
            return Err(format!("{action}: {} answered HTTP {status} {kind}: {msg}", self.queue.authority));
        }
        Ok(v)
    }
}

async fn handshake<T>(io: hyper_util::rt::TokioIo<T>) -> Result<SendRequest<Full<Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_are_checked_and_name_their_region() {
        let q = QueueUrl::parse("https://sqs.mnq.fr-par.scaleway.com/project-1/orders", "sqs").unwrap();
        assert_eq!((q.https, q.port, q.region().as_deref()), (true, 443, Some("fr-par")));
        let q = QueueUrl::parse("https://sqs.eu-west-3.amazonaws.com/123/q", "sqs").unwrap();
        assert_eq!(q.region().as_deref(), Some("eu-west-3"));
        let q = QueueUrl::parse("http://127.0.0.1:5000/123456789012/q", "sqs").unwrap();
        assert_eq!((q.https, q.port, q.authority.as_str(), q.region()), (false, 5000, "127.0.0.1:5000", None));
        for bad in [
            "ftp://x/q",
            "https://host",
            "https://host/",
            "https://a:b@host/q",
            "https://host:99999/q",
            "https://ho st/q",
        ] {
            let e = QueueUrl::parse(bad, "sqs").unwrap_err();
            assert!(e.starts_with("sqs: ") && e.contains("is not an SQS queue URL"), "{bad}: {e}");
        }
    }
}
