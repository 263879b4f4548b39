//! `/dev`, `/proc` and `/sys` inside a sandbox.

use super::{err, make_mountpoint};
use crate::error::Result;
use crate::sys::{self, abi, mount};
use std::path::Path;

/// Device nodes bound from the host (a user namespace cannot `mknod`).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

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

/// A tmpfs with the standard device nodes, a private devpts instance, `/dev/shm` and the
/// usual symlinks. `size` caps the whole tmpfs, `/dev/shm` included.
pub fn mount_dev(dev: &Path, size: Option<&str>) -> Result<()> {
    let opts = match size {
        Some(s) => format!("mode=755,size={s}"),
        None => "mode=755,size=0".to_string(),
    };
    make_mountpoint(dev, true)?;
    mount::mount(Some("tmpfs"), dev, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC, Some(&opts))
        .map_err(|e| err("cannot mount", dev, e))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = dev.join(name);
        make_mountpoint(&target, false)?;
        mount::bind(&host, &target, false).map_err(|e| err("cannot bind", &host, e))?;
    }
    let pts = dev.join("pts");
    make_mountpoint(&pts, true)?;
    mount::mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        // No `gid=`: mountinfo shows it as the host's id (the sandbox's range), which a
        // sandbox must not learn; ptys get their opener's group.
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| err("cannot mount", &pts, e))?;
    let shm = dev.join("shm");
    sys::mkdirat(None, &shm, 0o1777, true).map_err(|e| err("cannot create", &shm, e))?;
    // mkdir applies the umask; set the sticky, world-writable mode explicitly.
    std::fs::set_permissions(&shm, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
        .map_err(|e| err("cannot chmod", &shm, e))?;
    for (name, target) in DEV_LINKS {
        sys::symlinkat(Path::new(target), None, &dev.join(name))
            .map_err(|e| err("cannot create", &dev.join(name), e))?;
    }
    Ok(())
}

/// procfs for the sandbox's pid namespace, with Docker's masked and read-only paths.
pub fn mount_proc(proc_dir: &Path) -> Result<()> {
    make_mountpoint(proc_dir, true)?;
    mount::mount(Some("proc"), proc_dir, Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
        .map_err(|e| err("cannot mount", proc_dir, e))?;
    for name in PROC_MASKED {
        mask(&proc_dir.join(name))?;
    }
    for name in PROC_READONLY {
        make_readonly(&proc_dir.join(name))?;
    }
    Ok(())
}

/// An empty, read-only directory over `p`: a ramfs, whose mountinfo line names no owner (a
/// tmpfs mounted in the sandbox's user namespace shows its host uid and gid).
fn empty_readonly_dir(p: &Path) -> std::io::Result<()> {
    mount::mount(Some("ramfs"), p, Some("ramfs"), libc::MS_RDONLY, Some("mode=555"))
}

/// Hides a path: an empty read-only directory over a directory, `/dev/null` over anything else.
/// A path that does not exist is left alone.
pub fn mask(p: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    if meta.is_dir() { empty_readonly_dir(p) } else { mount::bind(Path::new("/dev/null"), p, false) }
        .map_err(|e| err("cannot mask", p, e))
}

/// Makes a path (and everything mounted below it) read-only; a missing path is left alone.
pub fn make_readonly(p: &Path) -> Result<()> {
    if !p.exists() {
        return Ok(());
    }
    mount::bind(p, p, true).map_err(|e| err("cannot bind", p, e))?;
    mount::set_attr(None, p, abi::MOUNT_ATTR_RDONLY, 0, true).map_err(|e| err("cannot make read-only", p, e))
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
