//! `create`, `start`, `run`, `state`, `kill` and `delete`.

use crate::error::{Error, IoContext, Result};
use crate::state::{self, write_pid_file, Record, Recorded, StateDir, Status};
use crate::supervisor::{self, Report};
use crate::{control, convert, Globals};
use fnbox_sandbox::spec::SandboxSpec;
use fnbox_sandbox::sys::{self, process};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Reads and checks the bundle; the state directory does not exist yet.
fn prepare(
    g: &Globals,
    id: &str,
    bundle: &Path,
    console: Option<&Path>,
) -> Result<(SandboxSpec, Record, Vec<crate::config::Device>)> {
    let bundle = bundle.canonicalize().map_err(|e| {
        Error::Bundle(format!(
            "the bundle {} cannot be used: {e}: give the directory holding config.json",
            bundle.display()
        ))
    })?;
    let spec = convert::load(&bundle)?;
    let kind = convert::kind(&spec, g.kind)?;
    let devices_dir = crate::devices::dir(&g.root.join(id));
    let mut s = convert::sandbox_spec(id, &bundle, &spec, kind, g.systemd_cgroup, &devices_dir)?;
    if g.systemd_cgroup {
        g.log.warn("--systemd-cgroup: fnbox does not ask systemd for a scope; it creates the cgroup systemd would use directly");
    }
    let listed = |k: &str| spec.linux.iter().flat_map(|l| &l.namespaces).any(|n| n.kind == k);
    for ns in ["pid", "mount"].into_iter().filter(|k| !listed(k)) {
        g.log.warn(&format!(
            "linux.namespaces has no {ns} namespace: fnbox gives the container its own anyway (it never shares the host's)"
        ));
    }
    let hooks = spec.hooks.clone().unwrap_or_default();
    crate::hooks::check(&hooks).map_err(Error::Bundle)?;
    let c = s.container.as_mut().expect("sandbox_spec sets the container");
    if c.process.terminal && console.is_none() {
        return Err(Error::Usage("process.terminal is true in config.json: pass --console-socket".into()));
    }
    c.console_socket = console.map(Path::to_path_buf);
    let record = Record {
        id: id.into(),
        bundle: bundle.clone(),
        rootfs: match &s.image {
            fnbox_sandbox::Image::Dir(d) => d.clone(),
            fnbox_sandbox::Image::Host => "/".into(),
        },
        kind,
        status: Recorded::Creating,
        // Until the supervisor is forked, this verb process stands for it: the container is
        // "creating" while it lives, "stopped" if it died before finishing.
        supervisor: std::process::id() as i32,
        supervisor_start: state::start_time(std::process::id() as i32).unwrap_or(0),
        pid: 0,
        init_pid: 0,
        init_start: 0,
        sentry_pid: None,
        cgroup: c.cgroup_path.clone().unwrap_or_default(),
        cgroup_dirs: Vec::new(),
        created: state::now_rfc3339(),
        annotations: spec.annotations.clone(),
        exit_code: None,
        spec: s.clone(),
        hooks,
    };
    let devices = spec.linux.map(|l| l.devices).unwrap_or_default();
    Ok((s, record, devices))
}

/// Makes the state directory, records the container and makes its device nodes.
fn make_state(g: &Globals, id: &str, record: &Record, devices: &[crate::config::Device]) -> Result<StateDir> {
    let dir = StateDir::create(&g.root, id)?;
    let made = dir
        .write(record)
        .and_then(|()| crate::devices::make(devices, &crate::devices::dir(&dir.dir)).map_err(Error::Bundle));
    if let Err(e) = made {
        let _ = dir.remove();
        return Err(e);
    }
    Ok(dir)
}

/// `create`: forks the supervisor, which builds the sandbox and holds its program before
/// `execve`; returns once that is done (or failed, with the reason). The pid file holds the
/// container's init, this process's child once the supervisor has cloned it (see
/// `fork_supervisor`).
pub fn create(g: &Globals, id: &str, bundle: &Path, pid_file: Option<&Path>, console: Option<&Path>) -> Result<()> {
    let (spec, record, devices) = prepare(g, id, bundle, console)?;
    let dir = make_state(g, id, &record, &devices)?;
    let pid = fork_supervisor(g, &dir, &spec, false).inspect_err(|_| {
        let _ = dir.remove();
    })?;
    created_hooks(g, id, &dir, &record.hooks)?;
    if let Some(p) = pid_file {
        write_pid_file(p, pid)?;
    }
    Ok(())
}

