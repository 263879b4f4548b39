//! The instance backend: sandboxes launched by `fnbox run`, bound to a function.
//!
//! Python and Node instances start from a runtime zygote in a sandbox that is already up: a
//! pre-warmed one from the [`WarmPool`] when there is one for the function's runtime and tier
//! (sandbox v2), otherwise one launched now with the code bound from the start. Binding a
//! pre-warmed sandbox attaches the code at `/code` (copy-on-write) and hands the zygote the
//! handler and the environment; nothing else is created. A `binary` function's program is
//! executed directly, its environment read by the launcher from a memory file.

use super::launcher::{monotonic_s, start_failed, Boost, LaunchSpec, Launched, Launcher, START_TIMEOUT};
use super::log_route::LogRoute;
use super::warm::{Take, WarmKey, WarmPool};
use super::zygote::channel::BindError;
use super::zygote::{self, ZygoteAt};
use super::{BoxFuture, ColdStart, EndCause, Ended, Instance, InstanceBackend, InstanceSpec, StartPath, Upstream};
use crate::function::{FunctionConfig, Runtime};
use crate::runtimes;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a deploy-time handler check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a binary may take to listen on its socket.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a cold start waits for a pre-warmed sandbox still starting before it starts
/// its own: as long as any start may take (one that fails tells its waiter at once). Such a
/// start takes well under a second on a quiet machine, but it runs at the lowest CPU weight
/// until its boost window ends: on a loaded one it can take seconds, and starting another
/// sandbox then would only add to the load (and make a cold start's path depend on timing).
const PENDING_WAIT: Duration = START_TIMEOUT;
/// Lines of a handler's traceback kept in a failed check's message.
const DETAIL_LINES: usize = 8;

pub struct FnboxRun {
    pub launcher: Arc<Launcher>,
    /// Pre-warmed v2 sandboxes, unless the pool is off.
    pub warm: Option<Arc<WarmPool>>,
}

/// The environment an instance gets: the runtime's, the function's (secrets included) and
/// fnbox's own `FNBOX_*` variables (`fnbox run` adds `FNBOX_LISTEN_FD`).
fn function_env(id: &str, name: &str, version: u64, c: &FunctionConfig) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = runtimes::runtime_env(c.runtime)
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(c.env.iter().chain(c.secrets.iter()).map(|(k, v)| (k.clone(), v.clone())))
        .collect();
    env.extend([
        ("FNBOX_FUNCTION_NAME".into(), name.to_string()),
        ("FNBOX_FUNCTION_VERSION".into(), version.to_string()),
        ("FNBOX_MEMORY_MB".into(), c.memory_mb.to_string()),
        ("FNBOX_INSTANCE_ID".into(), id.to_string()),
    ]);
    env
}

/// Whether the function's own environment changes how its interpreter starts (see
/// [`runtimes::shapes_interpreter_start`]): then that start may run its code.
fn shapes_start(c: &FunctionConfig) -> bool {
    c.env.iter().chain(c.secrets.iter()).any(|(k, _)| runtimes::shapes_interpreter_start(k))
}

/// Seconds on the monotonic clock since `m0`, as a phase of a cold start. The times come
/// from the sandbox (hostile input): one that is not a number, or after the phase's hour, is
/// no phase at all (`from_secs_f64` would panic on it).
fn since(m0: f64, t: Option<f64>) -> Option<Duration> {
    let d = Duration::try_from_secs_f64((t? - m0).max(0.0)).ok()?;
    (d <= Duration::from_secs(3600)).then_some(d)
}

