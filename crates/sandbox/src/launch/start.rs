//! Making a sandbox (`Sandbox::start`): the host checked and prepared, the cgroup, the
//! sandbox's first process cloned into new namespaces, the Sentry (v2), the ids mapped and
//! the mounts sent, then the first process let go.
//!
//! Every step that can fail leaves nothing of the steps before it: until the [`Sandbox`] owns
//! them, the first process and the cgroup are held by a [`Making`], whose drop kills and reaps
//! the one and removes the other; from then on the `Sandbox`'s own drop does, the Sentry's
//! process included (docs/architecture.md, "The launcher").

use super::config::{child_config, ChildConfig};
use super::mounts::{
    attach_msg, bind_attrs, idmapped, may_hold_fifos, proc_placeholder, resolv_conf_target, V1_DEV_SIZE,
};
use super::protocol::ToSandbox;
use super::{child, container, reap_stale, Channels, Sandbox};
use crate::cgroup::{self, Cgroup, CpuBoost, HostCgroupFs, Limits};
use crate::disk::DiskJob;
use crate::error::{Context, Error, Result};
use crate::idmap::IdRange;
use crate::paths::Paths;
use crate::rootfs::{self, host};
use crate::spec::{Access, ContainerRoot, Image, SandboxKind, SandboxSpec};
use crate::sys::{self, abi, fdpass, mount, process};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

impl Sandbox {
    /// Creates the sandbox and starts `spec.argv` in it. On an error nothing it made is left:
    /// its processes are killed and reaped, its cgroup removed, its uid slot and network rules
    /// released.
    pub fn start(spec: &SandboxSpec, paths: &Paths) -> Result<Self> {
        crate::trace::mark("start");
        let background =
            Background::enter(spec.cpu_boost.is_some() && spec.cpu_boost_background && spec.container.is_none());
        let layout = prepare_host(spec, paths)?;
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
        let lower_src = match &spec.image {
            Image::Host => host::skeleton(paths)?,
            Image::Dir(d) => d.clone(),
        };
        let mut cfg = child_config(spec, &paths.stage())?;
        let egress = spec.network == crate::net::Network::Egress && spec.container.is_none();
        let (net_pending, resolv) = begin_egress(spec, paths, egress, ids.slot, &mut cfg)?;
        let socks = Sockets::new(spec.kind == SandboxKind::V2)?;
        if process::thread_count() > 1 {
            return Err(Error::Setup("the launcher must be single-threaded to clone a sandbox".into()));
        }
        let mut ns_flags = namespaces(spec, egress, &mut cfg)?;
        if cfg.sibling {
            ns_flags |= libc::CLONE_PARENT as u64;
        }
        // The optional v1 controllers serve only containers (the freezer their `pause`, cpuacct
        // their shim's CPU metrics): other sandboxes skip those directories.
        let cg_layout = match spec.container {
            Some(_) => layout.clone(),
            None => layout.without(&["freezer", "cpuacct", "cpuset"]),
        };
        let (cg_parent, cg_name) = container::cgroup_path(spec, &id);
        let cg_limits = boost.as_ref().map_or_else(|| limits.clone(), CpuBoost::initial);
        let fs: Arc<dyn cgroup::CgroupFs> = Arc::new(HostCgroupFs);
        let create_cgroup = || Cgroup::create(&cg_layout, fs.clone(), cg_parent, cg_name, &cg_limits);
        let mut making = Making::default();
        // cgroup v2: the child is cloned straight into its cgroup, which must exist first. v1:
        // the launcher creates it after the clone, beside the child's own work, and moves the
        // child in before letting it go (`provision`).
        if matches!(layout, cgroup::Layout::V2 { .. }) {
            making.cgroup = Some(create_cgroup()?);
        }
        let cgroup_fd = match making.cgroup.as_ref().and_then(|c| c.unified_dir()) {
            Some(d) => Some(
                sys::openat(None, d, libc::O_PATH | libc::O_DIRECTORY, 0)
                    .context(|| format!("cannot open {}", d.display()))?,
            ),
            None => None,
        };
        let clone = || {
            // SAFETY: the launcher is single-threaded (checked above); the child runs
            // `child::run`, which ends in _exit.
            unsafe { process::clone3_fork(ns_flags, cgroup_fd.as_ref().map(|f| f.as_fd())) }
        };
        let forked = background
            .clone_sandbox_process(clone)
            .context(|| "cannot create the sandbox's namespaces (clone3)".into())?;
        let pid = match forked {
            process::Forked::Child => {
                drop(socks.launcher);
                child::run(&cfg, socks.child, socks.sentry.map(|s| s.program))
            }
            process::Forked::Parent { pid, pidfd } => {
                making.init = Some((pid, pidfd));
                pid
            }
        };
        drop(socks.child);
        crate::trace::mark("cloned");
        fail_point("cloned")?;
        // The pair is made (by `ip`) while the launcher prepares the rest; it and the rules
        // are waited for before `STAGE`, after which the child configures its end.
        let mut net_pending = net_pending;
        if let Some(p) = net_pending.as_mut() {
            p.link(pid)?;
        }
        // The disk helper keeps the sandbox's mount namespace, so that tearing it down is not
        // part of the init's exit.
        if let (Some(disk), Ok(ns)) =
            (&disk, sys::openat(None, Path::new(&format!("/proc/{pid}/ns/mnt")), libc::O_RDONLY, 0))
        {
            disk.hold(&[ns]);
        }
        if making.cgroup.is_none() {
            making.cgroup = Some(create_cgroup()?);
        }
        crate::trace::mark("cgroup created");
        let (cgroup, pidfd) = making.done()?;
        let (ids_uid, ids_gid, owner) = container::id_maps(spec, &ids);
        // From here the sandbox owns what was made: its drop releases it all.
        let mut sb = Self {
            id,
            spec: spec.clone(),
            pid,
            pidfd,
            sock: socks.launcher,
            cgroup,
            _ids: ids,
            disk,
            sentry: None,
            channels: Channels::default(),
            sentry_feed: None,
            program: None,
            net_pending,
            net: None,
            boost,
            reaped: false,
            cleaned: false,
        };
        if let Some(s) = socks.sentry {
            sb.start_sentry(s, &limits, owner, cgroup_fd.as_ref(), &background)?;
        }
        fail_point("owned")?;
        let resolv = resolv.filter(|_| resolv_conf_target(&spec.image));
        sb.provision(&lower_src, [&ids_uid, &ids_gid], resolv.as_deref())?;
        // Made: the helpers that live as long as the sandbox (its `nft`, which its teardown
        // waits for, and the disk helper, which releases its layer) run at the launcher's own
        // nice value from here, as the launcher does.
        let helpers = [sb.net.as_ref().and_then(crate::net::Link::guard_pid), sb.disk.as_ref().map(DiskJob::pid)];
        background.leave(helpers.into_iter().flatten());
        Ok(sb)
    }