/// `prestart` and `createRuntime` hooks, once the container exists; one that fails ends it
/// and fails the verb.
fn created_hooks(g: &Globals, id: &str, dir: &StateDir, hooks: &crate::config::Hooks) -> Result<()> {
    if hooks.prestart.is_empty() && hooks.create_runtime.is_empty() {
        return Ok(());
    }
    let state = dir.read()?.oci_state();
    let ran = crate::hooks::run("prestart", &hooks.prestart, &state)
        .and_then(|()| crate::hooks::run("createRuntime", &hooks.create_runtime, &state));
    if let Err(e) = ran {
        let _ = delete(g, id, true);
        return Err(Error::Bundle(e));
    }
    Ok(())
}

/// Forks the supervisor and waits for its word; returns the container's pid, its init's.
///
/// The supervisor clones the init as its sibling (`CLONE_PARENT`): the init is this verb
/// process's child, and once the verb exits, the child of the subreaper above it (containerd's
/// shim), which reaps it and takes its exit status for the container's, as it does runc's
/// container process (docs/architecture.md, "OCI containers").
fn fork_supervisor(g: &Globals, dir: &StateDir, spec: &SandboxSpec, start_now: bool) -> Result<i32> {
    let (r, w) = sys::fd::pipe().what(|| "pipe".into())?;
    // SAFETY: this verb process is single-threaded; the child runs the supervisor and exits.
    let pid = unsafe { sys::process::fork() }.what(|| "cannot fork the container's supervisor".into())?;
    if pid == 0 {
        drop(r);
        // With a terminal the program's streams are the terminal: nothing of the caller's
        // (the shim's pipes, which it reads to their end) may stay open in the sandbox.
        if spec.container.as_ref().is_some_and(|c| c.process.terminal) {
            supervisor::detach_stdio();
        }
        // Its own session: signals meant for the caller's process group stay there.
        let _ = sys::process::setsid();
        let _ = std::env::set_current_dir("/");
        let mut spec = spec.clone();
        if let Some(c) = spec.container.as_mut() {
            c.sibling_init = true;
        }
        let code = match supervisor::run(dir, &spec, Report::Pipe(w), start_now, &g.log) {
            Ok(c) => c,
            Err(e) => {
                g.log.error(&e);
                125
            }
        };
        // The supervisor ends here without running the verb's destructors.
        sys::process::exit_now(code);
    }
    drop(w);
    if let Some(start) = state::start_time(pid) {
        dir.update(|rec| {
            rec.supervisor = pid;
            rec.supervisor_start = start;
        })?;
    }
    let answer = read_message(&r);
    if answer == "ok" {
        return Ok(dir.read()?.init_pid);
    }
    let _ = process::waitpid(pid, false);
    let msg = answer.strip_prefix('E').unwrap_or("the container's supervisor died while building it");
    Err(Error::Bundle(msg.to_string()))
}

/// Reads the supervisor's one message. It is written in one `write` of at most `PIPE_BUF`
/// bytes, so it arrives whole; the pipe is not read to its end because processes the
/// supervisor forks (the sandbox's) may hold a copy of its write end. Empty: the supervisor
/// died before it said anything.
fn read_message(fd: &OwnedFd) -> String {
    let mut buf = [0u8; libc::PIPE_BUF];
    loop {
        match sys::fd::read(fd, &mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return String::new(),
        }
    }
}

/// `start`: lets the created container's program run.
pub fn start(g: &Globals, id: &str) -> Result<()> {
    let dir = StateDir::open(&g.root, id)?;
    let r = dir.read()?;
    match r.status() {
        Status::Created => control::request(&dir.socket(), &control::Request::Start {}, None)?,
        s => return Err(Error::NotCreated { id: id.into(), status: s.as_str().into() }),
    }
    // The spec: a failing poststart hook is a warning; the container runs on.
    warned_hooks(g, "poststart", &r.hooks.poststart, &dir.read()?.oci_state_started());
    Ok(())
}

/// `run`: create and start in one go. In the foreground this process is the supervisor and
/// exits with the program's status, removing the container; `detach` behaves like create +
/// start. Returns the exit status.
pub fn run(
    g: &Globals,
    id: &str,
    bundle: &Path,
    pid_file: Option<&Path>,
    console: Option<&Path>,
    detach: bool,
) -> Result<i32> {
    let (spec, record, devices) = prepare(g, id, bundle, console)?;
    let dir = make_state(g, id, &record, &devices)?;
    let h = &record.hooks;
    let any_before_end = !(h.prestart.is_empty() && h.create_runtime.is_empty() && h.poststart.is_empty());
    if !detach && any_before_end {
        let _ = dir.remove();
        return Err(Error::Usage(
            "config.json has prestart, createRuntime or poststart hooks: use create and start (or run --detach)".into(),
        ));
    }
    if detach {
        let pid = fork_supervisor(g, &dir, &spec, true).inspect_err(|_| {
            let _ = dir.remove();
        })?;
        created_hooks(g, id, &dir, h)?;
        warned_hooks(g, "poststart", &h.poststart, &dir.read()?.oci_state_started());
        if let Some(p) = pid_file {
            write_pid_file(p, pid)?;
        }
        return Ok(0);
    }
    let code = supervisor::run(&dir, &spec, Report::Inline { pid_file }, true, &g.log).map_err(Error::Bundle);
    let state = dir.read().map(|r| r.oci_state());
    let _ = dir.remove();
    if let Ok(state) = state {
        poststop(g, &record.hooks, &state);
    }
    code
}