impl FnboxRun {
    /// A sandbox with the function's runtime zygote ready: from the pool (ready, or the next
    /// one to finish starting), or launched now. Its CPU boost, if it has one, is still on.
    async fn acquire(
        &self,
        spec: &InstanceSpec,
        env: &[(String, String)],
        route: &LogRoute,
    ) -> Result<(Launched, bool), Ended> {
        let c = &spec.config;
        self.launcher.disk.function_room(&spec.function, c.max_scale).map_err(start_failed)?;
        // A pre-warmed interpreter has already started: a function whose environment changes
        // how the interpreter starts (PYTHONPATH, NODE_OPTIONS, ...) gets one started for it,
        // and no CPU boost (that start may run its code: a sitecustomize, a --require). Nor
        // does a function past its budget of boosted starts (a pre-warmed sandbox's start,
        // and its refill, are boosted).
        let boost = spec.boost && !shapes_start(c);
        if let (true, Some(warm)) = (boost, &self.warm) {
            let key = WarmKey { kind: c.sandbox, runtime: c.runtime, memory_mb: c.memory_mb, network: c.network };
            loop {
                let mut sb = match warm.take(key, (&spec.function, spec.version)) {
                    Take::Ready(sb) => *sb,
                    Take::Pending(rx) => match tokio::time::timeout(PENDING_WAIT, rx).await {
                        Ok(Ok(sb)) => sb,
                        // Its start failed or is stuck: start one of its own.
                        _ => break,
                    },
                    Take::Miss => break,
                };
                sb.route.bind(&spec.function, &spec.id);
                match sb.attach_code(&spec.code).await {
                    Ok(()) => return Ok((sb, true)),
                    // It ended meanwhile: try the next one.
                    Err(e) => spec.logs.event(&spec.function, &spec.id, format!("a pre-warmed sandbox failed: {e}")),
                }
            }
        }
        let at = ZygoteAt {
            kind: c.sandbox,
            runtime: c.runtime,
            memory_mb: c.memory_mb,
            code: Some(&spec.code),
            env: Some(env),
            network: c.network,
            cpu_boost: if boost { Boost::Foreground } else { Boost::Off },
        };
        Ok((zygote::launch(&self.launcher, at, route.clone(), None).await?, false))
    }

    async fn start_from_zygote(&self, spec: &InstanceSpec) -> Result<Instance, Ended> {
        let (t0, m0) = (Instant::now(), monotonic_s());
        let route = LogRoute::to(self.launcher.logs.clone(), &spec.function, &spec.id);
        let c = &spec.config;
        let env = function_env(&spec.id, &spec.function, spec.version, c);
        let (mut sb, pooled) = self.acquire(spec, &env, &route).await?;
        sb.disk.assign(&spec.function, c.max_scale).map_err(start_failed)?;
        let acquired = t0.elapsed();
        let zygote = sb.zygote.take().ok_or_else(|| start_failed("the sandbox has no zygote socket".into()))?;
        // The function's own code (its module's top level first) runs from the bind on: under
        // its CPU quota.
        sb.end_boost().await?;
        // The handler's import runs inside the bind: a handler that hangs while loading must
        // not hold the instance slot forever (dropping `sb` stops its sandbox).
        let bind = zygote.serve(&c.handler, &env);
        let Ok(bound) = tokio::time::timeout(START_TIMEOUT, bind).await else {
            return Err(start_failed(format!(
                "its handler did not load within {} s: check what its module does at import time",
                START_TIMEOUT.as_secs()
            )));
        };
        let bound = match bound {
            Ok(b) => b,
            Err(BindError::Handler { reason, .. }) => {
                return Err(start_failed(format!("its handler failed to load: {reason}")))
            }
            Err(BindError::Failed(e)) => return Err(sb.failure(e).await),
        };
        let ready = t0.elapsed();
        let process = if pooled { Some(bound.forked) } else { sb.exec_at() };
        let cold = ColdStart {
            path: StartPath { sandbox: c.sandbox, pooled, zygote: true },
            sandbox_acquired: acquired,
            process_started: since(m0, process),
            handler_imported: since(m0, Some(bound.imported)),
            ready,
        };
        let upstream = Upstream::new(sb.socket());
        Ok(Instance::new(spec.id.clone(), upstream, sb.cgroup, cold, sb.ended, Box::new(sb.control)))
    }

