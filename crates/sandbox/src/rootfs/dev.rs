//! `/dev`, `/proc` and `/sys` inside a sandbox.

use super::{err, make_mountpoint};
use crate::error::Result;
use crate::sys::{self, abi, mount};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The device nodes of a sandbox's `/dev` (Docker's defaults): name, major, minor.
const DEVICES: [(&str, u32, u32); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

const DEV_LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Docker's masked paths: files get `/dev/null` bound over them, directories an empty
/// read-only tmpfs.
const PROC_MASKED: [&str; 10] = [
    "acpi",
    "asound",
    "interrupts",
    "kcore",
    "keys",
    "latency_stats",
    "sched_debug",
    "scsi",
    "timer_list",
    "timer_stats",
];

/// Docker's read-only paths.
const PROC_READONLY: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// A sandbox's `/dev`, made by the launcher (host root) so that its device nodes are real
/// ones (a user namespace cannot `mknod`; binds of the host's nodes would show the host's
/// devtmpfs in mountinfo) and its tmpfs is owned by no host id: a detached tmpfs (`size`
/// caps it, `/dev/shm` included; `None`: no cap of its own) with the standard nodes, `pts`,
/// `shm` and the usual symlinks, idmapped into the sandbox's user namespace so that its files
/// are the sandbox root's. The sandbox mounts its own devpts on `pts`. Not
/// `nodev`: the nodes must open; no process in the sandbox can make another (`mknod` of a
/// device needs `CAP_MKNOD` in the host's user namespace). See docs/architecture.md.
pub fn make_dev(size: Option<&str>, userns: &OwnedFd) -> std::io::Result<OwnedFd> {
    let fs = mount::FsContext::open("tmpfs")?;
    fs.set_string("source", "tmpfs")?;
    fs.set_string("mode", "755")?;
    fs.set_string("size", size.unwrap_or("0"))?;
    let dev = fs.mount(abi::MOUNT_ATTR_NOSUID | abi::MOUNT_ATTR_NOEXEC)?;
    let dir = Some(dev.as_fd());
    for (name, major, minor) in DEVICES {
        sys::mknodat(dir, Path::new(name), libc::S_IFCHR | 0o666, libc::makedev(major, minor))?;
    }
    sys::mkdirat(dir, Path::new("pts"), 0o755, false)?;
    sys::mkdirat(dir, Path::new("shm"), 0o1777, false)?;
    for (name, target) in DEV_LINKS {
        sys::symlinkat(Path::new(target), dir, Path::new(name))?;
    }
    // mknod and mkdir apply the umask: set the modes explicitly.
    for (name, mode) in DEVICES.iter().map(|d| (d.0, 0o666)).chain([("shm", 0o1777)]) {
        sys::fchmodat(dir, Path::new(name), mode)?;
    }
    mount::idmap(&dev, userns, 0, false)?;
    Ok(dev)
}

/// The largest read-only file bind that is copied rather than bound ([`copy_file`]).
const COPY_FILE_MAX: u64 = 32 << 10;

/// A small read-only file bound from the host (a user's `--bind FILE:ro`), copied by the
/// launcher (host root) with [`file_mount`]: the kernel's mountinfo shows a bind's root as its
/// path on the host's filesystem, and a file cannot be hidden under an overlay as a directory
/// is. `None` for anything but a regular file of at most 32 KiB: that is bound as it is (its
/// line shows its host path; see docs/architecture.md).
pub fn copy_file(src: &Path, userns: &OwnedFd, attrs: u64) -> std::io::Result<Option<OwnedFd>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // O_NONBLOCK: a FIFO's open would wait for a writer (it is bound as it is, below).
    let file = std::fs::File::options().read(true).custom_flags(libc::O_NONBLOCK).open(src)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > COPY_FILE_MAX {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    // The host may grow the file meanwhile: never read past the cap.
    file.take(COPY_FILE_MAX + 1).read_to_end(&mut data)?;
    if data.len() as u64 > COPY_FILE_MAX {
        return Ok(None);
    }
    // The copy has the file's owner and mode, so the sandbox may read it exactly when it
    // could read the file bound as it is (seen through the same id mapping).
    file_mount(&data, meta.mode() & 0o777, Some((meta.uid(), meta.gid())), userns, attrs).map(Some)
}

/// A detached, idmapped bind (with mount attributes `attrs`) of a file holding `data` with
/// `mode` and `owner` (host ids; root's if `None`), alone on a tmpfs of its own made by the launcher: its mountinfo line shows `/file`
/// on a tmpfs, no host path and no host id.
pub fn file_mount(
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    userns: &OwnedFd,
    attrs: u64,
) -> std::io::Result<OwnedFd> {
    use std::io::Write;
    let fs = mount::FsContext::open("tmpfs")?;
    fs.set_string("source", "tmpfs")?;
    fs.set_string("mode", "755")?;
    fs.set_string("size", &format!("{}k", (data.len() as u64).div_ceil(4096).max(1) * 4))?;
    let tmp = fs.mount(abi::MOUNT_ATTR_NOSUID | abi::MOUNT_ATTR_NODEV)?;
    let name = Path::new("file");
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    let mut copy = std::fs::File::from(sys::fs::openat(Some(tmp.as_fd()), name, flags, mode)?);
    copy.write_all(data)?;
    if let Some((uid, gid)) = owner {
        sys::lchownat(Some(tmp.as_fd()), name, uid, gid)?;
    }
    // The umask applied at creation (and chown clears set-id bits): set the mode explicitly.
    sys::fchmodat(Some(tmp.as_fd()), name, mode)?;
    let bind = mount::open_tree_clone(Some(tmp.as_fd()), name, false)?;
    mount::idmap(&bind, userns, attrs, false)?;
    Ok(bind)
}

/// A container's `/dev` tmpfs, mounted inside its user namespace (an OCI spec's mounts are
/// made in order, inside the container): the standard nodes bound from the host (a user
/// namespace cannot `mknod`), its own devpts, `/dev/shm` and the usual symlinks. `size` caps
/// the whole tmpfs, `/dev/shm` included.
pub fn mount_dev(dev: &Path, size: Option<&str>) -> Result<()> {
    let opts = format!("mode=755,size={}", size.unwrap_or("0"));
    make_mountpoint(dev, true)?;
    mount::mount(Some("tmpfs"), dev, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC, Some(&opts))
        .map_err(|e| err("cannot mount", dev, e))?;
    for (name, ..) in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = dev.join(name);
        make_mountpoint(&target, false)?;
        mount::bind(&host, &target, false).map_err(|e| err("cannot bind", &host, e))?;
    }
    make_mountpoint(&dev.join("pts"), true)?;
    mount_pts(dev)?;
    let shm = dev.join("shm");
    sys::mkdirat(None, &shm, 0o1777, true).map_err(|e| err("cannot create", &shm, e))?;
    // mkdir applies the umask; set the sticky, world-writable mode explicitly.
    sys::fchmodat(None, &shm, 0o1777).map_err(|e| err("cannot chmod", &shm, e))?;
    for (name, target) in DEV_LINKS {
        sys::symlinkat(Path::new(target), None, &dev.join(name))
            .map_err(|e| err("cannot create", &dev.join(name), e))?;
    }
    Ok(())
}

