//! The code store: uploaded zips, checked and unpacked once into `trees/<sha256 of the zip>`,
//! which instances bind copy-on-write at `/code` (their writes never reach it).
//!
//! What is refused, with nothing written outside the store's staging directory: zips over
//! 100 MiB, more than 500 MiB or 100,000 entries unpacked (counted on the bytes actually
//! written, not the sizes the zip claims), entries whose path leaves the tree (zip slip),
//! symlinks that point outside the tree (each target, then each link followed as the kernel
//! does, through other links), links under links, and special files.

use crate::error::{Context, Error, Result};
use fnbox_sandbox::sys::{self, abi};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

pub const ZIP_MAX: u64 = 100 << 20;
pub const UNPACKED_MAX: u64 = 500 << 20;
pub const ENTRIES_MAX: usize = 100_000;

pub struct CodeStore {
    root: PathBuf,
}

impl CodeStore {
    /// Opens (creating) the store under `root`, dropping half-unpacked uploads of a server that
    /// died.
    pub fn open(root: &Path) -> Result<Self> {
        for d in ["trees", "staging"] {
            std::fs::create_dir_all(root.join(d)).context(|| format!("cannot create {}", root.join(d).display()))?;
        }
        if let Ok(rd) = std::fs::read_dir(root.join("staging")) {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn tree(&self, digest: &str) -> PathBuf {
        self.root.join("trees").join(digest)
    }

    pub fn has(&self, digest: &str) -> bool {
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) && self.tree(digest).is_dir()
    }

    /// Checks and unpacks a zip; returns its digest. Storing the same zip twice is free.
    pub fn put_zip(&self, zip: &[u8]) -> Result<String> {
        check_zip_size(zip)?;
        let digest = crate::auth::sha256_hex(zip);
        if self.has(&digest) {
            return Ok(digest);
        }
        let staging = self.root.join("staging").join(format!("{digest}-{}", crate::auth::random_hex(4)));
        std::fs::create_dir(&staging).context(|| format!("cannot create {}", staging.display()))?;
        let unpacked = unpack(zip, &staging).and_then(|_| {
            std::fs::rename(&staging, self.tree(&digest)).context(|| "cannot move the unpacked code into place".into())
        });
        if unpacked.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        unpacked.map(|_| digest)
    }

    /// Checks and unpacks a zip into a directory of its own under `staging/`, removed when the
    /// [`Staged`] is dropped (or at the next start): the source of a build, never stored.
    pub fn stage_zip(&self, zip: &[u8], label: &str) -> Result<Staged> {
        check_zip_size(zip)?;
        let dir = self.root.join("staging").join(format!("{label}-{}", crate::auth::random_hex(6)));
        std::fs::create_dir(&dir).context(|| format!("cannot create {}", dir.display()))?;
        let staged = Staged { dir };
        unpack(zip, &staged.dir)?;
        Ok(staged)
    }

    /// Removes trees no function uses, unless they are younger than `grace` (an upload whose
    /// deploy is still being checked).
    pub fn collect_garbage(&self, used: &HashSet<String>, grace: std::time::Duration) {
        let Ok(rd) = std::fs::read_dir(self.root.join("trees")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let young = e.metadata().and_then(|m| m.modified()).map(|t| t.elapsed().unwrap_or_default() < grace);
            if !used.contains(&name) && !young.unwrap_or(true) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn check_zip_size(zip: &[u8]) -> Result<()> {
    if zip.len() as u64 > ZIP_MAX {
        return Err(Error::TooLarge(format!(
            "the code zip is {} MiB, over the 100 MiB limit: leave out what the function does not need",
            zip.len() >> 20
        )));
    }
    Ok(())
}

/// An unpacked tree that is not stored: removed with this value.
pub struct Staged {
    pub dir: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path inside the tree: relative, no `..`, no root, not empty.
fn inside(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Where a symlink at `link` (relative to the tree) pointing to `target` lands, if inside.
fn symlink_lands_inside(link: &Path, target: &str) -> bool {
    if target.starts_with('/') || target.is_empty() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> =
        link.parent().map(|p| p.components().map(|c| c.as_os_str()).collect()).unwrap_or_default();
    for c in Path::new(target).components() {
        match c {
            Component::Normal(s) => depth.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

fn rejected(msg: String) -> Error {
    Error::RejectedCode(msg)
}

/// Unpacks `zip` into the empty directory `dest`. Regular files and directories first, symlinks
/// last, so no file is ever written through a symlink.
pub fn unpack(zip: &[u8], dest: &Path) -> Result<()> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| rejected(format!("the code is not a valid zip archive ({e}): give a directory or a .zip file")))?;
    if archive.len() > ENTRIES_MAX {
        return Err(rejected(format!(
            "the code zip has {} entries, over the limit of {ENTRIES_MAX}: leave out what the function does not need",
            archive.len()
        )));
    }
    let mut written: u64 = 0;
    let mut symlinks = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| rejected(format!("zip entry {i} cannot be read: {e}")))?;
        let name = entry.name().to_string();
        let Some(rel) = inside(&name) else {
            return Err(rejected(format!(
                "zip entry '{name}' points outside the code directory (zip slip): remove it or use a relative path without '..'"
            )));
        };
        let mode = entry.unix_mode().unwrap_or(0o644);
        let kind = mode & libc::S_IFMT;
        let path = dest.join(&rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).context(|| format!("cannot create directory {name}"))?;
            continue;
        }
        if entry.is_symlink() {
            let mut target = String::new();
            entry
                .by_ref()
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|e| rejected(format!("symlink '{name}' in the zip cannot be read: {e}")))?;
            if !symlink_lands_inside(&rel, &target) {
                return Err(rejected(format!(
                    "symlink '{name}' points to '{target}', outside the code directory: copy the file into the code instead"
                )));
            }
            // Its directory is made now, while no symlink exists that a path could cross.
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).context(|| format!("cannot create the directory of {name}"))?;
            }
            symlinks.push((rel, target));
            continue;
        }
        if kind != 0 && kind != libc::S_IFREG {
            return Err(rejected(format!(
                "zip entry '{name}' is a special file: only files, directories and symlinks are allowed"
            )));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).context(|| format!("cannot create the directory of {name}"))?;
        }
        let exec = mode & 0o111 != 0;
        let mtime = entry.extra_data_fields().find_map(|f| match f {
            zip::extra_fields::ExtraField::ExtendedTimestamp(t) => t.mod_time(),
            _ => None,
        });
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(if exec { 0o755 } else { 0o644 })
            .open(&path)
            .map_err(|e| rejected(format!("zip entry '{name}' cannot be written ({e}): is it in the zip twice?")))?;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(|e| rejected(format!("zip entry '{name}' is corrupt: {e}")))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > UNPACKED_MAX {
                return Err(Error::TooLarge(format!(
                    "the code unpacks to more than {} MiB (a zip bomb?): the limit is 500 MiB unpacked",
                    UNPACKED_MAX >> 20
                )));
            }
            out.write_all(&buf[..n]).context(|| format!("cannot write {name}"))?;
        }
        // The zip's extended timestamp (zip -r and fnbox's own packing write one): Python's
        // byte-code cache is valid only for a source with the modification time it recorded.
        if let Some(t) = mtime {
            let _ = out.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.into()));
        }
    }
    let root = std::fs::File::open(dest).context(|| format!("cannot open {}", dest.display()))?;
    for (rel, target) in &symlinks {
        make_symlink(&root, rel, target)?;
    }
    // Each target was checked on its own; a chain of links is checked as the kernel follows it.
    for (rel, target) in &symlinks {
        check_resolves_inside(&root, rel, target)?;
    }
    let _ = std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755));
    Ok(())
}

