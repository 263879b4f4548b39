//! Starting, supervising and cleaning up a sandbox.
//!
//! The launcher (host root) creates the cgroup, clones the sandbox's first process into new
//! namespaces, maps its ids, prepares the mounts it will attach (image, system directories,
//! binds, disk layer) and lets it go. It then waits, forwarding signals and enforcing the
//! timeout, and removes everything when the sandbox ends, however it ends.
//!
//! One [`Sandbox`], its methods grouped by concept (docs/architecture.md, "The launcher"):
//! what it holds and how it ends here, its making in `start.rs`, waiting for it in
//! `supervise.rs`, its supervisor's requests in `control.rs`, and an OCI container's
//! create/start split in `container.rs`.

mod channels;
mod child;
mod config;
mod container;
mod control;
pub mod enter;
mod fail;
mod gc;
mod inbox;
mod init;
mod mounts;
mod program;
pub(crate) mod protocol;
mod start;
mod supervise;
mod terminal;

pub use channels::Channels;
pub use gc::{clean_host, reap_stale, Cleaned};
pub(crate) use mounts::PROC_PLACEHOLDER;
pub use supervise::{Ending, Outcome, WaitOptions, Watcher};

use crate::cgroup::{Cgroup, CpuBoost};
use crate::disk::DiskJob;
use crate::error::Result;
use crate::idmap::IdRange;
use crate::paths::Paths;
use crate::spec::SandboxSpec;
use crate::supervision::{self, Status};
use crate::sys::process;
use std::os::fd::{AsRawFd, OwnedFd};

/// The namespaces every sandbox gets at clone time (the cgroup namespace comes later, once
/// the process is in its cgroup).
const NAMESPACES: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS) as u64;

/// A running sandbox. Dropping it kills whatever still runs and removes its cgroup; its disk
/// layer goes with its mount namespace.
pub struct Sandbox {
    /// `<uid slot>-<random>`: also the cgroup's name, which lets a later run find and clean
    /// up the sandboxes of a launcher that died (see `gc.rs`).
    pub id: String,
    pub spec: SandboxSpec,
    /// Host pid of the sandbox's init.
    pub pid: libc::pid_t,
    pidfd: OwnedFd,
    sock: OwnedFd,
    cgroup: Cgroup,
    /// Held (its lock) for the sandbox's life.
    _ids: IdRange,
    /// Dropped last, when the launcher is done: see [`DiskJob::hold`].
    disk: Option<DiskJob>,
    /// v2: the Sentry process and the socket its counters come back on.
    sentry: Option<(libc::pid_t, OwnedFd)>,
    /// Status lines out, control requests in (`--status-fd`, `--control-fd`).
    pub channels: Channels,
    /// Containers in v2: the socket the Sentry receives the listeners of `exec`'d processes on.
    sentry_feed: Option<OwnedFd>,
    /// Host pid of a held program (containers), and a pidfd of it: signals go through the
    /// pidfd, never to the number, which another process may hold once the program is reaped.
    program: Option<(libc::pid_t, OwnedFd)>,
    /// Egress: the link being made (until `STAGE`), then made; dropping either removes its
    /// rules, and the link goes with the sandbox's network namespace.
    net_pending: Option<crate::net::Pending>,
    net: Option<crate::net::Link>,
    /// While boosted: when and what CPU quota applies (`cgroup/boost.rs`).
    boost: Option<CpuBoost>,
    reaped: bool,
    cleaned: bool,
}

impl Sandbox {
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// Host pid of the Sentry (v2).
    pub fn sentry_pid(&self) -> Option<libc::pid_t> {
        self.sentry.as_ref().map(|(p, _)| *p)
    }

    /// Ends the start-up boost: the CPU quota applies from now on (nothing when there is none
    /// or it has ended).
    pub fn end_boost(&mut self) -> Result<()> {
        match &mut self.boost {
            Some(b) => b.end(&self.cgroup),
            None => Ok(()),
        }
    }

    /// Sends `sig` to the sandbox's init, which passes it on to the program.
    pub fn signal(&self, sig: libc::c_int) {
        let _ = process::pidfd_signal(&self.pidfd, sig);
    }

