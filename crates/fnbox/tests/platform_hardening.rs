//! What a hostile function or client, or a careless operator, could do to `fnbox serve` and
//! `fnbox run` (issue 12, items 7 to 10): secrets on disk, environments, tokens forwarded,
//! answers that name host paths, API input, a broken registry row, CLI numbers, binds and
//! working directories.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Answers with its environment (the variables the tests set) and the headers it got.
const ENV_AND_HEADERS: &str = r#"import json, os

def handle(event, context):
    env = {k: os.environ.get(k) for k in ("A", "B", "INJECTED", "my-var.x", "TOKEN")}
    return {"statusCode": 200, "body": json.dumps({"env": env, "headers": event["headers"]})}
"#;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// Every byte of the registry's files.
fn registry_bytes(data: &Path) -> Vec<u8> {
    ["registry.db", "registry.db-wal"].iter().flat_map(|f| std::fs::read(data.join(f)).unwrap_or_default()).collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_are_sealed_in_private_files_and_still_reach_the_function() {
    let mut s = Server::start("sealed");
    let code = TempDir::with("code", &[("handler.py", ENV_AND_HEADERS)]);
    s.deploy("sec", code.path(), &["--runtime", "python3", "--secret", "TOKEN=s3cr3t-value-42"]);
    let check = |s: &Server| {
        let r = s.get("/fn/sec/");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["env"]["TOKEN"], "s3cr3t-value-42");
        assert!(!contains(&registry_bytes(&s.data), "s3cr3t-value-42"), "the secret is in plain text in registry.db");
        assert_eq!(mode(&s.data), 0o700, "data dir");
        for f in ["registry.db", "registry.db-wal", "registry.db-shm", "admin.token"] {
            assert_eq!(mode(&s.data.join(f)), 0o600, "{f}");
        }
        assert_eq!(mode(&s.data.join("secret.key")), 0o400);
        assert_eq!(mode(&s.data.join("code")), 0o700);
    };
    check(&s);
    // Whatever the modes were (an older fnbox, a umask), a start makes them private again.
    s.stop();
    for (f, m) in [("", 0o755), ("registry.db", 0o644), ("secret.key", 0o644), ("admin.token", 0o644), ("code", 0o755)]
    {
        std::fs::set_permissions(s.data.join(f), std::fs::Permissions::from_mode(m)).unwrap();
    }
    s.launch();
    check(&s);
}

#[test]
fn environments_are_passed_byte_exact_on_every_path() {
    let s = Server::start("env");
    let code = TempDir::with("code", &[("handler.py", ENV_AND_HEADERS)]);
    // v1 reads the environment from the env file, v2 from the zygote's bind message.
    for sandbox in ["v1", "v2"] {
        let name = format!("env-{sandbox}");
        let args = [
            "--runtime",
            "python3",
            "--sandbox",
            sandbox,
            "--env",
            "A=x\nINJECTED=1",
            "--env",
            "B= y  ",
            "--env",
            "my-var.x=ok",
        ];
        s.deploy(&name, code.path(), &args);
        let r = s.get(&format!("/fn/{name}/"));
        assert_eq!(r.status, 200, "{}", r.text());
        let env = &r.json()["env"];
        assert_eq!(env["A"], "x\nINJECTED=1", "{sandbox}: {env}");
        assert_eq!(env["INJECTED"], serde_json::Value::Null, "{sandbox}: a newline smuggled a variable");
        assert_eq!(env["B"], " y  ", "{sandbox}: the value was trimmed");
        assert_eq!(env["my-var.x"], "ok", "{sandbox}");
    }
    // A NUL cannot reach a program: refused at deploy, naming the variable.
    let auth = format!("Bearer {}", s.admin_token());
    let body = serde_json::json!({"runtime": "python3", "code": "a".repeat(64), "secrets": {"TOKEN": "s3cr3t\u{0}x"}});
    let r = s.request("PUT", "/api/v1/functions/nul", &[("Authorization", &auth)], body.to_string().as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("'TOKEN'") && r.text().contains("NUL") && !r.text().contains("s3cr3t"), "{}", r.text());
}

/// Standard base64, padded (as HTTP Basic credentials are sent).
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// The whole event as the function got it.
const EVENT: &str = r#"import json

def handle(event, context):
    return {"statusCode": 200, "body": json.dumps(event)}
"#;

