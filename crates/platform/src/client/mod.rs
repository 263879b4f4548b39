//! The CLI verbs that talk to `fnbox serve`: deploy, invoke, ls, rm, logs, token. Each prints
//! for a person, or JSON with `--json`, and returns the process exit code.

pub mod http;
pub mod pack;
pub mod progress;
pub mod serverless;
pub mod trigger;
pub mod versions;

use crate::api;
use crate::error::{Error, Result};
use crate::function::DeployRequest;
use bytes::Bytes;
use http::Client;
use hyper::Method;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Where the server is and how to prove we are its admin.
pub struct Target {
    pub server: String,
    pub data_dir: PathBuf,
    pub json: bool,
}

impl Target {
    pub(crate) fn admin(&self) -> Result<Client> {
        Client::new(&self.server, Some(crate::auth::read_admin_token(&self.data_dir)?))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs a verb: prints its error as `fnbox: ...` and returns 1 on failure.
pub fn run(verb: impl std::future::Future<Output = Result<i32>>) -> i32 {
    match runtime().and_then(|rt| rt.block_on(verb)) {
        Ok(code) => code,
        Err(e) => {
            // Errors may carry what a sandbox printed (a build's or a handler's last lines).
            let msg = for_terminal(e.to_string().as_bytes(), true);
            eprintln!("fnbox: {}", String::from_utf8_lossy(&msg));
            1
        }
    }
}

pub async fn deploy(t: &Target, name: &str, path: &Path, req: DeployRequest, build: bool) -> Result<i32> {
    use std::io::IsTerminal;
    let status = progress::Status::new(std::io::stderr().is_terminal());
    let deployed = deploy_quiet(t, name, path, req, build, &status).await;
    status.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let (mut v, built) = deployed?;
    let d: api::Deployed = api::read(&v, &format!("PUT /api/v1/functions/{name}"))?;
    if t.json {
        if let (Some(o), Some(b)) = (v.as_object_mut(), built) {
            o.insert("build".into(), b);
        }
        print_json(&v);
    } else {
        println!(
            "deployed {name} (version {}, {}, {} MiB, sandbox {}{}): {}/fn/{name}/",
            d.function.version,
            d.function.config.runtime.as_str(),
            d.function.config.memory_mb,
            d.function.config.sandbox.as_str(),
            if d.function.config.private { ", private" } else { "" },
            t.server.trim_end_matches('/')
        );
    }
    Ok(0)
}

/// Uploads the code (built on the server first with `build`) and deploys; the server's
/// answer, and the build's last event. `status` shows the progress (see [`progress`]).
pub(crate) async fn deploy_quiet(
    t: &Target,
    name: &str,
    path: &Path,
    mut req: DeployRequest,
    build: bool,
    status: &progress::SharedStatus,
) -> Result<(serde_json::Value, Option<serde_json::Value>)> {
    crate::function::check_name(name)?;
    status.lock().unwrap_or_else(|p| p.into_inner()).show("packing the code...", true);
    let zip = pack::pack(path)?;
    let c = t.admin()?;
    let shown = status.clone();
    let sent = move |sent, total| {
        shown.lock().unwrap_or_else(|p| p.into_inner()).show(&progress::upload_line(sent, total), sent == total)
    };
    let headers = [("content-type".to_string(), "application/zip".to_string())];
    let (digest, built) = match build {
        false => {
            let up = c.upload("/api/v1/code", &headers, zip.into(), sent).await?;
            (api::read::<api::Uploaded>(&c.reply(up).await?.json()?, "POST /api/v1/code")?.digest, None)
        }
        true => {
            let sandbox = req.sandbox.unwrap_or(fnbox_sandbox::spec::SandboxKind::V2);
            let at = format!("/api/v1/code?build={}&sandbox={}", req.runtime.as_str(), sandbox.as_str());
            let up = c.upload(&at, &headers, zip.into(), sent).await?;
            let (digest, done) = built_code(&c, up, status).await?;
            (digest, Some(done))
        }
    };
    req.code = digest;
    status.lock().unwrap_or_else(|p| p.into_inner()).show("checking the handler: loading it in a sandbox...", true);
    let body = serde_json::to_vec(&req).map_err(|e| Error::Internal(e.to_string()))?;
    let r = c
        .call(
            Method::PUT,
            &format!("/api/v1/functions/{name}"),
            &[("content-type".into(), "application/json".into())],
            body.into(),
        )
        .await?;
    Ok((r.json()?, built))
}

fn building(t0: std::time::Instant) -> String {
    format!("building on the server... {} s", t0.elapsed().as_secs())
}

/// Longest event line taken from the server (an output line is at most 8 KiB, escaped).
const EVENT_MAX: usize = 256 << 10;

/// Follows a build's events ([`api::BuildEvent`]): prints its output as it comes and returns
/// the stored code's digest and its `done` event as sent, or its error.
async fn built_code(
    c: &http::Client,
    up: hyper::Response<hyper::body::Incoming>,
    status: &progress::SharedStatus,
) -> Result<(String, serde_json::Value)> {
    if up.status().as_u16() >= 400 {
        let code = up.status().as_u16();
        c.reply(up).await?.json()?;
        return Err(Error::Invalid(format!("the server refused the build (status {code})")));
    }
    let events = up.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"));
    if !events {
        return Err(Error::Invalid(format!(
            "the server at {} does not build code (an fnbox older than this one?): upgrade it, or deploy without --build",
            c.base()
        )));
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut last = None;
    let t0 = std::time::Instant::now();
    // The status line counts the seconds while the build prints nothing.
    let ticking = status.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            ticking.lock().unwrap_or_else(|p| p.into_inner()).show(&building(t0), true);
        }
    });
    let events = c
        .each_chunk(up, |chunk| {
            pending.extend_from_slice(chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let bad = |e: String| {
                    Error::Invalid(format!(
                        "the server sent a build event this fnbox cannot read ({e}): is the server another fnbox version?"
                    ))
                };
                let raw: serde_json::Value = serde_json::from_slice(&line).map_err(|e| bad(e.to_string()))?;
                let event: api::BuildEvent = api::read(&raw, "the build").map_err(|e| bad(e.to_string()))?;
                let mut st = status.lock().unwrap_or_else(|p| p.into_inner());
                match event {
                    api::BuildEvent::Waiting { .. } => {
                        st.line("waiting for a place: other builds are running on the server")
                    }
                    api::BuildEvent::Started { runtime, sandbox, memory_mb, timeout_s } => st.line(&format!(
                        "building on the server ({} in sandbox {sandbox}, {memory_mb} MiB, at most {timeout_s} s):",
                        runtime.as_str()
                    )),
                    api::BuildEvent::Output { line, .. } => {
                        st.line(&line);
                        st.show(&building(t0), false);
                    }
                    api::BuildEvent::Done { digest, seconds, zip_bytes, lines_not_shown } => {
                        last = Some((Ok((digest.into_owned(), seconds, zip_bytes, lines_not_shown)), raw))
                    }
                    api::BuildEvent::Failed { error } => last = Some((Err(error.into_owned()), raw)),
                }
            }
            match pending.len() > EVENT_MAX {
                true => Err(Error::Invalid(format!("the server sent a build event over {} KiB", EVENT_MAX >> 10))),
                false => Ok(()),
            }
        })
        .await;
    ticker.abort();
    events?;
    let last = last.ok_or_else(|| {
        Error::Invalid("the build's answer ended without its result: the server's log says why".into())
    })?;
    let (digest, seconds, zip_bytes, hidden) = last.0.map_err(Error::Invalid)?;
    let mut st = status.lock().unwrap_or_else(|p| p.into_inner());
    st.line(&format!(
        "built in {seconds} s: {} of code{}",
        progress::size(zip_bytes as u64),
        if hidden > 0 { format!(" ({hidden} lines of its output not shown)") } else { String::new() }
    ));
    Ok((digest, last.1))
}

