//! `fnbox deploy --build` on the server (docs/architecture.md, "Builds"). The uploaded code is
//! unpacked apart, never stored as it is; its dependencies are installed in a sandbox with
//! egress on the function's own runtime image (`runtimes/build.py`: `pip install -r
//! requirements.txt --target package`, or `npm ci`); the zip that sandbox hands back is the
//! code stored, checked as any upload is. The build's output reaches the client as it comes,
//! as NDJSON events ([`Event`]), bounded: everything a build prints is hostile.

use crate::codestore::{Staged, ZIP_MAX};
use crate::error::{Error, Result};
use crate::function::Runtime;
use crate::instances::launcher::{Boost, LaunchSpec, Launched};
use crate::instances::log_route::LogRoute;
use crate::instances::{EndCause, Ended};
use crate::logs::Stream;
use crate::platform::Platform;
use crate::runtimes::RUNTIME_DIR;
use bytes::Bytes;
use fnbox_sandbox::net::Network;
use fnbox_sandbox::spec::SandboxKind;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

pub mod places;

pub use places::{Builds, DEFAULT_TIMEOUT};
use places::{AT_ONCE, WAITING_MAX};

/// The build sandbox's memory tier (with its CPU share, 1.12 vCPU): compilers and package
/// managers need more than most functions' tiers.
pub const MEMORY_MB: u64 = 2048;
/// Output lines sent to the client; past it they are counted only (the tail is kept).
const STREAMED_LINES_MAX: usize = 10_000;
/// Last lines kept for the error of a failed build, each cut to [`TAIL_LINE_CHARS`].
const TAIL_LINES: usize = 25;
const TAIL_LINE_CHARS: usize = 400;
/// Events queued for a client that reads slowly; output lines past it are counted, not sent.
const EVENTS_QUEUED: usize = 256;
/// How long the built zip may take to arrive once the sandbox offers it.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// Where the build keeps its own files: on the sandbox's disk layer, outside `/code`.
const WORK: &str = "/var/tmp/fnbox-build";

/// What to build, from the upload's query: `?build=python3|node&sandbox=v2|v1`.
#[derive(Debug)]
pub struct BuildRequest {
    pub runtime: Runtime,
    /// The sandbox the function will run in: the build runs in the same kind.
    pub sandbox: SandboxKind,
}

impl BuildRequest {
    pub fn from_query(q: &HashMap<String, String>) -> Result<Self> {
        let runtime: Runtime = q.get("build").map(String::as_str).unwrap_or_default().parse()?;
        if runtime == Runtime::Binary {
            return Err(Error::Invalid(
                "--build installs the dependencies of python3 (requirements.txt) and node (package-lock.json) functions: build a binary function before deploying it".into(),
            ));
        }
        let sandbox = match q.get("sandbox") {
            Some(s) => s.parse().map_err(|e: fnbox_sandbox::Error| Error::Invalid(e.to_string()))?,
            None => SandboxKind::V2,
        };
        Ok(Self { runtime, sandbox })
    }