#[test]
fn the_admin_token_reaches_no_function_in_any_form_and_client_ip_headers_are_the_gateways() {
    let s = Server::start("admin-forms");
    let code = TempDir::with("code", &[("handler.py", EVENT)]);
    s.deploy("event", code.path(), &["--runtime", "python3"]);
    let t = s.admin_token();
    let basic = format!("Basic {}", base64(format!("x:{t}").as_bytes()));
    let cookie = format!("session=1; t={t}");
    let forms: [(&str, &[(&str, &str)]); 6] = [
        ("/fn/event/?token=T&keep=1", &[]),
        ("/fn/event/?keep=1&token=T%", &[]),
        ("/fn/event/?keep=1", &[("Cookie", &cookie)]),
        ("/fn/event/?keep=1", &[("X-Api-Key", &t)]),
        ("/fn/event/?keep=1", &[("Authorization", &basic)]),
        ("/fn/event/?keep=1", &[("X-Whatever", &format!("prefix {t} suffix"))]),
    ];
    for (path, headers) in forms {
        // `T%` in a path: the token percent-encoded, a byte at a time.
        let encoded: String = t.bytes().map(|b| format!("%{b:02X}")).collect();
        let path = path.replace("T%", &encoded).replace("=T", &format!("={t}"));
        let r = s.request("GET", &path, headers, b"");
        assert_eq!(r.status, 200, "{path} {headers:?}: {}", r.text());
        let seen = r.text();
        assert!(!seen.contains(&t) && !seen.contains(&encoded), "{path} {headers:?}: the function saw {seen}");
        assert!(!seen.contains(basic.split(' ').nth(1).unwrap()), "{headers:?}: the function saw {seen}");
        assert_eq!(r.json()["queryStringParameters"]["keep"], "1", "{path}: {seen}");
    }
    // Headers that name the client's address are the gateway's to say, as X-Forwarded-For is.
    let spoofed = [
        "True-Client-IP",
        "CF-Connecting-IP",
        "X-Client-IP",
        "Client-IP",
        "X-Cluster-Client-IP",
        "X-Original-Forwarded-For",
    ];
    let headers: Vec<(&str, &str)> = spoofed.iter().map(|h| (*h, "6.6.6.6")).collect();
    let r = s.request("GET", "/fn/event/", &headers, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("6.6.6.6"), "a client-sent address reached the function: {}", r.text());
}

#[test]
fn gateway_keeps_tokens_paths_and_metrics_to_itself() {
    let s = Server::start("gateway");
    let code = TempDir::with("code", &[("handler.py", ENV_AND_HEADERS)]);
    s.deploy("echo", code.path(), &["--runtime", "python3"]);
    let admin = format!("Bearer {}", s.admin_token());
    let seen = |headers: &[(&str, &str)]| {
        let r = s.request("GET", "/fn/echo/", headers, b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let h = r.json()["headers"].clone();
        let auth = h.as_object().unwrap().iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        auth.map(|(_, v)| v.as_str().unwrap().to_string())
    };
    assert_eq!(seen(&[("Authorization", &admin)]), None, "the admin token was forwarded to the function");
    assert_eq!(seen(&[("Authorization", "Basic dXNlcjpwdw==")]).as_deref(), Some("Basic dXNlcjpwdw=="));
    // The admin token in any other form is stripped too.
    let token = s.admin_token();
    for odd in [format!("bearer\t{token}"), format!("BEARER   {token}"), format!("Token {token}"), token.clone()] {
        assert_eq!(seen(&[("Authorization", &odd)]), None, "forwarded: {odd:?}");
    }
    // Hop-by-hop headers named in Connection stay at the gateway; who the client is comes from
    // the connection, not from what it claims.
    let r = s.request(
        "GET",
        "/fn/echo/",
        &[
            ("Connection", "close, X-Hop"),
            ("X-Hop", "secret"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Real-IP", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6"),
        ],
        b"",
    );
    let h = r.json()["headers"].clone();
    let get =
        |k: &str| h.as_object().unwrap().iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.to_string());
    assert_eq!(get("x-hop"), None, "a header named in Connection was forwarded");
    assert_eq!(get("x-forwarded-for").as_deref(), Some("\"127.0.0.1\""), "{h}");
    assert_eq!(get("x-real-ip").as_deref(), Some("\"127.0.0.1\""), "{h}");
    assert_eq!(get("forwarded").as_deref(), Some("\"for=127.0.0.1;proto=http\""), "{h}");

    let data = s.data.to_str().unwrap().to_string();
    let r = s.get("/metrics");
    assert_eq!(r.status, 401, "/metrics without the admin token: {}", r.text());
    assert!(!r.text().contains(&data) && !r.text().contains("echo"), "{}", r.text());
    let r = s.get("/api/v1/functions");
    assert_eq!(r.status, 401);
    assert!(!r.text().contains(&data), "the 401 names the data dir: {}", r.text());
    assert!(s.metrics().contains("fnbox_invocations_total{function=\"echo\""));
    let open = Server::start_with("metrics-open", &["--metrics-public"]);
    assert_eq!(open.get("/metrics").status, 200);

    // API input: 400 naming the field, never 500.
    let put = |body: serde_json::Value| {
        let r = s.request("PUT", "/api/v1/functions/bad", &[("Authorization", &admin)], body.to_string().as_bytes());
        (r.status, r.text())
    };
    let base = serde_json::json!({"runtime": "python3", "code": "a".repeat(64)});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let (st, text) = put(with("max_sacle", 3.into()));
    assert!(st == 400 && text.contains("unknown field `max_sacle`"), "{st} {text}");
    let (st, text) = put(with("memory_mb", 100.into()));
    assert!(st == 400 && text.contains("not a tier"), "{st} {text}");
    let (st, text) = put(with("sandbox", "v3".into()));
    assert!(st == 400 && text.contains("v3"), "{st} {text}");
}

