//! One attempt of an asynchronous call, as both places a call waits run it: the registry's
//! worker ([`super::calls`]) and JetStream's consumer ([`super::calls_js`]). The attempt goes
//! through the gateway's path; when it succeeded or was the last, its answer is recorded and
//! POSTed to the caller's `X-Callback-Url`. A leaf of the asynchronous calls' modules, so that
//! neither queue needs the other (see docs/architecture.md, "Asynchronous calls in JetStream").

use super::{Run, Source, Trigger, MESSAGE_ID_HEADER, RETRIES};
use crate::platform::Platform;
use crate::triggers::store::StoredCall;
use base64::Engine;
use bytes::Bytes;
use fnbox_sandbox::net::{reach, Cidr, HostView};
use hyper::Request;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Calls of one function running at once.
pub const IN_FLIGHT: usize = 10;
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A request's line and headers, as the registry stores them and a JetStream message carries
/// them (its `Fnbox-Request` header).
#[derive(Serialize, Deserialize)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// An answer as `GET /api/v1/invocations/ID` and the callback show it.
#[derive(Serialize, Deserialize)]
struct StoredResponse {
    #[serde(rename = "statusCode")]
    status_code: u16,
    headers: std::collections::BTreeMap<String, String>,
    body: String,
    #[serde(rename = "isBase64Encoded")]
    is_base64_encoded: bool,
}

pub(super) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// `http://HOST[:PORT]/PATH`: the callback address, checked. HTTPS is not spoken by fnbox's
/// client.
pub(super) fn check_callback(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or("use an http:// URL (fnbox's client does not speak https)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') || url.len() > 2048 {
        return Err("the host is missing, has credentials, or the URL is over 2048 bytes".into());
    }
    let authority = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// Makes attempt `c.attempts` of a call. When it succeeded or was the last, records the
/// answer and POSTs it to the callback; otherwise returns the delay before the next attempt
/// (1, 2, 4 s), for the queue holding the call to schedule it.
pub(crate) async fn attempt(p: &Arc<Platform>, c: &StoredCall, head: RequestHead, body: Bytes) -> Option<Duration> {
    let trigger = Trigger {
        id: "async".into(),
        function: c.function.clone(),
        name: "async".into(),
        source: Source::Async,
        created_at: c.created_at,
    };
    let last_attempt = c.attempts > RETRIES;
    let run = Run {
        trigger: &trigger,
        source_id: c.id.clone(),
        what: format!("call {}", c.id),
        method: head.method.parse().unwrap_or(hyper::Method::POST),
        path: head.path,
        headers: [head.headers, vec![(MESSAGE_ID_HEADER.to_string(), c.id.clone())]].concat(),
        body,
        attempt: c.attempts,
        published: UNIX_EPOCH + Duration::from_secs(c.created_at),
        last_attempt,
    };
    let (ok, got) = match run.call(p).await {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    if !ok && !last_attempt {
        return Some(Duration::from_secs(1u64 << c.attempts.saturating_sub(1).min(6)));
    }
    let headers =
        got.headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let (body, is_base64_encoded) = match std::str::from_utf8(&got.body) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (b64().encode(&got.body), true),
    };
    let resp = StoredResponse { status_code: got.status, headers, body, is_base64_encoded };
    let state = if ok { "succeeded" } else { "failed" };
    let resp_json = serde_json::to_string(&resp).unwrap_or_default();
    if let Err(e) = p.registry.finish_call(&c.id, state, &resp_json) {
        eprintln!("fnbox serve: asynchronous call {} cannot be recorded: {e}", c.id);
    }
    if let Some(url) = &c.callback {
        let payload = serde_json::json!({ "id": c.id, "function": c.function, "status": state, "response": resp });
        let said = match callback(url, &p.callback_net, &c.id, state, payload.to_string()).await {
            Ok(status) => format!("HTTP {status}"),
            Err(e) => format!("failed: {e}"),
        };
        p.logs.event(&c.function, "-", format!("asynchronous call {}: callback to {url}: {said}", c.id));
    }
    None
}

/// Why fnbox will not connect to `ip` for a callback (docs/architecture.md, "Network"), as
/// the caller reads it; `None` when it may. `opened`: [`Platform::callback_net`].
fn refused(ip: IpAddr, opened: &[Cidr]) -> Option<String> {
    let host = match HostView::read() {
        Ok(h) => h,
        Err(e) => return Some(format!("fnbox cannot list this host's addresses to check {ip} against them: {e}")),
    };
    reach::refused(ip, &host, opened).map(|why| {
        format!(
            "fnbox does not connect to {ip} on a caller's behalf: {why} \
             (an operator opens a range with `fnbox serve --callback-net CIDR`)"
        )
    })
}

/// The callback's host when it is an address (or `localhost`), refused as [`refused`] says:
/// told to the caller at once. A name is resolved, and its addresses checked, only when the
/// callback is made.
pub(super) fn refused_at_once(authority: &str, opened: &[Cidr]) -> Option<String> {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return refused(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), opened);
    }
    host.parse::<IpAddr>().ok().and_then(|ip| refused(ip, opened))
}

/// POSTs the result to the callback, once, within [`CALLBACK_TIMEOUT`], to the first address
/// its host resolves to that [`refused`] allows: the address checked is the one connected to,
/// so a name that resolves elsewhere later (DNS rebinding) reaches nothing more.
async fn callback(url: &str, opened: &[Cidr], id: &str, state: &str, body: String) -> std::result::Result<u16, String> {
    use http_body_util::Full;
    let (authority, path) = check_callback(url)?;
    let go = async {
        let mut why = String::from("its host resolves to no address");
        let mut to = None;
        for addr in tokio::net::lookup_host(&authority).await.map_err(|e| format!("cannot resolve its host: {e}"))? {
            match refused(addr.ip(), opened) {
                Some(w) => why = w,
                None => {
                    to = Some(addr);
                    break;
                }
            }
        }
        let to = to.ok_or(why)?;
        let stream = tokio::net::TcpStream::connect(to).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::post(path)
            .header("host", &authority)
            .header("content-type", "application/json")
            .header("x-fnbox-invocation-id", id)
            .header("x-fnbox-invocation-status", state)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok::<u16, String>(resp.status().as_u16())
    };
    tokio::time::timeout(CALLBACK_TIMEOUT, go).await.map_err(|_| "no answer within 10 s".to_string())?
}
