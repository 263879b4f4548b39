//! The sandbox's first process: finishes the namespaces, builds the root, drops privileges,
//! then becomes the tiny init that starts the program, reaps zombies and forwards signals.
//!
//! This code runs in a child created by `clone3` from the single-threaded launcher, so it may
//! allocate; it never returns (it ends in `_exit`).

use super::config::ChildConfig;
use super::fail::{exit, setup_failed};
use super::init;
use super::protocol::{self as msg, ToSandbox};
use crate::rootfs::{self, Attach};
use crate::sys::{self, fdpass, process};
use std::os::fd::{AsFd, OwnedFd};

/// Runs the child; never returns. `sentry` (v2) is the socket the program sends its seccomp
/// listener and root on.
pub fn run(cfg: &ChildConfig, sock: OwnedFd, sentry: Option<OwnedFd>) -> ! {
    match setup(cfg, &sock) {
        Ok(layer) => init::run(cfg, sock, sentry, layer),
        Err(e) => setup_failed(sock.as_fd(), &e),
    }
}

/// Builds the sandbox; returns the writable layer's detached mount (see [`rootfs::finish`]).
fn setup(cfg: &ChildConfig, sock: &OwnedFd) -> Result<Option<OwnedFd>, String> {
    // If the launcher dies, so does the sandbox (a sibling init: when its socket closes).
    die_with_parent(cfg)?;
    if cfg.new_net {
        // Owned by the sandbox's user namespace, as one made by clone3 would be.
        process::unshare_namespaces(libc::CLONE_NEWNET)
            .map_err(|e| format!("cannot create the network namespace: {e}"))?;
        crate::trace::mark("child: network namespace");
    }
    if cfg.loopback {
        // Now, while the launcher still prepares the mounts.
        crate::net::loopback_up()?;
    }
    // While the host's procfs is still visible (v2 sandboxes have none of their own).
    rename_init();
    let mut got = receive(sock, ToSandbox::Stage)?;
    crate::trace::mark("child: image received");
    // Become root of the user namespace (the launcher has written the id maps by now) with no
    // supplementary groups from the host.
    process::set_ids(0, 0).map_err(|e| format!("cannot become root in the user namespace: {e}"))?;
    process::set_thread_groups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    if let Some(slot) = cfg.egress_slot {
        crate::net::configure_inside(slot)?;
        crate::trace::mark("child: network configured");
    }
    // The cgroup namespace is created now that the launcher has moved us into the sandbox's
    // cgroup, so that cgroup is the namespace's root.
    process::unshare_namespaces(libc::CLONE_NEWCGROUP)
        .map_err(|e| format!("cannot create the cgroup namespace: {e}"))?;
    if got.lowers.is_empty() {
        return Err("no image was sent".into());
    }
    let staged =
        rootfs::stage(&cfg.layout, std::mem::take(&mut got.lowers), std::mem::take(&mut got.attach), got.dev.take())
            .map_err(|e| e.to_string())?;
    crate::trace::mark("child: staged");
    let mut more = receive(sock, ToSandbox::Go)?;
    // A container whose root is a directory has no separate writable layer.
    let disk = more.disk.take().or(got.disk.take());
    if disk.is_none() && cfg.layout.container.as_ref().is_none_or(|c| c.overlay.is_some()) {
        return Err("no writable layer was sent".into());
    }
    let mut attached = std::mem::take(&mut got.attached);
    for (i, fd) in more.attached.into_iter().enumerate().filter_map(|(i, f)| f.map(|f| (i, f))) {
        put(&mut attached, i, fd);
    }
    let layer = rootfs::finish(staged, disk, &mut attached).map_err(|e| e.to_string())?;
    crate::trace::mark("child: root built");
    if let Some(h) = &cfg.hostname {
        set_hostname(h)?;
    }
    // A missing working directory is made, in the sandbox's own writable layer, as runc makes
    // a container's `cwd`; one that cannot be (a file in the way, a read-only image) ends the
    // start with an error (125).
    if std::env::set_current_dir(&cfg.workdir).is_err() {
        std::fs::create_dir_all(&cfg.workdir)
            .and_then(|()| std::env::set_current_dir(&cfg.workdir))
            .map_err(|e| format!("cannot use working directory {}: {e}", cfg.workdir.display()))?;
    }
    // Changing ids cleared the parent-death signal: set it again. (The init keeps its
    // capabilities in the sandbox's user namespace, to attach mounts later; the program drops
    // to Docker's set before it runs.)
    die_with_parent(cfg)?;
    crate::trace::mark("child: ready");
    Ok(layer)
}

