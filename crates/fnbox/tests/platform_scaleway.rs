//! Real Scaleway functions run unchanged (issue 13): the differential contract suite. The
//! same probe handlers (`tests/scaleway/handler.py`, `handler.js`) get the same requests
//! through fnbox and through Scaleway's own local frameworks (`scaleway-functions-python`,
//! `@scaleway/serverless-functions`, served on loopback), and the answers are compared: status,
//! body, the headers that matter and the event the handler saw. Where a framework has a plain
//! bug, fnbox follows Scaleway's docs and the test says so (the README lists them).
//!
//! The frameworks are found in `$FNBOX_SCALEWAY_REF` (default `/opt/scaleway-ref`), installed
//! there by `conformance/scaleway-setup.sh DIR`; without them the suite fails, saying how to
//! install them. Then the parts no framework can show: `package/` importable on the pooled
//! path, `/code` writable per instance (copy-on-write), variable names with `-`.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PY_PROBE: &str = include_str!("scaleway/handler.py");
const NODE_PROBE: &str = include_str!("scaleway/handler.js");

/// Where `conformance/scaleway-setup.sh` installed the frameworks; fails loudly without them.
fn reference_dir() -> PathBuf {
    let dir = PathBuf::from(std::env::var("FNBOX_SCALEWAY_REF").unwrap_or_else(|_| "/opt/scaleway-ref".into()));
    let py = dir.join("venv/lib");
    let node = dir.join("node/node_modules/@scaleway/serverless-functions/package.json");
    let has_py = std::fs::read_dir(&py)
        .map(|mut d| d.any(|e| e.is_ok_and(|e| e.path().join("site-packages/scaleway_functions_python").is_dir())))
        .unwrap_or(false);
    assert!(
        has_py && node.is_file(),
        "Scaleway's local frameworks are not installed in {} (the oracle of this suite): run \
         `conformance/scaleway-setup.sh {}` (or set FNBOX_SCALEWAY_REF to where they are)",
        dir.display(),
        dir.display()
    );
    dir
}

/// A Scaleway framework serving a probe on a loopback port; killed when dropped.
struct Framework {
    child: Child,
    addr: String,
}

impl Framework {
    fn python(reference: &Path, code: &Path) -> Self {
        let port = free_port();
        let script = format!(
            "import sys; sys.path.insert(0, {code:?}); from handler import handle; \
             from scaleway_functions_python import local; local.serve_handler(handle, port={port}, debug=False)",
            code = code.display().to_string()
        );
        let cmd = Command::new(reference.join("venv/bin/python")).args(["-c", &script]).current_dir(code).spawn_quiet();
        Self::ready(cmd, port, "scaleway-functions-python")
    }

    fn node(reference: &Path, code: &Path) -> Self {
        let port = free_port();
        let module = reference.join("node/node_modules/@scaleway/serverless-functions");
        let script = format!(
            "require({:?}).serveHandler(require({:?}).handle, {port});",
            module.display().to_string(),
            code.join("handler.js").display().to_string()
        );
        let cmd = Command::new("node").args(["-e", &script]).current_dir(code).spawn_quiet();
        Self::ready(cmd, port, "@scaleway/serverless-functions")
    }

    fn ready(mut child: Child, port: u16, what: &str) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let up = eventually(Duration::from_secs(30), || std::net::TcpStream::connect(&addr).is_ok());
        if !up {
            let _ = child.kill();
            panic!("{what} did not listen on {addr} within 30 s");
        }
        Self { child, addr }
    }

    fn request(&self, c: &Case) -> Reply {
        http_request(&self.addr, c.method, c.path, &c.headers, &c.body).unwrap_or_else(|e| panic!("{c:?}: {e}"))
    }
}

