//! Host paths made visible inside a sandbox (`--bind SRC[:DST][:ro|:rw|:cow]`) and the checks
//! that keep the host's kernel views (`/proc`, `/sys`, `/dev`, `/run` and the filesystems that
//! show processes or devices) out of them.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a bound directory may be written from inside the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Writes reach the host directory.
    ReadWrite,
    ReadOnly,
    /// Writable, copy-on-write: the host directory is the read-only lower layer of an overlay
    /// whose upper layer is on the sandbox's own disk layer, so writes stay in the sandbox
    /// and are gone with it (how a function's code is writable per instance).
    CopyOnWrite,
}

impl Access {
    /// The byte that stands for it in the launcher's messages to the sandbox.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::ReadWrite => 0,
            Self::ReadOnly => 1,
            Self::CopyOnWrite => 2,
        }
    }

    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::ReadWrite,
            2 => Self::CopyOnWrite,
            _ => Self::ReadOnly,
        }
    }

    /// Whether the host directory itself is mounted read-only.
    pub fn source_readonly(self) -> bool {
        self != Self::ReadWrite
    }
}

/// A host path made visible inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    pub access: Access,
}

impl Bind {
    /// Parses `SRC[:DST][:ro|:rw|:cow]`.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts: Vec<&str> = s.split(':').collect();
        let mut access = Access::ReadWrite;
        if parts.len() > 1 {
            let mode = match *parts.last().unwrap_or(&"") {
                "ro" => Some(Access::ReadOnly),
                "rw" => Some(Access::ReadWrite),
                "cow" => Some(Access::CopyOnWrite),
                _ => None,
            };
            if let Some(m) = mode {
                access = m;
                parts.pop();
            }
        }
        let (src, dst) = match parts.as_slice() {
            [src] => (*src, *src),
            [src, dst] => (*src, *dst),
            _ => return Err(Error::BadBind(s.to_string())),
        };
        if src.is_empty() || !dst.starts_with('/') {
            return Err(Error::BadBind(s.to_string()));
        }
        let source = PathBuf::from(src);
        if !source.exists() {
            return Err(Error::BindSourceMissing(source));
        }
        let source = source.canonicalize().unwrap_or(source);
        if kernel_view(&source) || normalize_abs(Path::new(src)).is_some_and(|p| kernel_view(&p)) {
            return Err(Error::BindKernelView(source));
        }
        // Binds are recursive: `/` would carry the host's /proc and /sys along.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if let Some((at, fs)) = kernel_view_within(&source, &mountinfo) {
            return Err(Error::BindHoldsKernelView { dir: source, at, fs });
        }
        let target = normalize_abs(Path::new(dst)).ok_or_else(|| Error::BadBind(s.to_string()))?;
        if target == Path::new("/") {
            return Err(Error::BadBind(s.to_string()));
        }
        if access == Access::CopyOnWrite && !source.is_dir() {
            return Err(Error::Invalid(format!(
                "bind '{s}': only a directory can be bound copy-on-write (:cow); bind a file with :ro or :rw"
            )));
        }
        Ok(Self { source, target, access })
    }
}

/// Is `p` (absolute, normalised) the host's `/proc`, `/sys`, `/dev` (device nodes, its ptys, the
/// shared memory of every host process) or `/run` (namespace handles, fnbox's run directory
/// with other sandboxes' sockets), or under them?
fn kernel_view(p: &Path) -> bool {
    ["/proc", "/sys", "/dev", "/run"].iter().any(|d| p.starts_with(d))
}

/// Filesystems that show, or let a sandbox reach, the host's processes, devices or kernel.
const KERNEL_FILESYSTEMS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "configfs",
    "pstore",
    "efivarfs",
    "binfmt_misc",
    "fusectl",
    "devtmpfs",
    "devpts",
    "mqueue",
    "nsfs",
    "hugetlbfs",
    "autofs",
    "rpc_pipefs",
    "fuse.lxcfs",
];

/// The first mount at or under `source` (in `mountinfo`, `/proc/self/mountinfo`'s text) of
/// a filesystem that shows the host's processes or kernel, or that lies in its /proc or /sys:
/// (where, its type).
fn kernel_view_within(source: &Path, mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let at = PathBuf::from(unescape_mountinfo(mount.split(' ').nth(4)?));
        let fs = fs.split(' ').next()?;
        (at.starts_with(source) && (KERNEL_FILESYSTEMS.contains(&fs) || kernel_view(&at))).then(|| (at, fs.to_string()))
    })
}

