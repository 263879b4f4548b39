//! Starting a process in a running sandbox (`fnbox-runc exec`), the way `runc exec` does:
//! join the sandbox's namespaces and cgroup from outside, then become the program with the
//! same last steps as the sandbox's own program (`program.rs`). In v2 the new process gets its
//! own seccomp listener, which the Sentry serves like the program's.
//!
//! Three processes: the caller stays in the host's namespaces; a helper joins every namespace
//! but the user namespace (host root may join those), forks the new process into the pid
//! namespace, puts it in the cgroup and exits; the new process joins the user namespace last
//! and becomes the program. With the helper gone, the new process is adopted by the nearest
//! subreaper: containerd's shim, or the caller if it made itself one.

use super::config::{cstrings, filters};
use super::fail::{exit, setup_failed};
use super::program::{self, ProgramConfig};
use super::protocol::{self as msg, FromSandbox};
use crate::error::{Context, Error, Result};
use crate::seccomp::profile::Profile;
use crate::spec::{ProcessSettings, SandboxKind};
use crate::sys::{self, fdpass, process};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A running sandbox, as a later process finds it.
pub struct Target {
    /// Host pid of the sandbox's init.
    pub init_pid: libc::pid_t,
    /// A pidfd of the init, opened by the caller before it checked that `init_pid` is the
    /// sandbox's init (its start time): the namespaces are those of `init_pid` only if this
    /// process still lives once they are open (a pid is not reused before its process is
    /// reaped).
    pub init: OwnedFd,
    /// The sandbox's cgroup directories.
    pub cgroup_dirs: Vec<PathBuf>,
    pub kind: SandboxKind,
    /// v1: the container's seccomp profile (`None`: fnbox's default).
    pub seccomp: Option<Profile>,
}

/// The process to start.
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// `KEY=VALUE` entries, exactly.
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub settings: ProcessSettings,
    /// Where the terminal's master goes (`settings.terminal`).
    pub console_socket: Option<PathBuf>,
}