    /// What the build step needs in the code, checked before any sandbox starts.
    fn check_inputs(&self, dir: &Path) -> Result<()> {
        let file = |name: &str| std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_file());
        match self.runtime {
            Runtime::Python3 if !file("requirements.txt") => Err(Error::Invalid(
                "--build for python3 installs requirements.txt into package/, and the code has no requirements.txt at its top: add one (one requirement a line, as pip takes it)".into(),
            )),
            Runtime::Node if !file("package.json") => Err(Error::Invalid(
                "--build for node runs `npm ci`, and the code has no package.json at its top: add one".into(),
            )),
            Runtime::Node if !file("package-lock.json") && !file("npm-shrinkwrap.json") => Err(Error::Invalid(
                "--build for node runs `npm ci`, which installs exactly what package-lock.json lists, and the code has none: run `npm install --package-lock-only` next to package.json and deploy again".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// One line of a build's answer (read back by the client: [`crate::api`]).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event<'a> {
    /// Other builds hold every place: this one waits.
    Waiting {
        builds_running: usize,
    },
    Started {
        runtime: Runtime,
        sandbox: SandboxKind,
        memory_mb: u64,
        timeout_s: u64,
    },
    /// A line the build printed (cut at 8 KiB, bytes that are not UTF-8 escaped as `\xNN`).
    Output {
        stream: Stream,
        line: Cow<'a, str>,
    },
    /// The built code is stored under `digest`; `lines_not_shown` lines were only counted.
    Done {
        digest: Cow<'a, str>,
        seconds: f64,
        zip_bytes: usize,
        lines_not_shown: usize,
    },
    /// Nothing was stored; `error` ends with the build's last lines.
    Failed {
        error: Cow<'a, str>,
    },
}

fn ndjson(e: &Event) -> Bytes {
    let mut v = serde_json::to_vec(e).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// A build's output on its way to the client: bounded (lines past [`STREAMED_LINES_MAX`], or
/// while the client's queue is full, are counted, not sent), the last lines kept for an error.
struct Output {
    tx: mpsc::Sender<Bytes>,
    state: Mutex<Shown>,
}

#[derive(Default)]
struct Shown {
    tail: VecDeque<String>,
    sent: usize,
    not_sent: usize,
}

impl Output {
    fn push(&self, stream: Stream, line: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.tail.len() == TAIL_LINES {
            s.tail.pop_front();
        }
        s.tail.push_back(cut_chars(&line, TAIL_LINE_CHARS));
        if s.sent < STREAMED_LINES_MAX
            && self.tx.try_send(ndjson(&Event::Output { stream, line: Cow::Borrowed(&line) })).is_ok()
        {
            s.sent += 1;
        } else {
            s.not_sent += 1;
        }
    }

    fn tail(&self) -> Vec<String> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).tail.iter().cloned().collect()
    }

    fn not_sent(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).not_sent
    }
}

/// At most `max` characters of `s`, marked when cut.
fn cut_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{} [cut]", &s[..at]),
        None => s.to_string(),
    }
}

