//! Where fnbox keeps its state on the host, and how that state is brought into being.
//!
//! Nothing here may assume an earlier run: on a fresh machine neither `/var/lib/fnbox` nor
//! `/run/fnbox` exists, and on an upgraded one an older fnbox may have left another layout.
//! [`Paths::prepare`] makes both right before a sandbox is built (see docs/architecture.md,
//! "Host state").

use crate::error::{Context, Error, Result};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The version of the state directory's layout. Bump it when a directory moves or changes
/// meaning, and teach [`migrate`] what the older layout left.
const LAYOUT: &str = "3";
const LAYOUT_FILE: &str = "layout";

/// The host directories fnbox uses.
///
/// * `state` (default `/var/lib/fnbox`, env `FNBOX_STATE_DIR`): on disk. Per-sandbox
///   directories (their disk-backed writable layer lives here), the generated `host` image,
///   the disk templates and the spare layers.
/// * `run` (default `/run/fnbox`, env `FNBOX_RUN_DIR`): the staging directory, egress files.
/// * `slots` (default `/run/fnbox-slots`, env `FNBOX_SLOTS_DIR`): the locks of sandbox slots.
///   A slot names host-wide things (a host uid range, a cgroup, a network link and rule
///   table), so every fnbox on a host shares one slot directory, whatever its state and run
///   directories: two with their own would give two sandboxes the same uids, and each one's
///   clean-up would take the other's live sandboxes for dead ones.
#[derive(Clone, Debug)]
pub struct Paths {
    pub state: PathBuf,
    pub run: PathBuf,
    pub slots: PathBuf,
}

impl Paths {
    pub fn from_env() -> Self {
        let get = |k: &str, d: &str| std::env::var_os(k).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(d));
        Self {
            state: get("FNBOX_STATE_DIR", "/var/lib/fnbox"),
            run: get("FNBOX_RUN_DIR", "/run/fnbox"),
            slots: get("FNBOX_SLOTS_DIR", "/run/fnbox-slots"),
        }
    }

    pub fn sandboxes(&self) -> PathBuf {
        self.state.join("sandboxes")
    }

    pub fn images(&self) -> PathBuf {
        self.state.join("images")
    }

    pub fn disk_templates(&self) -> PathBuf {
        self.state.join("disk-templates")
    }

    /// Writable layers made ahead for the next sandboxes (see `disk/spare.rs`).
    pub fn disk_spares(&self) -> PathBuf {
        self.state.join("disk-spares")
    }

    /// The slot locks (a slot's uid range, cgroup and network names; see [`Paths`]).
    pub fn uid_locks(&self) -> PathBuf {
        self.slots.clone()
    }

    /// Where a launcher stages what it mounts before the sandbox's root exists.
    pub fn stage(&self) -> PathBuf {
        self.run.join("stage")
    }

    /// Every directory this crate uses, with its mode. All belong to root: they hold locks,
    /// images and disk layers that decide what sandboxes see, so none may be writable by
    /// anyone else.
    fn directories(&self) -> [(PathBuf, u32); 7] {
        [
            (self.state.clone(), 0o755),
            (self.sandboxes(), 0o700),
            (self.images(), 0o755),
            (self.disk_templates(), 0o700),
            (self.disk_spares(), 0o700),
            (self.run.clone(), 0o755),
            (self.stage(), 0o700),
        ]
    }

    /// Creates every directory fnbox uses, with its owner and mode, and brings a state
    /// directory left by an older fnbox to the current layout.
    ///
    /// Cheap once done: when the layout file says the current version and the run directory
    /// exists (it is on a tmpfs, gone at each reboot), this is two `stat`-sized calls.
    pub fn prepare(&self) -> Result<()> {
        let current = std::fs::read_to_string(self.state.join(LAYOUT_FILE)).is_ok_and(|v| v.trim() == LAYOUT);
        // The slot directory is shared by every fnbox on the host, so it is checked every
        // time, not only when this state directory is new (a mkdir and a stat).
        ensure_slots_dir(&self.slots)?;
        if current && self.stage().is_dir() {
            return Ok(());
        }
        for (dir, mode) in self.directories() {
            ensure_dir(&dir, mode)?;
        }
        reachable_by_sandboxes(&self.stage())?;
        if !current {
            migrate(self);
            let tmp = self.state.join(format!(".{LAYOUT_FILE}.{}", std::process::id()));
            std::fs::write(&tmp, format!("{LAYOUT}\n"))
                .and_then(|_| std::fs::rename(&tmp, self.state.join(LAYOUT_FILE)))
                .context(|| format!("cannot write {}", self.state.join(LAYOUT_FILE).display()))?;
        }
        Ok(())
    }
}

