//! Starting sandboxes: one `fnbox run` launcher per sandbox, supervised through three channels
//! and handed its socket.
//!
//! * `--status-fd` (a pipe): the `started` line (init pid, cgroup), the `exec` line (the
//!   program's start, CLOCK_MONOTONIC) and the `ended` line (how it ended).
//! * `--control-fd` (a socket, [`SandboxControl`]): attach a directory, stop. The launcher
//!   stops its sandbox when this socket closes, so a sandbox lives as long as its [`Launched`]
//!   handle, or the instance it became, holds the socket.
//! * stdin, for the Python and Node runtimes: a socket to the runtime's zygote ([`Zygote`]).
//! * `--listen-fd`: the instance's socket, made here and bound in the sandbox's directory on
//!   the host, which no sandbox sees: the program gets it as descriptor 3 and listens on it,
//!   and the gateway connects to a path only fnbox can change.
//!
//! The environment (secrets included) reaches `fnbox run` as `--env-file` (NUL-separated
//! records) on a memory file it inherits: never on a command line, never on disk. The
//! program's stdout and stderr go to the function's logs once the sandbox is bound to one
//! ([`LogRoute`]), to the server's stderr before. Each sandbox takes its writable layer's
//! share of the [`DiskBudget`] before it starts. Every launcher gets `PR_SET_PDEATHSIG`, so a
//! `kill -9` of the server takes its sandboxes down; the next server start reaps their cgroups.

use super::control::SandboxControl;
use super::disk_budget::{DiskBudget, DiskShare, LAYER_BYTES};
use super::log_route::LogRoute;
use super::zygote::channel::Zygote;
use super::{EndCause, Ended};
use crate::logs::{LogStore, Stream};
use crate::runtimes::{RUNTIME_DIR, SOCKET_NAME};
use fnbox_sandbox::net::{Cidr, Network};
use fnbox_sandbox::spec::SandboxKind;
use fnbox_sandbox::supervision::{self as status, Status};
use fnbox_sandbox::sys;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{oneshot, watch};

/// The longest a sandbox runs without its CPU quota: a pre-warmed sandbox that is not claimed
/// (or a program that never says it is ready) gets its quota then anyway.
pub const CPU_BOOST_WINDOW: Duration = Duration::from_secs(10);
/// How long a sandbox may take to report that it started.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How sandboxes are launched: the same for every instance and pre-warmed sandbox.
pub struct Launcher {
    /// The `fnbox` binary.
    pub exe: PathBuf,
    /// Where the runtime wrappers were installed (bound read-only at [`RUNTIME_DIR`]).
    pub runtime_dir: PathBuf,
    /// Parent of the per-sandbox directories, which hold their sockets ([`SOCKET_NAME`]).
    /// Only fnbox uses them: no sandbox sees them.
    pub instances_dir: PathBuf,
    pub cgroup_parent: String,
    pub logs: Arc<LogStore>,
    /// Private ranges egress sandboxes may reach (`fnbox serve --allow-net`).
    pub allow_net: Vec<Cidr>,
    /// The disk all the sandboxes' writable layers may take.
    pub disk: Arc<DiskBudget>,
}

/// One sandbox to launch.
pub struct LaunchSpec {
    pub kind: SandboxKind,
    pub memory_mb: u64,
    /// Bound copy-on-write at `/code` from the start (a pre-warmed sandbox gets it attached
    /// later): writable, the writes in the sandbox's own layer.
    pub code: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub network: Network,
    pub program: Vec<String>,
    /// The program is a runtime zygote: its stdin is a socket to us.
    pub zygote: bool,
    /// Killed after this long (deploy-time checks).
    pub timeout: Option<Duration>,
    /// Start without the CPU quota (the start-up boost), until [`Launched::end_boost`] or
    /// [`CPU_BOOST_WINDOW`]: only for programs that run none of the function's code before
    /// they are handed it (docs/architecture.md, "Cold starts in bursts").
    pub cpu_boost: Boost,
    /// Names the sandbox's directory (`LABEL-RANDOM`).
    pub label: String,
    pub route: LogRoute,
}