/// The admin API's `POST /api/v1/code?build=RUNTIME`: unpacks and checks the upload, then
/// returns the events of its build, which runs on: output lines as they come, the last event
/// `done` (the built code is stored) or `failed` (nothing is). A client that goes away stops
/// the build.
pub async fn start(p: Arc<Platform>, req: BuildRequest, zip: Bytes) -> Result<mpsc::Receiver<Bytes>> {
    // Before anything is unpacked: a waiting build holds its upload on disk.
    let admission = p.builds.admitted.clone().try_acquire_owned().map_err(|_| {
        Error::Busy(format!(
            "the server is busy building: {AT_ONCE} builds run and {WAITING_MAX} wait already; retry in a minute"
        ))
    })?;
    let code = p.code.clone();
    let staged = tokio::task::spawn_blocking(move || code.stage_zip(&zip, "build"))
        .await
        .map_err(|e| Error::Internal(format!("the unpacking task failed: {e}")))??;
    req.check_inputs(&staged.dir)?;
    let (tx, rx) = mpsc::channel(EVENTS_QUEUED);
    tokio::spawn(async move {
        let _admission = admission;
        let t0 = Instant::now();
        let out = Arc::new(Output { tx: tx.clone(), state: Mutex::default() });
        let result = tokio::select! {
            r = run(&p, &req, &staged, out.clone()) => r,
            // Dropping the build's future stops its sandbox.
            _ = tx.closed() => return,
        };
        drop(staged);
        let last = match &result {
            Ok((digest, zip_bytes)) => ndjson(&Event::Done {
                digest: Cow::Borrowed(digest.as_str()),
                seconds: (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                zip_bytes: *zip_bytes,
                lines_not_shown: out.not_sent(),
            }),
            Err(e) => ndjson(&Event::Failed { error: p.without_host_paths(&e.to_string()).into() }),
        };
        let _ = tx.send(last).await;
    });
    Ok(rx)
}

/// Runs the build in its sandbox and stores what it made: the digest and the zip's size.
async fn run(p: &Platform, req: &BuildRequest, staged: &Staged, out: Arc<Output>) -> Result<(String, usize)> {
    let builds = &p.builds;
    let _place = match builds.places.try_acquire() {
        Ok(place) => place,
        Err(_) => {
            let _ = out.tx.send(ndjson(&Event::Waiting { builds_running: AT_ONCE })).await;
            // The wait counts in the build's time limit.
            match tokio::time::timeout(builds.timeout, builds.places.acquire()).await {
                Ok(place) => place.map_err(|e| Error::Internal(format!("the builds' places are gone: {e}")))?,
                Err(_) => {
                    return Err(Error::Busy(format!(
                        "no build place became free within {} s (fnbox serve --build-timeout): retry later",
                        builds.timeout.as_secs()
                    )))
                }
            }
        }
    };
    let started = Event::Started {
        runtime: req.runtime,
        sandbox: req.sandbox,
        memory_mb: MEMORY_MB,
        timeout_s: builds.timeout.as_secs(),
    };
    let _ = out.tx.send(ndjson(&started)).await;
    let t0 = Instant::now();
    let launcher = &p.checker.launcher;
    let sink = out.clone();
    let spec = LaunchSpec {
        kind: req.sandbox,
        memory_mb: MEMORY_MB,
        code: Some(staged.dir.clone()),
        env: build_env(),
        network: Network::Egress,
        program: vec!["python3".into(), format!("{RUNTIME_DIR}/build.py"), req.runtime.as_str().into()],
        zygote: false,
        timeout: Some(builds.timeout),
        cpu_boost: Boost::Off,
        label: "build".into(),
        route: LogRoute::to_sink(launcher.logs.clone(), Arc::new(move |stream, line| sink.push(stream, line))),
    };
    let sb =
        launcher.launch(spec).await.map_err(|e| Error::Invalid(format!("the build could not start: {}", e.message)))?;
    let zip = match fetch(&sb, t0 + builds.timeout).await {
        Some(zip) => zip?,
        None => return Err(failed(sb.wait_ended().await, t0.elapsed() >= builds.timeout, builds.timeout, &out)),
    };
    let bytes = zip.len();
    let code = p.code.clone();
    let digest = tokio::task::spawn_blocking(move || code.put_zip(&zip))
        .await
        .map_err(|e| Error::Internal(format!("the storing task failed: {e}")))?
        .map_err(|e| match e {
            Error::RejectedCode(m) | Error::TooLarge(m) => {
                Error::Invalid(format!("the built code cannot be stored: {m}"))
            }
            e => e,
        })?;
    Ok((digest, bytes))
}

/// The environment of a build: its own home, temporary files and caches on the sandbox's disk
/// layer (in sandbox v2 `/tmp` is memory), nothing of the function's (no secrets).
fn build_env() -> Vec<(String, String)> {
    [
        ("HOME", format!("{WORK}/home")),
        ("TMPDIR", format!("{WORK}/tmp")),
        ("npm_config_cache", format!("{WORK}/npm-cache")),
        ("npm_config_update_notifier", "false".into()),
        ("PYTHONUNBUFFERED", "1".into()),
        ("LANG", "C.UTF-8".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The zip the build sandbox serves on its socket once it is done (it listens only then), or
/// `None` when the sandbox ended without offering one (or the deadline passed).
async fn fetch(sb: &Launched, deadline: Instant) -> Option<Result<Vec<u8>>> {
    loop {
        if sb.has_ended() || Instant::now() > deadline {
            return None;
        }
        // Refused until the build listens, which it does only with the zip ready.
        if let Ok(conn) = tokio::net::UnixStream::connect(sb.socket()).await {
            return Some(read_zip(conn).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads the built zip: at most [`ZIP_MAX`] bytes within [`FETCH_TIMEOUT`].
async fn read_zip(conn: tokio::net::UnixStream) -> Result<Vec<u8>> {
    let mut zip = Vec::new();
    let mut limited = conn.take(ZIP_MAX + 1);
    match tokio::time::timeout(FETCH_TIMEOUT, limited.read_to_end(&mut zip)).await {
        Err(_) => {
            Err(Error::Invalid(format!("the build did not hand over its result within {} s", FETCH_TIMEOUT.as_secs())))
        }
        Ok(Err(e)) => Err(Error::Invalid(format!("the build's result could not be read: {e}"))),
        Ok(Ok(_)) if zip.len() as u64 > ZIP_MAX => Err(Error::TooLarge(format!(
            "the built code packs to more than {} MiB, the limit for code: leave out what the function does not need",
            ZIP_MAX >> 20
        ))),
        Ok(Ok(_)) => Ok(zip),
    }
}

/// A failed build in words: why (the build step's own `fnbox: ` line, the memory limit, the
/// time limit), then its last lines.
fn failed(e: Ended, timed_out: bool, timeout: Duration, out: &Output) -> Error {
    let tail = out.tail();
    let reason = tail.iter().rev().find_map(|l| l.strip_prefix("fnbox: "));
    let why = match (&e.cause, reason) {
        (EndCause::OutOfMemory, _) => format!("it ran out of memory (limit {MEMORY_MB} MiB)"),
        _ if timed_out => format!("it did not finish within {} s (fnbox serve --build-timeout)", timeout.as_secs()),
        (_, Some(r)) => r.to_string(),
        (_, None) => format!("its sandbox {}", e.message),
    };
    let lines: Vec<&str> = tail.iter().map(String::as_str).filter(|l| !l.starts_with("fnbox: ")).collect();
    match lines.is_empty() {
        true => Error::Invalid(format!("the build failed: {why}")),
        false => Error::Invalid(format!("the build failed: {why}; its last output:\n{}", lines.join("\n"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_inputs() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(BuildRequest::from_query(&q(&[("build", "binary")])).unwrap_err().to_string().contains("binary"));
        assert!(BuildRequest::from_query(&q(&[("build", "ruby")])).is_err());
        assert!(BuildRequest::from_query(&q(&[("build", "node"), ("sandbox", "v9")])).is_err());
        let r = BuildRequest::from_query(&q(&[("build", "python")])).unwrap();
        assert_eq!((r.runtime, r.sandbox), (Runtime::Python3, SandboxKind::V2));

        let dir = std::env::temp_dir().join(format!("fnbox-build-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let e = r.check_inputs(&dir).unwrap_err().to_string();
        assert!(e.contains("no requirements.txt"), "{e}");
        std::fs::write(dir.join("requirements.txt"), "six\n").unwrap();
        assert!(r.check_inputs(&dir).is_ok());
        let node = BuildRequest { runtime: Runtime::Node, sandbox: SandboxKind::V1 };
        std::fs::write(dir.join("package.json"), "{}").unwrap();
        let e = node.check_inputs(&dir).unwrap_err().to_string();
        assert!(e.contains("npm install --package-lock-only"), "{e}");
        std::fs::write(dir.join("package-lock.json"), "{}").unwrap();
        assert!(node.check_inputs(&dir).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_is_bounded_and_its_tail_kept() {
        let (tx, mut rx) = mpsc::channel(4);
        let out = Output { tx, state: Mutex::default() };
        for i in 0..40 {
            out.push(Stream::Stderr, format!("line {i} {}", "x".repeat(if i == 39 { 1000 } else { 0 })));
        }
        // The queue holds 4: the rest is counted, not held.
        assert_eq!(out.not_sent(), 36);
        let first: serde_json::Value = serde_json::from_slice(&rx.try_recv().unwrap()).unwrap();
        assert_eq!((first["event"].as_str(), first["line"].as_str()), (Some("output"), Some("line 0 ")));
        let tail = out.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0], "line 15 ");
        assert!(tail[TAIL_LINES - 1].ends_with(" [cut]") && tail[TAIL_LINES - 1].chars().count() < 420);
    }

    #[test]
    fn a_failure_says_why_then_the_last_lines() {
        let (tx, _rx) = mpsc::channel(4);
        let out = Output { tx, state: Mutex::default() };
        out.push(Stream::Stderr, "ERROR: No matching distribution found for nope".into());
        out.push(Stream::Stderr, "fnbox: pip install exited with code 1".into());
        let ended = Ended { cause: EndCause::Exited(1), message: "exited with code 1".into(), oom_kills: 0 };
        let e = failed(ended, false, DEFAULT_TIMEOUT, &out).to_string();
        assert_eq!(
            e,
            "the build failed: pip install exited with code 1; its last output:\nERROR: No matching distribution found for nope"
        );
        let oom = Ended { cause: EndCause::OutOfMemory, message: String::new(), oom_kills: 1 };
        assert!(failed(oom, false, DEFAULT_TIMEOUT, &out).to_string().contains("out of memory (limit 2048 MiB)"));
        let killed = Ended { cause: EndCause::Signaled, message: "killed".into(), oom_kills: 0 };
        assert!(failed(killed, true, DEFAULT_TIMEOUT, &out).to_string().contains("within 600 s"));
    }
}
