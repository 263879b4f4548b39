//! An OCI container's root: its mounts, masked and read-only paths, applied inside the new
//! root before `pivot_root`; and the layers of a rootfs that is an overlay mount (what
//! containerd's snapshotter hands over), which the sandbox mounts again as an overlay of its own
//! writing to the same upper directory.

use super::{dev, err, make_mountpoint};
use crate::error::{Error, Result};
use crate::spec::{ContainerRoot, Mount, MountKind};
use crate::sys::{abi, mount};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

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
pub fn apply(root: &Path, layout: &ContainerLayout, attached: &mut [Option<OwnedFd>]) -> Result<()> {
    for (i, m) in layout.mounts.iter().enumerate() {
        let target = secure_join(root, &m.target);
        if let Some(fd) = attached.get_mut(i).and_then(Option::take) {
            make_mountpoint(&target, is_dir(&fd))?;
            mount::move_mount_to(&fd, &target).map_err(|e| err("cannot mount", &m.target, e))?;
            continue;
        }
        let MountKind::Fs { fstype, source, flags, data } = &m.kind else {
            return Err(Error::Setup(format!("no mount was prepared for {}", m.target.display())));
        };
        mount_fs(&target, &m.target, fstype, source, *flags, data, layout.v2)?;
    }
    if !layout.sysctl.is_empty() {
        write_sysctls(root, &layout.sysctl)?;
    }
    for p in &layout.masked {
        dev::mask(&secure_join(root, p), Path::new("/dev/null"))?;
    }
    for p in &layout.readonly {
        dev::make_readonly(&secure_join(root, p))?;
    }
    Ok(())
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

fn is_dir(fd: &OwnedFd) -> bool {
    // SAFETY: `st` is a valid out-buffer for fstat on our own descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::fstat(fd.as_raw_fd(), &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR }
}

/// One filesystem mount of the spec. Kernel filesystems a user namespace may not mount in a
/// shared namespace (sysfs in a joined network namespace, mqueue in a joined IPC namespace,
/// cgroup v1) fall back the way runc's rootless mode does, or are left out.
fn mount_fs(at: &Path, shown: &Path, fstype: &str, source: &str, flags: u64, data: &str, v2: bool) -> Result<()> {
    let flags = flags as libc::c_ulong;
    let data = (!data.is_empty()).then_some(data);
    match fstype {
        "tmpfs" if shown == Path::new("/dev") => {
            let size = data.and_then(|d| d.split(',').find_map(|o| o.strip_prefix("size=")));
            dev::mount_dev(at, if v2 { None } else { size })
        }
        "sysfs" => {
            make_mountpoint(at, true)?;
            if mount::mount(Some(source), at, Some("sysfs"), flags, data).is_ok() {
                return Ok(());
            }
            // The network namespace belongs to another user namespace: the host's sysfs,
            // read-only.
            mount::bind(Path::new("/sys"), at, true).map_err(|e| err("cannot mount sysfs on", shown, e))?;
            mount::set_attr(None, at, abi::MOUNT_ATTR_RDONLY | abi::MOUNT_ATTR_NOSUID | abi::MOUNT_ATTR_NODEV, 0, true)
                .map_err(|e| err("cannot make read-only", shown, e))
        }
        "cgroup" | "cgroup2" | "mqueue" => {
            make_mountpoint(at, true)?;
            let _ = mount::mount(Some(source), at, Some(fstype), flags, data);
            Ok(())
        }
        _ => {
            make_mountpoint(at, true)?;
            mount::mount(Some(source), at, Some(fstype), flags, data)
                .map_err(|e| err(&format!("cannot mount {fstype} on"), shown, e))
        }
    }
}

/// `root` joined with `path` the way the container will see it: symlinks met on the way are
/// followed inside `root` (an absolute one restarts at `root`, `..` stops there), so a
/// symlink in an image can never send a mount outside the container's tree.
pub fn secure_join(root: &Path, path: &Path) -> PathBuf {
    let mut todo: Vec<OsString> = rev_parts(path);
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let here: PathBuf = root.join(done.iter().collect::<PathBuf>()).join(&c);
        match std::fs::read_link(&here) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    done.clear();
                }
                todo.extend(rev_parts(&target));
            }
            _ => done.push(c),
        }
    }
    root.join(done.iter().collect::<PathBuf>())
}

/// The normal and `..` components of `p`, last first.
fn rev_parts(p: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    v.reverse();
    v
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
    fn symlinks_stay_inside_the_root() {
        let root = std::env::temp_dir().join(format!("fnbox-securejoin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("real/etc")).unwrap();
        std::os::unix::fs::symlink("/real/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("real/up")).unwrap();
        std::os::unix::fs::symlink("/", root.join("real/abs")).unwrap();
        assert_eq!(secure_join(&root, Path::new("/etc/hosts")), root.join("real/etc/hosts"));
        assert_eq!(secure_join(&root, Path::new("/real/up/x")), root.join("x"));
        assert_eq!(secure_join(&root, Path::new("/real/abs/etc/../../y")), root.join("y"));
        assert_eq!(secure_join(&root, Path::new("/../../z")), root.join("z"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