/// A sandbox's start-up CPU boost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boost {
    /// Its tier's CPU quota from the start.
    Off,
    /// No quota until the function's code runs: a start a request waits for.
    Foreground,
    /// The same at the lowest CPU weight: a pre-warmed sandbox, which nothing waits for yet.
    Background,
}

/// A running sandbox and its channels.
pub struct Launched {
    /// Its directory on the host, which holds its socket ([`Launched::socket`]).
    pub dir: PathBuf,
    /// Its cgroup directories, for memory figures.
    pub cgroup: Vec<PathBuf>,
    pub control: SandboxControl,
    pub ended: watch::Receiver<Option<Ended>>,
    /// The runtime zygote's socket, until it is bound.
    pub zygote: Option<Zygote>,
    pub route: LogRoute,
    exec_ns: Arc<AtomicU64>,
    /// Its layer's part of the disk budget.
    pub disk: Arc<DiskShare>,
    /// Started with the CPU boost, not yet ended by us.
    boosted: bool,
}

impl Launched {
    /// The socket its program listens on: made by fnbox in a directory no sandbox sees.
    pub fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET_NAME)
    }

    /// When the program was executed (CLOCK_MONOTONIC seconds), once the launcher said so.
    pub fn exec_at(&self) -> Option<f64> {
        let ns = self.exec_ns.load(Ordering::Relaxed);
        (ns > 0).then(|| ns as f64 / 1e9)
    }

    pub fn has_ended(&self) -> bool {
        self.ended.borrow().is_some()
    }

    /// Attaches the function's code at `/code` (copy-on-write) in a pre-warmed sandbox, and
    /// ends its CPU boost in the same exchange (see [`Self::end_boost`]).
    pub async fn attach_code(&mut self, code: &Path) -> Result<(), String> {
        self.control.attach(code, "/code", self.boosted).await?;
        self.boosted = false;
        Ok(())
    }

    /// Ends the start-up CPU boost: once this returns, the sandbox runs under its tier's CPU
    /// quota. Called before the function's code is handed to it; a sandbox whose quota
    /// cannot be applied must not get it (the error).
    pub async fn end_boost(&mut self) -> Result<(), Ended> {
        if !self.boosted {
            return Ok(());
        }
        match self.control.throttle().await {
            Ok(()) => {
                self.boosted = false;
                Ok(())
            }
            Err(e) => Err(start_failed(format!("its CPU quota could not be applied: {e}"))),
        }
    }

    /// Memory charged to the sandbox's cgroup now, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        cgroup_memory(&self.cgroup)
    }

    pub async fn wait_ended(&self) -> Ended {
        wait_ended(self.ended.clone()).await
    }

    /// How it ended, in the words of a failed start: the launcher's own reason if it gave
    /// one, else the end and the last lines of output.
    pub async fn start_failure(&self) -> Ended {
        explain(self.wait_ended().await, &self.route.tail())
    }

    /// Its program failed to talk (`why`): how the sandbox ended explains it best, if it ends
    /// soon; otherwise it is stopped (by dropping it) and `why` is the reason.
    pub async fn failure(&self, why: String) -> Ended {
        match tokio::time::timeout(END_GRACE, self.start_failure()).await {
            Ok(e) => e,
            Err(_) => start_failed(why),
        }
    }
}

/// How long a sandbox whose program stopped talking may take to report its end.
const END_GRACE: Duration = Duration::from_secs(2);

/// Memory charged to a cgroup now (cgroup v2 or v1), in bytes.
pub fn cgroup_memory(dirs: &[PathBuf]) -> u64 {
    for d in dirs {
        for f in ["memory.current", "memory.usage_in_bytes"] {
            if let Ok(s) = std::fs::read_to_string(d.join(f)) {
                return s.trim().parse().unwrap_or(0);
            }
        }
    }
    0
}

