//! The per-container supervisor: the process `create` leaves behind (its pid is the one in
//! `--pid-file`, which containerd's shim waits on). It holds the sandbox, serves the control
//! socket (start, signals, exec'd processes' listeners), forwards signals it receives to the
//! program, records the end in the state directory, removes the sandbox's cgroup and exits
//! with the program's status.

use crate::control::{self, Request};
use crate::log::Log;
use crate::state::{Recorded, StateDir};
use fnbox_sandbox::launch::{Sandbox, WaitOptions, Watcher};
use fnbox_sandbox::spec::SandboxSpec;
use fnbox_sandbox::sys::process;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

struct Control<'a> {
    dir: &'a StateDir,
    listener: OwnedFd,
    log: &'a Log,
    /// The program was let go: a second `start` is an error, as in runc (the supervisor
    /// answers it, so two `start`s at once cannot both pass the verb's check).
    started: bool,
}

impl Watcher for Control<'_> {
    fn fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    fn ready(&mut self, sb: &mut Sandbox) -> bool {
        let Some((conn, req, fds)) = control::accept(self.listener.as_fd()) else { return false };
        let op = req.as_ref().map_or("?", Request::op);
        let r = match req {
            Err(e) => Err(e),
            Ok(Request::Start {}) if self.started => Err("the container was already started".into()),
            Ok(Request::Start {}) => {
                self.started = true;
                sb.release().map_err(|e| e.to_string()).and_then(|()| {
                    self.dir.update(|r| r.status = Recorded::Running).map(drop).map_err(|e| e.to_string())
                })
            }
            Ok(Request::Kill { signal: sig, all }) => {
                if sig == libc::SIGKILL {
                    // The verb returns once the signal is sent, as runc's does: the init's end
                    // takes every process of its pid namespace with it. The rest of the cgroup
                    // (v2's Sentry) is then killed, and waited for, after the answer.
                    sb.signal(libc::SIGKILL);
                    control::reply(&conn, Ok(()));
                    leave_cgroup(sb, self.log);
                    sb.kill();
                    return false;
                }
                signal(sb, sig, all)
            }
            Ok(Request::Listener {}) => match fds.first() {
                Some(fd) => sb.add_listener(fd).map_err(|e| e.to_string()),
                None => Err("no listener was sent".into()),
            },
            Ok(Request::Stop {}) => {
                control::reply(&conn, Ok(()));
                return true;
            }
        };
        if let Err(e) = &r {
            self.log.warn(&format!("{op}: {e}"));
        }
        control::reply(&conn, r);
        false
    }
}

/// `kill` of any signal but SIGKILL (which ends the whole sandbox): to the program, or with
/// `all` to every process of the container (never to the Sentry serving them).
fn signal(sb: &Sandbox, sig: i32, all: bool) -> Result<(), String> {
    if all {
        let me = std::process::id() as i32;
        for pid in sb.cgroup().pids() {
            if Some(pid) != sb.sentry_pid() && pid != me {
                let _ = process::kill(pid, sig);
            }
        }
        return Ok(());
    }
    let pid = sb.program_pid().ok_or("the container has no program")?;
    process::kill(pid, sig).map_err(|e| format!("cannot signal process {pid}: {e}"))
}

/// How the supervisor tells `create` that the container exists (or why it does not).
pub enum Report {
    /// `create`: a pipe to the waiting verb process.
    Pipe(OwnedFd),
    /// `run`: the supervisor is the verb process; errors are returned.
    None,
}

impl Report {
    fn send(&self, r: &Result<(), String>) {
        if let Self::Pipe(fd) = self {
            let mut m = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("E{e}"),
            };
            // One write of at most PIPE_BUF bytes arrives whole (see `read_message`).
            if m.len() > libc::PIPE_BUF {
                let mut end = libc::PIPE_BUF;
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                m.truncate(end);
            }
            let _ = fnbox_sandbox::sys::fs::write_all(fd.as_fd(), m.as_bytes());
        }
    }
}

