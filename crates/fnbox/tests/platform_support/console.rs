//! The web console as a browser without scripts uses it: a login, its session cookie and the
//! CSRF token of its pages, the upload form; and the function the console tests deploy.

use super::{Reply, Server};
use crate::common::ok;
use std::path::Path;

/// A handler that answers `word` and prints a line with markup and a terminal escape.
pub fn handler(word: &str) -> String {
    format!(
        "def handle(event, context):\n    print('served-{word}', flush=True)\n    print('<script>alert(1)</script>\\x1b[2J', flush=True)\n    return '{word}'\n"
    )
}

/// A zip of one `handler.py` (made by Python's zipfile: the CI has python3).
pub fn zip_of(dir: &Path, word: &str) -> Vec<u8> {
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
pub struct Browser<'a> {
    pub s: &'a Server,
    pub cookie: String,
}

impl Browser<'_> {
    pub fn get(&self, path: &str) -> Reply {
        self.s.request("GET", path, &[("Cookie", &self.cookie)], b"")
    }

    pub fn post(&self, path: &str, form: &str, extra: &[(&str, &str)]) -> Reply {
        let mut h = vec![("Cookie", self.cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(extra);
        self.s.request("POST", path, &h, form.as_bytes())
    }

    /// The CSRF token in a page's forms.
    pub fn csrf(&self) -> String {
        let page = self.get("/console/").text();
        let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        page[at..at + 64].to_string()
    }
}

/// The console's upload form as a browser sends it: the CSRF token and the zip; and its type.
pub fn upload_form(csrf: &str, zip: &[u8]) -> (Vec<u8>, (&'static str, &'static str)) {
    let mut body = format!("--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"zip\"; filename=\"code.zip\"\r\nContent-Type: application/zip\r\n\r\n").into_bytes();
    body.extend_from_slice(zip);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    (body, ("Content-Type", "multipart/form-data; boundary=XyZ"))
}

/// Logs in with the admin token, checking the session cookie's flags.
pub fn login<'a>(s: &'a Server) -> Browser<'a> {
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