/// The clock the wrappers and the launcher report in (`time.monotonic()`, `process.hrtime()`).
pub fn monotonic_s() -> f64 {
    fnbox_sandbox::sys::monotonic().as_secs_f64()
}

pub fn start_failed(message: String) -> Ended {
    Ended { cause: EndCause::StartFailed, message, oom_kills: 0 }
}

async fn wait_ended(mut rx: watch::Receiver<Option<Ended>>) -> Ended {
    let e = rx.wait_for(|e| e.is_some()).await.ok().and_then(|e| e.clone());
    e.unwrap_or_else(|| start_failed("its launcher went away".into()))
}

/// A failed start, explained by the launcher's `fnbox: ...` line or the output's last lines.
fn explain(e: Ended, tail: &[String]) -> Ended {
    let why = tail.iter().rev().find(|l| l.starts_with("fnbox: "));
    let message = match why {
        Some(w) => w.trim_start_matches("fnbox: ").to_string(),
        None if tail.is_empty() => format!("it {} before it was ready", e.message),
        None => format!("it {} before it was ready:\n{}", e.message, tail.join("\n")),
    };
    Ended { cause: if e.cause == EndCause::OutOfMemory { e.cause } else { EndCause::StartFailed }, message, ..e }
}

fn signal_name(s: i32) -> String {
    fnbox_sandbox::sys::signal::name(s).map(|n| format!(" (SIG{n})")).unwrap_or_default()
}

/// Reads the launcher's `ended` line.
fn ended_from_status(e: &status::Ended) -> Ended {
    let oom = || format!("out of memory (limit {} MiB)", e.memory_limit >> 20);
    let message = e.message.as_deref().unwrap_or("").trim_start_matches("fnbox: ").to_string();
    let (cause, message) = match e.ending {
        status::Ending::Oom => (EndCause::OutOfMemory, oom()),
        _ if e.oom_kills > 0 => (EndCause::OutOfMemory, oom()),
        status::Ending::Exited => (EndCause::Exited(e.code), format!("exited with code {}", e.code)),
        status::Ending::Signaled => {
            let s = e.signal.unwrap_or(e.code - 128);
            (EndCause::Signaled, format!("killed by signal {s}{}", signal_name(s)))
        }
        status::Ending::Timeout => (EndCause::Signaled, "killed by its launcher's timeout".to_string()),
        status::Ending::Stopped => (EndCause::Signaled, "stopped by fnbox".to_string()),
        status::Ending::ExecFailed | status::Ending::SetupFailed => (EndCause::StartFailed, message),
    };
    Ended { cause, message, oom_kills: e.oom_kills }
}

