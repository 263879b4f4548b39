//! Building a sandbox's root filesystem inside its mount namespace, then `pivot_root` into it.
//!
//! The launcher (host root) prepares detached mounts — the image (idmapped, so host-root-owned
//! files appear root-owned inside), the system directories of the `host` image, the binds and
//! the disk-backed writable layer — and passes their descriptors to the sandbox's first process.
//! That process, root only inside its user namespace, builds everything it can while the disk
//! layer is still being prepared ([`stage`]), then mounts the overlay root, moves the staged
//! mounts into it and pivots ([`finish`]).

pub mod container;
mod dev;
pub use dev::{copy_file, file_mount, make_dev};
pub mod host;

use crate::error::{Error, Result};
use crate::spec::Access;
use crate::sys::{self, abi, mount};
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// How `/proc` appears in the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcMode {
    /// The kernel's procfs for the sandbox's pid namespace, with sensitive paths masked (v1).
    Kernel,
    /// An empty, read-only directory: the Sentry serves a synthetic `/proc` (v2).
    Placeholder,
}

/// The parts of the layout that differ between sandboxes.
#[derive(Clone, Debug)]
pub struct Layout {
    /// A directory that exists on the host; the new root is assembled on a tmpfs mounted over
    /// it in the sandbox's private mount namespace, invisible to the host and to other
    /// sandboxes (so every sandbox can use the same one).
    pub stage: PathBuf,
    /// Mount an in-memory tmpfs on `/tmp` (v2) instead of keeping it in the disk layer (v1).
    pub tmp_in_memory: bool,
    pub proc: ProcMode,
    /// Mount sysfs read-only (v1); v2 has no `/sys`.
    pub sys: bool,
    /// An OCI container: its own mounts replace fnbox's `/dev`, `/proc` and `/sys`.
    pub container: Option<container::ContainerLayout>,
}

/// A detached mount and where it goes.
pub struct Attach {
    pub fd: OwnedFd,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    /// Whether the source is a directory (else a file: the target is created as a file).
    pub dir: bool,
    pub access: Access,
    /// A read-only directory shown through an overlay of its own (a bind from the host).
    pub overlay: bool,
}

/// How a staged mount enters the new root.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Moved in as it is.
    Move,
    /// An overlay there instead, the staged mount its lower layer (see [`Access::CopyOnWrite`]).
    CopyOnWrite,
    /// A read-only overlay of the staged mount alone: the kernel's mountinfo shows a bind
    /// mount's root as its path on the host, an overlay's as `/`.
    Hidden,
}

/// A staged mount waiting to be moved into the new root.
struct Move {
    from: PathBuf,
    /// Absolute path inside the sandbox.
    to: PathBuf,
    dir: bool,
    entry: Entry,
}

/// Mounts built before the root exists, waiting on the staging tmpfs to be moved in.
pub struct Staged {
    stage: PathBuf,
    moves: Vec<Move>,
    tmp_in_memory: bool,
    lowers: usize,
    container: Option<container::ContainerLayout>,
}

fn err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::Setup(format!("{what} {}: {e}", p.display()))
}