pub struct InvokeArgs {
    pub method: Option<String>,
    pub path: String,
    pub data: Option<String>,
    pub headers: Vec<String>,
    pub token: Option<String>,
}

/// `fnbox invoke --json`: what the function answered. Its fields in name order, as the
/// output has always had them.
#[derive(serde::Serialize)]
struct Answered {
    body: String,
    headers: BTreeMap<String, String>,
    #[serde(rename = "isBase64Encoded")]
    is_base64_encoded: bool,
    status: u16,
}

pub async fn invoke(t: &Target, name: &str, a: InvokeArgs) -> Result<i32> {
    // The admin token opens private functions too; an explicit token wins.
    let token = match a.token {
        Some(tok) => Some(tok),
        None => crate::auth::read_admin_token(&t.data_dir).ok(),
    };
    let c = Client::new(&t.server, None)?;
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) =
            h.split_once(':').ok_or_else(|| Error::Invalid(format!("header '{h}' is not valid: use 'Name: value'")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    if let Some(tok) = token {
        headers.push(("x-auth-token".into(), tok));
    }
    let method = a.method.unwrap_or_else(|| if a.data.is_some() { "POST".into() } else { "GET".into() });
    let method = Method::from_bytes(method.to_uppercase().as_bytes())
        .map_err(|_| Error::Invalid(format!("method '{method}' is not an HTTP method")))?;
    let path = format!("/fn/{name}/{}", a.path.trim_start_matches('/'));
    let r = c.call(method, &path, &headers, Bytes::from(a.data.unwrap_or_default())).await?;
    if t.json {
        let headers = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let (body, is_base64_encoded) = match std::str::from_utf8(&r.body) {
            Ok(s) => (s.to_string(), false),
            Err(_) => {
                use base64::Engine;
                (base64::engine::general_purpose::STANDARD.encode(&r.body), true)
            }
        };
        print_json(&Answered { body, headers, is_base64_encoded, status: r.status });
    } else {
        let _ = std::io::stdout().write_all(&r.body);
        if r.status >= 400 {
            eprintln!("fnbox: {name} answered HTTP {}", r.status);
        }
    }
    Ok(if r.status >= 400 { 1 } else { 0 })
}

pub async fn ls(t: &Target) -> Result<i32> {
    let v = t.admin()?.call(Method::GET, "/api/v1/functions", &[], Bytes::new()).await?.json()?;
    if t.json {
        print_json(&v);
        return Ok(0);
    }
    let rows: Vec<api::Listed> = api::read(&v, "GET /api/v1/functions")?;
    if rows.is_empty() {
        println!("no functions: deploy one with `fnbox deploy NAME PATH --runtime python3`");
        return Ok(0);
    }
    println!(
        "{:<34} {:<8} {:>7} {:<7} {:>5} {:>9} {:<7} {:>7}",
        "NAME", "RUNTIME", "MEMORY", "SANDBOX", "SCALE", "INSTANCES", "ACCESS", "VERSION"
    );
    for f in rows {
        let f = match f {
            api::Listed::Disabled { name, disabled } => {
                println!("{name:<34} DISABLED: {disabled}");
                continue;
            }
            api::Listed::Serving(f) => f,
        };
        let c = &f.config;
        println!(
            "{:<34} {:<8} {:>7} {:<7} {:>5} {:>9} {:<7} {:>7}",
            f.name,
            c.runtime.as_str(),
            format!("{}M", c.memory_mb),
            c.sandbox.as_str(),
            format!("{}-{}", c.min_scale, c.max_scale),
            f.instances,
            if c.private { "private" } else { "public" },
            f.version,
        );
    }
    Ok(0)
}

pub async fn rm(t: &Target, name: &str) -> Result<i32> {
    let v = t.admin()?.call(Method::DELETE, &format!("/api/v1/functions/{name}"), &[], Bytes::new()).await?.json()?;
    if t.json {
        print_json(&v);
    } else {
        println!("removed {name}");
    }
    Ok(0)
}

/// Functions write what they like, escape sequences too: for a terminal, control characters
/// (C0 but newlines and tabs, DEL, C1 as `U+0080`..`U+009F`), the Unicode marks that reorder
/// text (bidi overrides, embeddings, isolates) and the invisible ones (zero-width space and
/// joiners, word joiner, byte order mark) are shown escaped (`\x1b`, `\u{202e}`), so a log
/// can neither drive the terminal nor show a line other than it is. Bytes that are not UTF-8
/// are escaped too. Text is taken as it streams: a character cut between two chunks waits for
/// the next one.
pub struct ForTerminal {
    on: bool,
    pending: Vec<u8>,
}

/// Characters a terminal would act on or reorder text by.
fn hidden_meaning(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}')
}

