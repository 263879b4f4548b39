//! Instances: a function's code running in a sandbox, serving HTTP on a Unix socket.
//!
//! The path of a request: gateway → [`pool::Pool`] (pick an idle instance, start one, or queue)
//! → [`Instance::upstream`] (HTTP/1.1 over the instance's socket) → the runtime wrapper → the
//! handler. Instances are started by an [`InstanceBackend`]; [`launcher::FnboxRun`] spawns one
//! `fnbox run` per instance.

pub mod launcher;
pub mod pool;
pub mod upstream;

use crate::function::FunctionConfig;
use crate::logs::LogStore;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
pub use upstream::Upstream;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What to start.
#[derive(Clone)]
pub struct InstanceSpec {
    pub id: String,
    pub function: String,
    pub version: u64,
    pub config: FunctionConfig,
    /// The unpacked code, bound read-only at `/code`.
    pub code: PathBuf,
    pub logs: Arc<LogStore>,
}

/// Starts instances. The gateway and the pool only see this trait.
pub trait InstanceBackend: Send + Sync {
    /// Starts an instance and returns once it accepts connections on its socket, or how it
    /// ended when it could not get there.
    fn start<'a>(&'a self, spec: &'a InstanceSpec) -> BoxFuture<'a, Result<Instance, Ended>>;
}

/// How an instance's sandbox is told to end.
pub trait InstanceControl: Send + Sync {
    /// Now (SIGKILL).
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
    Exited,
    Signaled,
    OutOfMemory,
    /// It never came up (sandbox set-up, exec, or the handler failed to load).
    StartFailed,
}

/// Time from "start this" to each step of a cold start.
#[derive(Clone, Copy, Debug, Default)]
pub struct ColdStart {
    /// The sandbox exists and its program is starting.
    pub sandbox_acquired: Duration,
    /// The runtime wrapper runs its first line (Python, Node).
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
        for d in &self.cgroup {
            for f in ["memory.current", "memory.usage_in_bytes"] {
                if let Ok(s) = std::fs::read_to_string(d.join(f)) {
                    return s.trim().parse().unwrap_or(0);
                }
            }
        }
        0
    }
}
