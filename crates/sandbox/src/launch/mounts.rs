//! What the launcher makes and sends for a sandbox's mounts: detached, idmapped copies of
//! host directories, v2's `/proc` placeholder, the `ATTACH` messages, and the checks on an
//! image that decide them (see docs/architecture.md, "The two sandboxes").

use super::protocol::{Attach, ToSandbox};
use crate::error::{Context, Result};
use crate::spec::{Access, Image};
use crate::sys::{abi, mount};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Whether the image has an `/etc/resolv.conf` file to bind the egress one over (the host
/// image always does; an image directory only if it holds a plain file there).
pub(super) fn resolv_conf_target(image: &Image) -> bool {
    match image {
        Image::Host => true,
        Image::Dir(d) => std::fs::symlink_metadata(d.join("etc/resolv.conf")).is_ok_and(|m| m.is_file()),
    }
}

/// Whether a tree the sandbox sees could hold a FIFO (checked on the first 10,000 entries;
/// past that, assumed). A FIFO's blocking open must not hold the Sentry's worker, so the
/// Sentry checks every open in sandboxes where FIFOs may exist.
pub(super) fn may_hold_fifos(root: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let mut todo = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = todo.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else { continue };
        if meta.file_type().is_fifo() {
            return true;
        }
        if !meta.is_dir() {
            continue;
        }
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            seen += 1;
            if seen > 10_000 {
                return true;
            }
            match e.file_type() {
                Ok(t) if t.is_fifo() => return true,
                Ok(t) if t.is_dir() => todo.push(e.path()),
                _ => {}
            }
        }
    }
    false
}

/// The cap of v1's `/dev` tmpfs (`/dev/shm` included), as the design says.
pub(super) const V1_DEV_SIZE: &str = "65536k";

/// The source name of v2's `/proc` placeholder.
pub(crate) const PROC_PLACEHOLDER: &str = "fnbox-proc";

/// v2's `/proc`: an empty tmpfs whose root belongs to the host's root (unmapped in the
/// sandbox) with mode 000, so nothing in the sandbox, the Sentry included, may enter it. A
/// path the kernel resolves into it fails with `EACCES`, which is how the Sentry learns that
/// a path led (through a symlink or `..`) into its synthetic `/proc`.
pub(super) fn proc_placeholder() -> Result<OwnedFd> {
    let fail = || "cannot create v2's /proc placeholder".to_string();
    let fs = crate::sys::mount::FsContext::open("tmpfs").context(fail)?;
    // The Sentry's mountinfo shows this mount, by its source, as the procfs it stands for.
    fs.set_string("source", PROC_PLACEHOLDER).context(fail)?;
    fs.set_string("mode", "0").context(fail)?;
    fs.set_string("size", "4k").context(fail)?;
    fs.mount(abi::MOUNT_ATTR_RDONLY | abi::MOUNT_ATTR_NOSUID | abi::MOUNT_ATTR_NODEV | abi::MOUNT_ATTR_NOEXEC)
        .context(fail)
}

/// Mount attributes of a bind's host directory as the sandbox sees it (the lower layer of a
/// copy-on-write bind is read-only: writes go to the overlay above it).
pub(super) fn bind_attrs(access: Access) -> u64 {
    abi::MOUNT_ATTR_NODEV | abi::MOUNT_ATTR_NOSUID | if access.source_readonly() { abi::MOUNT_ATTR_RDONLY } else { 0 }
}

/// The message that attaches a mount at `target` (see [`super::protocol::Attach`]).
pub(super) fn attach_msg(target: &Path, dir: bool, access: Access, overlay: bool) -> ToSandbox {
    ToSandbox::Attach(Attach { target: target.to_path_buf(), dir, access, overlay })
}

/// A detached copy of `src` whose files appear through the sandbox's id mapping. Falls back
/// to a plain copy where the filesystem cannot be idmapped.
pub(super) fn idmapped(src: &Path, userns: &OwnedFd, extra: u64, recursive: bool) -> Result<OwnedFd> {
    let fd = mount::clone_tree(src, recursive).context(|| format!("cannot clone the mount of {}", src.display()))?;
    if mount::idmap(&fd, userns, extra, recursive).is_err() {
        let fd =
            mount::clone_tree(src, recursive).context(|| format!("cannot clone the mount of {}", src.display()))?;
        if extra != 0 {
            mount::mount_setattr(Some(fd.as_fd()), Path::new(""), extra, 0, recursive)
                .context(|| format!("cannot set mount attributes on {}", src.display()))?;
        }
        return Ok(fd);
    }
    Ok(fd)
}