impl Launcher {
    /// Starts `fnbox run` and returns once its sandbox exists (its program may still be
    /// starting), or how it failed.
    pub async fn launch(&self, spec: LaunchSpec) -> Result<Launched, Ended> {
        let share = Arc::new(self.disk.take(LAYER_BYTES).map_err(start_failed)?);
        let dir = self.instances_dir.join(format!("{}-{}", spec.label, crate::auth::random_hex(4)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| start_failed(format!("cannot create {}: {e}", dir.display())))?;
        let launched = self.spawn(&spec, &dir, share).await;
        if launched.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        launched
    }

    /// `fnbox run` for the instance, given the descriptors it inherits: its status pipe, its
    /// control socket, its environment file and its listening socket, in that order (and the
    /// zygote's socket as its standard input).
    fn command(
        &self,
        spec: &LaunchSpec,
        inherited: [std::os::fd::RawFd; 4],
        zygote: Option<UnixStream>,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(["run", "--sandbox", spec.kind.as_str(), "--memory", &spec.memory_mb.to_string()]);
        if let Some(code) = &spec.code {
            // Writable per instance, copy-on-write: the stored code is never written.
            cmd.arg("--bind").arg(format!("{}:/code:cow", code.display()));
        }
        cmd.arg("--bind").arg(format!("{}:{RUNTIME_DIR}:ro", self.runtime_dir.display()));
        cmd.args(["--workdir", if spec.code.is_some() { "/code" } else { "/" }]);
        cmd.args(["--cgroup-parent", &self.cgroup_parent]);
        cmd.args(["--network", &spec.network.to_string()]);
        if spec.network == Network::Egress {
            for c in &self.allow_net {
                cmd.arg("--allow-net").arg(c.to_string());
            }
        }
        cmd.arg("--status-fd").arg(inherited[0].to_string());
        cmd.arg("--control-fd").arg(inherited[1].to_string());
        cmd.arg("--env-file").arg(format!("/proc/self/fd/{}", inherited[2]));
        cmd.arg("--listen-fd").arg(inherited[3].to_string());
        if let Some(t) = spec.timeout {
            cmd.arg("--timeout").arg(t.as_secs().to_string());
        }
        if spec.cpu_boost != Boost::Off {
            cmd.arg("--cpu-boost").arg(CPU_BOOST_WINDOW.as_secs().to_string());
        }
        if spec.cpu_boost == Boost::Background {
            cmd.arg("--cpu-boost-background");
        }
        cmd.arg("--").args(&spec.program);
        match zygote {
            Some(s) => cmd.stdin(Stdio::from(OwnedFd::from(s))),
            None => cmd.stdin(Stdio::null()),
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: the closure only makes async-signal-safe calls (prctl, setpgid, fcntl).
        unsafe {
            cmd.pre_exec(move || {
                // The server's death (even kill -9) kills the launcher, which takes its sandbox down.
                // The thread that spawns must live as long as the server: tokio's workers do.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                // Its own process group: a Ctrl-C meant for `fnbox serve` is not the program's.
                libc::setpgid(0, 0);
                for fd in inherited {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                Ok(())
            })
        };
        cmd
    }

    /// `share` is held by the task that waits for the launcher, until it has exited, and by
    /// the [`Launched`].
    async fn spawn(&self, spec: &LaunchSpec, dir: &Path, share: Arc<DiskShare>) -> Result<Launched, Ended> {
        let io = |what: &str, e: std::io::Error| start_failed(format!("cannot create {what}: {e}"));
        let (status_r, status_w) = sys::fd::pipe().map_err(|e| io("a pipe", e))?;
        let (control, control_theirs) = UnixStream::pair().map_err(|e| io("a socket pair", e))?;
        let (zygote, zygote_theirs) = match spec.zygote {
            true => UnixStream::pair().map(|(a, b)| (Some(a), Some(b))).map_err(|e| io("a socket pair", e))?,
            false => (None, None),
        };
        let env = env_memfd(&spec.env).map_err(|e| io("the environment file", e))?;
        let listen = bound_socket(dir).map_err(|e| io("the instance's socket", e))?;
        let inherited = [status_w.as_raw_fd(), control_theirs.as_raw_fd(), env.as_raw_fd(), listen.as_raw_fd()];

        let mut cmd = self.command(spec, inherited, zygote_theirs);
        let mut child = cmd.spawn().map_err(|e| start_failed(format!("cannot start {}: {e}", self.exe.display())))?;
        drop((status_w, control_theirs, env, listen));
        let launcher_pid = child.id().unwrap_or(0) as i32;
        spec.route.copy_from(child.stdout.take(), Stream::Stdout);
        spec.route.copy_from(child.stderr.take(), Stream::Stderr);

        let (started_tx, started_rx) = oneshot::channel::<Vec<PathBuf>>();
        let (ended_tx, ended_rx) = watch::channel::<Option<Ended>>(None);
        let exec_ns = Arc::new(AtomicU64::new(0));
        let status_task = tokio::spawn(read_status(status_r, started_tx, exec_ns.clone()));
        let cleanup = dir.to_path_buf();
        let held = share.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let reported = status_task.await.ok().flatten();
            let ended = reported.unwrap_or_else(|| Ended {
                cause: EndCause::Signaled,
                message: format!(
                    "its launcher ended without a report ({})",
                    status.map(|s| s.to_string()).unwrap_or_default()
                ),
                oom_kills: 0,
            });
            let _ = std::fs::remove_dir_all(&cleanup);
            // The launcher has exited: its layer is gone.
            drop(held);
            let _ = ended_tx.send(Some(ended));
        });
        let control = SandboxControl::new(control, launcher_pid, ended_rx.clone())
            .map_err(|e| start_failed(format!("cannot watch the control socket: {e}")))?;
        let zygote = match zygote {
            Some(z) => Some(Zygote::new(z).map_err(|e| start_failed(format!("cannot watch the zygote socket: {e}")))?),
            None => None,
        };
        let mut launched = Launched {
            dir: dir.to_path_buf(),
            cgroup: Vec::new(),
            control,
            ended: ended_rx,
            zygote,
            route: spec.route.clone(),
            exec_ns,
            disk: share,
            boosted: spec.cpu_boost != Boost::Off,
        };
        tokio::select! {
            s = started_rx => match s {
                Ok(cgroup) => launched.cgroup = cgroup,
                Err(_) => return Err(launched.start_failure().await),
            },
            _ = tokio::time::sleep(START_TIMEOUT) => {
                return Err(start_failed(format!("its sandbox did not start within {} s", START_TIMEOUT.as_secs())));
            }
        }
        Ok(launched)
    }
}

/// The environment in a memory file, for `--env-file /proc/self/fd/N`, in the one encoding
/// of env files ([`fnbox_sandbox::spec::encode_env_file`]: no value can start a variable).
fn env_memfd(env: &[(String, String)]) -> std::io::Result<OwnedFd> {
    let bytes = fnbox_sandbox::spec::encode_env_file(env).map_err(std::io::Error::other)?;
    let fd = sys::fs::memfd(c"fnbox-env")?;
    std::io::Write::write_all(&mut std::fs::File::from(fd.try_clone()?), &bytes)?;
    Ok(fd)
}

/// A Unix stream socket bound at `dir`/[`SOCKET_NAME`], not listening: the program listens
/// on it, and until it does the gateway's connections are refused (which is how a binary's
/// readiness shows). Bound through `/proc/self/fd/N/`: the kernel records the path as given,
/// and `getsockname` in the sandbox shows that, not where the data directory is.
fn bound_socket(dir: &Path) -> std::io::Result<OwnedFd> {
    let dirfd = std::fs::File::open(dir)?;
    let sock = sys::net::unix_socket(libc::SOCK_STREAM)?;
    let path = format!("/proc/self/fd/{}/{SOCKET_NAME}", dirfd.as_raw_fd());
    sys::net::bind_unix(sock.as_fd(), Path::new(&path))?;
    Ok(sock)
}

/// Reads the launcher's status lines: sends `started` on, records `exec`, returns `ended`. A
/// line that cannot be read is reported on the server's stderr and, if no `ended` line
/// follows, is how the sandbox is said to have ended.
async fn read_status(fd: OwnedFd, started: oneshot::Sender<Vec<PathBuf>>, exec_ns: Arc<AtomicU64>) -> Option<Ended> {
    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
    let mut lines = BufReader::new(rx).lines();
    let mut started = Some(started);
    let mut ended = None;
    let mut unreadable = None;
    while let Ok(Some(line)) = lines.next_line().await {
        match status::STATUS.decode::<Status>(line.as_bytes()) {
            Ok(Status::Started { cgroup, .. }) => {
                if let Some(tx) = started.take() {
                    let _ = tx.send(cgroup);
                }
            }
            Ok(Status::Exec { mono_ns }) => exec_ns.store(mono_ns, Ordering::Relaxed),
            Ok(Status::Ended(e)) => ended = Some(ended_from_status(&e)),
            Err(e) => {
                eprintln!("fnbox serve: {e}");
                unreadable.get_or_insert_with(|| start_failed(e.to_string()));
            }
        }
    }
    ended.or(unreadable)
}
