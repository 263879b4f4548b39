//! Runtime zygotes: a sandbox whose program is a runtime's wrapper, its interpreter up and
//! the wrapper imported before the function is known, waiting for the function on its stdin
//! (see `runtimes/wrapper.py` and `wrapper.mjs`). [`launch`] starts one; [`channel`] is the
//! socket to it and [`protocol`] the messages on that socket.

pub mod channel;
pub mod protocol;

use super::launcher::{start_failed, Boost, LaunchSpec, Launched, Launcher, START_TIMEOUT};
use super::log_route::LogRoute;
use super::Ended;
use crate::function::Runtime;
use crate::runtimes;
use fnbox_sandbox::spec::SandboxKind;
use std::path::Path;
use std::time::Duration;

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