    /// Kills every process of the sandbox.
    pub fn kill(&self) {
        let _ = process::pidfd_signal(&self.pidfd, libc::SIGKILL);
        self.cgroup.kill_all();
    }

    /// Removes the sandbox's cgroup (the disk layer goes with the mount namespace). Called by
    /// `Drop`; calling it twice is harmless.
    pub fn cleanup(&mut self) -> Result<()> {
        if self.cleaned {
            return Ok(());
        }
        if !self.reaped {
            self.kill();
            wait_end(self.pid, Some(&self.pidfd));
            self.reaped = true;
        }
        if let Some((spid, _)) = self.sentry.take() {
            end_process(spid, None);
        }
        self.net_pending = None;
        self.net = None;
        let cg = self.cgroup.destroy();
        crate::trace::mark("cgroup removed");
        self.cleaned = true;
        cg
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

/// Kills a process the launcher forked (through its pidfd when it has one) and reaps it.
fn end_process(pid: libc::pid_t, pidfd: Option<&OwnedFd>) {
    match pidfd {
        Some(fd) => {
            let _ = process::pidfd_signal(fd, libc::SIGKILL);
        }
        None => {
            let _ = process::kill(pid, libc::SIGKILL);
        }
    }
    wait_end(pid, pidfd);
}

/// How long the launcher waits for a killed process it cannot reap to end.
const END_WAIT_MS: i32 = 10_000;

/// Waits for the end of a process the launcher started and returns its status: it reaps its
/// own child. A sibling init (`Container::sibling_init`) is its parent's to reap: the launcher
/// only waits, through its pidfd, for it to have ended (at most [`END_WAIT_MS`]; it cannot
/// learn the status).
fn wait_end(pid: libc::pid_t, pidfd: Option<&OwnedFd>) -> Option<process::WaitStatus> {
    match process::waitpid(pid, false) {
        Ok(ended) => ended.map(|(_, s)| s),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
            if let Some(fd) = pidfd {
                let mut p = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
                let _ = crate::sys::fd::poll(&mut p, END_WAIT_MS);
            }
            None
        }
        Err(_) => None,
    }
}

/// Starts a sandbox for `spec`, waits for it and cleans up: what `fnbox run` does.
///
/// With a status channel, JSON lines are written there when the sandbox has started (its id,
/// init pid and cgroup directories), when the program is about to run (`exec`, with a
/// CLOCK_MONOTONIC timestamp) and when it has ended (how, exit code, memory peaks). With a
/// control channel, the caller can attach mounts, change limits and stop it (`control.rs`).
/// This is the interface the platform supervises instances through.
pub fn run(spec: &SandboxSpec, paths: &Paths, opts: WaitOptions, mut channels: Channels) -> Result<Outcome> {
    let began = std::time::Instant::now();
    let mut sb = match Sandbox::start(spec, paths) {
        Ok(sb) => sb,
        Err(e) => {
            channels.event(&Status::Ended(supervision::Ended {
                ending: supervision::Ending::SetupFailed,
                code: 125,
                signal: None,
                message: Some(e.to_string()),
                oom_kills: 0,
                memory_limit: 0,
                peak: Default::default(),
                duration_ms: began.elapsed().as_secs_f64() * 1000.0,
            }));
            return Err(e);
        }
    };
    channels.event(&Status::Started { id: sb.id.clone(), pid: sb.pid, cgroup: sb.cgroup.dirs() });
    sb.channels = channels;
    let outcome = sb.wait(opts);
    let cleaned = sb.cleanup();
    if let Ok(o) = &outcome {
        sb.channels.event(&Status::Ended(o.report(&spec.argv[0])));
    }
    cleaned?;
    outcome
}

/// `--stats`: peak memory, split into process memory and in-memory files.
pub fn stats_line(o: &Outcome) -> String {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    format!(
        "fnbox: stats: peak memory {:.1} MiB of {:.0} MiB (process memory {:.1} MiB, in-memory files {:.1} MiB), {:.3} s",
        mib(o.peak.total),
        mib(o.memory_limit),
        mib(o.peak.anon),
        mib(o.peak.in_memory_files),
        o.duration.as_secs_f64()
    )
}
