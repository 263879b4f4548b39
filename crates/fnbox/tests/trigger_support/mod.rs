//! What the trigger tests share: a function that records each call's trigger headers and
//! body in its log (and fails or sleeps when the body asks), and trigger listings.

#![allow(dead_code)]

use crate::common::*;
use crate::platform_support::*;

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