/// The parent-death signal: the sandbox ends with its launcher. A sibling init's parent is
/// the launcher's (an OCI verb that exits once the container is created): it gets none, and
/// ends instead when the launcher's socket closes (`init::serve`).
fn die_with_parent(cfg: &ChildConfig) -> Result<(), String> {
    if cfg.sibling {
        return Ok(());
    }
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0).map(drop).map_err(|e| format!("prctl: {e}"))
}

/// Shows pid 1 as `fnbox-init` rather than the launcher's command line (which names the
/// launcher's path on the host).
fn rename_init() {
    let _ = sys::prctl(libc::PR_SET_NAME, c"fnbox-init".as_ptr() as libc::c_ulong, 0);
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may contain spaces) start at the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    // arg_start and arg_end are fields 48 and 49 of the stat line; `rest` starts at field 3.
    let (Some(Ok(start)), Some(Ok(end))) =
        (f.get(45).map(|v| v.parse::<usize>()), f.get(46).map(|v| v.parse::<usize>()))
    else {
        return;
    };
    if end <= start || end - start > 1 << 20 {
        return;
    }
    let name = b"fnbox-init";
    // SAFETY: [start, end) is this process's own argument area, mapped writable in its stack
    // region by the kernel at exec time; nothing in this process reads it any more (the
    // sandbox's init never calls std::env::args).
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, end - start);
        std::ptr::copy_nonoverlapping(name.as_ptr(), p, name.len().min(end - start - 1));
    }
}

/// What the launcher sent so far.
#[derive(Default)]
struct Received {
    /// The image's layers, topmost first.
    lowers: Vec<OwnedFd>,
    disk: Option<OwnedFd>,
    dev: Option<OwnedFd>,
    attach: Vec<Attach>,
    /// A container's mounts prepared by the launcher, by mount index.
    attached: Vec<Option<OwnedFd>>,
}

fn put(v: &mut Vec<Option<OwnedFd>>, i: usize, fd: OwnedFd) {
    if v.len() <= i {
        v.resize_with(i + 1, || None);
    }
    v[i] = Some(fd);
}

/// Receives messages from the launcher until `until`.
fn receive(sock: &OwnedFd, until: ToSandbox) -> Result<Received, String> {
    let mut got = Received::default();
    let mut buf = vec![0u8; msg::BUF];
    loop {
        let (n, mut fds) = fdpass::recv(sock, &mut buf).map_err(|e| format!("receiving mounts: {e}"))?;
        if n == 0 {
            exit(125); // the launcher is gone
        }
        match ToSandbox::decode(&buf[..n])? {
            ToSandbox::Lower => got.lowers.extend(fds.pop()),
            ToSandbox::Bind(i) => {
                let fd = fds.pop().ok_or("mount message without a descriptor")?;
                put(&mut got.attached, usize::from(i), fd);
            }
            ToSandbox::Disk => got.disk = fds.pop(),
            ToSandbox::Dev => got.dev = fds.pop(),
            ToSandbox::Attach(a) => {
                let fd = fds.pop().ok_or("attach message without a descriptor")?;
                got.attach.push(Attach { fd, target: a.target, dir: a.dir, access: a.access, overlay: a.overlay });
            }
            m if m == until => return Ok(got),
            m => return Err(format!("unexpected message {m:?} from the launcher (waiting for {until:?})")),
        }
    }
}

fn set_hostname(name: &str) -> Result<(), String> {
    process::sethostname(name).map_err(|e| format!("cannot set the hostname: {e}"))
}
