//! The web console and what lasts: a login that gives an HttpOnly, SameSite=Strict session;
//! nothing but the login page without it; forms refused without their CSRF token or from
//! another origin; upload, rollback (console, CLI, API) and tokens; logs and charts still
//! there after `kill -9` and a restart. A real browser: tests/platform_console_browser.rs;
//! functions against the console: tests/platform_console_isolation.rs.

mod common;
mod platform_support;

use common::*;
use platform_support::console::*;
use platform_support::*;

#[test]
fn console_needs_a_login_and_refuses_forged_forms() {
    let s = Server::start("console-auth");
    let code = TempDir::with("console-auth", &[("handler.py", &handler("one"))]);
    s.deploy("hello", code.path(), &["--runtime", "python3"]);
    // Nothing but the login page and its stylesheet without a session.
    assert_eq!(s.get("/").header("location"), Some("/console/"));
    for path in [
        "/console/",
        "/console/functions/hello",
        "/console/functions/hello/logs?follow=1",
        "/console/static/logs.js",
        "/console/nothing",
    ] {
        let r = s.get(path);
        assert_eq!((r.status, r.header("location")), (303, Some("/console/login")), "GET {path}: {}", r.text());
        assert!(!r.text().contains("hello\""), "GET {path} shows nothing of the function");
    }
    for path in ["/console/functions/hello/tokens", "/console/functions/hello/rollback", "/console/logout"] {
        let r = s.request("POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], b"csrf=x");
        assert_eq!(r.status, 401, "POST {path} without a session: {}", r.text());
    }
    let forged =
        s.request("POST", "/console/functions/hello/tokens", &[("Cookie", "fnbox_session=0123456789abcdef")], b"");
    assert_eq!(forged.status, 401, "a made-up session id");
    assert_eq!(s.get("/console/login").status, 200);
    assert_eq!(s.get("/console/static/console.css").status, 200);
    let wrong = s.request("POST", "/console/login", &[], b"token=fnbox-admin-guess");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());

    let b = login(&s);
    let list = b.get("/console/");
    assert_eq!(list.status, 200, "{}", list.text());
    assert!(list.text().contains("/console/functions/hello"), "{}", list.text());
    let csp = list.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(list.header("x-frame-options"), Some("DENY"));
    let csrf = b.csrf();

    // What a function prints is shown as text: markup escaped, control characters as \xNN.
    assert_eq!(s.get("/fn/hello/").text(), "one");
    let page = b.get("/console/functions/hello").text();
    assert!(page.contains("&lt;script&gt;alert(1)") && page.contains("\\x1b[2J"), "{page}");
    assert!(!page.contains("<script>alert") && !page.contains('\x1b'), "{page}");
    let live = b.get("/console/functions/hello/logs?escape=1&grep=alert").text();
    assert!(live.contains("\\x1b[2J") && !live.contains('\x1b'), "{live}");
    assert_eq!(b.get("/console/functions/..%2f..%2fetc/logs").status, 404);

    // Forms without the token, with another session's, or from another site: refused, and
    // nothing created.
    assert_eq!(b.post("/console/functions/hello/tokens", "", &[]).status, 403);
    assert_eq!(b.post("/console/functions/hello/tokens", &format!("csrf={}", "0".repeat(64)), &[]).status, 403);
    let other = login(&s);
    assert_eq!(b.post("/console/functions/hello/tokens", &format!("csrf={}", other.csrf()), &[]).status, 403);
    let cross =
        b.post("/console/functions/hello/tokens", &format!("csrf={csrf}"), &[("Origin", "http://evil.example")]);
    assert_eq!(cross.status, 403, "{}", cross.text());
    let cross = b.post("/console/functions/hello/tokens", &format!("csrf={csrf}"), &[("Sec-Fetch-Site", "cross-site")]);
    assert_eq!(cross.status, 403);
    assert_eq!(s.cli(&["token", "ls", "hello"]).stdout.len(), 0, "a refused form created a token");

    // With the token: a token shown once, then revoked.
    let made = b.post("/console/functions/hello/tokens", &format!("csrf={csrf}"), &[]);
    assert_eq!(made.status, 201, "{}", made.text());
    assert!(made.text().contains("fnbox-hello-"), "the new token is shown");
    let id = stdout(&s.cli(&["token", "ls", "hello"])).split_whitespace().next().unwrap().to_string();
    let gone = b.post(&format!("/console/functions/hello/tokens/{id}/revoke"), &format!("csrf={csrf}"), &[]);
    assert_eq!(gone.status, 303);
    assert!(stdout(&s.cli(&["token", "ls", "hello"])).is_empty());

    // Triggers: a CRON trigger made and removed from the function's page, CSRF-checked like
    // every form, with the CLI's checks (the error names the field).
    let cron = |schedule: &str| format!("csrf={csrf}&schedule={schedule}&name=tick&data=%7B%22job%22%3A1%7D");
    assert_eq!(b.post("/console/functions/hello/triggers", "schedule=*%20*%20*%20*%20*", &[]).status, 403);
    let bad = b.post("/console/functions/hello/triggers", &cron("61%20*%20*%20*%20*"), &[]);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("minute"), "the error names the field: {}", bad.text());
    let listed = || -> serde_json::Value {
        serde_json::from_str(&stdout(&s.cli(&["trigger", "ls", "hello", "--json"]))).unwrap()
    };
    assert_eq!(listed().as_array().map(Vec::len), Some(0), "a refused form made a trigger");
    let made = b.post("/console/functions/hello/triggers", &cron("*/5%20*%20*%20*%20*"), &[]);
    assert_eq!(made.status, 303, "{}", made.text());
    let t = listed();
    assert_eq!((t[0]["schedule"].as_str(), t[0]["name"].as_str()), (Some("*/5 * * * *"), Some("tick")), "{t}");
    assert_eq!(t[0]["data"], serde_json::json!({"job": 1}));
    let id = t[0]["id"].as_str().unwrap().to_string();
    let page = b.get("/console/functions/hello").text();
    assert!(page.contains(&id) && page.contains("*/5 * * * *"), "the page lists the trigger: {page}");
    assert_eq!(b.post("/console/functions/hello/triggers/nosuch/remove", &format!("csrf={csrf}"), &[]).status, 404);
    let gone = b.post(&format!("/console/functions/hello/triggers/{id}/remove"), &format!("csrf={csrf}"), &[]);
    assert_eq!(gone.status, 303);
    assert_eq!(listed().as_array().map(Vec::len), Some(0));

    // Logging out ends the session on the server, not only in the browser.
    let out = b.post("/console/logout", &format!("csrf={csrf}"), &[]);
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap_or("").contains("Max-Age=0"));
    assert_eq!(b.get("/console/").status, 303, "the old cookie still opens the console");
}

