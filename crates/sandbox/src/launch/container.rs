//! The launcher's side of an OCI container (`SandboxSpec::container`): namespaces joined or
//! shared, raw cgroup limits, the spec's id mappings and mounts, and the create/start split
//! (the program is held just before `execve` until `start`).

use super::inbox::Collected;
use super::mounts::{idmapped, proc_placeholder};
use super::protocol::{FromSandbox, ToSandbox};
use super::{Sandbox, NAMESPACES};
use crate::cgroup::Limits;
use crate::error::{Context, Error, Result};
use crate::idmap::IdRange;
use crate::rootfs::container::ContainerLayout;
use crate::spec::{Container, ContainerRoot, IdMapping, MountKind, Namespace, SandboxKind, SandboxSpec};
use crate::sys::{self, abi, fdpass, process};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// The namespaces to create at clone time. Namespaces to join are joined here, by the
/// launcher, before the clone: a process already in the sandbox's new user namespace could
/// not join one owned by the host's (the pod's network namespace, say).
pub(super) fn clone_flags(spec: &SandboxSpec) -> Result<u64> {
    let Some(c) = &spec.container else { return Ok(NAMESPACES) };
    let mut flags = NAMESPACES;
    for (ns, flag, name) in [
        (&c.net, libc::CLONE_NEWNET, "network"),
        (&c.ipc, libc::CLONE_NEWIPC, "ipc"),
        (&c.uts, libc::CLONE_NEWUTS, "uts"),
    ] {
        match ns {
            Namespace::New => {}
            Namespace::Host => flags &= !(flag as u64),
            Namespace::Join(p) => {
                let fd = sys::openat(None, p, libc::O_RDONLY | libc::O_CLOEXEC, 0)
                    .context(|| format!("cannot open the {name} namespace {}", p.display()))?;
                // (The launcher is single-threaded, as joining a user namespace takes.)
                sys::process::setns(fd.as_fd(), flag)
                    .context(|| format!("cannot join the {name} namespace {}", p.display()))?;
                flags &= !(flag as u64);
            }
        }
    }
    Ok(flags)
}

/// The cgroup limits: the tier's, or a container's own (unlimited where it sets none).
pub(super) fn limits(spec: &SandboxSpec) -> Limits {
    let Some(c) = &spec.container else { return Limits::for_tier(spec.tier, spec.pids_max) };
    Limits::for_container(&c.resources)
}

/// The memory limit and CPU share the Sentry reports (`/proc/meminfo`, `cpuinfo`), bounded by
/// the machine's where the limits leave them open.
pub(super) fn reported(limits: &Limits) -> (u64, u64) {
    let si = sys::sysinfo();
    let host_mem = si.totalram * si.mem_unit as u64;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let millicpu = if limits.cpu_quota_us == Limits::UNLIMITED || limits.cpu_period_us == 0 {
        cpus * 1000
    } else {
        (limits.cpu_quota_us * 1000 / limits.cpu_period_us).min(cpus * 1000)
    };
    (limits.memory_bytes.min(host_mem), millicpu)
}

/// `<parent>`, `<name>` of the sandbox's cgroup.
pub(super) fn cgroup_path<'a>(spec: &'a SandboxSpec, id: &'a str) -> (&'a str, &'a str) {
    match spec.container.as_ref().and_then(|c| c.cgroup_path.as_deref()) {
        Some(p) => {
            let p = p.trim_matches('/');
            p.rsplit_once('/').unwrap_or(("", p))
        }
        None => (&spec.cgroup_parent, id),
    }
}

/// The `uid_map` and `gid_map` contents, and the host uid of the sandbox's root.
pub(super) fn id_maps(spec: &SandboxSpec, ids: &IdRange) -> (String, String, u32) {
    let lines = |m: &[IdMapping]| m.iter().map(|l| format!("{} {} {}\n", l.container, l.host, l.size)).collect();
    match &spec.container {
        Some(c) if !c.uid_map.is_empty() && !c.gid_map.is_empty() => {
            let root = c.uid_map.iter().find(|m| m.container == 0).map_or(ids.host_base, |m| m.host);
            (lines(&c.uid_map), lines(&c.gid_map), root)
        }
        _ => (ids.map_line(), ids.map_line(), ids.host_base),
    }
}

/// What the sandbox's first process applies for a container.
pub(super) fn layout(c: &Container, kind: SandboxKind) -> ContainerLayout {
    ContainerLayout {
        mounts: c.mounts.clone(),
        masked: c.masked_paths.clone(),
        readonly: c.readonly_paths.clone(),
        readonly_root: c.readonly_root,
        sysctl: c.sysctl.clone(),
        overlay: match &c.root {
            ContainerRoot::Dir(_) => None,
            ContainerRoot::Overlay { upper, work, .. } => Some((name(upper), name(work))),
        },
        v2: kind == SandboxKind::V2,
    }
}