/// A path as mountinfo writes it: space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lexically normalises an absolute path (`.`, `..`, repeated slashes); `None` if relative.
pub fn normalize_abs(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse() {
        // Not /tmp: a bind takes what is mounted below it, and other sandboxes' tests mount
        // their /proc under /tmp (refused, rightly: see kernel_view_within).
        let b = Bind::parse("/usr:/data:ro").unwrap();
        assert_eq!((b.target.as_path(), b.access), (Path::new("/data"), Access::ReadOnly));
        let b = Bind::parse("/usr").unwrap();
        assert_eq!((b.target.as_path(), b.access), (Path::new("/usr"), Access::ReadWrite));
        let b = Bind::parse("/usr:/code:cow").unwrap();
        assert_eq!((b.target.as_path(), b.access), (Path::new("/code"), Access::CopyOnWrite));
        assert!(Bind::parse("/etc/hostname:/x:cow").unwrap_err().to_string().contains("only a directory"));
        assert!(matches!(Bind::parse("/does/not/exist"), Err(Error::BindSourceMissing(_))));
        assert!(matches!(Bind::parse("/usr:relative"), Err(Error::BadBind(_))));
        assert!(matches!(Bind::parse("/usr:/"), Err(Error::BadBind(_))));
    }

    #[test]
    fn binds_of_kernel_views_are_refused() {
        for bad in ["/proc:/x", "/sys", "/proc/self:/p", "/sys/fs/cgroup:/c:ro", "/dev/fd:/x", "/proc/../proc:/y"] {
            assert!(matches!(Bind::parse(bad), Err(Error::BindKernelView(_))), "{bad}");
        }
        assert!(Bind::parse("/usr:/x:ro").is_ok());
        // Binds are recursive: the root carries the host's /proc and /sys.
        let e = Bind::parse("/:/h").unwrap_err();
        assert!(matches!(&e, Error::BindHoldsKernelView { .. }), "{e}");
        assert!(e.to_string().contains("bind source / holds"), "{e}");
        // Host devices, ptys and shared memory; namespace handles and other sandboxes' sockets.
        for bad in ["/dev", "/dev/shm", "/dev/pts:/x", "/run", "/var/run:/x"] {
            assert!(matches!(Bind::parse(bad), Err(Error::BindKernelView(_))), "{bad}");
        }
    }

    #[test]
    fn kernel_views_are_found_under_a_bind_source() {
        let info = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    23 22 0:22 / /mnt/a\\040b rw - proc proc rw\n\
                    24 22 0:23 / /srv/data rw - ext4 /dev/vdb rw\n\
                    25 22 0:24 / /srv/ns/net1 rw - nsfs nsfs rw\n\
                    26 22 0:25 / /opt/d rw - devtmpfs udev rw\n\
                    27 22 0:26 / /opt/q rw - mqueue mqueue rw\n\
                    28 22 0:27 / /opt/h rw - hugetlbfs hugetlbfs rw\n\
                    29 22 0:28 / /opt/a rw - autofs systemd-1 rw\n\
                    30 22 0:29 / /opt/p rw - devpts devpts rw\n";
        let found = |p: &str| kernel_view_within(Path::new(p), info);
        assert_eq!(found("/mnt"), Some((PathBuf::from("/mnt/a b"), "proc".to_string())));
        assert_eq!(found("/mnt/a b"), Some((PathBuf::from("/mnt/a b"), "proc".to_string())));
        assert_eq!(found("/srv/data"), None);
        assert_eq!(found("/mnt/a"), None);
        assert_eq!(found("/srv").map(|f| f.1), Some("nsfs".to_string()));
        for (dir, fs) in [
            ("/opt/d", "devtmpfs"),
            ("/opt/q", "mqueue"),
            ("/opt/h", "hugetlbfs"),
            ("/opt/a", "autofs"),
            ("/opt/p", "devpts"),
        ] {
            assert_eq!(found(dir).map(|f| f.1), Some(fs.to_string()), "{dir}");
        }
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_abs(Path::new("/a/../../b/./c/")).unwrap(), Path::new("/b/c"));
        assert!(normalize_abs(Path::new("a")).is_none());
    }
}