/// Makes `dir` a directory owned by root with exactly `mode`, creating missing parents
/// (0755, as `mkdir -p` as root would). An existing directory with looser permissions (an
/// older fnbox, or a umask) is tightened; one owned by another user is refused, since whoever
/// owns it could change what fnbox mounts into sandboxes.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).context(|| format!("cannot create {}", parent.display()))?;
            }
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).context(|| format!("cannot create {}", dir.display())),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).context(|| format!("cannot create {}", dir.display())),
    }
    let meta = std::fs::metadata(dir).context(|| format!("cannot inspect {}", dir.display()))?;
    if !meta.is_dir() {
        return Err(Error::Setup(format!(
            "{} is not a directory: fnbox keeps its state there; move that file away",
            dir.display()
        )));
    }
    if meta.uid() != 0 {
        return Err(Error::Setup(format!(
            "{} belongs to uid {}, not root: whoever owns it could change what fnbox mounts into \
             sandboxes; run `chown root: {}` if that is intended, or remove it",
            dir.display(),
            meta.uid(),
            dir.display()
        )));
    }
    if meta.mode() & 0o7777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
            .context(|| format!("cannot set the mode of {} to {mode:o}", dir.display()))?;
    }
    Ok(())
}

/// The slot directory: as [`ensure_dir`] (root's, 0700), and never a symlink (whoever could
/// point it elsewhere could make two sandboxes share a uid range).
fn ensure_slots_dir(dir: &Path) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Setup(format!(
            "{} is a symbolic link: fnbox's slot locks must be in a directory of root's; remove it",
            dir.display()
        )));
    }
    ensure_dir(dir, 0o700)
}

/// Every directory above `dir` must let others search it: a sandbox's first process mounts on
/// `dir` as root of its user namespace only, an unprivileged user on the host. A 0700
/// directory above (`mktemp -d`, a home directory) would fail every sandbox with EACCES.
fn reachable_by_sandboxes(dir: &Path) -> Result<()> {
    for above in dir.ancestors().skip(1) {
        let meta = std::fs::metadata(above).context(|| format!("cannot inspect {}", above.display()))?;
        if meta.mode() & 0o001 == 0 {
            return Err(Error::Setup(format!(
                "{} (mode {:o}) is not searchable by other users, and sandboxes must reach {} below it: \
                 `chmod o+x {}`, or set FNBOX_RUN_DIR elsewhere",
                above.display(),
                meta.mode() & 0o7777,
                dir.display(),
                above.display()
            )));
        }
    }
    Ok(())
}