    /// v2: forks the Sentry (into the sandbox's cgroup directly on cgroup v2, `cgroup_fd`),
    /// which the sandbox then holds: from here its drop ends the Sentry too.
    fn start_sentry(
        &mut self,
        socks: SentrySockets,
        limits: &Limits,
        owner: u32,
        cgroup_fd: Option<&OwnedFd>,
        background: &Background,
    ) -> Result<()> {
        if self.spec.container.is_some() {
            self.sentry_feed = Some(socks.program);
        } else {
            drop(socks.program);
        }
        let (memory_limit, millicpu) = container::reported(limits);
        let info = crate::sentry::proc::Info {
            memory_limit,
            millicpu,
            hostname: self.spec.hostname.clone(),
            started: std::time::Instant::now(),
            bind_roots: self.spec.container.is_some(),
        };
        let boot = crate::sentry::process::Bootstrap {
            from_program: socks.from_program,
            to_launcher: socks.to_launcher,
            init_pid: self.pid,
            owner,
            memory_cgroup: self.cgroup.dirs().into_iter().next(),
            info,
            report: self.spec.report.is_some(),
            fifos_possible: self.spec.binds.iter().any(|b| may_hold_fifos(&b.source))
                || matches!(&self.spec.image, Image::Dir(d) if may_hold_fifos(d)),
        };
        let spid = spawn_sentry(boot, cgroup_fd, background)?;
        self.sentry = Some((spid, socks.launcher));
        // The OOM killer must pick the program, never the Sentry serving it: exempt the
        // Sentry, or (lowering a score takes CAP_SYS_RESOURCE, which some hosts' root
        // lacks) make the sandbox's own processes the first choice; the program
        // inherits its init's score.
        if sys::write_file(Path::new(&format!("/proc/{spid}/oom_score_adj")), b"-1000").is_err() {
            let _ = sys::write_file(Path::new(&format!("/proc/{}/oom_score_adj", self.pid)), b"1000");
        }
        if self.cgroup.unified_dir().is_none() {
            self.cgroup.add_pid(spid)?;
        }
        Ok(())
    }

