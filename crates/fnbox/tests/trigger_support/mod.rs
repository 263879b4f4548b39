//! What the trigger tests share: a function that records each call's trigger headers and
//! body in its log (and fails or sleeps when the body asks), and trigger listings.

#![allow(dead_code)]

use crate::common::*;
use crate::platform_support::*;
use std::time::Duration;

pub const RECORDER: &str = r#"
import time
def handle(event, context):
    h = event["headers"]
    body = event["body"] or ""
    print("CALL trigger=%s msg=%s attempt=%s body=%s" % (h.get("X-Fnbox-Trigger"), h.get("X-Fnbox-Message-Id"),
          h.get("X-Fnbox-Delivery-Attempt"), body), flush=True)
    if "fail" in body:
        return {"statusCode": 500, "body": "failing as asked"}
    if body.startswith("sleep"):
        time.sleep(float(body.split()[1]))
    return {"statusCode": 200, "body": "ok " + body}
"#;

pub fn recorder(s: &Server, name: &str, args: &[&str]) -> TempDir {
    let code = TempDir::with(name, &[("handler.py", RECORDER)]);
    let mut a = vec!["--runtime", "python3", "--timeout", "10"];
    a.extend_from_slice(args);
    s.deploy(name, code.path(), &a);
    code
}

pub fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

pub fn trigger_status(s: &Server, id: &str) -> String {
    let v = json_of(&s.cli(&["trigger", "ls", "--json"]));
    v.as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .map(|t| t["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// The failing message's story, the same for every queue kind: four attempts (1 + 3
/// retries) in the log and in `/metrics` beside the other messages' runs.
pub fn assert_retried_then_given_up(s: &Server, id: &str, kind: &str, runs: f64) {
    let logs = s.logs("rec");
    for attempt in 1..=4 {
        assert!(logs.contains(&format!("attempt={attempt} body=fail please")), "attempt {attempt}: {logs}");
    }
    let m = s.metrics();
    let series = |name: &str| format!("{name}{{function=\"rec\",trigger=\"{id}\",kind=\"{kind}\"}}");
    assert_eq!(s.metric(&series("fnbox_trigger_runs_total")), runs, "{m}");
    assert_eq!(s.metric(&series("fnbox_trigger_failures_total")), 4.0, "{m}");
    assert_eq!(s.metric(&series("fnbox_trigger_retries_total")), 3.0, "{m}");
    assert_eq!(s.metric(&series("fnbox_trigger_dead_lettered_total")), 1.0, "{m}");
}

/// A one-connection HTTP server on a free port: returns its address and the request it got.
pub fn callback_sink() -> (String, std::sync::mpsc::Receiver<String>) {
    callback_sink_at("127.0.0.1:0")
}

/// [`callback_sink`] listening on `bind` (`[::]:0`: every address of the host, IPv6 too).
pub fn callback_sink_at(bind: &str) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind(bind).unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = c.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some(i) = text.find("\r\n\r\n") {
                let len = text[..i].lines().find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap())
                });
                if buf.len() >= i + 4 + len.unwrap_or(0) {
                    break;
                }
            }
        }
        let _ = c.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    (addr, rx)
}

/// An asynchronous call's state and answer (`GET /api/v1/invocations/ID`).
pub fn invocation(s: &Server, id: &str) -> serde_json::Value {
    let auth = format!("Bearer {}", s.admin_token());
    s.request("GET", &format!("/api/v1/invocations/{id}"), &[("Authorization", &auth)], b"").json()
}

/// `POST /async/fn/rec/` "hello" with a callback, until it succeeded: its id, its state and
/// the request the callback got.
pub fn async_call_with_callback(s: &Server) -> (String, serde_json::Value, String) {
    let (sink, got) = callback_sink();
    let url = format!("http://{sink}/done");
    let r =
        s.request("POST", "/async/fn/rec/", &[("X-Callback-Url", &url), ("X-Auth-Token", &s.admin_token())], b"hello");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let done = || invocation(s, &id)["status"] == "succeeded";
    assert!(eventually(Duration::from_secs(20), done), "{}", invocation(s, &id));
    let v = invocation(s, &id);
    let answer = (v["response"]["statusCode"].as_u64(), v["response"]["body"].as_str());
    assert_eq!(answer, (Some(200), Some("ok hello")), "{v}");
    let cb = got.recv_timeout(Duration::from_secs(15)).expect("the callback");
    assert!(cb.starts_with("POST /done HTTP/1.1") && cb.contains(&format!("\"id\":\"{id}\"")), "{cb}");
    (id, v, cb)
}
