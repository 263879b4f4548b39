//! The function platform as a user meets it: deploy the examples and call them over HTTP, the
//! Scaleway handler contract in Python and Node, payload limits, logs and metrics. Every test
//! runs a real `fnbox serve` on loopback.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn every_example_deploys_and_answers_over_http() {
    let s = Server::start("examples");
    let ex = examples();
    // The binary example is built the way its comment says, into a copy of the directory.
    let bin = TempDir::new("hello-binary");
    std::fs::copy(ex.join("hello-binary/main.c"), bin.path().join("main.c")).unwrap();
    let cc = Command::new("cc")
        .args(["-O2", "-o", "main", "main.c"])
        .current_dir(bin.path())
        .output()
        .expect("cc (gcc) is needed");
    ok(&cc);

    s.deploy("hello-python", &ex.join("hello-python"), &["--runtime", "python3"]);
    s.deploy("hello-node", &ex.join("hello-node"), &["--runtime", "node"]);
    s.deploy("hello-binary", bin.path(), &["--runtime", "binary"]);
    s.deploy("echo-json", &ex.join("echo-json"), &["--runtime", "python3"]);
    s.deploy("write-tmp", &ex.join("write-tmp"), &["--runtime", "python3"]);

    assert_eq!(s.get("/fn/hello-python/?name=ada").text(), "hello, ada, from python\n");
    assert_eq!(s.get("/fn/hello-node?name=ada").text(), "hello, ada, from node\n");
    assert_eq!(s.get("/fn/hello-binary/").text(), "hello, world, from C\n");
    let r =
        s.request("POST", "/fn/echo-json/some/path?x=1", &[("Content-Type", "application/json")], br#"{"a":[1,2]}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["json"], serde_json::json!({"a": [1, 2]}));
    assert_eq!(
        (v["path"].as_str(), v["query"]["x"].as_str(), v["function"].as_str()),
        (Some("/some/path"), Some("1"), Some("echo-json"))
    );
    assert_eq!(v["memory_mb"], 256);
    let first = s.request("POST", "/fn/write-tmp/", &[], b"one").json();
    assert_eq!(first["lines"], serde_json::json!(["one"]));
    let second = s.request("POST", "/fn/write-tmp/", &[], b"two").json();
    assert_eq!(second["lines"], serde_json::json!(["one", "two"]), "the warm instance keeps its /tmp");

    // The CLI sees the same.
    assert_eq!(ok(&s.cli(&["invoke", "hello-python"])), "hello, world, from python\n");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&s.cli(&["invoke", "echo-json", "--data", "[1]", "--json"]))).unwrap();
    assert_eq!((j["status"].as_u64(), j["headers"]["content-type"].as_str()), (Some(200), Some("application/json")));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(j["body"].as_str().unwrap()).unwrap()["json"],
        serde_json::json!([1])
    );
    let failed = s.cli(&["invoke", "no-such-function"]);
    assert_eq!(code(&failed), 1);
    assert!(stderr(&failed).contains("answered HTTP 404"), "{}", stderr(&failed));
    let ls: serde_json::Value = serde_json::from_str(&ok(&s.cli(&["ls", "--json"]))).unwrap();
    let names: Vec<&str> = ls.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo-json", "hello-binary", "hello-node", "hello-python", "write-tmp"]);
    let human = ok(&s.cli(&["ls"]));
    assert!(human.starts_with("NAME") && human.contains("hello-binary") && human.contains("binary"), "{human}");
}

