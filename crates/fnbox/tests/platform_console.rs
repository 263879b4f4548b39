//! The web console and what lasts: a login that gives an HttpOnly, SameSite=Strict session;
//! nothing but the login page without it; forms refused without their CSRF token or from
//! another origin; upload, rollback (console, CLI, API) and tokens; logs and charts still
//! there after `kill -9` and a restart; and a real browser (Chromium over WebDriver) that logs
//! in, sees the live log line and clicks through, skipped loudly when Chromium is absent.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::path::Path;
use std::time::Duration;

fn handler(word: &str) -> String {
    format!(
        "def handle(event, context):\n    print('served-{word}', flush=True)\n    print('<script>alert(1)</script>\\x1b[2J', flush=True)\n    return '{word}'\n"
    )
}

/// A zip of one `handler.py` (made by Python's zipfile: the CI has python3).
fn zip_of(dir: &Path, word: &str) -> Vec<u8> {
    let py = dir.join("handler.py");
    std::fs::write(&py, handler(word)).unwrap();
    let zip = dir.join(format!("{word}.zip"));
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.write(sys.argv[2], 'handler.py'); z.close()",
        ])
        .arg(&zip)
        .arg(&py)
        .output()
        .unwrap();
    ok(&out);
    std::fs::read(zip).unwrap()
}

/// A browser's session with the console: its cookie and the CSRF token of its pages.
struct Browser<'a> {
    s: &'a Server,
    cookie: String,
}

impl Browser<'_> {
    fn get(&self, path: &str) -> Reply {
        self.s.request("GET", path, &[("Cookie", &self.cookie)], b"")
    }

    fn post(&self, path: &str, form: &str, extra: &[(&str, &str)]) -> Reply {
        let mut h = vec![("Cookie", self.cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(extra);
        self.s.request("POST", path, &h, form.as_bytes())
    }

    /// The CSRF token in a page's forms.
    fn csrf(&self) -> String {
        let page = self.get("/console/").text();
        let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        page[at..at + 64].to_string()
    }
}

/// The console's upload form as a browser sends it: the CSRF token and the zip; and its type.
fn upload_form(csrf: &str, zip: &[u8]) -> (Vec<u8>, (&'static str, &'static str)) {
    let mut body = format!("--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"zip\"; filename=\"code.zip\"\r\nContent-Type: application/zip\r\n\r\n").into_bytes();
    body.extend_from_slice(zip);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    (body, ("Content-Type", "multipart/form-data; boundary=XyZ"))
}

fn login<'a>(s: &'a Server) -> Browser<'a> {
    let form = format!("token={}", s.admin_token());
    let r =
        s.request("POST", "/console/login", &[("Content-Type", "application/x-www-form-urlencoded")], form.as_bytes());
    assert_eq!(r.status, 303, "{}", r.text());
    let set = r.header("set-cookie").expect("a session cookie").to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.split(';').any(|a| a.trim() == flag), "the session cookie lacks {flag}: {set}");
    }
    assert!(!set.contains(&s.admin_token()), "the cookie is not the admin token");
    Browser { s, cookie: set.split(';').next().unwrap().to_string() }
}

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

// --- A real browser -------------------------------------------------------------------------

/// Chromium, driven by chromedriver over WebDriver's HTTP protocol.
struct Driver {
    addr: String,
    session: String,
    child: std::process::Child,
    _profile: TempDir,
}

