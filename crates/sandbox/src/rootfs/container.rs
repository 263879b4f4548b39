//! An OCI container's root: its mounts, masked and read-only paths, applied inside the new
//! root before `pivot_root`; and the layers of a rootfs that is an overlay mount (what
//! containerd's snapshotter hands over), which the sandbox mounts again as an overlay of its own
//! writing to the same upper directory.

use super::{dev, err, make_mountpoint, mountpoint_in_root};
use crate::error::{Error, Result};
use crate::spec::{ContainerRoot, Mount, MountKind};
use crate::sys::{self, abi, mount};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What the sandbox's first process applies for a container.
#[derive(Clone, Debug, Default)]
pub struct ContainerLayout {
    pub mounts: Vec<Mount>,
    pub masked: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
    pub readonly_root: bool,
    /// An overlay root: the names of its upper and work directories in the directory sent as
    /// the disk. `None`: the one lower layer is the root itself.
    pub overlay: Option<(String, String)>,
    /// `linux.sysctl`: paths below `/proc/sys` and values.
    pub sysctl: Vec<(String, String)>,
    /// v2: `/dev` without a size cap (it counts as memory).
    pub v2: bool,
}

/// Applies the mounts in order, then masks and read-only paths. `attached[i]` is the
/// launcher's detached mount for mount `i` (binds, and v2's `/proc`).
///
/// The bundle's tree is not fnbox's: its symlinks can point anywhere, and whatever else
/// writes to it (another container on a shared volume) can swap a directory for a symlink at
/// any moment. So every target is resolved by the kernel inside `root` into a descriptor
/// ([`sys::open_in_root`]), mount points are made relative to such descriptors, and each
/// mount is moved onto the descriptor: no path into the bundle is looked up twice. A
/// filesystem is first mounted on `scratch`, a directory of fnbox's own beside the root.
/// See docs/architecture.md, "OCI containers".
pub fn apply(root: &Path, layout: &ContainerLayout, attached: &mut [Option<OwnedFd>]) -> Result<()> {
    let root_fd =
        sys::openat(None, root, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| err("cannot open", root, e))?;
    let root_fd = root_fd.as_fd();
    let scratch = root.with_file_name("scratch");
    let scratch_file = root.with_file_name("scratch-file");
    make_mountpoint(&scratch, true)?;
    make_mountpoint(&scratch_file, false)?;
    for (i, m) in layout.mounts.iter().enumerate() {
        if let Some(fd) = attached.get_mut(i).and_then(Option::take) {
            let dir = is_dir(fd.as_fd());
            let target = mountpoint_in_root(root_fd, &m.target, dir)?;
            let copy = copy_now(fd, if dir { &scratch } else { &scratch_file })
                .map_err(|e| err("cannot copy the prepared mount for", &m.target, e))?;
            mount::move_mount_onto(&copy, target.as_fd()).map_err(|e| err("cannot mount", &m.target, e))?;
            continue;
        }
        let MountKind::Fs { fstype, source, flags, data } = &m.kind else {
            return Err(Error::Setup(format!("no mount was prepared for {}", m.target.display())));
        };
        if mount_fs(&scratch, &m.target, fstype, source, *flags, data, layout.v2)? {
            let target = mountpoint_in_root(root_fd, &m.target, true)?;
            mount::move_path_onto(&scratch, target.as_fd()).map_err(|e| err("cannot mount", &m.target, e))?;
        }
    }
    if !layout.sysctl.is_empty() {
        write_sysctls(root, &layout.sysctl)?;
    }
    for p in &layout.masked {
        let Some(t) = existing_in_root(root_fd, p)? else { continue };
        let masked = if is_dir(t.as_fd()) {
            // An empty read-only directory (see dev::empty_readonly_dir), made on scratch.
            dev::empty_readonly_dir(&scratch).and_then(|()| mount::move_path_onto(&scratch, t.as_fd()))
        } else {
            mount::clone_tree(Path::new("/dev/null"), false).and_then(|null| mount::move_mount_onto(&null, t.as_fd()))
        };
        masked.map_err(|e| err("cannot mask", p, e))?;
    }
    for p in &layout.readonly {
        let Some(t) = existing_in_root(root_fd, p)? else { continue };
        // A recursive copy of what is mounted there, made read-only, put over it.
        let copy = mount::open_tree_clone(Some(t.as_fd()), Path::new(""), true)
            .map_err(|e| err("cannot copy the mount at", p, e))?;
        mount::mount_setattr(Some(copy.as_fd()), Path::new(""), abi::MOUNT_ATTR_RDONLY, 0, true)
            .and_then(|()| mount::move_mount_onto(&copy, t.as_fd()))
            .map_err(|e| err("cannot make read-only", p, e))?;
    }
    Ok(())
}