    /// Joins the cgroup (v1), maps ids, and sends the mounts; then lets the child go.
    fn provision(&mut self, lower_src: &Path, maps: [&str; 2], resolv: Option<&str>) -> Result<()> {
        let userns = self.map_ids(maps)?;
        self.send_mounts(lower_src, &userns, resolv)?;
        if let Some(pending) = self.net_pending.take() {
            self.net = Some(pending.finish()?);
            crate::trace::mark("network ready");
        }
        self.send_mount(&ToSandbox::Stage, None)?;
        crate::trace::mark("mounts sent");
        self.send_disk(&userns)?;
        self.send_mount(&ToSandbox::Go, None)
    }

    /// Moves the first process into its cgroup (v1) and writes its id maps; returns its user
    /// namespace, which the mounts are idmapped to.
    fn map_ids(&self, maps: [&str; 2]) -> Result<OwnedFd> {
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
        Ok(userns)
    }

    /// Sends one message to the first process, with the mount (or other descriptor) it is about.
    pub(super) fn send_mount(&self, m: &ToSandbox, fd: Option<&OwnedFd>) -> Result<()> {
        let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
        fdpass::sendmsg(self.sock.as_fd(), &m.encode().map_err(Error::Invalid)?, &fds)
            .context(|| "cannot send a mount to the sandbox".into())
    }

    /// The image (or a container's root and mounts), the host's system directories, `/dev`,
    /// v2's `/proc` placeholder, the binds and the egress `resolv.conf`.
    fn send_mounts(&self, lower_src: &Path, userns: &OwnedFd, resolv: Option<&str>) -> Result<()> {
        if let Some(c) = &self.spec.container {
            self.send_container_mounts(c, userns)?;
        } else {
            let lower = idmapped(lower_src, userns, 0, false)?;
            self.send_mount(&ToSandbox::Lower, Some(&lower))?;
        }
        if self.spec.image == Image::Host {
            for d in host::SYSTEM_DIRS {
                let p = Path::new("/").join(d);
                if p.is_symlink() || !p.is_dir() {
                    continue;
                }
                let fd = idmapped(
                    &p,
                    userns,
                    abi::MOUNT_ATTR_RDONLY | abi::MOUNT_ATTR_NODEV | abi::MOUNT_ATTR_NOSUID,
                    true,
                )?;
                self.send_mount(&attach_msg(&p, true, Access::ReadOnly, false), Some(&fd))?;
            }
        }
        if self.spec.container.is_none() {
            // v1's `/dev` is capped (v2's counts toward the function's memory, no cap of its own).
            let size = (self.spec.kind == SandboxKind::V1).then_some(V1_DEV_SIZE);
            let dev = rootfs::make_dev(size, userns).context(|| "cannot make the sandbox's /dev".into())?;
            self.send_mount(&ToSandbox::Dev, Some(&dev))?;
        }
        if self.spec.kind == SandboxKind::V2 && self.spec.container.is_none() {
            let placeholder = proc_placeholder()?;
            self.send_mount(&attach_msg(Path::new("/proc"), true, Access::ReadOnly, false), Some(&placeholder))?;
        }
        for b in &self.spec.binds {
            // The host path of a read-only directory bound in is not the sandbox's to know (it
            // is shown through an overlay), nor a small read-only file's (it is copied).
            let hide = b.access == Access::ReadOnly && self.spec.container.is_none();
            let dir = b.source.is_dir();
            let copy = match hide && !dir {
                true => rootfs::copy_file(&b.source, userns, bind_attrs(b.access))
                    .context(|| format!("cannot copy {}", b.source.display()))?,
                false => None,
            };
            let (fd, overlay) = match copy {
                Some(fd) => (fd, false),
                None => (idmapped(&b.source, userns, bind_attrs(b.access), true)?, hide && dir),
            };
            self.send_mount(&attach_msg(&b.target, dir, b.access, overlay), Some(&fd))?;
        }
        if let Some(text) = resolv {
            let fd = rootfs::file_mount(text.as_bytes(), 0o444, None, userns, bind_attrs(Access::ReadOnly))
                .context(|| "cannot make the sandbox's /etc/resolv.conf".into())?;
            self.send_mount(&attach_msg(Path::new("/etc/resolv.conf"), false, Access::ReadOnly, false), Some(&fd))?;
        }
        Ok(())
    }

