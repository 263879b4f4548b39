//! Building a sandbox's root filesystem inside its mount namespace, then `pivot_root` into it.
//!
//! The launcher (host root) prepares detached mounts — the image (idmapped, so host-root-owned
//! files appear root-owned inside), the system directories of the `host` image, the binds and
//! the disk-backed writable layer — and passes their descriptors to the sandbox's first process.
//! That process, root only inside its user namespace, attaches them, mounts overlayfs, `/dev`,
//! `/proc` and `/sys`, and pivots.

mod dev;
pub mod host;

use crate::error::{Error, Result};
use crate::sys::{self, abi, mount};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// How `/proc` appears in the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcMode {
    /// The kernel's procfs for the sandbox's pid namespace, with sensitive paths masked (v1).
    Kernel,
    /// An empty, inaccessible directory: the Sentry serves a synthetic `/proc` (v2).
    Placeholder,
}

/// The parts of the layout that differ between sandboxes.
#[derive(Clone, Debug)]
pub struct Layout {
    /// A directory that exists on the host and is empty; the new root is assembled under it
    /// (in the sandbox's private mount namespace, invisible to the host).
    pub stage: PathBuf,
    /// `size=` of the `/dev` tmpfs (`None`: no cap of its own).
    pub dev_size: Option<String>,
    /// Mount an in-memory tmpfs on `/tmp` (v2) instead of keeping it in the disk layer (v1).
    pub tmp_in_memory: bool,
    pub proc: ProcMode,
    /// Mount sysfs read-only (v1); v2 has no `/sys`.
    pub sys: bool,
}

/// A detached mount and where it goes.
pub struct Attach {
    pub fd: OwnedFd,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    /// Whether the source is a directory (else a file: the target is created as a file).
    pub dir: bool,
    pub readonly: bool,
}

/// The descriptors the launcher sends.
pub struct Mounts {
    /// The image (or the `host` skeleton), used as overlayfs's lower layer.
    pub lower: OwnedFd,
    /// The disk-backed writable layer (holds `upper/` and `work/`).
    pub disk: OwnedFd,
    /// System directories of the `host` image, then binds, in order.
    pub attach: Vec<Attach>,
}

fn err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::Setup(format!("{what} {}: {e}", p.display()))
}

/// Assembles the root and pivots into it. Runs in the sandbox's first process, as root of its
/// user namespace, in a fresh mount namespace.
pub fn build(layout: &Layout, m: Mounts) -> Result<()> {
    let stage = &layout.stage;
    // Nothing we do may propagate back to the host.
    mount::mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| err("cannot make the mount namespace private at", Path::new("/"), e))?;
    mount::mount(Some("fnbox"), stage, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=700,size=64k"))
        .map_err(|e| err("cannot mount the staging tmpfs on", stage, e))?;
    let lower = stage.join("lower");
    let disk = stage.join("disk");
    let root = stage.join("root");
    for d in [&lower, &disk, &root] {
        sys::mkdirat(None, d, 0o755, false).map_err(|e| err("cannot create", d, e))?;
    }
    mount::move_mount_to(&m.lower, &lower).map_err(|e| err("cannot attach the image at", &lower, e))?;
    mount::move_mount_to(&m.disk, &disk).map_err(|e| err("cannot attach the writable layer at", &disk, e))?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lower.display(),
        disk.join("upper").display(),
        disk.join("work").display()
    );
    mount::mount(Some("fnbox-root"), &root, Some("overlay"), 0, Some(&opts))
        .map_err(|e| err("cannot mount the root overlay on", &root, e))?;

    for a in &m.attach {
        let target = inside(&root, &a.target);
        make_mountpoint(&target, a.dir)?;
        mount::move_mount_to(&a.fd, &target).map_err(|e| err("cannot attach", &a.target, e))?;
        if a.readonly {
            mount::set_attr(None, &target, abi::MOUNT_ATTR_RDONLY, 0, true)
                .map_err(|e| err("cannot make read-only", &a.target, e))?;
        }
    }

    if layout.tmp_in_memory {
        let tmp = root.join("tmp");
        make_mountpoint(&tmp, true)?;
        mount::mount(Some("tmpfs"), &tmp, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=1777,size=0"))
            .map_err(|e| err("cannot mount", &tmp, e))?;
    }
    dev::mount_dev(&root.join("dev"), layout.dev_size.as_deref())?;
    match layout.proc {
        ProcMode::Kernel => dev::mount_proc(&root.join("proc"))?,
        ProcMode::Placeholder => dev::proc_placeholder(&root.join("proc"))?,
    }
    if layout.sys {
        dev::mount_sys(&root.join("sys"))?;
    }
    pivot(&root)
}

/// `pivot_root` into `root` and drop the old root (and with it the staging area).
fn pivot(root: &Path) -> Result<()> {
    std::env::set_current_dir(root).map_err(|e| err("cannot enter", root, e))?;
    mount::pivot_root(Path::new("."), Path::new(".")).map_err(|e| err("cannot pivot_root into", root, e))?;
    mount::umount2(Path::new("."), libc::MNT_DETACH).map_err(|e| err("cannot detach the old root", root, e))?;
    std::env::set_current_dir("/").map_err(|e| err("cannot enter", Path::new("/"), e))?;
    Ok(())
}

/// `root` + an absolute in-sandbox path.
pub fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

/// Creates a directory (or empty file) to mount on, with its parents.
pub fn make_mountpoint(p: &Path, dir: bool) -> Result<()> {
    if dir {
        std::fs::create_dir_all(p).map_err(|e| err("cannot create the mount point", p, e))
    } else {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err("cannot create", parent, e))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .map(drop)
            .map_err(|e| err("cannot create the mount point", p, e))
    }
}
