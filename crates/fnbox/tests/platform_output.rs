//! A function's stdout and stderr are hostile bytes: whatever it prints, the server's memory
//! stays bounded, the function keeps running, and later lines still reach its logs.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::time::Duration;

const PRINTER_PY: &str = r#"
import sys
def handle(event, context):
    q = event["queryStringParameters"]
    if "flood" in q:
        # MiB without a newline.
        chunk = b"x" * (1 << 20)
        for _ in range(int(q["flood"])):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return "flooded"
    if "bad" in q:
        sys.stdout.buffer.write(b"bad \xff\xfe bytes\n")
        sys.stdout.buffer.flush()
    print("said " + q.get("say", ""))
    return "ok"
"#;

const PRINTER_JS: &str = r#"
exports.handle = async (event) => {
  const q = event.queryStringParameters || {};
  if (q.bad) process.stdout.write(Buffer.from([0x62, 0x61, 0x64, 0x20, 0xff, 0xfe, 0x0a]));
  console.log("said " + (q.say || ""));
  return "ok";
};
"#;

fn logs_contain(s: &Server, name: &str, needle: &str) -> bool {
    eventually(Duration::from_secs(20), || s.logs(name).contains(needle))
}

#[test]
fn a_huge_line_without_newline_keeps_the_server_memory_bounded() {
    let s = Server::start("flood");
    let code = TempDir::with("flood", &[("handler.py", PRINTER_PY)]);
    s.deploy("flood", code.path(), &["--runtime", "python3"]);
    assert_eq!(s.get("/fn/flood/?say=first").status, 200);
    let before = s.rss_kib();
    // 64 MiB on one line: the handler returns once the server has read all but a pipe's worth.
    let r = s.get("/fn/flood/?flood=64");
    assert_eq!((r.status, r.text()), (200, "flooded".to_string()));
    let during = s.rss_kib();
    assert!(
        during < before + 16 * 1024,
        "the server's RSS went from {before} KiB to {during} KiB while a 64 MiB line was unfinished"
    );
    // "said end" ends the long line (it is its tail, dropped); the next line is whole.
    assert_eq!(s.get("/fn/flood/?say=end").status, 200);
    assert_eq!(s.get("/fn/flood/?say=after").status, 200);
    assert!(logs_contain(&s, "flood", "said after"), "{}", s.logs("flood"));
    let logs = s.logs("flood");
    let cut = logs.lines().find(|l| l.ends_with("xxxx [cut]")).unwrap_or_else(|| panic!("no cut line in {logs}"));
    assert!(cut.len() < 9000, "the cut line is {} bytes", cut.len());
    assert!(!logs.contains("said end"), "the rest of a cut line is dropped");
}

#[test]
fn invalid_utf8_from_python_is_logged_escaped_and_the_instance_keeps_printing() {
    let s = Server::start("badutf8-py");
    let code = TempDir::with("badutf8-py", &[("handler.py", PRINTER_PY)]);
    s.deploy("badpy", code.path(), &["--runtime", "python3"]);
    invalid_then_more(&s, "badpy");
}

#[test]
fn invalid_utf8_from_node_is_logged_escaped_and_the_instance_keeps_printing() {
    let s = Server::start("badutf8-js");
    let code = TempDir::with("badutf8-js", &[("handler.js", PRINTER_JS)]);
    s.deploy("badjs", code.path(), &["--runtime", "node"]);
    invalid_then_more(&s, "badjs");
}

fn invalid_then_more(s: &Server, name: &str) {
    let first = s.get(&format!("/fn/{name}/?bad=1&say=one"));
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(logs_contain(s, name, "said one"), "{}", s.logs(name));
    for say in ["two", "three"] {
        let r = s.get(&format!("/fn/{name}/?say={say}"));
        assert_eq!(r.status, 200, "after invalid UTF-8: {}", r.text());
        assert!(logs_contain(s, name, &format!("said {say}")), "{}", s.logs(name));
    }
    let logs = s.logs(name);
    assert!(logs.contains(r"stdout: bad \xff\xfe"), "the invalid bytes are kept, escaped: {logs}");
    assert!(!logs.contains("instance ended"), "the instance kept running: {logs}");
}