impl Driver {
    fn start() -> Option<Driver> {
        let (Some(chromium), Some(driver)) = (which("chromium"), which("chromedriver")) else {
            eprintln!("\n*** SKIPPED: the browser test needs chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run installs them) ***\n");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        assert!(eventually(Duration::from_secs(20), || driver_request(&addr, "GET", "/status", b"").is_ok()));
        let profile = TempDir::new("chromium-profile");
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,1400",
                     format!("--user-data-dir={}", profile.path().display())]}}}});
        let mut d = Driver { addr, session: String::new(), child, _profile: profile };
        let r = d.call("POST", "/session", caps);
        d.session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}")).to_string();
        Some(d)
    }

    fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
        let r = driver_request(&self.addr, method, path, &body).unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        serde_json::from_slice(&r).unwrap_or_else(|e| panic!("WebDriver {path}: not JSON ({e})"))
    }

    fn cmd(&self, method: &str, what: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self.call(method, &format!("/session/{}/{what}", self.session), body);
        assert!(r["value"].get("error").is_none(), "WebDriver {what}: {r}");
        r["value"].clone()
    }

    fn open(&self, url: &str) {
        self.cmd("POST", "url", serde_json::json!({ "url": url }));
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd("POST", "element", serde_json::json!({"using": "css selector", "value": css}));
        v.as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str()).unwrap().to_string()
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("element/{e}/click"), serde_json::json!({}));
    }

    fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("element/{e}/text"), serde_json::Value::Null).as_str().unwrap_or("").to_string()
    }

    fn source(&self) -> String {
        self.cmd("GET", "source", serde_json::Value::Null).as_str().unwrap_or("").to_string()
    }

    /// Saves a PNG of the page under target/console-screenshots.
    fn screenshot(&self, name: &str) {
        let png = self.cmd("GET", "screenshot", serde_json::Value::Null);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), base64_decode(png.as_str().unwrap())).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = driver_request(&self.addr, "DELETE", &format!("/session/{}", self.session), b"");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request to chromedriver, which keeps the connection open after its answer: the body
/// is read by its Content-Length.
fn driver_request(addr: &str, method: &str, path: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut r = BufReader::new(s);
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut out = vec![0; len];
    r.read_exact(&mut out)?;
    Ok(out)
}

fn which(cmd: &str) -> Option<String> {
    std::env::var("PATH").ok()?.split(':').map(|d| format!("{d}/{cmd}")).find(|p| Path::new(p).is_file())
}

/// Standard base64, as WebDriver sends screenshots.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s.bytes().filter(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/').collect();
    clean
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().enumerate().fold(0u32, |n, (i, b)| n | (val(*b) as u32) << (18 - 6 * i));
            [(n >> 16) as u8, (n >> 8) as u8, n as u8].into_iter().take(c.len() - 1)
        })
        .collect()
}

/// WebDriver's key codes.
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

impl Driver {
    /// Runs `script` in the page and returns its value.
    fn exec(&self, script: &str) -> serde_json::Value {
        self.cmd("POST", "execute/sync", serde_json::json!({ "script": script, "args": [] }))
    }

    /// Types `keys` as a keyboard would, into whatever has the focus.
    fn keys(&self, keys: &str) {
        let acts: Vec<_> = keys
            .chars()
            .flat_map(|c| {
                let k = c.to_string();
                [serde_json::json!({"type": "keyDown", "value": k}), serde_json::json!({"type": "keyUp", "value": k})]
            })
            .collect();
        self.cmd(
            "POST",
            "actions",
            serde_json::json!({"actions": [{"type": "key", "id": "keyboard", "actions": acts}]}),
        );
    }

    /// What has the focus: its id, or its tag and text; and whether a focus ring shows.
    fn focused(&self) -> (String, bool) {
        let v = self.exec(
            "var e = document.activeElement, s = getComputedStyle(e);\
             return [e.id || (e.tagName + ':' + (e.textContent || e.getAttribute('name') || '').trim()), \
                     s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2];",
        );
        (v[0].as_str().unwrap_or("").to_string(), v[1].as_bool().unwrap_or(false))
    }

