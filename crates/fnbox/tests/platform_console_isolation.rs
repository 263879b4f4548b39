//! The web console against the functions it serves: on the functions' port, a function's
//! answer gets an opaque origin and never sees nor plants the console's cookie, forms from a
//! sandboxed page are refused, a live log stream ends with its session; on its own port
//! (`--console-listen`), functions' answers are left alone.

mod common;
mod platform_support;

use common::*;
use platform_support::console::*;
use platform_support::*;

use std::time::Duration;

/// A function that shows the cookies it receives and tries to plant the console's.
const NOSY: &str = r#"
def handle(event, context):
    cookie = event.get("headers", {}).get("Cookie", "") or event.get("headers", {}).get("cookie", "")
    print("cookie-seen=" + cookie, flush=True)
    return {"statusCode": 200, "body": "cookie=" + cookie,
            "headers": {"Content-Type": "text/html", "Set-Cookie": ["fnbox_session=planted; Path=/console", "mine=1; Path=/"]}}
"#;

#[test]
fn functions_cannot_reach_the_console_it_shares_a_port_with() {
    let s = Server::start("console-fn");
    let code = TempDir::with("console-fn", &[("handler.py", NOSY)]);
    s.deploy("nosy", code.path(), &["--runtime", "python3"]);
    let b = login(&s);
    let sid = b.cookie.split_once('=').unwrap().1.to_string();
    // The function's answer: an opaque origin, the console's cookie neither seen nor planted.
    let r = s.request("GET", "/fn/nosy/", &[("Cookie", &format!("a=1; {}; b=2", b.cookie))], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "cookie=a=1; b=2", "the function saw the console's cookie");
    let csp = r.header_all("content-security-policy");
    assert!(csp.iter().any(|c| c.starts_with("sandbox ") && !c.contains("allow-same-origin")), "{csp:?}");
    let set = r.header_all("set-cookie");
    assert_eq!(set, ["mine=1; Path=/"], "a function set the console's cookie");
    // A planted cookie sent first does not hide the real one.
    let both = format!("fnbox_session=bogus; fnbox_session={sid}");
    assert_eq!(s.request("GET", "/console/", &[("Cookie", &both)], b"").status, 200);

    // Chromium's same-origin form under a strict referrer policy: `Origin: null` with
    // `Sec-Fetch-Site: same-origin` passes; `Origin: null` alone (a sandboxed page) does not.
    let csrf = b.csrf();
    let form = format!("csrf={csrf}");
    let null = ("Origin", "null");
    let made = b.post("/console/functions/nosy/tokens", &form, &[null, ("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.header("referrer-policy"), Some("same-origin"));
    assert_eq!(b.post("/console/functions/nosy/tokens", &form, &[null]).status, 403);
    assert_eq!(b.post("/console/functions/nosy/tokens", &form, &[null, ("Sec-Fetch-Site", "cross-site")]).status, 403);

    // The raw logs carry the console's headers.
    let logs = b.get("/console/functions/nosy/logs?tail=5");
    assert!(logs.text().contains("cookie-seen=a=1; b=2"), "{}", logs.text());
    for (k, v) in [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"), ("cache-control", "no-store")] {
        assert_eq!(logs.header(k), Some(v), "the logs answer lacks {k}");
    }
    assert!(logs.header("content-security-policy").is_some_and(|c| c.contains("default-src 'none'")));

    // A login body is small and read as anyone's.
    let big = format!("token={}", "a".repeat(5000));
    let r =
        s.request("POST", "/console/login", &[("Content-Type", "application/x-www-form-urlencoded")], big.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("4 KiB"), "{}", r.text());

    // An upload to a function that does not exist stores nothing.
    let trees = || std::fs::read_dir(s.data.join("code/trees")).unwrap().count();
    let before = trees();
    let zip = zip_of(code.path(), "ghost");
    let (body, ct) = upload_form(&csrf, &zip);
    let r = s.request("POST", "/console/functions/ghost/deploy", &[("Cookie", &b.cookie), ct], &body);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(trees(), before, "code was stored for a function that does not exist");

    // A live stream ends when its session does.
    use std::io::{Read, Write};
    let mut follow = std::net::TcpStream::connect(&s.addr).unwrap();
    follow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!("GET /console/functions/nosy/logs?follow=1&tail=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: {}\r\n\r\n", s.addr, b.cookie);
    follow.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = follow.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    assert_eq!(b.post("/console/logout", &form, &[]).status, 303);
    s.get("/fn/nosy/");
    let mut rest = Vec::new();
    let end = follow.read_to_end(&mut rest);
    assert!(end.is_ok(), "the stream outlived its session: {end:?}, {}", String::from_utf8_lossy(&rest));
    assert!(
        !String::from_utf8_lossy(&rest).contains("cookie-seen"),
        "a line after logout: {}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn the_console_on_its_own_port_leaves_functions_alone() {
    let port = free_port();
    let console = format!("127.0.0.1:{port}");
    let s = Server::start_with("console-own", &["--console-listen", &console]);
    let code = TempDir::with("console-own", &[("handler.py", NOSY)]);
    s.deploy("nosy", code.path(), &["--runtime", "python3"]);
    let r = s.get("/fn/nosy/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-security-policy").is_none(), "a function's answer is its own");
    assert_eq!(s.get("/console/").status, 404, "the console is not on the functions' port");
    let form = format!("token={}", s.admin_token());
    let ct = ("Content-Type", "application/x-www-form-urlencoded");
    let r = http_request(&console, "POST", "/console/login", &[ct], form.as_bytes()).unwrap();
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let list = http_request(&console, "GET", "/console/", &[("Cookie", &cookie)], b"").unwrap();
    assert!(list.text().contains("/console/functions/nosy"), "{}", list.text());
    assert_eq!(http_request(&console, "GET", "/fn/nosy/", &[], b"").unwrap().status, 404);
}