impl Drop for Framework {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait SpawnQuiet {
    fn spawn_quiet(&mut self) -> Child;
}

impl SpawnQuiet for Command {
    fn spawn_quiet(&mut self) -> Child {
        self.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One request, sent to both sides.
#[derive(Debug)]
struct Case {
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

fn get(path: &'static str) -> Case {
    Case { method: "GET", path, headers: vec![], body: vec![] }
}

const BOUNDARY: &str = "fnbox-probe-boundary";

fn upload() -> Case {
    let mut body = Vec::new();
    let part = |body: &mut Vec<u8>, disposition: &str, content: &[u8]| {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    };
    part(&mut body, "name=\"field\"", b"value");
    part(&mut body, "name=\"file\"; filename=\"notes.txt\"", "line one\nline two, caf\u{e9}".as_bytes());
    part(&mut body, "name=\"blob\"; filename=\"blob.bin\"", &[b'a', 0xff, 0xfe, b'b']);
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Case {
        method: "POST",
        path: "/upload",
        headers: vec![("Content-Type", "multipart/form-data; boundary=fnbox-probe-boundary")],
        body,
    }
}

fn event_case() -> Case {
    Case {
        method: "POST",
        path: "/event/sub?kind=x&a=1&a=2&empty=",
        headers: vec![("X-Probe", "p1"), ("Content-Type", "text/plain"), ("X-Multi", "one"), ("X-Multi", "two")],
        body: b"hello body!".to_vec(),
    }
}

/// A header of the event, found in any case (Scaleway's Node framework lower-cases names).
fn event_header(e: &Value, name: &str) -> Option<String> {
    let h = e["headers"].as_object()?;
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str().map(String::from))
}

/// Both answers, status first.
fn same_status(c: &Case, ours: &Reply, theirs: &Reply) {
    assert_eq!(ours.status, theirs.status, "{c:?}: fnbox said {}, the framework {}", ours.text(), theirs.text());
}

fn same_body(c: &Case, ours: &Reply, theirs: &Reply) {
    same_status(c, ours, theirs);
    assert_eq!(ours.body, theirs.body, "{c:?}: fnbox {:?}, the framework {:?}", ours.text(), theirs.text());
}

/// Scaleway's defaults (the frameworks add them, a handler's own values win).
fn default_cors(c: &Case, r: &Reply) {
    assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{c:?}: {:?}", r.headers);
    assert_eq!(r.header("access-control-allow-headers"), Some("Content-Type"), "{c:?}: {:?}", r.headers);
}

/// The probe through fnbox and through the framework: everything both get right, compared.
fn compare(s: &Server, name: &str, framework: &Framework) {
    let ours = |c: &Case| s.request(c.method, &format!("/fn/{name}{}", c.path), &c.headers, &c.body);

    // The event: method, path, body, query, headers (any case), request context, context keys.
    let c = event_case();
    let (a, b) = (ours(&c), framework.request(&c));
    same_status(&c, &a, &b);
    let (va, vb) = (a.json(), b.json());
    let (ea, eb) = (&va["event"], &vb["event"]);
    for field in ["httpMethod", "path", "body", "queryStringParameters"] {
        assert_eq!(ea[field], eb[field], "event.{field}: fnbox {}, the framework {}", ea[field], eb[field]);
    }
    assert_eq!(ea["requestContext"]["httpMethod"], eb["requestContext"]["httpMethod"]);
    let flag = |e: &Value| e["isBase64Encoded"].as_bool().unwrap_or(false);
    assert_eq!(flag(ea), flag(eb), "isBase64Encoded of a text body");
    for h in ["x-probe", "content-type", "x-multi", "x-forwarded-proto"] {
        assert_eq!(event_header(ea, h), event_header(eb, h), "event header {h}: {} / {}", ea["headers"], eb["headers"]);
    }
    assert!(event_header(ea, "x-forwarded-for").is_some() && event_header(ea, "x-request-id").is_some());
    assert_eq!(va["seen"], vb["seen"], "what the handler looked up in event.headers");
    assert_eq!(va["seen"]["probe"], "p1");
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(&va["context"]), keys(&vb["context"]));
    default_cors(&c, &a);
    default_cors(&c, &b);

    // A record without statusCode: status 200, its headers, a list value sent once per item.
    let c = get("/record");
    let (a, b) = (ours(&c), framework.request(&c));
    same_body(&c, &a, &b);
    assert_eq!(a.text(), "Hello");
    for r in [&a, &b] {
        assert_eq!(r.header("content-type"), Some("text/plain"), "{:?}", r.headers);
        assert_eq!(r.header_all("x-multi"), ["one", "two"], "{:?}", r.headers);
        default_cors(&c, r);
    }

    for path in ["/status", "/base64"] {
        let c = get(path);
        same_body(&c, &ours(&c), &framework.request(&c));
    }
    let c = get("/status");
    assert_eq!((ours(&c).status, ours(&c).text()), (201, "made".to_string()));
    assert_eq!(ours(&get("/base64")).body, b"\x00\x01binary\xff");

    // A body that is an object is JSON; the handler's own CORS header wins over the default.
    let c = get("/json-body");
    let (a, b) = (ours(&c), framework.request(&c));
    same_status(&c, &a, &b);
    assert_eq!(a.json(), b.json());
    assert!(a.header("content-type").unwrap_or("").starts_with("application/json"), "{:?}", a.headers);
    let c = get("/cors");
    let (a, b) = (ours(&c), framework.request(&c));
    same_body(&c, &a, &b);
    for r in [&a, &b] {
        assert_eq!(r.header("access-control-allow-origin"), Some("https://example.com"));
        assert_eq!(r.header("access-control-allow-headers"), Some("Content-Type"));
    }

    // A multipart upload reaches the handler as text its parser reads (the bytes that are not
    // UTF-8 replaced, as both frameworks do).
    let c = upload();
    let (a, b) = (ours(&c), framework.request(&c));
    same_status(&c, &a, &b);
    assert_eq!(a.json(), b.json(), "the parts the handler parsed");
    assert_eq!(a.json()[1], json!(["file", "notes.txt", "line one\nline two, caf\u{e9}"]));
    assert_eq!(a.json().as_array().map(Vec::len), Some(3));
}

/// What only fnbox does right: lookups in any case, canonical names, the multiValue fields.
fn any_case(s: &Server, name: &str, node: bool) {
    let c = event_case();
    let r = s.request(c.method, &format!("/fn/{name}/anycase?a=1&a=2"), &c.headers, &c.body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["lookups"], json!(["text/plain", "text/plain", "p1", true]));
    let keys: Vec<&str> = v["keys"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for k in ["Content-Type", "X-Probe", "X-Forwarded-For", "X-Request-Id"] {
        assert!(keys.contains(&k), "{k} not among {keys:?}");
    }
    assert_eq!(v["multi_header"], json!(["one", "two"]));
    assert_eq!(v["multi_query"]["a"], json!(["1", "2"]));
    // Repeated headers joined as each framework joins them.
    let e = s.request(c.method, &format!("/fn/{name}{}", c.path), &c.headers, &c.body).json();
    let joined = if node { "one, two" } else { "one,two" };
    assert_eq!(event_header(&e["event"], "x-multi").as_deref(), Some(joined));
}

#[test]
fn python_handlers_answer_as_under_scaleways_framework() {
    let reference = reference_dir();
    let code = TempDir::with("scw-py", &[("handler.py", PY_PROBE)]);
    let framework = Framework::python(&reference, code.path());
    let s = Server::start("scw-py");
    s.deploy("probe", code.path(), &["--runtime", "python3"]);
    compare(&s, "probe", &framework);
    any_case(&s, "probe", false);

    // The framework's plain bugs, where fnbox follows Scaleway's docs: a dict without body or
    // statusCode is the JSON body ("Straight response without body"), not an empty answer;
    // the event names stageVariables as documented (the framework: stageVariable).
    let c = get("/dict");
    let (a, b) = (s.request("GET", "/fn/probe/dict", &[], b""), framework.request(&c));
    assert_eq!((a.status, a.json()), (200, json!({"message": "hello world"})));
    assert_eq!((b.status, b.text()), (200, String::new()), "the framework changed: update the README");
    let e = s.request("GET", "/fn/probe/event", &[], b"").json();
    assert!(e["event"]["stageVariables"].is_object(), "{}", e["event"]);
    // A string is the body in both (the framework sends it as text/html, fnbox as text/plain).
    let a = s.request("GET", "/fn/probe/string", &[], b"");
    same_body(&get("/string"), &a, &framework.request(&get("/string")));
    assert!(a.header("content-type").unwrap_or("").starts_with("text/plain"));
}

#[test]
fn node_handlers_answer_as_under_scaleways_framework() {
    let reference = reference_dir();
    let code = TempDir::with("scw-node", &[("handler.js", NODE_PROBE)]);
    let framework = Framework::node(&reference, code.path());
    let s = Server::start("scw-node");
    s.deploy("probe", code.path(), &["--runtime", "node"]);
    compare(&s, "probe", &framework);
    any_case(&s, "probe", true);
    let c = get("/dict");
    same_body(&c, &s.request("GET", "/fn/probe/dict", &[], b""), &framework.request(&c));

    // The framework's plain bug: returning a string (which Scaleway's docs allow) fails there.
    let a = s.request("GET", "/fn/probe/string", &[], b"");
    assert_eq!((a.status, a.text()), (200, "my Message".to_string()));
    assert_eq!(framework.request(&get("/string")).status, 500, "the framework changed: update the README");
}

/// Waits for a pre-warmed Python sandbox of the default tier.
fn wait_warm_python(s: &Server) {
    let ready = "fnbox_warm_sandboxes{runtime=\"python3\",memory_mb=\"256\",state=\"ready\"}";
    assert!(
        eventually(Duration::from_secs(60), || s.metric(ready) >= 1.0),
        "no pre-warmed python3 sandbox within 60 s:\n{}",
        s.metrics()
    );
}

#[test]
fn python_package_dir_is_importable_on_the_pooled_path() {
    // Scaleway's layout: the handler in a folder, `pip install --target package` at the root.
    let code = TempDir::with(
        "scw-package",
        &[
            (
                "handlers/handler.py",
                "import vendored\n\ndef handle(event, context):\n    return {\"body\": vendored.WHERE}\n",
            ),
            ("package/vendored/__init__.py", "import os\nWHERE = os.path.dirname(__file__)\n"),
        ],
    );
    let s = Server::start("scw-package");
    s.deploy("vendored", code.path(), &["--runtime", "python3", "--handler", "handlers/handler.handle"]);
    wait_warm_python(&s);
    let r = s.get("/fn/vendored/");
    assert_eq!((r.status, r.text()), (200, "/code/package/vendored".to_string()));
    let pooled = "fnbox_cold_starts_total{function=\"vendored\",sandbox=\"v2\",from=\"pool\",process=\"zygote\"}";
    assert_eq!(s.metric(pooled), 1.0, "served from a pre-warmed zygote:\n{}", s.metrics());
}

/// A handler that writes next to its code and into the SQLite file shipped with it.
const WRITER: &str = r#"
import os, sqlite3
def handle(event, context):
    db = sqlite3.connect("shipped.sqlite")
    db.execute("insert into t values (?)", (event["body"],))
    db.commit()
    with open("/code/notes.txt", "a") as f:
        f.write(event["body"] + "\n")
    rows = [r[0] for r in db.execute("select x from t")]
    return {"rows": rows, "notes": open("/code/notes.txt").read().split(), "env": [os.environ.get("my-var"), os.environ.get("db.password")]}
"#;

#[test]
fn code_is_writable_per_instance_copy_on_write() {
    let code = TempDir::with("scw-writable", &[("handler.py", WRITER)]);
    let db = code.path().join("shipped.sqlite");
    let made = Command::new("python3")
        .arg("-c")
        .arg(format!("import sqlite3; d = sqlite3.connect({:?}); d.execute('create table t (x text)'); d.execute(\"insert into t values ('shipped')\"); d.commit()", db.display().to_string()))
        .output()
        .unwrap();
    ok(&made);
    let s = Server::start("scw-writable");
    for sandbox in ["v2", "v1"] {
        let name = format!("writer-{sandbox}");
        s.deploy(
            &name,
            code.path(),
            &["--runtime", "python3", "--sandbox", sandbox, "--env", "my-var=dash", "--secret", "db.password=dot"],
        );
        let call = |body: &str| s.request("POST", &format!("/fn/{name}/"), &[], body.as_bytes());
        let first = call("one");
        assert_eq!(first.status, 200, "{sandbox}: {}", first.text());
        assert_eq!(
            first.json(),
            json!({"rows": ["shipped", "one"], "notes": ["one"], "env": ["dash", "dot"]}),
            "{sandbox}"
        );
        assert_eq!(
            call("two").json()["rows"],
            json!(["shipped", "one", "two"]),
            "{sandbox}: the instance keeps its writes"
        );
        // A new instance starts from the stored code: the writes were the old instance's own.
        let token = s.admin_token();
        let r = s.request(
            "DELETE",
            &format!("/api/v1/functions/{name}/instances"),
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let fresh = call("three");
        assert_eq!(fresh.json()["rows"], json!(["shipped", "three"]), "{sandbox}: {}", fresh.text());
        assert_eq!(fresh.json()["notes"], json!(["three"]), "{sandbox}");
    }
}