impl ForTerminal {
    /// Escapes when `terminal`, passes bytes through as they are otherwise.
    pub fn new(terminal: bool) -> Self {
        Self { on: terminal, pending: Vec::new() }
    }

    /// The next chunk, as the terminal gets it.
    pub fn push<'a>(&mut self, bytes: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        use std::fmt::Write;
        if !self.on
            || (self.pending.is_empty() && bytes.is_ascii() && !bytes.iter().any(|&b| hidden_meaning(b as char)))
        {
            return std::borrow::Cow::Borrowed(bytes);
        }
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(bytes);
        let mut out = String::with_capacity(data.len() + 16);
        let mut chunks = data.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            for c in chunk.valid().chars() {
                match (hidden_meaning(c), c as u32) {
                    (false, _) => out.push(c),
                    (true, n @ 0..=0xff) => {
                        let _ = write!(out, "\\x{n:02x}");
                    }
                    (true, n) => {
                        let _ = write!(out, "\\u{{{n:04x}}}");
                    }
                }
            }
            let bad = chunk.invalid();
            // A character cut at the end of the chunk: kept for the next one.
            if chunks.peek().is_none() && std::str::from_utf8(bad).is_err_and(|e| e.error_len().is_none()) {
                self.pending = bad.to_vec();
                break;
            }
            for b in bad {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        std::borrow::Cow::Owned(out.into_bytes())
    }
}