/// `openat2` under the tree `root`, never leaving it.
fn open_beneath(root: &std::fs::File, rel: &Path, flags: libc::c_int, resolve: u64) -> std::io::Result<OwnedFd> {
    let how = abi::open_how {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: resolve | abi::RESOLVE_BENEATH | abi::RESOLVE_NO_MAGICLINKS,
    };
    sys::fs::openat2(root.as_fd(), &sys::cpath(rel)?, &how)
}

/// Creates the symlink `rel` → `target` in its directory, reached without crossing a symlink:
/// a link under another link (`a -> ..`, then `a/b`) would otherwise be created wherever the
/// first one leads.
fn make_symlink(root: &std::fs::File, rel: &Path, target: &str) -> Result<()> {
    let name = rel.display();
    let (Some(parent), Some(file)) = (rel.parent(), rel.file_name()) else {
        return Err(rejected(format!("symlink '{name}' has no name")));
    };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let dir = open_beneath(root, parent, libc::O_PATH | libc::O_DIRECTORY, abi::RESOLVE_NO_SYMLINKS).map_err(|e| {
        rejected(format!(
            "symlink '{name}' lies under another symlink ({e}): put links only in real directories of the code"
        ))
    })?;
    sys::symlinkat(Path::new(target), Some(dir.as_fd()), Path::new(file)).map_err(|e| {
        rejected(format!(
            "symlink '{name}' cannot be created ({e}): is its path in the zip twice, or also a directory?"
        ))
    })
}

