//! Starting, supervising and cleaning up a sandbox.
//!
//! The launcher (host root) creates the cgroup, clones the sandbox's first process into new
//! namespaces, maps its ids, prepares the mounts it will attach (image, system directories,
//! binds, disk layer) and lets it go. It then waits, forwarding signals and enforcing the
//! timeout, and removes everything when the sandbox ends, however it ends.

mod child;
mod container;
mod control;
pub mod enter;
mod gc;
mod init;
mod mounts;
mod program;
pub(crate) mod protocol;
mod supervise;
mod terminal;

pub use control::Channels;
pub use gc::{clean_host, reap_stale, Cleaned};
pub use supervise::{Ending, Outcome, WaitOptions, Watcher};

use crate::cgroup::{self, Cgroup, CpuBoost, HostCgroupFs};
use crate::disk::DiskJob;
use crate::error::{Context, Error, Result};
use crate::idmap::IdRange;
use crate::paths::Paths;
use crate::rootfs::{self, host, ProcMode};
use crate::spec::{Access, ContainerRoot, Image, SandboxKind, SandboxSpec};
use crate::supervision::{self, Status};
use crate::sys::{self, abi, fdpass, mount, process};
use child::ChildConfig;
pub(crate) use mounts::PROC_PLACEHOLDER;
use mounts::{attach_msg, bind_attrs, idmapped, may_hold_fifos, proc_placeholder, resolv_conf_target, V1_DEV_SIZE};
use protocol::ToSandbox;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

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
    /// Host pid of a held program (containers).
    program_pid: Option<libc::pid_t>,
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
    /// Creates the sandbox and starts `spec.argv` in it.
    pub fn start(spec: &SandboxSpec, paths: &Paths) -> Result<Self> {
        crate::trace::mark("start");
        spec.validate()?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::NotRoot);
        }
        let mounts = cgroup::mountinfo()?;
        let layout = cgroup::Layout::from_mountinfo(&mounts)?;
        cgroup::tune_host(&layout, &mounts);
        let fs: Arc<dyn cgroup::CgroupFs> = Arc::new(HostCgroupFs);
        reap_stale(paths, &layout, &spec.cgroup_parent);
        paths.prepare()?;
        let stage = paths.stage();
        let ids = IdRange::allocate(paths)?;
        // A container writes to its own root (`root.path`): no disk layer of fnbox's.
        let disk = match spec.container {
            Some(_) => None,
            None => Some(DiskJob::spawn(paths, spec.disk_bytes)?),
        };
        let id = format!("{}-{}", ids.slot, sys::random_hex(4));
        let limits = container::limits(spec);
        // The boost starts here: everything below (and the program's start) runs without
        // the CPU quota until the supervisor's `throttle` or the window's end.
        let boost = spec
            .cpu_boost
            .filter(|_| spec.container.is_none())
            .map(|w| CpuBoost::new(&limits, w, spec.cpu_boost_background, Instant::now()));
        let cg_limits = boost.as_ref().map_or_else(|| limits.clone(), CpuBoost::initial);
        let (cg_parent, cg_name) = container::cgroup_path(spec, &id);
        let lower_src = match &spec.image {
            Image::Host => host::skeleton(paths)?,
            Image::Dir(d) => d.clone(),
        };
        let mut cfg = child_config(spec, &stage)?;
        // Egress: the resolvers and the `resolv.conf` naming them, before anything is cloned.
        let egress = spec.network == crate::net::Network::Egress && spec.container.is_none();
        // The rules load (`nft`) meanwhile: they need none of the sandbox's namespaces.
        let (mut net_pending, resolv) = match egress {
            true => {
                let servers = crate::net::resolvers();
                let resolv = crate::net::resolv_conf(&servers);
                cfg.egress_slot = Some(ids.slot);
                (Some(crate::net::begin(paths, ids.slot, &spec.allow_net, &servers)?), Some(resolv))
            }
            false => (None, None),
        };
        let (parent_sock, child_sock) = fdpass::seqpacket_pair().context(|| "socketpair".into())?;
        // v2: program → Sentry (listener and root), Sentry → launcher (counters).
        let v2 = spec.kind == SandboxKind::V2;
        let sentry_pairs = if v2 {
            Some((
                fdpass::seqpacket_pair().context(|| "socketpair".into())?,
                fdpass::seqpacket_pair().context(|| "socketpair".into())?,
            ))
        } else {
            None
        };
        if process::thread_count() > 1 {
            return Err(Error::Setup("the launcher must be single-threaded to clone a sandbox".into()));
        }
        let mut ns_flags = container::clone_flags(spec)?;
        // A network namespace is the slowest to create (its loopback device and sysctl tables,
        // ~0.7 ms): the child makes its own while the launcher sets up the cgroup and the ids.
        // Containers get theirs at clone time: their supervisor joins it as soon as `start`
        // returns; so do egress sandboxes, whose link is made in it right after the clone.
        if spec.container.is_none() && !egress && ns_flags & libc::CLONE_NEWNET as u64 != 0 {
            ns_flags &= !(libc::CLONE_NEWNET as u64);
            cfg.new_net = true;
        }
        // The optional v1 controllers serve only containers (the freezer their `pause`, cpuacct
        // their shim's CPU metrics): other sandboxes skip those directories.
        let cg_layout = match spec.container {
            Some(_) => layout.clone(),
            None => layout.without(&["freezer", "cpuacct", "cpuset"]),
        };
        // cgroup v2: the child is cloned straight into its cgroup, which must exist first. v1:
        // the launcher creates it after the clone, beside the child's own work, and moves the
        // child in before letting it go (`provision`).
        let create_cgroup = || Cgroup::create(&cg_layout, fs.clone(), cg_parent, cg_name, &cg_limits);
        let early = match layout {
            cgroup::Layout::V2 { .. } => Some(create_cgroup()?),
            cgroup::Layout::V1 { .. } => None,
        };
        let cgroup_fd = match early.as_ref().and_then(|c| c.unified_dir()) {
            Some(d) => match sys::openat(None, d, libc::O_PATH | libc::O_DIRECTORY, 0) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    let _ = early.as_ref().map(Cgroup::destroy);
                    return Err(e).context(|| format!("cannot open {}", d.display()));
                }
            },
            None => None,
        };
        // SAFETY: the launcher is single-threaded (checked above); the child runs
        // `child::run`, which ends in _exit.
        let forked = unsafe { process::clone3_fork(ns_flags, cgroup_fd.as_ref().map(|f| f.as_raw_fd())) };
        let (pid, pidfd) = match forked.context(|| "cannot create the sandbox's namespaces (clone3)".into()) {
            Ok(process::Forked::Child) => {
                drop(parent_sock);
                let to_sentry = sentry_pairs.map(|((prog, _), _)| prog);
                child::run(&cfg, child_sock, to_sentry)
            }
            Ok(process::Forked::Parent { pid, pidfd }) => (pid, pidfd),
            Err(e) => {
                let _ = early.as_ref().map(Cgroup::destroy);
                return Err(e);
            }
        };
        drop(child_sock);
        crate::trace::mark("cloned");
        // The pair is made (by `ip`) while the launcher prepares the rest; it and the rules
        // are waited for before `STAGE`, after which the child configures its end.
        if let Some(Err(e)) = net_pending.as_mut().map(|p| p.link(pid)) {
            let _ = process::pidfd_signal(&pidfd, libc::SIGKILL);
            let _ = process::waitpid(pid, false);
            let _ = early.as_ref().map(Cgroup::destroy);
            return Err(e);
        }
        // The disk helper keeps the sandbox's mount namespace, so that tearing it down is not
        // part of the init's exit.
        if let (Some(disk), Ok(ns)) =
            (&disk, sys::openat(None, Path::new(&format!("/proc/{pid}/ns/mnt")), libc::O_RDONLY, 0))
        {
            disk.hold(&[ns]);
        }
        let cgroup = match early.map_or_else(create_cgroup, Ok) {
            Ok(c) => c,
            Err(e) => {
                let _ = process::pidfd_signal(&pidfd, libc::SIGKILL);
                let _ = process::waitpid(pid, false);
                return Err(e);
            }
        };
        crate::trace::mark("cgroup created");
        let (ids_uid, ids_gid, owner) = container::id_maps(spec, &ids);
        let mut sentry_feed = None;
        let sentry = match sentry_pairs {
            Some(((prog_end, from_program), (launcher_end, to_launcher))) => {
                if spec.container.is_some() {
                    sentry_feed = Some(prog_end);
                } else {
                    drop(prog_end);
                }
                let (memory_limit, millicpu) = container::reported(&limits);
                let info = crate::sentry::proc::Info {
                    memory_limit,
                    millicpu,
                    hostname: spec.hostname.clone(),
                    started: std::time::Instant::now(),
                    bind_roots: spec.container.is_some(),
                };
                let boot = crate::sentry::process::Bootstrap {
                    from_program,
                    to_launcher,
                    init_pid: pid,
                    owner,
                    memory_cgroup: cgroup.dirs().into_iter().next(),
                    info,
                    report: spec.report.is_some(),
                    fifos_possible: spec.binds.iter().any(|b| may_hold_fifos(&b.source))
                        || matches!(&spec.image, Image::Dir(d) if may_hold_fifos(d)),
                };
                let spid = spawn_sentry(boot, cgroup_fd.as_ref())?;
                // The OOM killer must pick the program, never the Sentry serving it: exempt the
                // Sentry, or (lowering a score takes CAP_SYS_RESOURCE, which some hosts' root
                // lacks) make the sandbox's own processes the first choice; the program
                // inherits its init's score.
                if sys::write_file(Path::new(&format!("/proc/{spid}/oom_score_adj")), b"-1000").is_err() {
                    let _ = sys::write_file(Path::new(&format!("/proc/{pid}/oom_score_adj")), b"1000");
                }
                if cgroup.unified_dir().is_none() {
                    cgroup.add_pid(spid)?;
                }
                Some((spid, launcher_end))
            }
            None => None,
        };
        let mut sb = Self {
            id,
            spec: spec.clone(),
            pid,
            pidfd,
            sock: parent_sock,
            cgroup,
            _ids: ids,
            disk,
            sentry,
            channels: Channels::default(),
            sentry_feed,
            program_pid: None,
            net_pending,
            net: None,
            boost,
            reaped: false,
            cleaned: false,
        };
        let resolv = resolv.filter(|_| resolv_conf_target(&spec.image));
        sb.provision(&lower_src, [&ids_uid, &ids_gid], resolv.as_deref())?;
        Ok(sb)
    }

    /// Joins the cgroup (v1), maps ids, and sends the mounts; then lets the child go.
    fn provision(&mut self, lower_src: &Path, maps: [&str; 2], resolv: Option<&str>) -> Result<()> {
        if self.cgroup.unified_dir().is_none() {
            self.cgroup.add_pid(self.pid)?;
        }
        for (file, map) in ["uid_map", "gid_map"].into_iter().zip(maps) {
            let p = PathBuf::from(format!("/proc/{}/{file}", self.pid));
            sys::write_file(&p, map.as_bytes()).context(|| format!("cannot write {}", p.display()))?;
        }
        let userns = sys::openat(None, Path::new(&format!("/proc/{}/ns/user", self.pid)), libc::O_RDONLY, 0)
            .context(|| "cannot open the sandbox's user namespace".into())?;
        crate::trace::mark("ids mapped");
        let sock = self.sock.as_raw_fd();
        let send = |m: &ToSandbox, fd: Option<&OwnedFd>| {
            let fds: Vec<i32> = fd.iter().map(|f| f.as_raw_fd()).collect();
            fdpass::send(sock, &m.encode().map_err(Error::Invalid)?, &fds)
                .context(|| "cannot send a mount to the sandbox".into())
        };

        if let Some(c) = self.spec.container.clone() {
            self.send_container_mounts(&c, &userns)?;
        } else {
            let lower = idmapped(lower_src, &userns, 0, false)?;
            send(&ToSandbox::Lower, Some(&lower))?;
        }
        if self.spec.image == Image::Host {
            for d in host::SYSTEM_DIRS {
                let p = Path::new("/").join(d);
                if p.is_symlink() || !p.is_dir() {
                    continue;
                }
                let fd = idmapped(
                    &p,
                    &userns,
                    abi::MOUNT_ATTR_RDONLY | abi::MOUNT_ATTR_NODEV | abi::MOUNT_ATTR_NOSUID,
                    true,
                )?;
                send(&attach_msg(&p, true, Access::ReadOnly, false), Some(&fd))?;
            }
        }
        if self.spec.container.is_none() {
            // v1's `/dev` is capped (v2's counts toward the function's memory, no cap of its own).
            let size = (self.spec.kind == SandboxKind::V1).then_some(V1_DEV_SIZE);
            let dev = rootfs::make_dev(size, &userns).context(|| "cannot make the sandbox's /dev".into())?;
            send(&ToSandbox::Dev, Some(&dev))?;
        }
        if self.spec.kind == SandboxKind::V2 && self.spec.container.is_none() {
            send(&attach_msg(Path::new("/proc"), true, Access::ReadOnly, false), Some(&proc_placeholder()?))?;
        }
        for b in &self.spec.binds {
            // The host path of a read-only directory bound in is not the sandbox's to know (it
            // is shown through an overlay), nor a small read-only file's (it is copied).
            let hide = b.access == Access::ReadOnly && self.spec.container.is_none();
            let dir = b.source.is_dir();
            let copy = match hide && !dir {
                true => rootfs::copy_file(&b.source, &userns, bind_attrs(b.access))
                    .context(|| format!("cannot copy {}", b.source.display()))?,
                false => None,
            };
            let (fd, overlay) = match copy {
                Some(fd) => (fd, false),
                None => (idmapped(&b.source, &userns, bind_attrs(b.access), true)?, hide && dir),
            };
            send(&attach_msg(&b.target, dir, b.access, overlay), Some(&fd))?;
        }
        if let Some(text) = resolv {
            let fd = rootfs::file_mount(text.as_bytes(), 0o444, None, &userns, bind_attrs(Access::ReadOnly))
                .context(|| "cannot make the sandbox's /etc/resolv.conf".into())?;
            send(&attach_msg(Path::new("/etc/resolv.conf"), false, Access::ReadOnly, false), Some(&fd))?;
        }
        if let Some(pending) = self.net_pending.take() {
            self.net = Some(pending.finish()?);
            crate::trace::mark("network ready");
        }
        send(&ToSandbox::Stage, None)?;
        crate::trace::mark("mounts sent");
        let disk = match (&self.disk, self.spec.container.as_ref().map(|c| &c.root)) {
            (_, Some(ContainerRoot::Overlay { upper, .. })) => {
                // The snapshot's directory, holding its upper and work directories.
                let dir = upper.parent().ok_or_else(|| Error::Invalid(format!("{} has no parent", upper.display())))?;
                Some(idmapped(dir, &userns, 0, false)?)
            }
            (_, Some(ContainerRoot::Dir(_))) => None,
            (Some(job), None) => {
                let disk = job.take()?;
                mount::idmap(&disk, &userns, 0, false).context(|| "cannot idmap the writable layer".into())?;
                Some(disk)
            }
            (None, None) => return Err(Error::Setup("no disk job".into())),
        };
        if let Some(disk) = disk {
            send(&ToSandbox::Disk, Some(&disk))?;
            crate::trace::mark("disk sent");
        }
        send(&ToSandbox::Go, None)
    }

    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
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
            let _ = process::waitpid(self.pid, false);
            self.reaped = true;
        }
        if let Some((spid, _)) = self.sentry.take() {
            let _ = process::kill(spid, libc::SIGKILL);
            let _ = process::waitpid(spid, false);
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

/// Forks the Sentry (into the sandbox's cgroup directly on cgroup v2).
fn spawn_sentry(boot: crate::sentry::process::Bootstrap, cgroup_fd: Option<&OwnedFd>) -> Result<libc::pid_t> {
    // SAFETY: the launcher is still single-threaded here; the child only runs the Sentry,
    // which ends in _exit.
    match unsafe { process::clone3_fork(0, cgroup_fd.map(|f| f.as_raw_fd())) }
        .context(|| "cannot start the Sentry".into())?
    {
        process::Forked::Child => {
            // Keep only the Sentry's two sockets (as fds 3 and 4).
            let mut boot = boot;
            // SAFETY: F_DUPFD_CLOEXEC returns new descriptors numbered 100 or more.
            let (a, b) = unsafe {
                (
                    libc::fcntl(boot.from_program.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100),
                    libc::fcntl(boot.to_launcher.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100),
                )
            };
            // SAFETY: dup3 onto 3 and 4; everything above is closed next.
            unsafe {
                libc::dup3(a, 3, libc::O_CLOEXEC);
                libc::dup3(b, 4, libc::O_CLOEXEC);
            }
            let _ = sys::close_from(5, false);
            // The old numbers are closed already: forget them rather than close them twice.
            // SAFETY: 3 and 4 are the duplicates made above, owned by nothing else now.
            std::mem::forget(std::mem::replace(&mut boot.from_program, unsafe { sys::owned(3) }));
            // SAFETY: as above.
            std::mem::forget(std::mem::replace(&mut boot.to_launcher, unsafe { sys::owned(4) }));
            crate::sentry::process::run(boot)
        }
        process::Forked::Parent { pid, .. } => Ok(pid),
    }
}

fn cstrings(items: impl IntoIterator<Item = String>) -> Result<Vec<CString>> {
    items
        .into_iter()
        .map(|s| {
            CString::new(s).map_err(|_| Error::Invalid("arguments and environment may not contain NUL bytes".into()))
        })
        .collect()
}

/// A program's seccomp filter (empty: none), and a second one to install before it: v1 runs
/// a container's own profile, none for a container without one (as the OCI spec says), or
/// fnbox's default; v2 the Sentry's filter, after a container's profile if it has one.
fn filters(
    v2: bool,
    container: bool,
    profile: Option<&crate::seccomp::profile::Profile>,
    report: bool,
) -> (Vec<crate::seccomp::bpf::Insn>, Option<Vec<crate::seccomp::bpf::Insn>>) {
    match (v2, profile) {
        (true, p) => (crate::seccomp::policy_v2(report).compile(), p.map(|p| p.policy().compile())),
        (false, Some(p)) => (p.policy().compile(), None),
        (false, None) if container => (Vec::new(), None),
        (false, None) => (crate::seccomp::policy_v1().compile(), None),
    }
}

fn child_config(spec: &SandboxSpec, stage: &Path) -> Result<ChildConfig> {
    let env = spec.full_env();
    let search_path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
    let v2 = spec.kind == SandboxKind::V2;
    let c = spec.container.as_deref();
    let (filter, extra_filter) = filters(v2, c.is_some(), c.and_then(|c| c.seccomp.as_ref()), spec.report.is_some());
    let own_ns = |ns: Option<&crate::spec::Namespace>| ns.is_none_or(|n| *n == crate::spec::Namespace::New);
    Ok(ChildConfig {
        layout: rootfs::Layout {
            stage: stage.to_path_buf(),
            // A container's /tmp is what its mounts say (its root's directory otherwise).
            tmp_in_memory: v2 && c.is_none(),
            proc: if v2 { ProcMode::Placeholder } else { ProcMode::Kernel },
            sys: !v2,
            container: c.map(|c| container::layout(c, spec.kind)),
        },
        program: program::ProgramConfig {
            argv: cstrings(spec.argv.iter().cloned())?,
            env: cstrings(env.into_iter().map(|(k, v)| format!("{k}={v}")))?,
            search_path,
            filter,
            extra_filter,
            notify: v2,
            settings: c.map(|c| c.process.clone()),
            listen: spec.listen_fd.is_some(),
        },
        workdir: spec.workdir.clone(),
        hostname: match c {
            Some(c) if own_ns(Some(&c.uts)) => c.hostname.clone(),
            Some(_) => None,
            None => Some(spec.hostname.clone()),
        },
        loopback: own_ns(c.map(|c| &c.net)),
        new_net: false,
        egress_slot: None,
        hold: c.is_some_and(|c| c.hold),
        listen: spec.listen_fd,
    })
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
