//! The `host` image: a read-only view of this machine's `/usr` (and `/bin`, `/lib*`, `/sbin`)
//! under a generated skeleton with a small `/etc`. Never the host's shadow, `/root`, `/home`,
//! `/var`, `/proc` or `/sys`.
//!
//! The skeleton is generated once into the state directory and regenerated when the host's
//! `/etc/ld.so.cache` changes (a package was installed) or fnbox's version changes.

use crate::error::{Context, Result};
use crate::paths::Paths;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// Top-level host directories the image shows; each is either a symlink into `/usr` on the
/// host (merged /usr, Debian 12) or a real directory to bind read-only.
pub const SYSTEM_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Empty directories of the skeleton, with their modes.
const EMPTY_DIRS: [(&str, u32); 14] = [
    ("tmp", 0o1777),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("home", 0o755),
    ("root", 0o700),
    ("run", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("code", 0o755),
    ("mnt", 0o755),
    ("opt", 0o755),
    ("srv", 0o755),
    ("etc", 0o755),
];

/// Host `/etc` entries copied as they are (files, symlinks or directory trees).
const ETC_COPIES: [&str; 18] = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "timezone",
    "os-release",
    "debian_version",
    "protocols",
    "services",
    "mime.types",
    "gai.conf",
    "host.conf",
    "shells",
    "profile",
    "bash.bashrc",
    "inputrc",
    "python3",
];

/// Generated `/etc` files. The users and groups are Debian's base ones a container image has
/// (`daemon`, `bin`, `sys`, `adm`, `users`): programs and test suites look them up by name.
const ETC_FILES: [(&str, &str); 7] = [
    (
        "passwd",
        concat!(
            "root:x:0:0:root:/root:/bin/sh\n",
            "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
            "bin:x:2:2:bin:/bin:/usr/sbin/nologin\n",
            "sys:x:3:3:sys:/dev:/usr/sbin/nologin\n",
            "fnbox:x:1000:1000:fnbox:/home/fnbox:/bin/sh\n",
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
    ),
    (
        "group",
        "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\nusers:x:100:\nfnbox:x:1000:\nnogroup:x:65534:\n",
    ),
    ("hosts", "127.0.0.1\tlocalhost fnbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ("hostname", "fnbox\n"),
    ("resolv.conf", "# fnbox sandboxes have loopback networking only\n"),
    (
        "nsswitch.conf",
        "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\nethers: files\nrpc: files\n",
    ),
    ("fnbox-release", concat!("fnbox ", env!("CARGO_PKG_VERSION"), "\n")),
];

/// Returns the skeleton directory, generating it when missing or stale.
///
/// Each version lives in a directory of its own (`host-<stamp hash>`) that is never changed
/// once complete, so sandboxes running on an older version keep a stable root while a new one
/// is built (under a lock, so parallel first runs build it once). `images/host` is a symlink
/// to the current version, for people and scripts.
pub fn skeleton(paths: &Paths) -> Result<PathBuf> {
    let stamp = stamp();
    let hash = stamp.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let parent = paths.images();
    let dir = parent.join(format!("host-{hash:016x}"));
    let done = parent.join(format!("host-{hash:016x}.done"));
    if done.exists() {
        return Ok(dir);
    }
    fs::create_dir_all(&parent).context(|| format!("cannot create {}", parent.display()))?;
    let lock =
        fs::File::create(parent.join(".lock")).context(|| format!("cannot create a lock in {}", parent.display()))?;
    crate::sys::flock(&lock, true, false).context(|| "cannot lock the image directory".into())?;
    if done.exists() {
        return Ok(dir);
    }
    let _ = fs::remove_dir_all(&dir);
    build(&dir).context(|| format!("cannot build the host image in {}", dir.display()))?;
    fs::write(&done, &stamp).context(|| format!("cannot write {}", done.display()))?;
    let link = parent.join(format!(".host-link-{}", std::process::id()));
    let _ = fs::remove_file(&link);
    if symlink(dir.file_name().unwrap_or_default(), &link).is_ok() {
        let _ = fs::rename(&link, parent.join("host"));
    }
    Ok(dir)
}

fn stamp() -> String {
    let cache = fs::metadata("/etc/ld.so.cache")
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // The generated files are part of the image: a change to them makes a new one.
    let etc = ETC_FILES.iter().fold(0u64, |h, (name, text)| {
        name.bytes().chain(text.bytes()).fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    });
    format!("{} {cache} {etc:016x}\n", env!("CARGO_PKG_VERSION"))
}

fn build(root: &Path) -> std::io::Result<()> {
    fs::create_dir(root)?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
    for (d, mode) in EMPTY_DIRS {
        let p = root.join(d);
        fs::create_dir_all(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    }
    for d in SYSTEM_DIRS {
        let host = Path::new("/").join(d);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => symlink(fs::read_link(&host)?, root.join(d))?,
            Ok(m) if m.is_dir() => fs::create_dir(root.join(d))?,
            _ => {}
        }
    }
    let etc = root.join("etc");
    for (name, content) in ETC_FILES {
        fs::write(etc.join(name), content)?;
    }
    symlink("../proc/self/mounts", etc.join("mtab"))?;
    for name in ETC_COPIES {
        copy_tree(&Path::new("/etc").join(name), &etc.join(name))?;
    }
    // Python's versioned config directory (sitecustomize.py lives there on Debian).
    for e in fs::read_dir("/etc")?.flatten() {
        let n = e.file_name();
        if n.to_string_lossy().starts_with("python3.") {
            copy_tree(&e.path(), &etc.join(&n))?;
        }
    }
    // TLS trust store, without private keys.
    fs::create_dir_all(etc.join("ssl"))?;
    for name in ["certs", "openssl.cnf"] {
        copy_tree(&Path::new("/etc/ssl").join(name), &etc.join("ssl").join(name))?;
    }
    Ok(())
}

/// Copies a file, symlink or directory tree; a missing source is skipped.
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let meta = match fs::symlink_metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        symlink(fs::read_link(src)?, dst)
    } else if ft.is_dir() {
        fs::create_dir_all(dst)?;
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.permissions().mode() & 0o7777))?;
        for e in fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        Ok(())
    } else if ft.is_file() {
        fs::copy(src, dst).map(drop)
    } else {
        Ok(())
    }
}