/// `state`: the OCI state document.
pub fn state(g: &Globals, id: &str) -> Result<serde_json::Value> {
    Ok(StateDir::open(&g.root, id)?.read()?.oci_state())
}

/// `kill ID SIGNAL`: numbers (`9`) and names (`KILL`, `SIGKILL`).
pub fn parse_signal(s: &str) -> Result<i32> {
    fnbox_sandbox::sys::signal::parse(s)
        .ok_or_else(|| Error::Usage(format!("signal '{s}' is not valid: use a number (9) or a name (KILL, SIGTERM)")))
}

/// `kill`: through the supervisor, which holds the processes (no pid can be recycled under
/// it).
pub fn kill(g: &Globals, id: &str, signal: i32, all: bool) -> Result<()> {
    let dir = StateDir::open(&g.root, id)?;
    let r = dir.read()?;
    match r.status() {
        Status::Created | Status::Running => {
            control::request(&dir.socket(), &control::Request::Kill { signal, all }, None)
        }
        // Signal directly, as runc does (the signals are delivered on resume). SIGKILL thaws
        // the container, so it ends now and the supervisor reports it, as with runc.
        Status::Paused => {
            let pids = if all || signal == libc::SIGKILL { crate::manage::ps(g, id)? } else { vec![r.pid] };
            for pid in pids {
                let _ = process::kill(pid, signal);
            }
            if signal == libc::SIGKILL {
                if let Some(cg) = r.cgroup() {
                    cg.freeze(false)?;
                }
            }
            Ok(())
        }
        s => Err(Error::NotRunning { id: id.into(), status: s.as_str().into() }),
    }
}

/// `delete`: removes a stopped (or never started) container; `force` stops a running one
/// first. Leaves nothing: processes, cgroup, state directory.
pub fn delete(g: &Globals, id: &str, force: bool) -> Result<()> {
    let dir = match StateDir::open(&g.root, id) {
        Ok(d) => d,
        Err(Error::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e),
    };
    let r = match dir.read() {
        Ok(r) => r,
        Err(_) if force => return dir.remove(),
        Err(e) => return Err(e),
    };
    let status = r.status();
    if matches!(status, Status::Running | Status::Paused | Status::Creating) && !force {
        return Err(Error::NotStopped { id: id.into(), status: status.as_str().into() });
    }
    // A stopped container's supervisor may still be cleaning up after its init's end (the
    // shim deletes as soon as it has reaped the init): it is given the time a stop gets. A
    // supervisor still building the container has no control socket yet: no point waiting
    // for it to stop on request.
    let mut finishing = status == Status::Stopped;
    if status != Status::Stopped {
        if let Some(cg) = r.cgroup() {
            let _ = cg.freeze(false);
        }
        finishing = control::request(&dir.socket(), &control::Request::Stop {}, None).is_ok();
    }
    if finishing {
        wait_gone(r.supervisor, r.supervisor_start, Duration::from_secs(10));
    }
    if state::alive(r.supervisor, r.supervisor_start) {
        let _ = process::kill(r.supervisor, libc::SIGKILL);
        wait_gone(r.supervisor, r.supervisor_start, Duration::from_secs(5));
    }
    // A supervisor that died without cleaning up (SIGKILL) left the cgroup behind.
    if let Some(cg) = r.cgroup() {
        if cg.dirs().iter().any(|d| d.exists()) {
            cg.kill_all();
            cg.destroy()?;
        }
    }
    let state = dir.read().map(|r| r.oci_state()).unwrap_or_else(|_| r.oci_state());
    dir.remove()?;
    poststop(g, &r.hooks, &state);
    Ok(())
}

/// `poststop` hooks, after the container is gone.
fn poststop(g: &Globals, hooks: &crate::config::Hooks, state: &serde_json::Value) {
    warned_hooks(g, "poststop", &hooks.poststop, state);
}

/// Runs every hook of a kind whose failures are warnings (`poststart`, `poststop`): each
/// failure is logged and the next hook still runs, as the runtime spec says.
fn warned_hooks(g: &Globals, kind: &str, list: &[crate::config::Hook], state: &serde_json::Value) {
    for e in crate::hooks::run_all(kind, list, state) {
        g.log.warn(&e);
    }
}

fn wait_gone(pid: i32, start: u64, limit: Duration) {
    let until = Instant::now() + limit;
    while state::alive(pid, start) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
}