/// First half: everything that does not need the writable layer. Runs in the sandbox's first
/// process, as root of its user namespace, in a fresh mount namespace. `lowers` are the
/// image's layers, topmost first; `dev` the launcher's `/dev` ([`make_dev`]; none for a
/// container, whose mounts say what its `/dev` is).
pub fn stage(layout: &Layout, lowers: Vec<OwnedFd>, attach: Vec<Attach>, dev: Option<OwnedFd>) -> Result<Staged> {
    let stage = &layout.stage;
    // Nothing we do may propagate back to the host.
    mount::mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(|e| err("cannot make the mount namespace private at", Path::new("/"), e))?;
    mount::mount(Some("fnbox"), stage, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=700,size=64k"))
        .map_err(|e| match e.raw_os_error() {
            // This process is root of the sandbox's user namespace only: on the host it is an
            // unprivileged user, who must be able to reach the staging directory.
            Some(libc::EACCES) => Error::Setup(format!(
                "cannot mount the staging tmpfs on {}: a directory above it is not searchable by other \
                 users (the sandbox's first process is one on the host): chmod o+x the directories \
                 above FNBOX_RUN_DIR, or choose another",
                stage.display()
            )),
            _ => err("cannot mount the staging tmpfs on", stage, e),
        })?;
    for d in ["disk", "root"] {
        let p = stage.join(d);
        sys::mkdirat(None, &p, 0o755, false).map_err(|e| err("cannot create", &p, e))?;
    }
    for (i, lower) in lowers.iter().enumerate() {
        let lower_dir = stage.join(lower_name(i));
        sys::mkdirat(None, &lower_dir, 0o755, false).map_err(|e| err("cannot create", &lower_dir, e))?;
        mount::move_mount_to(lower, &lower_dir).map_err(|e| err("cannot attach the image at", &lower_dir, e))?;
    }

    let mut moves = Vec::new();
    // A read-only directory bound from the host is shown through a read-only overlay of its
    // own rather than moved in: the kernel's mountinfo shows a bind mount's root as its path
    // on the host's filesystem (the data directory), an overlay's as `/`. Containers keep
    // their binds as the OCI spec says.
    let hide = |a: &Attach| a.overlay && a.access == Access::ReadOnly && a.dir && layout.container.is_none();
    if attach.iter().any(hide) {
        let empty = stage.join(EMPTY);
        sys::mkdirat(None, &empty, 0o555, false).map_err(|e| err("cannot create", &empty, e))?;
    }
    for (i, a) in attach.iter().enumerate() {
        let at = stage.join(format!("a{i}"));
        make_mountpoint(&at, a.dir)?;
        mount::move_mount_to(&a.fd, &at).map_err(|e| err("cannot attach", &a.target, e))?;
        if a.access.source_readonly() {
            mount::mount_setattr(None, &at, abi::MOUNT_ATTR_RDONLY, 0, true)
                .map_err(|e| err("cannot make read-only", &a.target, e))?;
        }
        let entry = if a.access == Access::CopyOnWrite {
            Entry::CopyOnWrite
        } else if hide(a) {
            Entry::Hidden
        } else {
            Entry::Move
        };
        moves.push(Move { from: at, to: a.target.clone(), dir: a.dir, entry });
    }
    let staged = |moves| Staged {
        stage: stage.clone(),
        moves,
        tmp_in_memory: layout.tmp_in_memory,
        lowers: lowers.len(),
        container: layout.container.clone(),
    };
    if layout.container.is_some() {
        return Ok(staged(moves));
    }
    let dev_dir = stage.join("dev");
    let dev = dev.ok_or_else(|| Error::Setup("no /dev was sent".into()))?;
    make_mountpoint(&dev_dir, true)?;
    mount::move_mount_to(&dev, &dev_dir).map_err(|e| err("cannot attach /dev at", &dev_dir, e))?;
    dev::mount_pts(&dev_dir)?;
    moves.push(Move { from: dev_dir.clone(), to: "/dev".into(), dir: true, entry: Entry::Move });
    // v2's /proc placeholder comes from the launcher, among the attachments.
    if layout.proc == ProcMode::Kernel {
        let proc_dir = stage.join("proc");
        // Masks are binds of the sandbox's own /dev/null: the host's would show its devtmpfs.
        dev::mount_proc(&proc_dir, &dev_dir.join("null"))?;
        moves.push(Move { from: proc_dir, to: "/proc".into(), dir: true, entry: Entry::Move });
    }
    if layout.sys {
        let sys_dir = stage.join("sys");
        dev::mount_sys(&sys_dir)?;
        moves.push(Move { from: sys_dir, to: "/sys".into(), dir: true, entry: Entry::Move });
    }
    Ok(staged(moves))
}

/// An empty directory in the staging area: the second layer of a read-only bind's overlay.
const EMPTY: &str = "empty";

/// The staging directory of layer `i` (short names keep overlayfs's option string short).
fn lower_name(i: usize) -> String {
    if i == 0 {
        "lower".into()
    } else {
        format!("l{i}")
    }
}

/// Second half: the overlay root on the writable layer, the staged mounts moved into it (the
/// copy-on-write ones under an overlay of their own on the same layer), a container's own
/// mounts (`attached[i]`: the launcher's mount for its mount `i`), and `pivot_root`.
///
/// Returns a detached copy of the writable layer's mount (not for containers), which the
/// init keeps to put copy-on-write binds attached later on it (see [`attach_cow`]): after
/// `pivot_root`, the layer is mounted nowhere in the sandbox.
pub fn finish(staged: Staged, disk: Option<OwnedFd>, attached: &mut [Option<OwnedFd>]) -> Result<Option<OwnedFd>> {
    let stage = &staged.stage;
    let disk_dir = stage.join("disk");
    let root = stage.join("root");
    let lowers: Vec<String> = (0..staged.lowers).map(lower_name).collect();
    // Layers named relative to the staging directory: overlayfs shows its options as given in
    // the sandbox's mountinfo, and the staging directory's path is the host's run directory.
    std::env::set_current_dir(stage).map_err(|e| err("cannot enter", stage, e))?;
    let (upper, work) = match staged.container.as_ref().map(|c| &c.overlay) {
        Some(Some((u, w))) => (u.as_str(), w.as_str()),
        Some(None) => ("", ""),
        None => ("upper", "work"),
    };
    match disk {
        Some(disk) => {
            mount::move_mount_to(&disk, &disk_dir)
                .map_err(|e| err("cannot attach the writable layer at", &disk_dir, e))?;
            let opts = format!("lowerdir={},upperdir=disk/{upper},workdir=disk/{work},userxattr", lowers.join(":"));
            mount::mount(Some("fnbox-root"), Path::new("root"), Some("overlay"), 0, Some(&opts))
                .map_err(|e| err("cannot mount the root overlay on", &root, e))?;
        }
        // A container's root directory, written in place.
        None if staged.container.is_some() && lowers.len() == 1 => {
            move_to(&stage.join(&lowers[0]), &root).map_err(|e| err("cannot move the root to", &root, e))?
        }
        None => return Err(Error::Setup("no writable layer for the root".into())),
    }
    for (i, m) in staged.moves.iter().enumerate() {
        let to = inside(&root, &m.to);
        make_mountpoint(&to, m.dir)?;
        match m.entry {
            Entry::CopyOnWrite => {
                // Layers named relative to the staging directory, the current one: overlayfs
                // shows its options in mountinfo, and host paths are not the sandbox's to know.
                let layer = disk_dir.join(format!("cow/{i}"));
                let relative =
                    |p: &Path| p.strip_prefix(stage).map(Path::to_path_buf).unwrap_or_else(|_| p.to_path_buf());
                let overlay = cow_overlay(&relative(&m.from), &relative(&layer))
                    .map_err(|e| err("cannot make a copy-on-write overlay for", &m.to, e))?;
                mount::move_mount_to(&overlay, &to).map_err(|e| err("cannot attach the overlay at", &m.to, e))?;
            }
            Entry::Hidden => {
                // Two layers, the second empty: overlayfs wants two without an upper one. Named
                // relative to the staging directory, the current one.
                let name = m.from.strip_prefix(stage).unwrap_or(&m.from).display();
                let opts = format!("lowerdir={name}:{EMPTY},userxattr");
                let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
                mount::mount(Some("fnbox-bind"), &to, Some("overlay"), flags, Some(&opts))
                    .map_err(|e| err("cannot mount the read-only overlay on", &m.to, e))?;
            }
            Entry::Move => move_to(&m.from, &to).map_err(|e| err("cannot move the staged mount to", &m.to, e))?,
        }
    }
    if staged.tmp_in_memory {
        let tmp = root.join("tmp");
        make_mountpoint(&tmp, true)?;
        mount::mount(Some("tmpfs"), &tmp, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=1777,size=0"))
            .map_err(|e| err("cannot mount", &tmp, e))?;
    }
    if let Some(c) = &staged.container {
        container::apply(&root, c, attached)?;
    }
    let layer = match staged.container {
        Some(_) => None,
        None => Some(mount::clone_tree(&disk_dir, false).map_err(|e| err("cannot keep a copy of", &disk_dir, e))?),
    };
    pivot(&root)?;
    if staged.container.as_ref().is_some_and(|c| c.readonly_root) {
        mount::mount_setattr(None, Path::new("/"), abi::MOUNT_ATTR_RDONLY, 0, false)
            .map_err(|e| err("cannot make read-only", Path::new("/"), e))?;
    }
    Ok(layer)
}

/// A detached overlay mount: `lower` (read-only) under an upper layer in `layer` (a directory
/// on the sandbox's writable layer, created here), so writes land in the sandbox's own disk.
fn cow_overlay(lower: &Path, layer: &Path) -> std::io::Result<OwnedFd> {
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    std::fs::create_dir_all(&upper)?;
    std::fs::create_dir_all(&work)?;
    let path = |p: &Path| match p.to_str() {
        // ':' separates lower layers; ',' the options of an older kernel's mount data.
        Some(s) if !s.contains([':', ',']) => Ok(s.to_string()),
        _ => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} has ':' or ','", p.display()))),
    };
    let fs = mount::FsContext::open("overlay")?;
    fs.set_string("lowerdir", &path(lower)?)?;
    fs.set_string("upperdir", &path(&upper)?)?;
    fs.set_string("workdir", &path(&work)?)?;
    // The sandbox's root is no host root: overlayfs keeps its metadata in user.* xattrs.
    fs.set_flag("userxattr")?;
    fs.mount(0)
}

/// The init's half of a copy-on-write bind attached to a running sandbox: `lower` (the
/// launcher's read-only, idmapped mount of the host directory) under an overlay whose upper
/// layer is on `layer` (from [`finish`]; used once), mounted at `target`. Overlayfs takes its
/// layers by path: both are mounted for the moment on a small tmpfs at `target`, which is
/// gone once the overlay replaces it (the overlay holds its own references to its layers).
pub fn attach_cow(lower: &OwnedFd, layer: OwnedFd, target: &Path) -> std::io::Result<()> {
    let (root, parent, name, at) = running_mountpoint(target, true)?;
    let scratch = mount::FsContext::open("tmpfs")?;
    scratch.set_string("size", "4k")?;
    scratch.set_string("mode", "700")?;
    let scratch = scratch.mount(abi::MOUNT_ATTR_NOSUID | abi::MOUNT_ATTR_NODEV | abi::MOUNT_ATTR_NOEXEC)?;
    mount::move_mount_onto(&scratch, at.as_fd())?;
    // Built through the scratch tmpfs' own descriptor; overlayfs takes its layers by path,
    // relative to the working directory, which is the scratch tmpfs for the moment.
    let built = (|| {
        let layer_at = |name: &str, fd: &OwnedFd| {
            sys::mkdirat(Some(scratch.as_fd()), Path::new(name), 0o700, false)?;
            let dir = sys::fs::openat(Some(scratch.as_fd()), Path::new(name), DIR_NOFOLLOW, 0)?;
            mount::move_mount_onto(fd, dir.as_fd())
        };
        layer_at("l", lower)?;
        layer_at("u", &layer)?;
        sys::fchdir(scratch.as_fd())?;
        cow_overlay(Path::new("l"), Path::new("u/cow/live"))
    })();
    // Whatever happened, the scratch tmpfs (and the layers on it) leave `target`: unmounted by
    // its name in the parent resolved once, never by a path the sandbox could change.
    sys::fchdir(parent.as_fd())?;
    let _ = mount::umount2(Path::new(&name), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW);
    sys::fchdir(root.as_fd())?;
    mount::move_mount_onto(&built?, at.as_fd())
}

const DIR_NOFOLLOW: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;

/// A mount point in a running sandbox (whose programs may rewrite the tree at any moment),
/// from the sandbox's init: its root `/`, its parent resolved inside the root (see
/// [`mountpoint_in_root`]), its name, and itself, made (a directory, or an empty file) and
/// opened in that parent without following a symlink. Everything after uses these
/// descriptors, never the path again.
pub fn running_mountpoint(
    target: &Path,
    dir: bool,
) -> std::io::Result<(OwnedFd, OwnedFd, std::ffi::OsString, OwnedFd)> {
    let io = |e: Error| std::io::Error::other(e.to_string());
    let root = sys::openat(None, Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let (Some(name), Some(up)) = (target.file_name(), target.parent()) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    let parent = mountpoint_in_root(root.as_fd(), up, true).map_err(io)?;
    let name_path = Path::new(name);
    let at = if dir {
        sys::mkdirat(Some(parent.as_fd()), name_path, 0o755, true)?;
        sys::fs::openat(Some(parent.as_fd()), name_path, DIR_NOFOLLOW, 0)?
    } else {
        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW;
        match sys::fs::openat(Some(parent.as_fd()), name_path, flags, 0o644) {
            Err(e) if e.raw_os_error() != Some(libc::EISDIR) && e.raw_os_error() != Some(libc::EEXIST) => {
                return Err(e)
            }
            _ => {}
        }
        sys::fs::openat(Some(parent.as_fd()), name_path, libc::O_PATH | libc::O_NOFOLLOW, 0)?
    };
    Ok((root, parent, name.to_os_string(), at))
}

/// `mount(MS_MOVE)`: moves a mount (with everything mounted under it).
fn move_to(from: &Path, to: &Path) -> std::io::Result<()> {
    mount::move_path(from, to)
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

/// The mount point `path` inside `root`, opened `O_PATH`; made when missing (its directories,
/// then a directory or an empty file), each step relative to a descriptor of its parent
/// resolved inside `root`.
pub fn mountpoint_in_root(root: BorrowedFd<'_>, path: &Path, dir: bool) -> Result<OwnedFd> {
    if let Ok(fd) = sys::open_in_root(root, path, libc::O_PATH) {
        return Ok(fd);
    }
    let names: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            Component::ParentDir => Some(OsStr::new("..")),
            _ => None,
        })
        .collect();
    let mut at = PathBuf::from("/");
    for (i, name) in names.iter().enumerate() {
        let parent =
            sys::open_in_root(root, &at, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| err("cannot open", &at, e))?;
        let name = Path::new(name);
        let made = if i + 1 == names.len() && !dir {
            match sys::fs::openat(Some(parent.as_fd()), name, libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW, 0o644)
            {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(e),
                _ => Ok(()),
            }
        } else if name == Path::new("..") {
            Ok(())
        } else {
            sys::mkdirat(Some(parent.as_fd()), name, 0o755, true)
        };
        made.map_err(|e| err("cannot create the mount point", path, e))?;
        at.push(name);
    }
    sys::open_in_root(root, path, libc::O_PATH).map_err(|e| err("cannot open the mount point", path, e))
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