#[test]
fn python_handlers_follow_the_scaleway_contract() {
    let s = Server::start("py-contract");
    let code = TempDir::with(
        "py-contract",
        &[(
            "src/handler.py",
            r#"
import base64, json
def handle(event, context):
    q = event["queryStringParameters"]
    kind = q.get("kind", "event")
    if kind == "event":
        return {"event": event, "context": context}
    if kind == "string":
        return "just a string"
    if kind == "dict":
        return {"a": 1}
    if kind == "binary":
        return {"statusCode": 201, "headers": {"X-Custom": "yes", "Content-Type": "application/octet-stream"},
                "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
    if kind == "none":
        return None
    if kind == "raise":
        raise ValueError("bad input")
"#,
        )],
    );
    s.deploy("contract", code.path(), &["--runtime", "python3", "--handler", "src/handler.handle", "--memory", "512"]);

    let r = s.request(
        "PUT",
        "/fn/contract/a/b?kind=event&x=y",
        &[("X-Forwarded-For", "10.1.2.3"), ("X-Request-ID", "req-42")],
        b"hello body",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some("req-42"));
    let v = r.json();
    let (e, c) = (&v["event"], &v["context"]);
    assert_eq!(e["httpMethod"], "PUT");
    assert_eq!(e["path"], "/a/b");
    assert_eq!(e["queryStringParameters"], serde_json::json!({"kind": "event", "x": "y"}));
    assert_eq!((e["body"].as_str(), e["isBase64Encoded"].as_bool()), (Some("hello body"), Some(false)));
    let h = e["headers"].as_object().unwrap();
    let header =
        |n: &str| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str().unwrap().to_string());
    // The gateway is the edge: a client's own X-Forwarded-For is replaced by its real address
    // (README, "Limits"), never trusted.
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(header("x-request-id").as_deref(), Some("req-42"));
    assert_eq!(e["requestContext"]["requestId"], "req-42");
    assert_eq!(c, &serde_json::json!({"memoryLimitInMb": 512, "functionName": "contract", "functionVersion": "1"}));

    // A binary body arrives base64-encoded; a request id is made up when none is given.
    let r = s.request("POST", "/fn/contract/?kind=event", &[], &[0xff, 0x00, 0xfe]);
    let e = &r.json()["event"];
    assert_eq!((e["body"].as_str(), e["isBase64Encoded"].as_bool()), (Some("/wD+"), Some(true)));
    assert_eq!(r.header("x-request-id").map(|v| v.len()), Some(32));

    let r = s.get("/fn/contract/?kind=string");
    assert_eq!((r.status, r.text().as_str()), (200, "just a string"));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let r = s.get("/fn/contract/?kind=dict");
    assert_eq!((r.status, r.json()), (200, serde_json::json!({"a": 1})));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = s.get("/fn/contract/?kind=binary");
    assert_eq!((r.status, r.header("x-custom")), (201, Some("yes")));
    assert_eq!(r.body, (0..=255u8).collect::<Vec<_>>());
    let r = s.get("/fn/contract/?kind=none");
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = s.get("/fn/contract/?kind=raise");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("ValueError: bad input"), "{}", r.text());
    assert!(s.logs("contract").contains("ValueError: bad input"), "the traceback is in the logs");
    assert_eq!(s.get("/fn/contract/?kind=string").status, 200, "an exception does not end the instance");
}

#[test]
fn node_handlers_follow_the_scaleway_contract() {
    let s = Server::start("node-contract");
    let code = TempDir::with(
        "node-contract",
        &[(
            "handler.js",
            r#"
exports.handle = (event, context, callback) => {
  const kind = event.queryStringParameters.kind || "event";
  if (kind === "event") return { event, context };
  if (kind === "string") return "just a string";
  if (kind === "promise") return new Promise((ok) => setTimeout(() => ok({ statusCode: 202, body: "later" }), 10));
  if (kind === "callback") { setTimeout(() => callback(null, { via: "callback" }), 10); return; }
  if (kind === "binary") return { statusCode: 200, body: Buffer.from([0, 1, 255]).toString("base64"), isBase64Encoded: true };
  if (kind === "throw") throw new Error("bad input");
};
"#,
        )],
    );
    s.deploy("ncontract", code.path(), &["--runtime", "node"]);
    let r = s.request("POST", "/fn/ncontract/p?kind=event", &[("X-Request-ID", "n-1")], b"text body");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let (e, c) = (&v["event"], &v["context"]);
    assert_eq!((e["httpMethod"].as_str(), e["path"].as_str()), (Some("POST"), Some("/p")));
    assert_eq!((e["body"].as_str(), e["isBase64Encoded"].as_bool()), (Some("text body"), Some(false)));
    assert_eq!(e["requestContext"]["requestId"], "n-1");
    let h = e["headers"].as_object().unwrap();
    assert!(h.keys().any(|k| k.eq_ignore_ascii_case("x-forwarded-proto")), "{h:?}");
    assert_eq!(c, &serde_json::json!({"memoryLimitInMb": 256, "functionName": "ncontract", "functionVersion": "1"}));
    let r = s.request("POST", "/fn/ncontract/?kind=event", &[], &[0xff, 0xfe]);
    assert_eq!(r.json()["event"]["isBase64Encoded"], true);
    assert_eq!(s.get("/fn/ncontract/?kind=string").text(), "just a string");
    let r = s.get("/fn/ncontract/?kind=promise");
    assert_eq!((r.status, r.text().as_str()), (202, "later"));
    assert_eq!(s.get("/fn/ncontract/?kind=callback").json(), serde_json::json!({"via": "callback"}));
    assert_eq!(s.get("/fn/ncontract/?kind=binary").body, vec![0, 1, 255]);
    let r = s.get("/fn/ncontract/?kind=throw");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("bad input"), "{}", r.text());
}