/// One whole text for a terminal (or not): see [`ForTerminal`].
pub fn for_terminal(bytes: &[u8], terminal: bool) -> Vec<u8> {
    let mut t = ForTerminal::new(terminal);
    let mut out = t.push(bytes).into_owned();
    let rest = std::mem::take(&mut t.pending);
    out.extend(rest.iter().flat_map(|b| format!("\\x{b:02x}").into_bytes()));
    out
}

/// `filter`: (query key, value) pairs the server filters lines by: `since`, `instance`,
/// `stream`, `grep` (see the admin API). `raw`: the bytes as functions wrote them; otherwise
/// escaped (see [`ForTerminal`]) wherever stdout goes, since a pipe (`| grep`, `| tail`)
/// reaches a terminal too.
pub async fn logs(
    t: &Target,
    name: &str,
    follow: bool,
    tail: usize,
    filter: &[(&str, String)],
    raw: bool,
) -> Result<i32> {
    // JSON escapes control characters itself.
    let terminal = !t.json && !raw;
    let c = t.admin()?;
    let format = if t.json { "&format=json" } else { "" };
    let mut path = format!("/api/v1/functions/{name}/logs?tail={tail}&follow={}{format}", follow as u8);
    for (k, v) in filter {
        path.push_str(&format!("&{k}={}", crate::urlenc::encode(v)));
    }
    if !follow {
        let r = c.call(Method::GET, &path, &[], Bytes::new()).await?;
        if r.status >= 400 {
            r.json()?;
        }
        let _ = std::io::stdout().write_all(&for_terminal(&r.body, terminal));
        return Ok(0);
    }
    let mut out = std::io::stdout();
    let mut escape = ForTerminal::new(terminal);
    let mut first = Vec::new();
    let status = c
        .stream(&path, |chunk| {
            if first.len() < 4096 {
                first.extend_from_slice(chunk);
            }
            let _ = out.write_all(&escape.push(chunk));
            let _ = out.flush();
        })
        .await?;
    if status >= 400 {
        return Err(Error::Invalid(String::from_utf8_lossy(&first).trim().to_string()));
    }
    Ok(0)
}

