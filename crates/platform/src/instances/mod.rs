//! Instances: a function's code running in a sandbox, serving HTTP on a Unix socket.
//!
//! The path of a request: gateway → [`pool::Pool`] (pick an idle instance, start one, or queue)
//! → [`Instance::upstream`] (HTTP/1.1 over the instance's socket) → the runtime wrapper → the
//! handler. Instances are started by an [`InstanceBackend`]: [`backend::FnboxRun`] takes a
//! pre-warmed sandbox from the [`warm::WarmPool`] (or launches one, [`launcher`]) and binds it
//! to the function through the runtime's zygote ([`zygote`]).

pub mod backend;
pub mod control;
pub mod disk_budget;
pub mod launcher;
pub mod log_route;
pub mod output;
pub mod pool;
#[cfg(test)]
mod pool_tests;
pub mod start_budget;
pub mod upstream;
pub mod warm;
mod warm_sizing;
pub mod zygote;

use crate::function::FunctionConfig;
use crate::logs::LogStore;
use fnbox_sandbox::spec::SandboxKind;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
pub use upstream::Upstream;

/// The wait before the next start after `failures` failures in a row (failed starts, or
/// instances that ended on their own too soon): none after the first (a lone failure is
/// retried at once), then 0.25 s doubling up to 30 s. The one curve for instances and for
/// pre-warmed sandboxes.
pub fn restart_delay(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(250u64 << (n - 2).min(7)).min(Duration::from_secs(30)),
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What to start.
#[derive(Clone)]
pub struct InstanceSpec {
    pub id: String,
    pub function: String,
    pub version: u64,
    pub config: FunctionConfig,
    /// The unpacked code, bound copy-on-write at `/code` (never written).
    pub code: PathBuf,
    pub logs: Arc<LogStore>,
    /// The start may use the start-up CPU boost, and a pre-warmed sandbox (whose start was
    /// boosted): the function's budget of boosted starts allows it ([`start_budget`]).
    pub boost: bool,
}

/// Starts instances. The gateway and the pool only see this trait.
pub trait InstanceBackend: Send + Sync {
    /// Starts an instance and returns once it accepts connections on its socket, or how it
    /// ended when it could not get there.
    fn start<'a>(&'a self, spec: &'a InstanceSpec) -> BoxFuture<'a, Result<Instance, Ended>>;
}

/// How an instance's sandbox is told to end.
pub trait InstanceControl: Send + Sync {
    /// Now.
    fn kill(&self);
    /// Gracefully: SIGTERM to the program, SIGKILL after a grace period.
    fn stop(&self);
}

/// How an instance ended, in the words the caller and the logs get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub cause: EndCause,
    /// A sentence: "out of memory (limit 128 MiB)", "exited with code 3", ...
    pub message: String,
    pub oom_kills: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// With this exit code.
    Exited(i32),
    Signaled,
    OutOfMemory,
    /// It never came up (sandbox set-up, exec, or the handler failed to load).
    StartFailed,
}

/// How an instance came to be: the labels of its cold-start metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StartPath {
    /// Its sandbox's kind.
    pub sandbox: SandboxKind,
    /// Its sandbox came from the warm pool (else it was launched for it).
    pub pooled: bool,
    /// Its process came from a runtime zygote (else it was executed: `binary`).
    pub zygote: bool,
}

impl StartPath {
    /// `sandbox="v2",from="pool",process="zygote"`
    pub fn labels(&self) -> String {
        format!(
            "sandbox=\"{}\",from=\"{}\",process=\"{}\"",
            self.sandbox.as_str(),
            if self.pooled { "pool" } else { "new" },
            if self.zygote { "zygote" } else { "exec" }
        )
    }
}

/// Time from "start this" to each step of a cold start.
#[derive(Clone, Copy, Debug, Default)]
pub struct ColdStart {
    pub path: StartPath,
    /// The sandbox is ours: taken from the pool, or launched and its program started.
    pub sandbox_acquired: Duration,
    /// The function's process began: the zygote's fork (or bind, in Node) for a pooled
    /// sandbox, the program's exec for a new one.
    pub process_started: Option<Duration>,
    /// The user's handler is imported.
    pub handler_imported: Option<Duration>,
    /// The instance accepts connections.
    pub ready: Duration,
}

/// A running instance.
pub struct Instance {
    pub id: String,
    pub upstream: Upstream,
    /// Its cgroup directories, for memory metrics.
    pub cgroup: Vec<PathBuf>,
    pub cold_start: ColdStart,
    ended: watch::Receiver<Option<Ended>>,
    control: Box<dyn InstanceControl>,
    /// Set when the platform ends it on purpose (idle, redeploy, timeout): not a crash.
    retired: AtomicBool,
}

impl Instance {
    pub fn new(
        id: String,
        upstream: Upstream,
        cgroup: Vec<PathBuf>,
        cold_start: ColdStart,
        ended: watch::Receiver<Option<Ended>>,
        control: Box<dyn InstanceControl>,
    ) -> Self {
        Self { id, upstream, cgroup, cold_start, ended, control, retired: AtomicBool::new(false) }
    }

    /// Waits until the instance has ended.
    pub async fn wait_ended(&self) -> Ended {
        let mut rx = self.ended.clone();
        let got = rx.wait_for(|e| e.is_some()).await.map(|e| e.clone());
        match got {
            Ok(Some(e)) => e,
            _ => Ended { cause: EndCause::Signaled, message: "its supervisor went away".into(), oom_kills: 0 },
        }
    }

    /// How it ended, waiting at most `grace` for the news (a crash is seen on the socket a
    /// little before the supervisor reports it).
    pub async fn ended_within(&self, grace: Duration) -> Option<Ended> {
        tokio::time::timeout(grace, self.wait_ended()).await.ok()
    }

    pub fn kill(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.control.kill();
    }

    /// Kills it without retiring it: its end still counts as a failure.
    pub fn terminate(&self) {
        self.control.kill();
    }

    pub fn stop(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.control.stop();
    }

    pub fn retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Memory charged to the instance's cgroup now, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        launcher::cgroup_memory(&self.cgroup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_delay_grows_and_caps() {
        let ms = |f| restart_delay(f).as_millis();
        assert_eq!([ms(0), ms(1), ms(2), ms(3), ms(4)], [0, 0, 250, 500, 1000]);
        assert_eq!(restart_delay(40), Duration::from_secs(30));
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(30));
    }
}
