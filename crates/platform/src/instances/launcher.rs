//! The instance backend that spawns one `fnbox run` launcher per instance.
//!
//! The launcher reports on an inherited pipe (`--status-fd`): a `started` line with the
//! sandbox's init pid and cgroup, an `ended` line saying how it ended. Its stdout and stderr
//! (the program's) go to the function's logs. Every launcher gets `PR_SET_PDEATHSIG`, so a
//! `kill -9` of the server takes its sandboxes down; the next server start reaps their cgroups.

use super::{
    BoxFuture, ColdStart, EndCause, Ended, Instance, InstanceBackend, InstanceControl, InstanceSpec, Upstream,
};
use crate::error::{Context, Result};
use crate::function::FunctionConfig;
use crate::logs::{LogStore, Stream};
use crate::runtimes::{self, shell_quote, ENV_NAME, INSTANCE_DIR, READY_NAME, RUNTIME_DIR, SOCKET_NAME};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{oneshot, watch};

/// How long an instance may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped instance may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of stderr kept to explain an instance that failed to start.
const TAIL_LINES: usize = 8;

pub struct FnboxRun {
    /// The `fnbox` binary.
    pub exe: PathBuf,
    /// Where the runtime wrappers were installed.
    pub runtime_dir: PathBuf,
    /// Parent of the per-instance directories (socket, environment file).
    pub instances_dir: PathBuf,
    pub cgroup_parent: String,
}

/// The clock the wrappers report in (`time.monotonic()`, `process.hrtime()`).
fn monotonic_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGFPE => " (SIGFPE)",
        _ => "",
    }
}

/// Reads the launcher's `ended` line.
fn ended_from_status(v: &serde_json::Value) -> Ended {
    let n = |k: &str| v[k].as_i64().unwrap_or(0);
    let oom_kills = v["oom_kills"].as_u64().unwrap_or(0);
    let limit = v["memory_limit"].as_u64().unwrap_or(0) >> 20;
    let oom = || format!("out of memory (limit {limit} MiB)");
    let message = v["message"].as_str().unwrap_or("").trim_start_matches("fnbox: ").to_string();
    let (cause, message) = match v["ending"].as_str().unwrap_or("") {
        "oom" => (EndCause::OutOfMemory, oom()),
        _ if oom_kills > 0 => (EndCause::OutOfMemory, oom()),
        "exited" => (EndCause::Exited, format!("exited with code {}", n("code"))),
        "signaled" => {
            let s = n("signal") as i32;
            (EndCause::Signaled, format!("killed by signal {s}{}", signal_name(s)))
        }
        "timeout" => (EndCause::Signaled, "killed by its launcher's timeout".to_string()),
        _ => (EndCause::StartFailed, message),
    };
    Ended { cause, message, oom_kills }
}

/// Writes the environment file the instance sources before it starts (values never appear on a
/// command line, where `ps` would show them).
fn write_env_file(dir: &Path, env: &[(String, String)]) -> Result<()> {
    let mut text = String::new();
    for (k, v) in env {
        text.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    let path = dir.join(ENV_NAME);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .context(|| format!("cannot write {}", path.display()))
}

fn function_env(id: &str, name: &str, version: u64, c: &FunctionConfig) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = runtimes::runtime_env(c.runtime)
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(c.env.iter().chain(c.secrets.iter()).map(|(k, v)| (k.clone(), v.clone())))
        .collect();
    env.extend([
        ("FNBOX_SOCKET".into(), format!("{INSTANCE_DIR}/{SOCKET_NAME}")),
        ("FNBOX_FUNCTION_NAME".into(), name.to_string()),
        ("FNBOX_FUNCTION_VERSION".into(), version.to_string()),
        ("FNBOX_MEMORY_MB".into(), c.memory_mb.to_string()),
        ("FNBOX_INSTANCE_ID".into(), id.to_string()),
    ]);
    env
}

