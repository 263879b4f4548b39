//! The runtime zygote's side of binding (see `runtimes/wrapper.py` and `wrapper.mjs`).
//!
//! The zygote's stdin is one end of a socket pair; on it, one JSON line each way, in order:
//!
//! ```text
//! zygote → fnbox   {"ready": true, "started": T}             interpreter up, wrapper imported
//! fnbox  → zygote  {"handler", "env": {...}, "workdir", "check"}
//! zygote → fnbox   {"bound": true, "received", "forked", "imported"}   serving on the socket
//!                | {"checked": true}                                    (check: then it exits)
//!                | {"error": "reason", "detail": "traceback"}           (then it exits)
//! ```
//!
//! Times are CLOCK_MONOTONIC seconds. The environment, secrets included, travels only here.

use super::launcher::{start_failed, Boost, LaunchSpec, Launched, Launcher, LogRoute, START_TIMEOUT};
use super::Ended;
use crate::function::Runtime;
use crate::runtimes;
use fnbox_sandbox::spec::SandboxKind;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest line read from a zygote: its answers are small, and past the bind request the
/// user's code runs in it.
const LINE_MAX: usize = 64 << 10;

pub struct Zygote {
    stream: tokio::net::UnixStream,
    buf: Vec<u8>,
}

pub struct BindRequest<'a> {
    pub handler: &'a str,
    pub env: &'a [(String, String)],
    /// Only load the handler, answer and exit (the deploy-time check).
    pub check: bool,
}

/// Times the zygote reported for a bind.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bound {
    pub received: Option<f64>,
    /// When the instance's own process began: the fork (Python), the bind (Node).
    pub forked: Option<f64>,
    pub imported: Option<f64>,
}

#[derive(Debug)]
pub enum BindError {
    /// The handler cannot be loaded: the user's to fix.
    Handler { reason: String, detail: String },
    /// The zygote went away or answered nonsense (see how its sandbox ended).
    Failed(String),
}

impl Zygote {
    pub(super) fn new(sock: UnixStream) -> std::io::Result<Self> {
        sock.set_nonblocking(true)?;
        Ok(Self { stream: tokio::net::UnixStream::from_std(sock)?, buf: Vec::new() })
    }

    async fn read_line(&mut self) -> Result<serde_json::Value, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return serde_json::from_slice(&line).map_err(|e| format!("the zygote answered nonsense ({e})"));
            }
            if self.buf.len() > LINE_MAX {
                return Err("the zygote's answer is too long".into());
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Err("the zygote closed its socket".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("cannot read from the zygote: {e}")),
            }
        }
    }

    /// Waits until the runtime is up; returns when its interpreter started.
    pub async fn ready(&mut self) -> Result<Option<f64>, String> {
        let v = self.read_line().await?;
        match v["ready"].as_bool() {
            Some(true) => Ok(v["started"].as_f64()),
            _ => Err(format!("the zygote said {v} instead of ready")),
        }
    }

    /// Hands the function to the zygote; returns once it serves (or, for a check, once the
    /// handler loaded). The socket is closed after: the instance reads end of file on stdin.
    pub async fn bind(mut self, req: &BindRequest<'_>) -> Result<Bound, BindError> {
        // The same rule as the env file's: JSON would carry anything, the interpreter not.
        if let Some(e) = req.env.iter().find_map(|(k, v)| fnbox_sandbox::spec::check_env(k, v).err()) {
            return Err(BindError::Failed(e.to_string()));
        }
        let env: serde_json::Map<String, serde_json::Value> =
            req.env.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        let line = serde_json::json!({"handler": req.handler, "env": env, "workdir": "/code", "check": req.check});
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| BindError::Failed(format!("cannot write to the zygote: {e}")))?;
        let v = self.read_line().await.map_err(BindError::Failed)?;
        if let Some(reason) = v["error"].as_str() {
            let detail = v["detail"].as_str().unwrap_or("").to_string();
            return Err(BindError::Handler { reason: reason.to_string(), detail });
        }
        if v["bound"].as_bool() == Some(true) || v["checked"].as_bool() == Some(true) {
            let t = |k: &str| v[k].as_f64();
            return Ok(Bound { received: t("received"), forked: t("forked"), imported: t("imported") });
        }
        Err(BindError::Failed(format!("the zygote said {v} instead of bound")))
    }
}

/// Which zygote to launch, where.
pub struct ZygoteAt<'a> {
    pub kind: SandboxKind,
    pub runtime: Runtime,
    pub memory_mb: u64,
    /// Bound at `/code` from the start; `None`: attached when the sandbox is bound.
    pub code: Option<&'a Path>,
    /// The environment the interpreter starts with, when it is the function's (a sandbox
    /// launched for it); `None`: the runtime's own, the function's comes with the bind.
    pub env: Option<&'a [(String, String)]>,
    pub network: fnbox_sandbox::net::Network,
    /// Start without the CPU quota until the function is handed over ([`Launched::end_boost`]):
    /// only when the interpreter's start runs none of the function's code (its environment
    /// does not shape that start).
    pub cpu_boost: Boost,
}

/// Launches a sandbox running a runtime's zygote and returns once the zygote is ready.
pub async fn launch(
    launcher: &Launcher,
    at: ZygoteAt<'_>,
    route: LogRoute,
    timeout: Option<Duration>,
) -> Result<Launched, Ended> {
    // Only a pre-warmed sandbox (no code yet) warms its request path up: it has the time.
    let program = runtimes::zygote_program(at.runtime, at.code.is_none())
        .ok_or_else(|| start_failed(format!("the {} runtime has no zygote", at.runtime.as_str())))?;
    let spec = LaunchSpec {
        kind: at.kind,
        memory_mb: at.memory_mb,
        code: at.code.map(Path::to_path_buf),
        env: match at.env {
            Some(env) => env.to_vec(),
            None => runtimes::runtime_env(at.runtime).iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        },
        network: at.network,
        program,
        zygote: true,
        timeout,
        cpu_boost: at.cpu_boost,
        label: match at.code {
            Some(_) => at.runtime.as_str().to_string(),
            None => format!("warm-{}", at.runtime.as_str()),
        },
        route,
    };
    let mut sb = launcher.launch(spec).await?;
    let Some(mut zygote) = sb.zygote.take() else {
        return Err(start_failed("the sandbox has no zygote socket".into()));
    };
    let ready = tokio::select! {
        r = zygote.ready() => r,
        _ = tokio::time::sleep(START_TIMEOUT) => Err("the runtime did not start in time".into()),
    };
    match ready {
        Ok(_) => {
            sb.zygote = Some(zygote);
            Ok(sb)
        }
        Err(e) => Err(sb.failure(e).await),
    }
}