    /// The writable layer: fnbox's disk layer, or a container's upper layer's directory (none
    /// for a container whose root is a directory).
    fn send_disk(&self, userns: &OwnedFd) -> Result<()> {
        let disk = match (&self.disk, self.spec.container.as_ref().map(|c| &c.root)) {
            (_, Some(ContainerRoot::Overlay { upper, .. })) => {
                // The snapshot's directory, holding its upper and work directories.
                let dir = upper.parent().ok_or_else(|| Error::Invalid(format!("{} has no parent", upper.display())))?;
                Some(idmapped(dir, userns, 0, false)?)
            }
            (_, Some(ContainerRoot::Dir(_))) => None,
            (Some(job), None) => {
                let disk = job.take()?;
                mount::idmap(&disk, userns, 0, false).context(|| "cannot idmap the writable layer".into())?;
                Some(disk)
            }
            (None, None) => return Err(Error::Setup("no disk job".into())),
        };
        if let Some(disk) = disk {
            self.send_mount(&ToSandbox::Disk, Some(&disk))?;
            crate::trace::mark("disk sent");
        }
        Ok(())
    }
}

/// Forks the Sentry (into the sandbox's cgroup directly on cgroup v2).
fn spawn_sentry(
    boot: crate::sentry::process::Bootstrap,
    cgroup_fd: Option<&OwnedFd>,
    background: &Background,
) -> Result<libc::pid_t> {
    let clone = || {
        // SAFETY: the launcher is still single-threaded here; the child only runs the Sentry,
        // which ends in _exit.
        unsafe { process::clone3_fork(0, cgroup_fd.map(|f| f.as_fd())) }
    };
    match background.clone_sandbox_process(clone).context(|| "cannot start the Sentry".into())? {
        process::Forked::Child => {
            // Keep only the Sentry's two sockets (as fds 3 and 4).
            let mut boot = boot;
            let mut kept = sys::keep_only(vec![boot.from_program, boot.to_launcher]).into_iter();
            let (Some(from_program), Some(to_launcher)) = (kept.next(), kept.next()) else {
                unreachable!("keep_only returns what it is given")
            };
            boot.from_program = from_program;
            boot.to_launcher = to_launcher;
            crate::sentry::process::run(boot)
        }
        process::Forked::Parent { pid, .. } => Ok(pid),
    }
}

/// A background start's launcher runs at [`process::BACKGROUND_NICE`] while it makes the
/// sandbox (and so do the `ip`, `nft` and disk helper it starts meanwhile): a refill of the
/// warm pool then takes little of the CPU that instances and cold starts want, as its sandbox
/// does through its cgroup's weight. The launcher is back at its own nice value once the
/// sandbox is made, before it waits on it: a claim's attach and `throttle` must not queue
/// behind the machine's load. The sandbox's own processes (its first process, the Sentry) are
/// cloned at the launcher's own value: their share is their cgroup's weight, which the claim
/// raises, and a nice value inherited would outlive it. Entered only when it can be left
/// (lowering a nice value takes CAP_SYS_NICE).
struct Background {
    /// The launcher's own nice value, while it runs at the background one.
    own: Option<i32>,
}

impl Background {
    fn enter(background: bool) -> Self {
        let own = match background && process::may_lower_nice() {
            true => process::thread_nice().ok().filter(|n| *n < process::BACKGROUND_NICE),
            false => None,
        };
        Self { own: own.filter(|_| process::set_thread_nice(process::BACKGROUND_NICE).is_ok()) }
    }

    /// The sandbox is made: `helpers` (the launcher's children that outlive the start) and the
    /// launcher go back to the launcher's own nice value.
    fn leave(self, helpers: impl Iterator<Item = libc::pid_t>) {
        if let Some(own) = self.own {
            for pid in helpers {
                let _ = process::set_nice_of(pid, own);
            }
        }
    }

    /// Runs `clone` (of one of the sandbox's processes) at the launcher's own nice value, then
    /// goes back to the background one in the parent.
    fn clone_sandbox_process(
        &self,
        clone: impl FnOnce() -> std::io::Result<process::Forked>,
    ) -> std::io::Result<process::Forked> {
        let Some(own) = self.own else { return clone() };
        process::set_thread_nice(own)?;
        let forked = clone();
        if !matches!(forked, Ok(process::Forked::Child)) {
            let _ = process::set_thread_nice(process::BACKGROUND_NICE);
        }
        forked
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(own) = self.own {
            let _ = process::set_thread_nice(own);
        }
    }
}

/// Checks the spec and the caller, prepares fnbox's host state and reaps what dead launchers
/// left under the spec's cgroup parent; returns the host's cgroup layout.
fn prepare_host(spec: &SandboxSpec, paths: &Paths) -> Result<cgroup::Layout> {
    spec.validate()?;
    if !sys::is_root() {
        return Err(Error::NotRoot);
    }
    let mounts = cgroup::mountinfo()?;
    let layout = cgroup::Layout::from_mountinfo(&mounts)?;
    cgroup::tune_host(&layout, &mounts);
    reap_stale(paths, &layout, &spec.cgroup_parent);
    paths.prepare()?;
    Ok(layout)
}