impl FnboxRun {
    /// Creates the instance directory with its environment file.
    fn prepare_dir(&self, id: &str, name: &str, version: u64, c: &FunctionConfig) -> Result<PathBuf> {
        let dir = self.instances_dir.join(id);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).context(|| format!("cannot create {}", dir.display()))?;
        write_env_file(&dir, &function_env(id, name, version, c))?;
        Ok(dir)
    }

    /// `fnbox run ...` for the function's program, which runs after sourcing the environment.
    /// `opts` are more `fnbox run` options.
    fn command(
        &self,
        c: &FunctionConfig,
        code: &Path,
        dir: &Path,
        opts: &[String],
        program: Vec<String>,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(["run", "--sandbox", &c.sandbox, "--memory", &c.memory_mb.to_string()]);
        cmd.arg("--bind").arg(format!("{}:/code:ro", code.display()));
        cmd.arg("--bind").arg(format!("{}:{RUNTIME_DIR}:ro", self.runtime_dir.display()));
        cmd.arg("--bind").arg(format!("{}:{INSTANCE_DIR}", dir.display()));
        cmd.args(["--workdir", "/code", "--cgroup-parent", &self.cgroup_parent]);
        cmd.args(opts).arg("--");
        cmd.args(["sh", "-c", &format!(". {INSTANCE_DIR}/{ENV_NAME} && exec \"$@\""), "fnbox-instance"]);
        cmd.args(program);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Loads the handler in a sandbox, as an instance would, and says why it cannot.
    pub async fn check_handler(&self, name: &str, c: &FunctionConfig, code: &Path) -> Result<(), String> {
        let id = format!("check-{name}-{}", crate::auth::random_hex(4));
        let dir = self.prepare_dir(&id, name, 0, c).map_err(|e| e.to_string())?;
        // The check must not hang a deploy.
        let opts = ["--timeout".to_string(), "60".to_string()];
        let mut cmd = self.command(c, code, &dir, &opts, runtimes::program(c.runtime, &c.handler, true));
        let out = cmd.kill_on_drop(true).output().await;
        let _ = std::fs::remove_dir_all(&dir);
        let out = out.map_err(|e| format!("cannot run {}: {e}", self.exe.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let reason = lines.iter().rev().find(|l| l.starts_with("fnbox: ")).map(|l| l.trim_start_matches("fnbox: "));
        let detail: Vec<&str> = lines.iter().filter(|l| !l.starts_with("fnbox: ")).copied().collect();
        let tail = detail[detail.len().saturating_sub(TAIL_LINES)..].join("\n");
        Err(match reason {
            Some(r) if tail.is_empty() => r.to_string(),
            Some(r) => format!("{r}\n{tail}"),
            None => format!("the handler check failed ({}):\n{tail}", out.status),
        })
    }

    async fn start_instance(&self, spec: &InstanceSpec) -> Result<Instance, Ended> {
        let t0 = Instant::now();
        let m0 = monotonic_s();
        let failed = |message: String| Ended { cause: EndCause::StartFailed, message, oom_kills: 0 };
        let dir = self
            .prepare_dir(&spec.id, &spec.function, spec.version, &spec.config)
            .map_err(|e| failed(e.to_string()))?;
        let (status_r, status_w) = pipe().map_err(|e| failed(format!("cannot create a pipe: {e}")))?;
        let status_fd = status_w.as_raw_fd();
        let program = runtimes::program(spec.config.runtime, &spec.config.handler, false);
        let mut cmd =
            self.command(&spec.config, &spec.code, &dir, &["--status-fd".into(), status_fd.to_string()], program);
        // SAFETY: the closure only makes async-signal-safe calls (prctl, setpgid, fcntl).
        unsafe {
            cmd.pre_exec(move || {
                // The server's death (even kill -9) kills the launcher, which takes its sandbox down.
                // The thread that spawns must live as long as the server: tokio's workers do.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                // Its own process group: a Ctrl-C meant for `fnbox serve` is not the program's.
                libc::setpgid(0, 0);
                libc::fcntl(status_fd, libc::F_SETFD, 0);
                Ok(())
            })
        };
        let mut child = cmd.spawn().map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            failed(format!("cannot start {}: {e}", self.exe.display()))
        })?;
        drop(status_w);
        let launcher_pid = child.id().unwrap_or(0) as i32;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        pipe_lines(child.stdout.take(), spec, Stream::Stdout, None);
        pipe_lines(child.stderr.take(), spec, Stream::Stderr, Some(tail.clone()));

        let (started_tx, started_rx) = oneshot::channel::<(i32, Vec<PathBuf>)>();
        let (ended_tx, ended_rx) = watch::channel::<Option<Ended>>(None);
        let status_task = tokio::spawn(read_status(status_r, started_tx));
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
            let _ = std::fs::remove_dir_all(&dir);
            let _ = ended_tx.send(Some(ended));
        });
        let control = LauncherControl { launcher_pid, sandbox_pid: Mutex::new(0), ended: ended_rx.clone() };
        let explain = |e: Ended| {
            let lines: Vec<String> = tail.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
            let why = lines.iter().rev().find(|l| l.starts_with("fnbox: ")).cloned();
            let message = match why {
                Some(w) => w.trim_start_matches("fnbox: ").to_string(),
                None if lines.is_empty() => format!("it {} before it was ready", e.message),
                None => format!("it {} before it was ready:\n{}", e.message, lines.join("\n")),
            };
            Ended {
                cause: if e.cause == EndCause::OutOfMemory { e.cause } else { EndCause::StartFailed },
                message,
                ..e
            }
        };
        let wait_end = |rx: watch::Receiver<Option<Ended>>| async move {
            let mut rx = rx;
            let e = rx.wait_for(|e| e.is_some()).await.ok().and_then(|e| e.clone());
            e.unwrap_or_else(|| failed("its launcher went away".into()))
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let (sandbox_pid, cgroup) = tokio::select! {
            s = started_rx => match s {
                Ok(s) => s,
                Err(_) => return Err(explain(wait_end(ended_rx.clone()).await)),
            },
            _ = tokio::time::sleep_until(deadline) => {
                control.kill();
                return Err(failed(format!("its sandbox did not start within {} s", START_TIMEOUT.as_secs())));
            }
        };
        *control.sandbox_pid.lock().unwrap_or_else(|p| p.into_inner()) = sandbox_pid;
        let acquired = t0.elapsed();
        let socket = self.instances_dir.join(&spec.id).join(SOCKET_NAME);
        let upstream = Upstream::new(socket.clone());
        let mut pause = Duration::from_micros(500);
        loop {
            if ended_rx.borrow().is_some() {
                return Err(explain(wait_end(ended_rx.clone()).await));
            }
            if socket.exists() && upstream.warm().await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                control.kill();
                return Err(failed(format!(
                    "it did not listen on $FNBOX_SOCKET within {} s (a binary function must serve HTTP there)",
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        let ready = t0.elapsed();
        let times: serde_json::Value = std::fs::read(self.instances_dir.join(&spec.id).join(READY_NAME))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let since = |k: &str| times[k].as_f64().map(|t| Duration::from_secs_f64((t - m0).max(0.0)));
        let cold = ColdStart {
            sandbox_acquired: acquired,
            process_started: since("started"),
            handler_imported: since("imported"),
            ready,
        };
        Ok(Instance::new(spec.id.clone(), upstream, cgroup, cold, ended_rx, Box::new(control)))
    }
}

impl InstanceBackend for FnboxRun {
    fn start<'a>(&'a self, spec: &'a InstanceSpec) -> BoxFuture<'a, Result<Instance, Ended>> {
        Box::pin(self.start_instance(spec))
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads the launcher's status lines; sends `started` on, returns `ended`.
async fn read_status(fd: OwnedFd, started: oneshot::Sender<(i32, Vec<PathBuf>)>) -> Option<Ended> {
    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
    let mut lines = BufReader::new(rx).lines();
    let mut started = Some(started);
    let mut ended = None;
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match v["event"].as_str() {
            Some("started") => {
                let pid = v["pid"].as_i64().unwrap_or(0) as i32;
                let dirs = v["cgroup"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|d| d.as_str().map(PathBuf::from)).collect())
                    .unwrap_or_default();
                if let Some(tx) = started.take() {
                    let _ = tx.send((pid, dirs));
                }
            }
            Some("ended") => ended = Some(ended_from_status(&v)),
            _ => {}
        }
    }
    ended
}

/// Copies an output stream of the instance into the function's logs, line by line.
fn pipe_lines(
    out: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
    spec: &InstanceSpec,
    stream: Stream,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let Some(out) = out else {
        return;
    };
    let logs: Arc<LogStore> = spec.logs.clone();
    let (function, id) = (spec.function.clone(), spec.id.clone());
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(t) = &tail {
                let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line.clone());
            }
            logs.push(&function, &id, stream, line);
        }
    });
}