/// The last component of a layer's path (its parent is the directory sent as the disk).
fn name(p: &std::path::Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

impl Sandbox {
    /// Sends the container's root (its directory, or its overlay's lower layers; the upper
    /// layer's directory goes as the disk) and the mounts the launcher prepares (binds, idmapped
    /// like the image; v2's `/proc` placeholder in place of the spec's procfs).
    pub(super) fn send_container_mounts(&self, c: &Container, userns: &OwnedFd) -> Result<()> {
        let lowers = match &c.root {
            ContainerRoot::Dir(d) => std::slice::from_ref(d),
            ContainerRoot::Overlay { lowers, .. } => lowers.as_slice(),
        };
        for layer in lowers {
            self.send_mount(&ToSandbox::Lower, Some(&idmapped(layer, userns, 0, false)?))?;
        }
        for (i, m) in c.mounts.iter().enumerate() {
            let fd = match &m.kind {
                MountKind::Bind { source, recursive, readonly, attrs } => {
                    if !source.exists() {
                        return Err(Error::Invalid(format!(
                            "the source {} of the mount on {} does not exist: create it or fix config.json",
                            source.display(),
                            m.target.display()
                        )));
                    }
                    let ro = if *readonly { abi::MOUNT_ATTR_RDONLY } else { 0 };
                    idmapped(source, userns, attrs | ro, *recursive)?
                }
                MountKind::Fs { fstype, .. } if fstype == "proc" && self.spec.kind == SandboxKind::V2 => {
                    proc_placeholder()?
                }
                MountKind::Fs { .. } => continue,
            };
            let i =
                u16::try_from(i).map_err(|_| Error::Invalid("a container may have at most 65,536 mounts".into()))?;
            self.send_mount(&ToSandbox::Bind(i), Some(&fd))?;
        }
        Ok(())
    }

    /// `create`: waits until the held program has done everything but `execve` (its
    /// terminal, if any, is handed to the console socket on the way); returns its host pid.
    pub fn wait_ready(&mut self) -> Result<libc::pid_t> {
        let _ = sys::fd::set_status_flags(&self.sock, libc::O_NONBLOCK);
        let mut state = Collected::default();
        loop {
            let mut fds = [
                libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            let _ = sys::fd::poll(&mut fds, -1);
            state.drain(&self.sock, &mut self.channels);
            if let Some(master) = state.console.take() {
                let socket = self.spec.container.as_ref().and_then(|c| c.console_socket.clone());
                let socket = socket.ok_or_else(|| {
                    Error::Invalid("the process asks for a terminal but no --console-socket was given".into())
                })?;
                super::terminal::send_to_console_socket(&socket, &master)?;
            }
            if let Some(m) = state.setup_error.take() {
                return Err(Error::Setup(m));
            }
            if let Some(e) = state.exec_error {
                return Err(Error::Invalid(format!(
                    "cannot run '{}' in the container: {}",
                    self.spec.argv[0],
                    sys::strerror(e)
                )));
            }
            if state.ready {
                break;
            }
            // (A program that ended is reported by the init, which then waits for its exit
            // status: do not wait for the init's end.)
            if state.exited.is_some() || fds[1].revents != 0 || fds[0].revents & libc::POLLHUP != 0 {
                return Err(Error::Setup("the sandbox ended before its program was ready".into()));
            }
        }
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid)).unwrap_or_default();
        let pid: Option<libc::pid_t> = children.split_whitespace().next().and_then(|p| p.parse().ok());
        let pid = pid.ok_or_else(|| Error::Setup("the sandbox's program is gone".into()))?;
        // The program waits before `execve`, but a signal or the OOM killer may still end it,
        // and then its pid may be another process's. So: a pidfd, then what is done through
        // `/proc/<pid>` (its parent must be the init, which alone reaps it), then a check that
        // the pidfd's process still lives: a pid is not reused before its process is reaped.
        let gone = || Error::Setup("the sandbox's program ended before it was started".into());
        let pidfd = process::pidfd_open(pid).map_err(|_| gone())?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.lines().find_map(|l| l.strip_prefix("PPid:")).map(str::trim) != Some(&self.pid.to_string()) {
            return Err(gone());
        }
        if let Some(adj) = self.spec.container.as_ref().and_then(|c| c.oom_score_adj) {
            // From the host: lowering a score takes privileges the sandbox does not have.
            let p = std::path::PathBuf::from(format!("/proc/{pid}/oom_score_adj"));
            sys::write_file(&p, adj.to_string().as_bytes())
                .context(|| format!("process.oomScoreAdj {adj}: cannot write {}", p.display()))?;
        }
        process::pidfd_signal(&pidfd, 0).map_err(|_| gone())?;
        self.program = Some((pid, pidfd));
        Ok(pid)
    }

    /// `start`: lets the held program `execve`.
    pub fn release(&self) -> Result<()> {
        fdpass::sendmsg(self.sock.as_fd(), &ToSandbox::Start.encode().map_err(Error::Invalid)?, &[])
            .context(|| "cannot reach the sandbox's init to start its program".into())
    }

    /// The init is the launcher's sibling, reaped by their parent (`Container::sibling_init`).
    pub(super) fn sibling_init(&self) -> bool {
        self.spec.container.as_ref().is_some_and(|c| c.sibling_init)
    }

    /// Host pid of the program (known once [`Sandbox::wait_ready`] returned).
    pub fn program_pid(&self) -> Option<libc::pid_t> {
        self.program.as_ref().map(|(pid, _)| *pid)
    }

    /// Sends `sig` to the program (once [`Sandbox::wait_ready`] returned) through its pidfd:
    /// `ESRCH` once it has ended, never another process that took its pid.
    pub fn signal_program(&self, sig: libc::c_int) -> std::io::Result<()> {
        let (_, pidfd) = self.program.as_ref().ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
        process::pidfd_signal(pidfd, sig)
    }

    /// v2: hands the seccomp listener of a process started in the running sandbox (`exec`)
    /// to the Sentry, which serves it like the program's.
    pub fn add_listener(&self, listener: &impl AsFd) -> Result<()> {
        let feed = self.sentry_feed.as_ref().ok_or_else(|| Error::Invalid("this sandbox has no Sentry".into()))?;
        fdpass::sendmsg(feed.as_fd(), &FromSandbox::SentryFds.encode(), &[listener.as_fd()])
            .context(|| "cannot reach the Sentry".into())
    }
}