#[test]
fn payloads_over_6_mib_get_413() {
    let s = Server::start("payload");
    let code = TempDir::with(
        "payload",
        &[("handler.py", "def handle(event, context):\n    return str(len(event['body']))\n")],
    );
    s.deploy("size", code.path(), &["--runtime", "python3", "--memory", "512"]);
    let five = vec![b'a'; 5 << 20];
    assert_eq!(s.request("POST", "/fn/size/", &[], &five).text(), (5 << 20).to_string());
    let over = vec![b'a'; (6 << 20) + 1];
    let r = s.request("POST", "/fn/size/", &[], &over);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("6 MiB"), "{}", r.text());
    assert!(s.metrics().contains("fnbox_invocations_total{function=\"size\",status=\"413\"} 1"));
}

#[test]
fn logs_and_metrics_tell_what_happened() {
    let s = Server::start("observe");
    let marker = unique("log");
    let code = TempDir::with(
        "observe",
        &[("handler.py", &format!("import sys\ndef handle(event, context):\n    print('{marker}', event['body'])\n    print('on stderr', file=sys.stderr)\n    return 'ok'\n"))],
    );
    s.deploy("observed", code.path(), &["--runtime", "python3"]);
    let mut follow = Command::new(FNBOX)
        .args(["logs", "observed", "--follow"])
        .env("FNBOX_SERVER", &s.url)
        .env("FNBOX_DATA_DIR", &s.data)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(s.request("POST", "/fn/observed/", &[], b"first").status, 200);
    // The follower prints the line as it comes.
    let mut out = follow.stdout.take().unwrap();
    let want = format!("{marker} first");
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains(&want) {
            match std::io::Read::read(&mut out, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        seen
    });
    let ok_follow = eventually(Duration::from_secs(20), || reader.is_finished());
    follow.kill().unwrap();
    let _ = follow.wait();
    assert!(ok_follow, "fnbox logs --follow did not print the line");
    let seen = reader.join().unwrap();
    assert!(
        seen.lines().any(|l| l.contains("observed/observed-") && l.contains("stdout:") && l.contains("first")),
        "{seen}"
    );

    let logs = s.logs("observed");
    assert!(logs.lines().any(|l| l.contains(" stderr: on stderr")), "{logs}");
    assert!(logs.contains("fnbox: instance started in"), "{logs}");
    let first = logs.lines().find(|l| l.contains(&marker)).unwrap();
    assert!(first.starts_with("20") && first.as_bytes()[10] == b'T', "timestamped: {first}");
    let json: Vec<serde_json::Value> =
        stdout(&s.cli(&["logs", "observed", "--json"])).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(json.iter().any(|l| l["stream"] == "stdout" && l["function"] == "observed"));

    let m = s.metrics();
    for want in [
        "fnbox_invocations_total{function=\"observed\",status=\"200\"} 1",
        "fnbox_instances{function=\"observed\",state=\"idle\"} 1",
        "fnbox_invocation_duration_seconds_count{function=\"observed\"} 1",
        "fnbox_oom_kills_total{function=\"observed\"} 0",
    ] {
        assert!(m.contains(want), "missing {want} in\n{m}");
    }
    // One cold start, whichever path it took (a pre-warmed sandbox, or one launched for it).
    let total = |prefix: &str, suffix: &str| -> f64 {
        m.lines()
            .filter(|l| l.starts_with(prefix) && l.contains(suffix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(total("fnbox_cold_starts_total{function=\"observed\",", ""), 1.0, "{m}");
    for phase in ["handler_imported", "first_response"] {
        let suffix = format!("phase=\"{phase}\"}}");
        assert_eq!(total("fnbox_cold_start_phase_seconds_count{function=\"observed\",", &suffix), 1.0, "{m}");
    }
    assert!(s.metric("fnbox_memory_bytes{function=\"observed\"}") > 1e6, "{m}");
}