struct LauncherControl {
    launcher_pid: i32,
    sandbox_pid: Mutex<i32>,
    ended: watch::Receiver<Option<Ended>>,
}

impl LauncherControl {
    fn signal(&self, pid: i32, sig: i32) {
        // The launcher is our child and not yet reaped while `ended` is empty, so its pid (and
        // its sandbox's init, which dies with it) cannot have been reused.
        if pid > 0 && self.ended.borrow().is_none() {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Kills the launcher if it has not ended after `after`.
    fn kill_later(&self, after: Duration) {
        let (pid, ended) = (self.launcher_pid, self.ended.clone());
        tokio::spawn(async move {
            let mut rx = ended.clone();
            if tokio::time::timeout(after, rx.wait_for(|e| e.is_some())).await.is_err() {
                LauncherControl { launcher_pid: pid, sandbox_pid: Mutex::new(0), ended }.signal(pid, libc::SIGKILL);
            }
        });
    }
}

impl InstanceControl for LauncherControl {
    fn kill(&self) {
        // Killing the sandbox's init ends its pid namespace; the launcher then cleans up its
        // cgroup and reports. Killing the launcher too would leave the cgroup for later.
        let init = *self.sandbox_pid.lock().unwrap_or_else(|p| p.into_inner());
        if init > 0 {
            self.signal(init, libc::SIGKILL);
            self.kill_later(Duration::from_secs(3));
        } else {
            self.signal(self.launcher_pid, libc::SIGKILL);
        }
    }

    fn stop(&self) {
        self.signal(self.launcher_pid, libc::SIGTERM);
        self.kill_later(STOP_GRACE);
    }
}