/// Egress: the resolvers and the `resolv.conf` naming them, before anything is cloned. The
/// rules load (`nft`) meanwhile: they need none of the sandbox's namespaces.
fn begin_egress(
    spec: &SandboxSpec,
    paths: &Paths,
    egress: bool,
    slot: u32,
    cfg: &mut ChildConfig,
) -> Result<(Option<crate::net::Pending>, Option<String>)> {
    if !egress {
        return Ok((None, None));
    }
    let servers = crate::net::resolvers();
    let resolv = crate::net::resolv_conf(&servers);
    cfg.egress_slot = Some(slot);
    Ok((Some(crate::net::begin(paths, slot, &spec.allow_net, &servers)?), Some(resolv)))
}

/// The namespaces the first process is cloned with (a container's shared ones are joined
/// here, by the launcher).
fn namespaces(spec: &SandboxSpec, egress: bool, cfg: &mut ChildConfig) -> Result<u64> {
    let mut flags = container::clone_flags(spec)?;
    // A network namespace is the slowest to create (its loopback device and sysctl tables,
    // ~0.7 ms): the child makes its own while the launcher sets up the cgroup and the ids.
    // Containers get theirs at clone time: their supervisor joins it as soon as `start`
    // returns; so do egress sandboxes, whose link is made in it right after the clone.
    if spec.container.is_none() && !egress && flags & libc::CLONE_NEWNET as u64 != 0 {
        flags &= !(libc::CLONE_NEWNET as u64);
        cfg.new_net = true;
    }
    Ok(flags)
}

/// The socket pairs made before the clone: launcher ↔ first process, and in v2 the Sentry's.
struct Sockets {
    launcher: OwnedFd,
    child: OwnedFd,
    sentry: Option<SentrySockets>,
}

/// v2: program → Sentry (its listener and root), Sentry → launcher (its counters).
struct SentrySockets {
    /// The program's end (kept by the launcher of a container for `exec`'d processes).
    program: OwnedFd,
    from_program: OwnedFd,
    launcher: OwnedFd,
    to_launcher: OwnedFd,
}

impl Sockets {
    fn new(v2: bool) -> Result<Self> {
        let pair = || fdpass::seqpacket_pair().context(|| "socketpair".into());
        let (launcher, child) = pair()?;
        let sentry = match v2 {
            true => {
                let ((program, from_program), (launcher, to_launcher)) = (pair()?, pair()?);
                Some(SentrySockets { program, from_program, launcher, to_launcher })
            }
            false => None,
        };
        Ok(Self { launcher, child, sentry })
    }
}

/// The first process and the cgroup while `start` makes them, until the [`Sandbox`] owns them
/// ([`Making::done`]). Dropped on an error, it kills and reaps the process, then removes the
/// cgroup; the slot lock, disk helper, network rules and sockets `start` holds meanwhile are
/// released by their own drops, after it (they were made before it: locals drop in reverse).
#[derive(Default)]
struct Making {
    init: Option<(libc::pid_t, OwnedFd)>,
    cgroup: Option<Cgroup>,
}

impl Making {
    /// The cgroup and the first process's pidfd, for the [`Sandbox`].
    fn done(mut self) -> Result<(Cgroup, OwnedFd)> {
        match (self.cgroup.take(), self.init.take()) {
            (Some(cgroup), Some((_, pidfd))) => Ok((cgroup, pidfd)),
            (cgroup, init) => {
                (self.cgroup, self.init) = (cgroup, init);
                Err(Error::Setup("the sandbox's cgroup or first process was not made".into()))
            }
        }
    }
}

impl Drop for Making {
    fn drop(&mut self) {
        if let Some((pid, pidfd)) = self.init.take() {
            super::end_process(pid, Some(&pidfd));
        }
        if let Some(cgroup) = self.cgroup.take() {
            let _ = cgroup.destroy();
        }
    }
}

#[cfg(test)]
thread_local! {
    /// The step at which a test makes `start` fail (`start_tests.rs`).
    static FAIL_AT: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Fails `start` at `step` when a test asks for it (only compiled into tests): how the tests
/// check that an error between two steps leaves nothing behind.
fn fail_point(step: &'static str) -> Result<()> {
    #[cfg(test)]
    if FAIL_AT.get() == Some(step) {
        return Err(Error::Setup(format!("the test made the start fail at '{step}'")));
    }
    let _ = step;
    Ok(())
}

#[cfg(test)]
#[path = "start_tests.rs"]
mod tests;