/// A copy of the launcher's detached mount `fd` made now, in the spec's order: mountinfo
/// lists mounts by creation, the launcher made `fd` before the filesystems mounted here, and
/// the OCI suite checks the order. The kernel copies only attached mounts: `fd` is attached on
/// `scratch` for the moment (a place of fnbox's own), copied with what is below it (its
/// idmapping too), and detached again.
fn copy_now(fd: OwnedFd, scratch: &Path) -> std::io::Result<OwnedFd> {
    mount::move_mount_to(&fd, scratch)?;
    let copy = mount::clone_tree(scratch, true);
    mount::umount2(scratch, libc::MNT_DETACH)?;
    copy
}

/// [`sys::open_in_root`] `O_PATH`, or `None` when nothing is there (masked and read-only paths
/// that do not exist are left alone, as runc does) or nothing can be reached there: below v2's
/// `/proc` placeholder (mode 000; the Sentry answers for `/proc`), as before the change to
/// descriptors.
fn existing_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<Option<OwnedFd>> {
    match sys::open_in_root(root, path, libc::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EACCES)) => Ok(None),
        Err(e) => Err(err("cannot open", path, e)),
    }
}

/// Writes the sysctls through a procfs of the sandbox's own, mounted for the moment beside the
/// root (the container's `/proc` may be v2's placeholder, or none): the values land in the
/// sandbox's namespaces; one that is not theirs to set (a host-wide sysctl) fails the start.
fn write_sysctls(root: &Path, sysctl: &[(String, String)]) -> Result<()> {
    let at = root.with_file_name("sysctl");
    make_mountpoint(&at, true)?;
    mount::mount(Some("proc"), &at, Some("proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
        .map_err(|e| err("cannot mount a procfs on", &at, e))?;
    let r = sysctl.iter().try_for_each(|(k, v)| {
        std::fs::write(at.join("sys").join(k), v.as_bytes()).map_err(|e| {
            Error::Setup(format!(
                "linux.sysctl {}: cannot set it to {v}: {e} (only sysctls of the container's own namespaces can be set)",
                k.replace('/', ".")
            ))
        })
    });
    let _ = mount::umount2(&at, libc::MNT_DETACH);
    r
}

fn is_dir(fd: BorrowedFd<'_>) -> bool {
    sys::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// One filesystem mount of the spec, made on `at` (the caller's scratch directory; `shown`:
/// the target as the container sees it). Kernel filesystems a user namespace may not mount in
/// a shared namespace (sysfs in a joined network namespace, mqueue in a joined IPC namespace,
/// cgroup v1) fall back the way runc's rootless mode does, or are left out: `false`.
fn mount_fs(at: &Path, shown: &Path, fstype: &str, source: &str, flags: u64, data: &str, v2: bool) -> Result<bool> {
    let flags = flags as libc::c_ulong;
    let data = (!data.is_empty()).then_some(data);
    match fstype {
        "tmpfs" if shown == Path::new("/dev") => {
            let size = data.and_then(|d| d.split(',').find_map(|o| o.strip_prefix("size=")));
            dev::mount_dev(at, if v2 { None } else { size })?;
        }
        "sysfs" => {
            if mount::mount(Some(source), at, Some("sysfs"), flags, data).is_err() {
                // The network namespace belongs to another user namespace: the host's sysfs,
                // read-only.
                mount::bind(Path::new("/sys"), at, true).map_err(|e| err("cannot mount sysfs on", shown, e))?;
                let attrs = abi::MOUNT_ATTR_RDONLY | abi::MOUNT_ATTR_NOSUID | abi::MOUNT_ATTR_NODEV;
                mount::mount_setattr(None, at, attrs, 0, true).map_err(|e| err("cannot make read-only", shown, e))?;
            }
        }
        "cgroup" | "cgroup2" | "mqueue" => return Ok(mount::mount(Some(source), at, Some(fstype), flags, data).is_ok()),
        _ => mount::mount(Some(source), at, Some(fstype), flags, data)
            .map_err(|e| err(&format!("cannot mount {fstype} on"), shown, e))?,
    }
    Ok(true)
}

/// A container's root filesystem: an overlay mount's upper, work and lower directories
/// (containerd's overlay snapshotter), or the directory itself. An overlay mount cannot be
/// idmapped; its layers can, and the sandbox mounts an overlay of its own on them.
pub fn root_of(rootfs: &Path) -> Result<ContainerRoot> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::Setup(format!("cannot read /proc/self/mountinfo: {e}")))?;
    let Some(o) = overlay_layers(&info, rootfs) else { return Ok(ContainerRoot::Dir(rootfs.to_path_buf())) };
    let bad = |why: &str| {
        Err(Error::Setup(format!("the rootfs {} is an overlay mount {why}: fnbox cannot rebuild it", rootfs.display())))
    };
    if let Some(rel) = o.upper.iter().chain(&o.work).chain(&o.lowers).find(|l| !l.is_absolute()) {
        return bad(&format!("with a relative layer path ({}); mount it with absolute paths", rel.display()));
    }
    match (o.upper, o.work) {
        (Some(upper), Some(work)) if upper.parent().is_some() && upper.parent() == work.parent() => {
            Ok(ContainerRoot::Overlay { upper, work, lowers: o.lowers })
        }
        (Some(_), Some(_)) => bad("whose upper and work directories are not in the same directory"),
        _ => bad("without an upper directory (read-only); give root.readonly and a directory instead"),
    }
}

struct OverlayDirs {
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    /// Topmost first.
    lowers: Vec<PathBuf>,
}

/// Parses the topmost mount at `at` in a mountinfo text; its layers if it is an overlay.
fn overlay_layers(mountinfo: &str, at: &Path) -> Option<OverlayDirs> {
    let mut found = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        if left.split(' ').nth(4).map(unescape).as_deref() != Some(at.as_os_str().to_string_lossy().as_ref()) {
            continue;
        }
        let mut r = right.split(' ');
        let fstype = r.next().unwrap_or_default();
        let opts = r.nth(1).unwrap_or_default();
        found = (fstype == "overlay").then(|| {
            let mut d = OverlayDirs { upper: None, work: None, lowers: Vec::new() };
            for o in opts.split(',') {
                if let Some(v) = o.strip_prefix("upperdir=") {
                    d.upper = Some(PathBuf::from(unescape(v)));
                } else if let Some(v) = o.strip_prefix("workdir=") {
                    d.work = Some(PathBuf::from(unescape(v)));
                } else if let Some(v) = o.strip_prefix("lowerdir=") {
                    d.lowers.extend(v.split(':').filter(|s| !s.is_empty()).map(|s| PathBuf::from(unescape(s))));
                } else if let Some(v) = o.strip_prefix("lowerdir+=") {
                    d.lowers.push(PathBuf::from(unescape(v)));
                }
            }
            d
        });
    }
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_rootfs_gives_its_layers_topmost_first() {
        let info = "\
29 1 254:0 / / rw - ext4 /dev/vda rw
101 29 0:52 / /run/b/rootfs rw,relatime - overlay overlay rw,lowerdir=/s/3/fs:/s/2/fs,upperdir=/s/4/fs,workdir=/s/4/work
102 29 0:53 / /run/c\\040d/rootfs rw - ext4 /dev/vda rw
";
        let l = overlay_layers(info, Path::new("/run/b/rootfs")).unwrap();
        assert_eq!(l.lowers, ["/s/3/fs", "/s/2/fs"].map(PathBuf::from));
        assert_eq!((l.upper.unwrap(), l.work.unwrap()), (PathBuf::from("/s/4/fs"), PathBuf::from("/s/4/work")));
        assert!(overlay_layers(info, Path::new("/run/c d/rootfs")).is_none());
        assert!(overlay_layers(info, Path::new("/elsewhere")).is_none());
    }

    #[test]
    fn targets_are_resolved_and_made_inside_the_root() {
        let root = std::env::temp_dir().join(format!("fnbox-inroot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("real/etc")).unwrap();
        std::fs::write(root.join("real/etc/hosts"), "").unwrap();
        std::os::unix::fs::symlink("/real/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("real/up")).unwrap();
        std::os::unix::fs::symlink("/", root.join("real/abs")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc", root.join("magic")).unwrap();
        let fd = sys::openat(None, &root, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        let fd = fd.as_fd();
        let real =
            |f: OwnedFd| std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f))).unwrap();
        let at = |p: &str| real(sys::open_in_root(fd, Path::new(p), libc::O_PATH).unwrap());
        assert_eq!(at("/etc/hosts"), root.join("real/etc/hosts"));
        assert_eq!(at("/real/up"), root);
        assert_eq!(at("/real/abs/etc/../.."), root);
        assert_eq!(at("/../.."), root);
        // A link through /proc's magic links would leave the root: it resolves inside it, to
        // nothing.
        assert!(sys::open_in_root(fd, Path::new("/magic/hosts"), libc::O_PATH).is_err());
        assert!(existing_in_root(fd, Path::new("/nothing/here")).unwrap().is_none());
        // Mount points are made inside the root, through links too.
        let made = mountpoint_in_root(fd, Path::new("/real/up/new/dir"), true).unwrap();
        assert_eq!(real(made), root.join("new/dir"));
        let file = mountpoint_in_root(fd, Path::new("/real/abs/etc/f"), false).unwrap();
        assert_eq!(real(file), root.join("real/etc/f"));
        let up = mountpoint_in_root(fd, Path::new("/../../x/../y"), true).unwrap();
        assert_eq!(real(up), root.join("y"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