/// Follows the symlink `rel` as the kernel would, refusing it if it (or a link it goes
/// through) leads outside the tree, or loops. A link to nothing is harmless: its target was
/// already checked to lie inside.
fn check_resolves_inside(root: &std::fs::File, rel: &Path, target: &str) -> Result<()> {
    match open_beneath(root, rel, libc::O_PATH, 0) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => Err(rejected(format!(
            "symlink '{}' -> '{target}' leads outside the code directory through other links: copy the file into the code instead",
            rel.display()
        ))),
        Err(e) => Err(rejected(format!(
            "symlink '{}' -> '{target}' cannot be followed inside the code directory ({e}): remove it",
            rel.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = SimpleFileOptions::default();
        for (name, link, data) in entries {
            match link {
                Some(t) => w.add_symlink(*name, *t, o).unwrap(),
                None => {
                    w.start_file(*name, o).unwrap();
                    w.write_all(data).unwrap();
                }
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("fnbox-codestore-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn symlink_targets() {
        assert!(symlink_lands_inside(Path::new("a/b"), "../c"));
        assert!(!symlink_lands_inside(Path::new("a/b"), "../../c"));
        assert!(!symlink_lands_inside(Path::new("b"), "/etc/passwd"));
    }

    #[test]
    fn stores_by_digest_and_refuses_escapes() {
        let root = tmp("store");
        let store = CodeStore::open(&root).unwrap();
        let good = zip_of(&[("handler.py", None, b"x"), ("lib/a.py", None, b"y"), ("link", Some("lib/a.py"), b"")]);
        let d = store.put_zip(&good).unwrap();
        assert_eq!(std::fs::read_link(store.tree(&d).join("link")).unwrap(), Path::new("lib/a.py"));
        assert_eq!(store.put_zip(&good).unwrap(), d);
        let slip = zip_of(&[("../../evil", None, b"x")]);
        assert!(store.put_zip(&slip).unwrap_err().to_string().contains("zip slip"));
        let out = zip_of(&[("l", Some("../../../etc/passwd"), b"")]);
        assert!(store.put_zip(&out).unwrap_err().to_string().contains("outside the code directory"));
        assert_eq!(std::fs::read_dir(root.join("staging")).unwrap().count(), 0);
        assert!(!root.parent().unwrap().join("evil").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn files_keep_their_modification_time() {
        // Python's byte-code cache holds only for a source with the time it recorded.
        let src = tmp("mtime-src");
        std::fs::create_dir_all(src.join("package/lib")).unwrap();
        let f = std::fs::File::create(src.join("package/lib/__init__.py")).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_001);
        f.set_modified(t).unwrap();
        let zip = crate::client::pack::pack(&src).unwrap();
        let dest = tmp("mtime-dest");
        unpack(&zip, &dest).unwrap();
        let got = std::fs::metadata(dest.join("package/lib/__init__.py")).unwrap().modified().unwrap();
        assert_eq!(got, t);
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dest).unwrap();
    }

    #[test]
    fn link_chains_are_followed_as_the_kernel_does() {
        let root = tmp("chains");
        let store = CodeStore::open(&root).unwrap();
        // Each target lands inside on its own; together they reach /etc/shadow.
        let chain = zip_of(&[("a/b/c/up", Some("../../.."), b""), ("esc", Some("a/b/c/up/../../etc/shadow"), b"")]);
        let e = store.put_zip(&chain).unwrap_err().to_string();
        assert!(e.contains("'esc'") && e.contains("through other links"), "{e}");
        // A link under a link would be created wherever the first one leads.
        let under = zip_of(&[("a/up", Some(".."), b""), ("a/up/up2", Some(".."), b"")]);
        assert!(store.put_zip(&under).is_err());
        let looped = zip_of(&[("x", Some("y"), b""), ("y", Some("x"), b"")]);
        assert!(store.put_zip(&looped).unwrap_err().to_string().contains("cannot be followed"));
        // Chains that stay inside, and links to nothing inside, are fine.
        let fine = zip_of(&[
            ("lib/a.py", None, b"y"),
            ("l1", Some("lib"), b""),
            ("l2", Some("l1/a.py"), b""),
            ("d", Some("nope"), b""),
        ]);
        let d = store.put_zip(&fine).unwrap();
        assert_eq!(std::fs::read(store.tree(&d).join("l2")).unwrap(), b"y");
        assert_eq!(std::fs::read_dir(root.join("staging")).unwrap().count(), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