/// The sandbox's own devpts instance on `dev/pts` (`dev`: the launcher's `/dev`, attached).
pub fn mount_pts(dev: &Path) -> Result<()> {
    let pts = dev.join("pts");
    mount::mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        // No `gid=`: mountinfo shows it as the host's id (the sandbox's range), which a
        // sandbox must not learn; ptys get their opener's group.
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| err("cannot mount", &pts, e))
}

/// procfs for the sandbox's pid namespace, with Docker's masked and read-only paths (files
/// hidden under `null`, the sandbox's own `/dev/null`).
pub fn mount_proc(proc_dir: &Path, null: &Path) -> Result<()> {
    make_mountpoint(proc_dir, true)?;
    mount::mount(Some("proc"), proc_dir, Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
        .map_err(|e| err("cannot mount", proc_dir, e))?;
    for name in PROC_MASKED {
        mask(&proc_dir.join(name), null)?;
    }
    for name in PROC_READONLY {
        make_readonly(&proc_dir.join(name))?;
    }
    Ok(())
}

/// An empty, read-only directory over `p`: a ramfs, whose mountinfo line names no owner (a
/// tmpfs mounted in the sandbox's user namespace shows its host uid and gid).
pub(super) fn empty_readonly_dir(p: &Path) -> std::io::Result<()> {
    mount::mount(Some("ramfs"), p, Some("ramfs"), libc::MS_RDONLY, Some("mode=555"))
}

/// Hides a path: an empty read-only directory over a directory, `null` (a `/dev/null`) over
/// anything else. A path that does not exist is left alone.
pub fn mask(p: &Path, null: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    if meta.is_dir() { empty_readonly_dir(p) } else { mount::bind(null, p, false) }
        .map_err(|e| err("cannot mask", p, e))
}

/// Makes a path (and everything mounted below it) read-only; a missing path is left alone.
pub fn make_readonly(p: &Path) -> Result<()> {
    if !p.exists() {
        return Ok(());
    }
    mount::bind(p, p, true).map_err(|e| err("cannot bind", p, e))?;
    mount::mount_setattr(None, p, abi::MOUNT_ATTR_RDONLY, 0, true).map_err(|e| err("cannot make read-only", p, e))
}

/// sysfs, read-only, with `/sys/firmware` masked (as Docker does).
pub fn mount_sys(sys_dir: &Path) -> Result<()> {
    make_mountpoint(sys_dir, true)?;
    mount::mount(
        Some("sysfs"),
        sys_dir,
        Some("sysfs"),
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )
    .map_err(|e| err("cannot mount", sys_dir, e))?;
    let fw = sys_dir.join("firmware");
    if fw.is_dir() {
        empty_readonly_dir(&fw).map_err(|e| err("cannot mask", &fw, e))?;
    }
    Ok(())
}
