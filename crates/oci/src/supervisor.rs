//! The per-container supervisor: the process `create` leaves behind, beside the container's
//! init (the pid in `--pid-file`, which containerd's shim reaps). It holds the sandbox, serves
//! the control socket (start, signals, exec'd processes' listeners), forwards signals it
//! receives to the program, watches the init through its pidfd, records the end in the state
//! directory, removes the sandbox's cgroup and exits with the program's status.

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
        for pid in sb.cgroup().pids() {
            if Some(pid) != sb.sentry_pid() {
                let _ = process::kill(pid, sig);
            }
        }
        return Ok(());
    }
    let pid = sb.program_pid().ok_or("the container has no program")?;
    sb.signal_program(sig).map_err(|e| format!("cannot signal process {pid}: {e}"))
}

/// How the supervisor tells `create` that the container exists (or why it does not).
pub enum Report<'a> {
    /// `create`: a pipe to the waiting verb process.
    Pipe(OwnedFd),
    /// `run`: the supervisor is the verb process; errors are returned, and the container's
    /// pid (its init, this process's child) goes to the pid file once it exists.
    Inline { pid_file: Option<&'a Path> },
}

impl Report<'_> {
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
    let pid_file = match &report {
        Report::Inline { pid_file } => *pid_file,
        Report::Pipe(_) => None,
    };
    let written = |sb: &Sandbox| match pid_file {
        Some(p) => crate::state::write_pid_file(p, sb.pid).map_err(|e| e.to_string()),
        None => Ok(()),
    };
    let (mut sb, listener) = match built.and_then(|(sb, l)| written(&sb).map(|()| (sb, l))) {
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
    let listener = control::listen(&dir.socket()).map_err(|e| e.to_string())?;
    if start_now {
        sb.release().map_err(|e| e.to_string())?;
    }
    dir.update(|r| {
        r.status = if start_now { Recorded::Running } else { Recorded::Created };
        r.pid = pid;
        r.init_pid = sb.pid;
        r.init_start = crate::state::start_time(sb.pid).unwrap_or(0);
        r.sentry_pid = sb.sentry_pid();
        r.cgroup_dirs = sb.cgroup().dirs();
    })
    .map_err(|e| e.to_string())?;
    Ok((sb, listener))
}

/// Points this process's standard streams at `/dev/null`.
pub fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        fnbox_sandbox::sys::fd::redirect_std_streams(null.as_fd(), &[0, 1, 2]);
    }
}