/// What older layouts left that the current one does not use, removed at the first start of
/// a newer fnbox. Best effort: leftovers cost disk space, never correctness.
///
/// * Layout 1 (before versioned images): `images/host` was the image directory itself and
///   `images/host.stamp` its version; now `images/host` is a symlink to `host-<hash>`.
/// * Layouts 1 and 2: disk templates named other than `ext4-<size>M-v2.img`, and per-sandbox
///   files in `sandboxes/` (layers are now unnamed files: nothing there outlives its sandbox).
fn migrate(paths: &Paths) {
    let images = paths.images();
    let old_host = images.join("host");
    if std::fs::symlink_metadata(&old_host).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_dir_all(&old_host);
    }
    let _ = std::fs::remove_file(images.join("host.stamp"));
    if let Ok(entries) = std::fs::read_dir(paths.disk_templates()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let current = name.starts_with("ext4-") && name.ends_with("M-v2.img");
            if !current && !name.starts_with('.') {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(paths.sandboxes()) {
        for e in entries.flatten() {
            // An image still attached to a loop device of a running older sandbox stays
            // attached: unlinking a name never takes a file from under its device.
            let p = e.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn temp() -> PathBuf {
        let mut seed = [0u8; 8];
        let _ = crate::sys::random_bytes(&mut seed);
        let d = std::env::temp_dir().join(format!("fnbox-paths-{}", u64::from_le_bytes(seed)));
        std::fs::create_dir(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn prepare_creates_every_directory_from_nothing() {
        let t = temp();
        let paths = Paths { state: t.join("a/b/state"), run: t.join("run"), slots: t.join("slots") };
        paths.prepare().unwrap();
        for (d, m) in paths.directories() {
            assert!(d.is_dir(), "{} missing", d.display());
            if is_root() {
                assert_eq!(mode(&d), m, "{}", d.display());
            }
        }
        assert_eq!(std::fs::read_to_string(paths.state.join(LAYOUT_FILE)).unwrap().trim(), LAYOUT);
        // The run directory is a tmpfs: after a reboot it is empty again while the state stays.
        std::fs::remove_dir_all(&paths.run).unwrap();
        paths.prepare().unwrap();
        assert!(paths.uid_locks().is_dir() && paths.stage().is_dir());
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn a_symlinked_or_foreign_slot_directory_is_refused_every_time() {
        if !is_root() {
            return; // ownership checks need root; the end-to-end tests run as root
        }
        let t = temp();
        let paths = Paths { state: t.join("state"), run: t.join("run"), slots: t.join("slots") };
        paths.prepare().unwrap();
        // Once the state is current, the slot directory is still checked.
        std::fs::remove_dir(&paths.slots).unwrap();
        std::fs::create_dir(t.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(t.join("elsewhere"), &paths.slots).unwrap();
        let e = paths.prepare().unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        std::fs::remove_file(&paths.slots).unwrap();
        std::fs::create_dir(&paths.slots).unwrap();
        std::os::unix::fs::chown(&paths.slots, Some(1234), None).unwrap();
        let e = paths.prepare().unwrap_err().to_string();
        assert!(e.contains("belongs to uid 1234"), "{e}");
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn prepare_tightens_loose_modes_and_cleans_an_older_layout() {
        if !is_root() {
            return; // ownership checks need root; the end-to-end tests run as root
        }
        let t = temp();
        let paths = Paths { state: t.join("state"), run: t.join("run"), slots: t.join("slots") };
        for d in [paths.images().join("host/usr"), paths.disk_templates(), paths.sandboxes().join("3-abcd")] {
            std::fs::create_dir_all(&d).unwrap();
        }
        std::fs::write(paths.images().join("host.stamp"), "0.0.1").unwrap();
        std::fs::write(paths.disk_templates().join("ext4-1024M.img"), "old").unwrap();
        std::fs::write(paths.disk_templates().join("ext4-1024M-v2.img"), "current").unwrap();
        std::fs::set_permissions(paths.sandboxes(), std::fs::Permissions::from_mode(0o777)).unwrap();
        paths.prepare().unwrap();
        assert_eq!(mode(&paths.sandboxes()), 0o700);
        assert!(!paths.images().join("host").exists(), "the old image directory is gone");
        assert!(!paths.images().join("host.stamp").exists());
        assert!(!paths.disk_templates().join("ext4-1024M.img").exists());
        assert!(paths.disk_templates().join("ext4-1024M-v2.img").exists(), "the current template stays");
        assert!(std::fs::read_dir(paths.sandboxes()).unwrap().next().is_none());
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn a_run_dir_below_a_private_directory_is_refused_with_the_fix() {
        let t = temp();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o700)).unwrap();
        let paths = Paths { state: t.join("state"), run: t.join("run"), slots: t.join("slots") };
        let e = paths.prepare().unwrap_err().to_string();
        assert!(e.contains("is not searchable by other users") && e.contains("chmod o+x"), "{e}");
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o755)).unwrap();
        paths.prepare().unwrap();
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn ensure_dir_refuses_a_file_and_a_foreign_owner() {
        let t = temp();
        std::fs::write(t.join("f"), "").unwrap();
        let e = ensure_dir(&t.join("f"), 0o755).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
        if is_root() {
            std::fs::create_dir(t.join("d")).unwrap();
            std::os::unix::fs::chown(t.join("d"), Some(1234), None).unwrap();
            let e = ensure_dir(&t.join("d"), 0o755).unwrap_err().to_string();
            assert!(e.contains("belongs to uid 1234"), "{e}");
            // A symlinked state directory (an operator moving it to another disk) is followed.
            std::fs::create_dir(t.join("real")).unwrap();
            symlink(t.join("real"), t.join("link")).unwrap();
            ensure_dir(&t.join("link"), 0o755).unwrap();
        }
        std::fs::remove_dir_all(&t).unwrap();
    }

    fn is_root() -> bool {
        crate::sys::is_root()
    }
}