pub async fn token_create(t: &Target, name: &str) -> Result<i32> {
    let v =
        t.admin()?.call(Method::POST, &format!("/api/v1/functions/{name}/tokens"), &[], Bytes::new()).await?.json()?;
    if t.json {
        print_json(&v);
    } else {
        let tok: api::NewToken = api::read(&v, &format!("POST /api/v1/functions/{name}/tokens"))?;
        println!("{}", tok.token);
        eprintln!("fnbox: token {} for {name}: send it in the X-Auth-Token header; it is shown only now", tok.id);
    }
    Ok(0)
}

pub async fn token_ls(t: &Target, name: &str) -> Result<i32> {
    let v =
        t.admin()?.call(Method::GET, &format!("/api/v1/functions/{name}/tokens"), &[], Bytes::new()).await?.json()?;
    if t.json {
        print_json(&v);
    } else {
        let tokens: Vec<api::TokenInfo> = api::read(&v, &format!("GET /api/v1/functions/{name}/tokens"))?;
        for tok in tokens {
            let created = std::time::UNIX_EPOCH + std::time::Duration::from_secs(tok.created_at);
            println!("{}  created {}", tok.id, humantime::format_rfc3339_seconds(created));
        }
    }
    Ok(0)
}

pub async fn token_rm(t: &Target, name: &str, id: &str) -> Result<i32> {
    let v = t
        .admin()?
        .call(Method::DELETE, &format!("/api/v1/functions/{name}/tokens/{id}"), &[], Bytes::new())
        .await?
        .json()?;
    if t.json {
        print_json(&v);
    } else {
        println!("removed token {id} of {name}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn logs_cannot_drive_a_terminal() {
        let line = b"title\x1b]0;pwned\x07 \x1b[2J\rok\tnext\n";
        assert_eq!(&*super::for_terminal(line, true), &b"title\\x1b]0;pwned\\x07 \\x1b[2J\\x0dok\tnext\n"[..]);
        assert_eq!(&*super::for_terminal(line, false), &line[..]);
    }

    #[test]
    fn c1_controls_and_bidi_marks_are_escaped_even_split_across_chunks() {
        // U+009B is a one-character CSI to terminals that take C1; U+202E turns a line around.
        let line = "a\u{9b}2Jb \u{202e}txt.exe\u{2066}x\u{2069} é\n".as_bytes();
        let want = &b"a\\x9b2Jb \\u{202e}txt.exe\\u{2066}x\\u{2069} \xc3\xa9\n"[..];
        assert_eq!(super::for_terminal(line, true), want);
        for cut in 0..line.len() {
            let mut t = super::ForTerminal::new(true);
            let mut out = t.push(&line[..cut]).into_owned();
            out.extend_from_slice(&t.push(&line[cut..]));
            assert_eq!(out, want, "cut at {cut}");
        }
        assert_eq!(super::for_terminal(b"x\xff\xc3", true), &b"x\\xff\\xc3"[..]);
        // Invisible characters could hide a difference between two names.
        let zw = "a\u{200b}b\u{200d}c\u{feff}d\u{2060}".as_bytes();
        assert_eq!(super::for_terminal(zw, true), &b"a\\u{200b}b\\u{200d}c\\u{feff}d\\u{2060}"[..]);
    }
}