/// Builds the container and, once its program is held, serves it until it ends. Returns the
/// exit status (the program's; 125 when the container could not be built, with the reason).
pub fn run(dir: &StateDir, spec: &SandboxSpec, report: Report, start_now: bool, log: &Log) -> Result<i32, String> {
    let paths = fnbox_sandbox::Paths::from_env();
    let built = build(dir, spec, start_now, &paths);
    let (mut sb, listener) = match built {
        Ok(b) => b,
        Err(e) => {
            report.send(&Err(e.clone()));
            let _ = dir.update(|r| r.status = Recorded::Stopped);
            return Err(e);
        }
    };
    report.send(&Ok(()));
    if matches!(report, Report::Pipe(_)) {
        // The program has its standard streams; the detached supervisor must not hold them
        // open (the shim waits for their end), and speaks through `--log` only.
        detach_stdio();
    }
    drop(report);
    let mut ctl = Control { dir, listener, log, started: start_now };
    let opts = WaitOptions { forward_signals: true, sample_memory: false };
    let outcome = sb.wait_with(opts, Some(&mut ctl));
    leave_cgroup(&sb, log);
    let cleaned = sb.cleanup();
    let _ = std::fs::remove_file(dir.socket());
    let code = match &outcome {
        Ok(o) => {
            if let Some(m) = o.message(&spec.argv[0]) {
                log.warn(&m);
            }
            o.code
        }
        Err(e) => {
            log.error(&format!("waiting for the container: {e}"));
            125
        }
    };
    if let Err(e) = cleaned {
        log.error(&format!("cleaning up the container: {e}"));
    }
    let _ = dir.update(|r| {
        r.status = Recorded::Stopped;
        r.exit_code = Some(code);
    });
    Ok(code)
}

fn build(
    dir: &StateDir,
    spec: &SandboxSpec,
    start_now: bool,
    paths: &fnbox_sandbox::Paths,
) -> Result<(Sandbox, OwnedFd), String> {
    let mut sb = Sandbox::start(spec, paths).map_err(|e| e.to_string())?;
    let pid = sb.wait_ready().map_err(|e| e.to_string())?;
    enter_namespaces(sb.pid)?;
    let listener = control::listen(&dir.socket()).map_err(|e| e.to_string())?;
    if start_now {
        sb.release().map_err(|e| e.to_string())?;
    }
    dir.update(|r| {
        r.status = if start_now { Recorded::Running } else { Recorded::Created };
        r.pid = pid;
        r.init_pid = sb.pid;
        r.sentry_pid = sb.sentry_pid();
        r.cgroup_dirs = sb.cgroup().dirs();
    })
    .map_err(|e| e.to_string())?;
    enter_cgroup(&sb);
    Ok((sb, listener))
}

/// The shim finds a container's cgroup through the pid it waits on, this process: for metrics
/// (`ctr task metrics`, CRI's stats), OOM events and `update`. So the supervisor lives in the
/// container's cgroup while the container runs, as runc's init does, and steps out before it
/// removes the cgroup. Best effort: a failure costs the shim its view of the cgroup, nothing
/// else. Its score keeps the OOM killer on the container's own processes where the host allows.
fn enter_cgroup(sb: &Sandbox) {
    let me = std::process::id() as i32;
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    for dir in sb.cgroup().dirs() {
        let _ = std::fs::write(dir.join("cgroup.procs"), me.to_string());
    }
}

/// Moves this process back to each hierarchy's root cgroup.
fn leave_cgroup(sb: &Sandbox, log: &Log) {
    let me = std::process::id().to_string();
    let depth = sb
        .spec
        .container
        .as_ref()
        .and_then(|c| c.cgroup_path.as_deref())
        .map_or(0, |p| Path::new(p.trim_matches('/')).components().count());
    for dir in sb.cgroup().dirs() {
        let Some(root) = dir.ancestors().nth(depth) else { continue };
        if let Err(e) = std::fs::write(root.join("cgroup.procs"), &me) {
            log.warn(&format!("cannot leave the container's cgroup {}: {e}", dir.display()));
        }
    }
}

/// The shim knows the container by the supervisor's pid (the one it waits on), and tools
/// reach the container's namespaces through it: `ctr run --with-ns network:/proc/PID/ns/net`
/// puts a second container in the first one's network, as a pod does. So the supervisor moves
/// into the sandbox's network, IPC and UTS namespaces; it needs none of the host's (its
/// sockets are paths, its files the host's mount namespace's).
fn enter_namespaces(init: i32) -> Result<(), String> {
    for (name, flag) in [("net", libc::CLONE_NEWNET), ("ipc", libc::CLONE_NEWIPC), ("uts", libc::CLONE_NEWUTS)] {
        let path = format!("/proc/{init}/ns/{name}");
        let fd = fnbox_sandbox::sys::openat(None, Path::new(&path), libc::O_RDONLY | libc::O_CLOEXEC, 0)
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        fnbox_sandbox::sys::process::setns(fd.as_fd(), flag)
            .map_err(|e| format!("cannot enter the container's {name} namespace: {e}"))?;
    }
    Ok(())
}

/// Points this process's standard streams at `/dev/null`.
pub fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        fnbox_sandbox::sys::fd::redirect_std_streams(null.as_fd(), &[0, 1, 2]);
    }
}