    async fn start_binary(&self, spec: &InstanceSpec) -> Result<Instance, Ended> {
        let (t0, m0) = (Instant::now(), monotonic_s());
        let c = &spec.config;
        let launch = LaunchSpec {
            kind: c.sandbox,
            memory_mb: c.memory_mb,
            code: Some(spec.code.clone()),
            env: function_env(&spec.id, &spec.function, spec.version, c),
            network: c.network,
            program: runtimes::binary_program(&c.handler, false),
            zygote: false,
            timeout: None,
            // The program is the function's own code from its first instruction.
            cpu_boost: Boost::Off,
            label: spec.function.clone(),
            route: LogRoute::to(self.launcher.logs.clone(), &spec.function, &spec.id),
        };
        self.launcher.disk.function_room(&spec.function, c.max_scale).map_err(start_failed)?;
        let sb = self.launcher.launch(launch).await?;
        sb.disk.assign(&spec.function, c.max_scale).map_err(start_failed)?;
        let acquired = t0.elapsed();
        let upstream = Upstream::new(sb.socket());
        let mut pause = Duration::from_micros(500);
        let deadline = t0 + LISTEN_TIMEOUT;
        loop {
            if sb.has_ended() {
                return Err(sb.start_failure().await);
            }
            // Connections are refused until the program listens.
            if upstream.warm().await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(start_failed(format!(
                    "it did not listen on $FNBOX_LISTEN_FD within {} s (a binary function must call listen() on that descriptor and serve HTTP there)",
                    LISTEN_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        let cold = ColdStart {
            path: StartPath { sandbox: c.sandbox, pooled: false, zygote: false },
            sandbox_acquired: acquired,
            process_started: since(m0, sb.exec_at()),
            handler_imported: None,
            ready: t0.elapsed(),
        };
        Ok(Instance::new(spec.id.clone(), upstream, sb.cgroup, cold, sb.ended, Box::new(sb.control)))
    }

    /// Loads the handler in a sandbox, as an instance would, and says why it cannot.
    pub async fn check_handler(&self, name: &str, c: &FunctionConfig, code: &Path) -> Result<(), String> {
        let id = format!("check-{}", crate::auth::random_hex(4));
        // The check's output is not an instance's: it is kept for the error, not logged.
        let route = LogRoute::quiet(self.launcher.logs.clone());
        if c.runtime == Runtime::Binary {
            let launch = LaunchSpec {
                kind: c.sandbox,
                memory_mb: c.memory_mb,
                code: Some(code.to_path_buf()),
                env: Vec::new(),
                network: c.network,
                program: runtimes::binary_program(&c.handler, true),
                zygote: false,
                timeout: Some(CHECK_TIMEOUT),
                cpu_boost: Boost::Off,
                label: "check".into(),
                route,
            };
            let sb = self.launcher.launch(launch).await.map_err(|e| e.message)?;
            return match sb.wait_ended().await.cause {
                EndCause::Exited(0) => Ok(()),
                _ => Err(sb.start_failure().await.message),
            };
        }
        let env = function_env(&id, name, 0, c);
        let at = ZygoteAt {
            kind: c.sandbox,
            runtime: c.runtime,
            memory_mb: c.memory_mb,
            code: Some(code),
            env: Some(&env),
            network: c.network,
            cpu_boost: if shapes_start(c) { Boost::Off } else { Boost::Foreground },
        };
        let mut sb = zygote::launch(&self.launcher, at, route, Some(CHECK_TIMEOUT)).await.map_err(|e| e.message)?;
        let zygote = sb.zygote.take().ok_or("the sandbox has no zygote socket")?;
        sb.end_boost().await.map_err(|e| e.message)?;
        // The sandbox's own timeout (CHECK_TIMEOUT from its launch) ends a hung check first;
        // this bounds the wait on the zygote's answer even if that end never comes.
        let answer = tokio::time::timeout(CHECK_TIMEOUT, zygote.check(&c.handler, &env)).await;
        let late = || format!("its handler did not load within {} s", CHECK_TIMEOUT.as_secs());
        match answer.unwrap_or_else(|_| Err(BindError::Failed(late()))) {
            Ok(()) => Ok(()),
            Err(BindError::Handler { reason, detail }) => {
                let lines: Vec<&str> = detail.lines().filter(|l| !l.trim().is_empty()).collect();
                let tail = lines[lines.len().saturating_sub(DETAIL_LINES)..].join("\n");
                Err(if tail.is_empty() { reason } else { format!("{reason}\n{tail}") })
            }
            Err(BindError::Failed(e)) => Err(sb.failure(e).await.message),
        }
    }
}

impl InstanceBackend for FnboxRun {
    fn start<'a>(&'a self, spec: &'a InstanceSpec) -> BoxFuture<'a, Result<Instance, Ended>> {
        Box::pin(async move {
            match spec.config.runtime {
                Runtime::Binary => self.start_binary(spec).await,
                Runtime::Python3 | Runtime::Node => self.start_from_zygote(spec).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_time_from_the_sandbox_that_is_not_a_time_is_no_phase() {
        assert_eq!(since(10.0, Some(10.5)), Some(Duration::from_millis(500)));
        assert_eq!(since(10.0, Some(9.0)), Some(Duration::ZERO));
        assert_eq!(since(10.0, None), None);
        // A forged bind answer ({"imported": 1e300}) once panicked the server's start task.
        for t in [1e300, f64::INFINITY, f64::MAX, 10.0 + 3601.0] {
            assert_eq!(since(10.0, Some(t)), None, "{t}");
        }
        assert_eq!(since(10.0, Some(f64::NAN)), Some(Duration::ZERO));
    }
}
