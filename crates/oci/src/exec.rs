//! `exec`: a new process in a running container, described by an OCI process JSON.

use crate::error::{Error, IoContext, Result};
use crate::state::{Record, StateDir, Status};
use crate::{config, control, Globals};
use fnbox_sandbox::launch::enter::{self, ExecSpec, Target};
use fnbox_sandbox::spec::ProcessSettings;
use fnbox_sandbox::sys::{self, process, signal};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

/// The process to start: an OCI process JSON file (`-` for standard input), or a command
/// given on the line, which runs as the container's own process does (its user, groups,
/// capabilities, limits, environment and working directory), as with runc.
pub enum ProcessFrom<'a> {
    File(&'a Path),
    Command { args: Vec<String>, tty: bool },
}

/// The file's process, read and checked.
fn load(path: &Path) -> Result<ExecSpec> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).what(|| "cannot read the process from standard input".into())?
    } else {
        std::fs::read_to_string(path).what(|| format!("cannot read the process file {}", path.display()))?
    };
    let p: config::Process = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{} is not a valid OCI process: {e}", path.display())))?;
    Ok(ExecSpec {
        settings: crate::convert::process_settings(&p)?,
        cwd: PathBuf::from(if p.cwd.is_empty() { "/" } else { &p.cwd }),
        argv: p.args,
        env: p.env,
        console_socket: None,
    })
}

/// `args` as the container's own process: what `create` recorded of config.json's `process`.
fn like_container(r: &Record, args: &[String], tty: bool) -> Result<ExecSpec> {
    let c =
        r.spec.container.as_deref().ok_or_else(|| {
            Error::Bundle(format!("the state of {} records no container: delete it with --force", r.id))
        })?;
    Ok(ExecSpec {
        argv: args.to_vec(),
        env: r.spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: r.spec.workdir.clone(),
        settings: ProcessSettings { terminal: tty, ..c.process.clone() },
        console_socket: None,
    })
}

pub struct ExecArgs<'a> {
    pub id: &'a str,
    pub process: ProcessFrom<'a>,
    pub detach: bool,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
}

/// Starts the process. Detached, returns once it runs (a subreaper above adopts it, as
/// containerd's shim does); otherwise waits for it and returns its exit status.
pub fn exec(g: &Globals, a: &ExecArgs) -> Result<i32> {
    let dir = StateDir::open(&g.root, a.id)?;
    let r = dir.read()?;
    let status = r.status();
    if status != Status::Running {
        return Err(Error::NotRunning { id: a.id.into(), status: status.as_str().into() });
    }
    let mut spec = match &a.process {
        ProcessFrom::File(path) => load(path)?,
        ProcessFrom::Command { args, tty } => like_container(&r, args, *tty)?,
    };
    if spec.argv.is_empty() {
        return Err(Error::Usage("the process has no args: give the program to run".into()));
    }
    spec.console_socket = a.console_socket.map(Path::to_path_buf);
    if spec.settings.terminal && a.console_socket.is_none() {
        return Err(Error::Usage("the process asks for a terminal: pass --console-socket".into()));
    }
    let container = r.spec.container.as_deref();
    // The init, pinned before it is identified by its start time (see `Target::init`).
    if r.init_start == 0 {
        return Err(Error::Usage(format!(
            "container {} has no start time recorded for its init, so exec cannot tell it from a process that took its pid: recreate the container",
            a.id
        )));
    }
    let stopped = || Error::NotRunning { id: a.id.into(), status: Status::Stopped.as_str().into() };
    let init = match process::pidfd_open(r.init_pid) {
        Ok(fd) if crate::state::alive(r.init_pid, r.init_start) => fd,
        Ok(_) => return Err(stopped()),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(stopped()),
        Err(e) => return Err(Error::Io { what: "cannot open a pidfd of the container's init".into(), source: e }),
    };
    let target = Target {
        init_pid: r.init_pid,
        init,
        cgroup_dirs: r.cgroup_dirs.clone(),
        kind: r.kind,
        seccomp: container.and_then(|c| c.seccomp.clone()),
    };
    if !a.detach {
        // The new process is adopted by this one once its starter exits.
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0).what(|| "prctl".into())?;
    }
    let socket = dir.socket();
    let relay = |fd: &std::os::fd::OwnedFd| {
        control::request(&socket, &control::Request::Listener {}, Some(fd.as_fd()))
            .map_err(|e| fnbox_sandbox::Error::Setup(e.to_string()))
    };
    let pid = enter::spawn(&target, &spec, &relay)?;
    if let Some(f) = a.pid_file {
        crate::state::write_pid_file(f, pid)?;
    }
    if a.detach {
        return Ok(0);
    }
    wait_forwarding(pid)
}

/// Waits for `pid` (a child by adoption), passing on the signals this process receives.
fn wait_forwarding(pid: i32) -> Result<i32> {
    let set = signal::SigSet::of(signal::FORWARDED);
    signal::set_mask(libc::SIG_BLOCK, &set).what(|| "cannot block signals".into())?;
    let sigfd = signal::signalfd(&set).what(|| "signalfd".into())?;
    let pidfd = process::pidfd_open(pid).what(|| format!("cannot watch process {pid}"))?;
    loop {
        let mut fds = [
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        let _ = fnbox_sandbox::sys::fd::poll(&mut fds, -1);
        while let Ok(Some(sig)) = signal::read_signalfd(&sigfd) {
            let _ = process::kill(pid, sig);
        }
        if fds[0].revents != 0 {
            break;
        }
    }
    // Reap it, and any starter left behind.
    let mut code = 255;
    while let Ok(Some((p, status))) = process::waitpid(-1, false) {
        if p == pid {
            code = status.code();
        }
    }
    Ok(code)
}