#[test]
fn a_broken_registry_row_disables_that_function_only() {
    let mut s = Server::start("broken-row");
    let code = TempDir::with("code", &[("handler.py", ENV_AND_HEADERS)]);
    s.deploy("good", code.path(), &["--runtime", "python3"]);
    s.deploy("bad", code.path(), &["--runtime", "python3"]);
    s.stop();
    let script = "import sqlite3,sys\ndb=sqlite3.connect(sys.argv[1])\ndb.execute(\"UPDATE functions SET config='{\\\"runtime\\\": \\\"cobol\\\"}' WHERE name='bad'\")\ndb.commit()\n";
    ok(&std::process::Command::new("python3").args(["-c", script]).arg(s.data.join("registry.db")).output().unwrap());
    s.launch();
    assert_eq!(s.get("/fn/good/").status, 200);
    let r = s.get("/fn/bad/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("disabled"), "{}", r.text());
    let ls = ok(&s.cli(&["ls"]));
    let line = ls.lines().find(|l| l.starts_with("bad ")).unwrap_or_else(|| panic!("bad not listed:\n{ls}"));
    assert!(line.contains("DISABLED") && line.contains("cobol") && line.contains("redeploy"), "{line}");
    assert!(s.logs("bad").contains("is disabled"), "{}", s.logs("bad"));
    // Redeploying mends it.
    s.deploy("bad", code.path(), &["--runtime", "python3"]);
    assert_eq!(s.get("/fn/bad/").status, 200);
}

#[test]
fn run_refuses_bad_numbers_kernel_views_and_unusable_workdirs() {
    let scope = Scope::new("run-checks");
    for kind in ["v1", "v2"] {
        let refused = |args: &[&str], want: &str| {
            let out = scope.run(kind, args, &["true"]);
            assert_eq!(code(&out), 125, "{kind} {args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains(want), "{kind} {args:?}: expected '{want}' in {}", stderr(&out));
            assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
        };
        refused(&["--timeout", "1e30"], "timeout 1000000000000000000000000000000 is not valid");
        refused(&["--timeout", "NaN"], "timeout NaN is not valid");
        refused(&["--pids", "18446744073709551615"], "out of range");
        refused(&["--disk", "99999999999999999M"], "is not valid");
        let views = "/proc, /sys, /dev or /run";
        refused(&["--bind", "/proc:/x"], views);
        refused(&["--bind", "/sys"], views);
        refused(&["--bind", "/proc/self/fd:/fds"], views);
        // The host's devices, ptys and /dev/shm; namespace handles and fnbox's run directory.
        refused(&["--bind", "/dev:/h"], views);
        refused(&["--bind", "/dev/shm:/h"], views);
        refused(&["--bind", "/run:/h"], views);
        // As runc does with a container's cwd, a missing one is made (in the sandbox's layer,
        // never on the host); one that cannot be is an error.
        refused(&["--workdir", "/etc/passwd/sub"], "cannot use working directory /etc/passwd/sub");
        let marker = format!("/{}", unique("workdir"));
        let out = scope.run(kind, &["--workdir", &marker], &["pwd"]);
        assert_eq!(ok(&out), format!("{marker}\n"), "{kind}");
        assert!(!Path::new(&marker).exists(), "{kind}: the working directory was made on the host");
        refused(&["--env", "A\nB=1"], "is not valid");
        let out =
            scope.run(kind, &["--env", "A=x\nB=y ", "--workdir", "/usr"], &["sh", "-c", "printf '[%s]' \"$A\"; pwd"]);
        assert_eq!(ok(&out), "[x\nB=y ]/usr\n", "{kind}");
    }
    scope.assert_clean();
}

#[test]
fn handler_headers_and_status_are_checked_and_the_instance_kept() {
    let s = Server::start("answers");
    let py = TempDir::with(
        "py",
        &[(
            "handler.py",
            "def handle(event, context):\n    q = event['queryStringParameters']\n    if q.get('inject'):\n        return {'statusCode': 200, 'headers': {'X-A': 'a\\r\\nSet-Cookie: evil=1'}, 'body': 'x'}\n    if q.get('status'):\n        return {'statusCode': int(q['status']), 'body': 'x'}\n    if q.get('euro'):\n        return {'statusCode': 200, 'headers': {'X-Price': '5 \u{20ac}'}, 'body': 'x'}\n    return {'statusCode': 201, 'headers': {'X-Ok': 'yes'}, 'body': 'fine'}\n",
        )],
    );
    let node = TempDir::with(
        "node",
        &[(
            "handler.js",
            "exports.handle = async (event) => {\n  const q = event.queryStringParameters;\n  if (q.inject) return { statusCode: 200, headers: { 'X-A': 'a\\r\\nSet-Cookie: evil=1' }, body: 'x' };\n  if (q.status) return { statusCode: Number(q.status), body: 'x' };\n  if (q.euro) return { statusCode: 200, headers: { 'X-Price': '5 \u{20ac}' }, body: 'x' };\n  return { statusCode: 201, headers: { 'X-Ok': 'yes' }, body: 'fine' };\n};\n",
        )],
    );
    s.deploy("ans-py", py.path(), &["--runtime", "python3", "--max-scale", "1"]);
    s.deploy("ans-node", node.path(), &["--runtime", "node", "--max-scale", "1"]);
    for name in ["ans-py", "ans-node"] {
        let r = s.get(&format!("/fn/{name}/"));
        assert_eq!((r.status, r.header("x-ok"), r.text().as_str()), (201, Some("yes"), "fine"), "{name}");
        let r = s.get(&format!("/fn/{name}/?inject=1"));
        assert_eq!(r.status, 500, "{name}: {}", r.text());
        assert!(r.header("set-cookie").is_none(), "{name}: a header was injected");
        assert!(r.text().contains("header 'X-A' has a control character"), "{name}: {}", r.text());
        let r = s.get(&format!("/fn/{name}/?status=1000"));
        assert_eq!(r.status, 500, "{name}: {}", r.text());
        assert!(r.text().contains("statusCode 1000 is not an HTTP status"), "{name}: {}", r.text());
        assert_eq!(s.get(&format!("/fn/{name}/?euro=1")).status, 200, "{name}");
        // The same instance served on: nothing crashed, nothing was restarted.
        assert_eq!(s.get(&format!("/fn/{name}/")).status, 201, "{name}");
        let logs = s.logs(name);
        assert!(logs.contains("not valid HTTP"), "{name}: {logs}");
        assert!(!logs.contains("crashed") && !logs.contains("failed:"), "{name}: {logs}");
        assert_eq!(logs.matches("instance started").count().max(1), 1, "{name}: {logs}");
    }
}

/// A CONNECT used to reach the Node wrapper, which ends the instance on one (a crash, then the
/// restart back-off): any unauthenticated client could keep a Node function down.
#[test]
fn connect_is_refused_at_the_gateway_and_leaves_the_instance_alone() {
    let s = Server::start("connect");
    s.deploy("nd", &examples().join("hello-node"), &["--runtime", "node"]);
    assert_eq!(s.get("/fn/nd/").status, 200);
    for _ in 0..3 {
        let r = s.request("CONNECT", "/fn/nd/", &[], b"");
        assert_eq!(r.status, 405, "{}", r.text());
    }
    let r = s.get("/fn/nd/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.metric("fnbox_instance_crashes_total{function=\"nd\"}"), 0.0, "{}", s.logs("nd"));
}
