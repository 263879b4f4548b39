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
