//! Chromium, driven by chromedriver over WebDriver's HTTP protocol, for the console's browser
//! test (tests/platform_console_browser.rs).

use crate::common::{eventually, TempDir};
use std::path::Path;
use std::time::Duration;

/// Chromium, driven by chromedriver over WebDriver's HTTP protocol.
pub struct Driver {
    addr: String,
    session: String,
    child: std::process::Child,
    _profile: TempDir,
}

impl Driver {
    pub fn start() -> Option<Driver> {
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

    pub fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
        let r = driver_request(&self.addr, method, path, &body).unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        serde_json::from_slice(&r).unwrap_or_else(|e| panic!("WebDriver {path}: not JSON ({e})"))
    }

    pub fn cmd(&self, method: &str, what: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self.call(method, &format!("/session/{}/{what}", self.session), body);
        assert!(r["value"].get("error").is_none(), "WebDriver {what}: {r}");
        r["value"].clone()
    }

    pub fn open(&self, url: &str) {
        self.cmd("POST", "url", serde_json::json!({ "url": url }));
    }

    pub fn find(&self, css: &str) -> String {
        let v = self.cmd("POST", "element", serde_json::json!({"using": "css selector", "value": css}));
        v.as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str()).unwrap().to_string()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("element/{e}/click"), serde_json::json!({}));
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.cmd("GET", &format!("element/{e}/text"), serde_json::Value::Null).as_str().unwrap_or("").to_string()
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "source", serde_json::Value::Null).as_str().unwrap_or("").to_string()
    }

    /// Saves a PNG of the page under target/console-screenshots.
    pub fn screenshot(&self, name: &str) {
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
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

impl Driver {
    /// Runs `script` in the page and returns its value.
    pub fn exec(&self, script: &str) -> serde_json::Value {
        self.cmd("POST", "execute/sync", serde_json::json!({ "script": script, "args": [] }))
    }

    /// Types `keys` as a keyboard would, into whatever has the focus.
    pub fn keys(&self, keys: &str) {
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
    pub fn focused(&self) -> (String, bool) {
        let v = self.exec(
            "var e = document.activeElement, s = getComputedStyle(e);\
             return [e.id || (e.tagName + ':' + (e.textContent || e.getAttribute('name') || '').trim()), \
                     s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2];",
        );
        (v[0].as_str().unwrap_or("").to_string(), v[1].as_bool().unwrap_or(false))
    }

    /// Presses Tab until `want` has the focus (at most `max` times); every stop in the page
    /// shows a ring (past the last control, the focus leaves the page: the body has it).
    pub fn tab_to(&self, want: &str, max: usize) -> Vec<String> {
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

    pub fn url(&self) -> String {
        self.cmd("GET", "url", serde_json::Value::Null).as_str().unwrap_or("").to_string()
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.cmd("POST", "window/rect", serde_json::json!({ "width": width, "height": height }));
    }

    /// The page body does not scroll sideways, and each of `controls` is shown whole within
    /// the viewport's width.
    pub fn fits(&self, controls: &[&str]) {
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
    pub fn ok_bars(&self) -> u64 {
        self.exec("return document.querySelectorAll('#chart-requests svg.chart rect[fill=\"#009E73\"]').length")
            .as_u64()
            .unwrap_or(0)
    }
}