#[test]
fn versions_logs_and_history_last() {
    let mut s = Server::start("console-last");
    let dir = TempDir::with("console-last", &[("handler.py", &handler("one"))]);
    s.deploy("hello", dir.path(), &["--runtime", "python3"]);
    for _ in 0..3 {
        assert_eq!(s.get("/fn/hello/").text(), "one");
    }
    // A new version from the console's upload.
    let b = login(&s);
    let csrf = b.csrf();
    let zip = zip_of(dir.path(), "two");
    let (body, ct) = upload_form(&csrf, &zip);
    let r = s.request("POST", "/console/functions/hello/deploy", &[("Cookie", &b.cookie), ct], &body);
    assert_eq!((r.status, r.header("location")), (303, Some("/console/functions/hello?done=deployed")), "{}", r.text());
    assert_eq!(s.get("/fn/hello/").text(), "two");
    // Without the CSRF part, nothing is deployed.
    let bad = body.clone();
    let bad = String::from_utf8_lossy(&bad).replace(&csrf, &"f".repeat(64)).into_bytes();
    assert_eq!(s.request("POST", "/console/functions/hello/deploy", &[("Cookie", &b.cookie), ct], &bad).status, 403);

    // Rollback from the console, then from the CLI.
    let r = b.post("/console/functions/hello/rollback", &format!("csrf={csrf}&version=1"), &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(s.get("/fn/hello/").text(), "one");
    let v = s.cli(&["versions", "hello", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&v)).unwrap();
    assert_eq!(v[0]["version"], 3);
    assert_eq!(v[0]["rollback_of"], 1);
    assert_eq!(v[0]["serving"], true);
    ok(&s.cli(&["rollback", "hello"]));
    assert_eq!(s.get("/fn/hello/").text(), "two", "the CLI rolls back to the version before");
    let refused = s.cli(&["rollback", "hello", "99"]);
    assert!(stderr(&refused).contains("no kept version 99"), "{}", stderr(&refused));

    // The page counts the requests; the logs filter.
    let page = b.get("/console/functions/hello").text();
    assert!(page.contains("6 requests"), "{page}");
    assert!(page.contains("<svg class=\"chart\""));
    let grep = stdout(&s.cli(&["logs", "hello", "--grep", "served-two", "--since", "1h"]));
    assert!(grep.contains("served-two") && !grep.contains("served-one"), "{grep}");
    let events = stdout(&s.cli(&["logs", "hello", "--stream", "fnbox"]));
    assert!(events.contains("a rollback to version 1") && !events.contains("served-"), "{events}");

    // kill -9 and a restart: logs, versions and the history are still there.
    s.kill9();
    s.launch();
    let logs = stdout(&s.cli(&["logs", "hello", "--since", "1h"]));
    assert!(logs.contains("served-one") && logs.contains("served-two"), "{logs}");
    assert!(stdout(&s.cli(&["versions", "hello"])).contains("rollback to 1"));
    let b = login(&s);
    let page = b.get("/console/functions/hello").text();
    assert!(page.contains("6 requests"), "the history lasts: {page}");
    assert!(b.get("/console/").text().contains(">6<"), "the list counts the last hour");
}