    /// Presses Tab until `want` has the focus (at most `max` times); every stop in the page
    /// shows a ring (past the last control, the focus leaves the page: the body has it).
    fn tab_to(&self, want: &str, max: usize) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..max {
            self.keys(TAB);
            let (at, ring) = self.focused();
            if at.starts_with("BODY:") {
                seen.push("BODY".into());
                continue;
            }
            assert!(ring, "{at} has the focus but no visible focus ring");
            seen.push(at.clone());
            if at == want {
                return seen;
            }
        }
        panic!("Tab never reached {want}; it went {seen:?}");
    }

    fn url(&self) -> String {
        self.cmd("GET", "url", serde_json::Value::Null).as_str().unwrap_or("").to_string()
    }

    fn resize(&self, width: u32, height: u32) {
        self.cmd("POST", "window/rect", serde_json::json!({ "width": width, "height": height }));
    }

    /// The page body does not scroll sideways, and each of `controls` is shown whole within
    /// the viewport's width.
    fn fits(&self, controls: &[&str]) {
        let v =
            self.exec("return [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth];");
        let (doc, body, inner) = (v[0].as_f64().unwrap(), v[1].as_f64().unwrap(), v[2].as_f64().unwrap());
        assert!(doc <= inner && body <= inner, "the page scrolls sideways: {doc} / {body} px in {inner} px");
        for css in controls {
            let sel = serde_json::to_string(css).unwrap();
            let r = self.exec(&format!(
                "var e = document.querySelector({sel}); if (!e) return null; var r = e.getBoundingClientRect();\
                 return [r.left, r.right, r.width, r.height];"
            ));
            let r: Vec<f64> = r
                .as_array()
                .unwrap_or_else(|| panic!("no {css} on the page"))
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert!(
                r[2] > 0.0 && r[3] > 0.0 && r[0] >= 0.0 && r[1] <= inner,
                "{css} is not whole on screen: {r:?} in {inner} px"
            );
        }
    }

    /// How many bars of the 2xx colour the requests chart has.
    fn ok_bars(&self) -> u64 {
        self.exec("return document.querySelectorAll('#chart-requests svg.chart rect[fill=\"#009E73\"]').length")
            .as_u64()
            .unwrap_or(0)
    }
}

