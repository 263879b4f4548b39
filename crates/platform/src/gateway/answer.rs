//! An instance's answer turned into the client's, checked in this one place for every
//! runtime. The Python and Node wrappers send the handler's status and headers as data
//! (base64 JSON in `X-Fnbox-Result`), never as HTTP, so nothing a handler returns can split
//! or break the answer on its way here; a `binary` function speaks HTTP itself, which the
//! gateway's parser has already checked. What is not valid becomes the caller's 500, and the
//! instance lives on.

use base64::Engine;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::response::Parts;
use hyper::StatusCode;

/// The header the wrappers carry the handler's `{statusCode, headers}` in.
pub const HANDLER_RESULT: &str = "x-fnbox-result";

/// Headers that belong to one hop, not to the function.
pub fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-connection"
            // The gateway has already read the whole body: no 100-continue to wait for.
            | "expect"
    )
}

/// Applies the handler's status and headers to `parts` (the instance's answer) and drops the
/// hop-by-hop ones. `Err`: what the handler returned that no HTTP answer can carry, in a
/// sentence for the log and the caller.
pub fn handler_answer(parts: &mut Parts) -> Result<(), String> {
    let hop: Vec<HeaderName> = parts.headers.keys().filter(|k| hop_by_hop(k)).cloned().collect();
    for k in hop {
        parts.headers.remove(k);
    }
    // The gateway frames the answer from the body it read: an instance's own length (a binary
    // function's `Content-Length` beside `Transfer-Encoding: chunked`) could desynchronise the
    // client's connection.
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    let Some(raw) = parts.headers.remove(HANDLER_RESULT) else {
        // A binary function speaks HTTP itself: only a final status (200 to 599) is relayed.
        return match parts.status.as_u16() {
            200..=599 => Ok(()),
            s => Err(format!("status {s} is not a final HTTP status: use 200 to 599")),
        };
    };
    let result: serde_json::Value = base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .ok()
        .and_then(|j| serde_json::from_slice(&j).ok())
        .ok_or("the runtime's answer could not be decoded")?;
    let status = &result["statusCode"];
    parts.status = status
        .as_u64()
        .filter(|s| (200..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .ok_or_else(|| format!("statusCode {status} is not an HTTP status: use 200 to 599"))?;
    let headers = result["headers"].as_object().map(|h| h.iter()).into_iter().flatten();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("header name {k:?} is not valid: use letters, digits and '-'"))?;
        // The gateway frames the answer itself.
        if hop_by_hop(&name) || name == "content-length" || name == HANDLER_RESULT {
            continue;
        }
        let values = match v {
            serde_json::Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for v in values {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => v.to_string(),
                _ => return Err(format!("header '{k}' has a value that is not text: {v}")),
            };
            let value = HeaderValue::from_bytes(text.as_bytes()).map_err(|_| {
                format!("header '{k}' has a control character (such as \\r or \\n) in its value {text:?}: remove it")
            })?;
            parts.headers.append(name.clone(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(result: serde_json::Value) -> Result<Parts, String> {
        let meta = base64::engine::general_purpose::STANDARD.encode(result.to_string());
        let (mut parts, ()) = hyper::Response::builder()
            .header(HANDLER_RESULT, meta)
            .header("connection", "x")
            .body(())
            .unwrap()
            .into_parts();
        handler_answer(&mut parts).map(|()| parts)
    }

    #[test]
    fn handler_status_and_headers_are_checked() {
        let p = answer(
            serde_json::json!({"statusCode": 201, "headers": {"X-A": "1", "X-N": 2, "Set-Cookie": ["a=1", "b=2"]}}),
        )
        .unwrap();
        assert_eq!(p.status, 201);
        assert_eq!((p.headers["x-a"].to_str().unwrap(), p.headers["x-n"].to_str().unwrap()), ("1", "2"));
        assert_eq!(p.headers.get_all("set-cookie").iter().count(), 2);
        assert!(p.headers.get(HANDLER_RESULT).is_none() && p.headers.get("connection").is_none());
        for bad in [1000, 99, 100] {
            let e = answer(serde_json::json!({"statusCode": bad, "headers": {}})).unwrap_err();
            assert!(e.contains(&format!("statusCode {bad} is not an HTTP status")), "{e}");
        }
        let e =
            answer(serde_json::json!({"statusCode": 200, "headers": {"X": "a\r\nSet-Cookie: evil=1"}})).unwrap_err();
        assert!(e.contains("header 'X' has a control character"), "{e}");
        let e = answer(serde_json::json!({"statusCode": 200, "headers": {"Bad Name": "v"}})).unwrap_err();
        assert!(e.contains("header name \"Bad Name\" is not valid"), "{e}");
    }

    #[test]
    fn a_binary_answer_is_framed_by_the_gateway_with_a_final_status() {
        let raw = |status: u16| {
            let (mut parts, ()) = hyper::Response::builder()
                .status(status)
                .header("content-length", "100")
                .header("transfer-encoding", "chunked")
                .header("x-kept", "1")
                .body(())
                .unwrap()
                .into_parts();
            handler_answer(&mut parts).map(|()| parts)
        };
        let p = raw(200).unwrap();
        assert!(p.headers.get("content-length").is_none() && p.headers.get("transfer-encoding").is_none());
        assert_eq!(p.headers["x-kept"], "1");
        let e = raw(101).unwrap_err();
        assert!(e.contains("status 101 is not a final HTTP status"), "{e}");
    }
}