/// Namespaces joined by the helper, in this order (the mount namespace last: it changes what
/// paths mean); the user namespace is joined by the new process itself.
const JOINED: [(&str, libc::c_int); 6] = [
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

/// Starts `spec` in `target`; returns the new process's host pid once it has called `execve`.
/// `relay` (v2) passes the new process's seccomp listener to the Sentry. Must be called from
/// a single-threaded process.
pub fn spawn(target: &Target, spec: &ExecSpec, relay: &dyn Fn(&OwnedFd) -> Result<()>) -> Result<libc::pid_t> {
    let v2 = target.kind == SandboxKind::V2;
    let (filter, extra_filter) = filters(v2, true, target.seccomp.as_ref(), false);
    let search_path = spec.env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(crate::spec::DEFAULT_PATH);
    let cfg = ProgramConfig {
        argv: cstrings(spec.argv.iter().cloned())?,
        env: cstrings(spec.env.iter().cloned())?,
        search_path: search_path.to_string(),
        filter,
        extra_filter,
        notify: v2,
        settings: Some(spec.settings.clone()),
    };
    let ns = |name: &str| {
        let p = format!("/proc/{}/ns/{name}", target.init_pid);
        sys::openat(None, Path::new(&p), libc::O_RDONLY | libc::O_CLOEXEC, 0)
            .context(|| format!("cannot open {p}: is the container running?"))
    };
    let joined: Vec<(OwnedFd, libc::c_int)> =
        JOINED.iter().map(|(n, f)| ns(n).map(|fd| (fd, *f))).collect::<Result<_>>()?;
    let userns = ns("user")?;
    // The init's pid could have been freed and taken by another process between the caller's
    // check and the opens above: then the init is gone, and this says so.
    sys::process::pidfd_signal(&target.init, 0)
        .context(|| format!("the container's init ({}) ended: is the container running?", target.init_pid))?;
    let procs: Vec<OwnedFd> = target
        .cgroup_dirs
        .iter()
        .map(|d| {
            let p = d.join("cgroup.procs");
            sys::openat(None, &p, libc::O_WRONLY | libc::O_CLOEXEC, 0)
                .context(|| format!("cannot open {}", p.display()))
        })
        .collect::<Result<_>>()?;
    let (ours, theirs) = fdpass::seqpacket_pair().context(|| "socketpair".into())?;
    // SAFETY: the caller is single-threaded; the helper only makes syscalls and ends in _exit.
    let helper = unsafe { process::fork() }.context(|| "cannot fork".into())?;
    if helper == 0 {
        drop(ours);
        helper_run(&joined, &procs, &userns, &theirs, &cfg, spec);
    }
    drop(theirs);
    let _ = process::waitpid(helper, false);
    collect(&ours, spec, relay)
}

/// Reads what the helper and the new process report, until the new process has called
/// `execve` (its end of the socket closes) or failed.
fn collect(sock: &OwnedFd, spec: &ExecSpec, relay: &dyn Fn(&OwnedFd) -> Result<()>) -> Result<libc::pid_t> {
    let mut pid = None;
    let mut buf = vec![0u8; msg::BUF];
    loop {
        let (n, mut fds) = fdpass::recv(sock, &mut buf).context(|| "cannot hear from the exec'd process".into())?;
        if n == 0 {
            return pid.ok_or_else(|| Error::Setup("the exec'd process ended before it started".into()));
        }
        match FromSandbox::decode(&buf[..n]).map_err(Error::Setup)? {
            FromSandbox::Pid(p) => pid = Some(p),
            FromSandbox::SentryFds => relay(fds.first().ok_or_else(|| Error::Setup("no listener was sent".into()))?)?,
            FromSandbox::Console => {
                let master = fds.pop().ok_or_else(|| Error::Setup("no terminal was sent".into()))?;
                let socket = spec.console_socket.as_deref().ok_or_else(|| {
                    Error::Invalid("the process asks for a terminal but no --console-socket was given".into())
                })?;
                super::terminal::send_to_console_socket(socket, &master)?;
            }
            FromSandbox::SetupError(m) => return Err(Error::Setup(m)),
            FromSandbox::ExecError(e) => {
                return Err(Error::Invalid(format!(
                    "cannot run '{}' in the container: {}",
                    spec.argv.first().map_or("", String::as_str),
                    sys::strerror(e)
                )))
            }
            // The program's start time: the `exec` verb has no status channel to report it on.
            FromSandbox::Exec(_) => {}
            m => return Err(Error::Setup(format!("the exec'd process sent an unexpected message {m:?}"))),
        }
    }
}

/// The helper: joins the namespaces, forks the new process into the pid namespace, puts it in
/// the cgroup and lets it go. Never returns.
fn helper_run(
    joined: &[(OwnedFd, libc::c_int)],
    procs: &[OwnedFd],
    userns: &OwnedFd,
    sock: &OwnedFd,
    cfg: &ProgramConfig,
    spec: &ExecSpec,
) -> ! {
    let fail = |m: String| -> ! { setup_failed(sock.as_fd(), &m) };
    for (fd, flag) in joined {
        // (This process is single-threaded, as joining a user namespace takes.)
        if let Err(e) = process::setns(fd.as_fd(), *flag) {
            fail(format!("cannot join the container's namespaces: {e}"));
        }
    }
    let (go_r, go_w) = match sys::fd::pipe() {
        Ok(p) => p,
        Err(e) => fail(format!("pipe: {e}")),
    };
    // SAFETY: single-threaded; the child ends in execve or _exit.
    let pid = match unsafe { process::fork() } {
        Ok(pid) => pid,
        Err(e) => fail(format!("fork: {e}")),
    };
    if pid == 0 {
        // The new process keeps the read end only.
        drop(go_w);
        become_program(go_r.as_fd(), userns, sock.as_fd(), cfg, spec);
    }
    for f in procs {
        if let Err(e) = sys::fs::write_all(f.as_fd(), pid.to_string().as_bytes()) {
            let _ = process::kill(pid, libc::SIGKILL);
            fail(format!("cannot join the container's cgroup: {e}"));
        }
    }
    let _ = fdpass::sendmsg(sock.as_fd(), &FromSandbox::Pid(pid).encode(), &[]);
    let _ = sys::fs::write_all(go_w.as_fd(), b"g");
    exit(0)
}

/// The new process: waits until it is in the cgroup, joins the user namespace as its root,
/// enters the working directory and becomes the program.
fn become_program(
    go: BorrowedFd<'_>,
    userns: &OwnedFd,
    sock: BorrowedFd<'_>,
    cfg: &ProgramConfig,
    spec: &ExecSpec,
) -> ! {
    let fail = |m: String| -> ! { setup_failed(sock, &m) };
    let mut b = [0u8; 1];
    if !matches!(sys::fd::read(go, &mut b), Ok(1)) {
        exit(125);
    }
    // (This process is single-threaded, as joining a user namespace takes.)
    if let Err(e) = process::setns(userns.as_fd(), libc::CLONE_NEWUSER) {
        fail(format!("cannot join the container's user namespace: {e}"));
    }
    if let Err(e) = process::set_ids(0, 0) {
        fail(format!("cannot become root in the container's user namespace: {e}"));
    }
    if let Err(e) = std::env::set_current_dir(&spec.cwd) {
        fail(format!("cannot use working directory {}: {e}", spec.cwd.display()));
    }
    // Nothing of the caller's but stdio and the report socket reaches the program.
    let _ = sys::close_from(3, true);
    program::run(cfg, sock, Some(sock), None, None)
}