#[test]
fn a_browser_logs_in_watches_live_logs_and_clicks_through() {
    let Some(d) = Driver::start() else { return };
    let mut s = Server::start("console-browser");
    let dir = TempDir::with("console-browser", &[("handler.py", &handler("one"))]);
    s.deploy("hello", dir.path(), &["--runtime", "python3"]);
    s.deploy("hello", dir.path(), &["--runtime", "python3", "--memory", "512"]);

    // Logged in with the keyboard only: Tab reaches the token field, then the button; Enter.
    d.open(&format!("{}/", s.url));
    assert!(d.source().contains("Admin token"), "the login page");
    d.screenshot("login");
    d.exec("document.activeElement.blur(); return 0;");
    d.tab_to("token", 5);
    d.keys(&s.admin_token());
    d.tab_to("BUTTON:Log in", 3);
    d.keys(ENTER);
    assert!(
        eventually(Duration::from_secs(10), || d.source().contains("/console/functions/hello")),
        "the list after login: {}",
        d.source()
    );
    d.screenshot("functions");
    assert!(
        !d.exec("return document.cookie").as_str().unwrap_or("x").contains("fnbox_session"),
        "the session cookie is visible to scripts"
    );

    // A request after the page opened: the page shows it without being reloaded, its log
    // line in the live view and its bar in the chart (the activity part refreshes itself).
    let page = format!("{}/console/functions/hello", s.url);
    d.open(&page);
    assert_eq!(d.ok_bars(), 0, "no request yet");
    d.exec("window.notReloaded = true; return 0;");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.get("/fn/hello/").text(), "one");
    assert!(
        eventually(Duration::from_secs(15), || d.text("#live").contains("served-one")),
        "the live log line: {}",
        d.text("#live")
    );
    assert!(
        eventually(Duration::from_secs(30), || d.ok_bars() == 1
            && d.text("#activity .totals").starts_with("1 requests")),
        "the chart shows the request: {} bars, {}",
        d.ok_bars(),
        d.text("#activity .totals")
    );
    assert_eq!(d.exec("return window.notReloaded === true"), serde_json::json!(true), "the page was reloaded");
    assert!(d.text("#chart-requests figcaption").contains("2xx 1"), "{}", d.text("#chart-requests figcaption"));
    // The live line is text: the function's markup is not a tag on the page.
    assert!(d.text("#live").contains("<script>alert(1)</script>"));
    assert_eq!(d.exec("return document.querySelectorAll('#live script').length"), serde_json::json!(0));
    d.screenshot("function");

    // The keyboard reaches every form of the page, each stop with a focus ring.
    d.open(&page);
    d.exec("document.activeElement.blur(); return 0;");
    let order = d.tab_to("BUTTON:Create a token", 80);
    for want in ["BUTTON:Log out", "BUTTON:Filter", "BUTTON:Roll back to 1", "zip", "BUTTON:Deploy"] {
        assert!(order.iter().any(|o| o == want), "Tab skips {want}: {order:?}");
    }

    // A new version through the page's upload form: the file input, then Deploy.
    let zip = dir.path().join("two.zip");
    std::fs::write(&zip, zip_of(dir.path(), "two")).unwrap();
    let input = d.find("#zip");
    d.cmd("POST", &format!("element/{input}/value"), serde_json::json!({ "text": zip.display().to_string() }));
    d.click("form[action$='/deploy'] button");
    assert!(eventually(Duration::from_secs(30), || d.source().contains("Deployed")), "{}", d.source());
    // The page says "Deployed" as the new version is stored; under load an idle instance of
    // the old one answered once more (seen in CI), so the switch is given a few seconds.
    assert!(
        eventually(Duration::from_secs(10), || s.get("/fn/hello/").text() == "two"),
        "the new version never answered"
    );

    // Roll back with the first button (to version 2, the one before the upload).
    d.click("form[action$='/rollback'] button");
    assert!(eventually(Duration::from_secs(20), || d.source().contains("Rolled back")));
    assert!(stdout(&s.cli(&["versions", "hello"])).contains("rollback to 2"));
    assert_eq!(s.get("/fn/hello/").text(), "one");

    d.click("form[action$='/tokens'] button");
    assert!(eventually(Duration::from_secs(10), || d.source().contains("id=\"new-token\"")));
    assert_eq!(stdout(&s.cli(&["token", "ls", "hello"])).lines().count(), 1);
    d.click("form[action$='/revoke'] button");
    assert!(eventually(Duration::from_secs(10), || d.source().contains("The token is revoked")));
    assert!(stdout(&s.cli(&["token", "ls", "hello"])).is_empty());

    // A function that fills its in-memory /tmp, then is killed for memory: the memory chart
    // shows the files apart from the processes, and the OOM kill is marked on the timeline.
    let hog = TempDir::with("console-hog", &[("handler.py", HOG)]);
    s.deploy("hog", hog.path(), &["--runtime", "python3", "--memory", "128", "--timeout", "30"]);
    assert_eq!(s.get("/fn/hog/?files=1").text(), "filled");
    assert_eq!(s.get("/fn/hog/?oom=1").status, 502);
    let hog_page = format!("{}/console/functions/hog", s.url);
    let files_peak = |summary: &str| -> f64 {
        let at = summary.find("in-memory /tmp, /dev peak ").map(|i| i + 26).unwrap_or(summary.len());
        summary[at..].split(|c: char| c != '.' && !c.is_ascii_digit()).next().unwrap_or("").parse().unwrap_or(0.0)
    };
    assert!(
        eventually(Duration::from_secs(30), || {
            d.open(&hog_page);
            d.text("#chart-requests figcaption").contains("1 OOM kill")
                && files_peak(&d.text("#chart-memory figcaption")) >= 30.0
        }),
        "the OOM kill and the files: {} / {}",
        d.text("#chart-requests figcaption"),
        d.text("#chart-memory figcaption")
    );
    let orange = d.exec("return document.querySelectorAll('#chart-memory svg.chart rect[fill=\"#B87A00\"]').length");
    assert!(orange.as_u64().unwrap_or(0) >= 1, "no bar of in-memory files");
    d.exec("document.getElementById('h-charts').scrollIntoView(); return 0;");
    d.screenshot("function-oom");

    // A forged form on another site (a local file: a null, cross-site origin) is refused.
    let forged = dir.path().join("forged.html");
    std::fs::write(
        &forged,
        format!(
            "<!doctype html><form method=post action='{}/console/functions/hello/tokens'>\
             <input name=csrf value='{}'><button id=go>win a prize</button></form>",
            s.url,
            "0".repeat(64)
        ),
    )
    .unwrap();
    d.open(&format!("file://{}", forged.display()));
    d.click("#go");
    assert!(
        eventually(Duration::from_secs(10), || {
            let t = d.source();
            t.contains("refused") || t.contains("log in to the console first")
        }),
        "{}",
        d.source()
    );
    assert!(stdout(&s.cli(&["token", "ls", "hello"])).is_empty(), "a forged form made a token");

    // kill -9 and a restart (on another port: cookies ignore ports): the session, the logs
    // and the charts are still there.
    d.open(&page);
    let totals = d.text("#activity .totals");
    let bars = d.ok_bars();
    assert!(bars >= 1, "{totals}");
    s.kill9();
    s.launch();
    let page = format!("{}/console/functions/hello", s.url);
    d.open(&page);
    assert!(d.url().ends_with("/console/functions/hello"), "the session did not last: {}", d.url());
    assert_eq!(d.text("#activity .totals"), totals, "the history lasts");
    assert_eq!(d.ok_bars(), bars);
    let live = d.text("#live");
    assert!(live.contains("served-one") && live.contains("served-two"), "the logs last: {live}");

    // A phone: nothing scrolls sideways, the main controls are on screen.
    d.resize(390, 844);
    let controls = [
        "header button",
        ".tabs a",
        "#chart-requests svg.chart",
        ".filters button",
        "#zip",
        "form[action$='/deploy'] button",
        "form[action$='/tokens'] button",
    ];
    d.open(&page);
    d.fits(&controls);
    d.screenshot("function-phone");
    d.exec("document.getElementById('activity').scrollIntoView(); return 0;");
    d.screenshot("function-phone-charts");
    d.open(&format!("{}/console/", s.url));
    d.fits(&["header button", "a[href='/console/functions/hello']"]);
    d.resize(1280, 1400);
    d.open(&page);
    d.fits(&controls);

    // Without the session: the login page, nothing of the function.
    d.cmd("DELETE", "cookie", serde_json::Value::Null);
    d.open(&page);
    assert!(d.url().ends_with("/console/login"), "{}", d.url());
    assert!(!d.source().contains("served-"), "the page without a session shows logs");

    // A function's page, on the console's port, tries to read the console with the session.
    d.open(&format!("{}/console/login", s.url));
    let token = d.find("#token");
    d.cmd("POST", &format!("element/{token}/value"), serde_json::json!({ "text": s.admin_token() }));
    d.click("button[type=submit]");
    assert!(eventually(Duration::from_secs(10), || d.source().contains("/console/functions/hello")));
    let evil = TempDir::with("console-evil", &[("handler.py", EVIL)]);
    s.deploy("evil", evil.path(), &["--runtime", "python3"]);
    d.open(&format!("{}/fn/evil/", s.url));
    let title = || d.cmd("GET", "title", serde_json::Value::Null).as_str().unwrap_or("").to_string();
    assert!(eventually(Duration::from_secs(10), || title().starts_with("done")), "the page's script ran: {}", title());
    assert_eq!(title(), "done blocked", "a function's page read the console");
}

/// Fills 40 MiB of its in-memory /tmp and stays long enough to be sampled (every 5 s), or
/// allocates past its 128 MiB.
const HOG: &str = r#"
import time
def handle(event, context):
    q = event["queryStringParameters"]
    if "files" in q:
        with open("/tmp/fill", "wb") as f:
            f.write(b"x" * (40 << 20))
        time.sleep(7)
        return "filled"
    if "oom" in q:
        hog = bytearray(400 << 20)
        return str(len(hog))
    return "fine"
"#;

/// A page that reads the console with the browser's session, as a hostile function would.
const EVIL: &str = r#"
PAGE = """<!doctype html><title>start</title><script>
fetch('/console/', {credentials: 'include'}).then(function (r) { return r.text(); })
  .then(function (t) { document.title = t.indexOf('name="csrf"') >= 0 ? 'done read' : 'done blocked'; })
  .catch(function () { document.title = 'done blocked'; });
</script>"""

def handle(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": PAGE}
"#;

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
