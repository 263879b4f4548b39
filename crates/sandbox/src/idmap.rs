//! Host uid/gid ranges: every sandbox maps its uids 0..65535 onto a range of unprivileged
//! host ids that no other running sandbox uses, so two sandboxes share nothing even if one
//! escaped its mount namespace.

use crate::error::{Context, Result};
use crate::paths::Paths;
use std::fs::File;
use std::path::Path;

/// First host id handed out, far above any real account.
pub const BASE: u32 = 0x4000_0000;
/// Ids per sandbox: the whole 16-bit range programs expect to exist (65534 is `nobody`).
pub const SIZE: u32 = 65536;
/// Number of ranges (BASE + SLOTS * SIZE stays below 2^31).
pub const SLOTS: u32 = 16384;

/// A range held for as long as this value lives (the lock file is `flock`ed).
pub struct IdRange {
    pub slot: u32,
    pub host_base: u32,
    _lock: File,
    /// The same slot's lock where an older fnbox looks (`run/uids`), held too when that
    /// directory exists: an older fnbox then neither hands out this range nor reaps this
    /// sandbox as dead.
    _legacy: Option<File>,
}

impl IdRange {
    /// The `uid_map`/`gid_map` line.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.host_base, SIZE)
    }

    /// Takes a free range. Ranges are claimed with `flock`, so a crashed launcher frees its
    /// range automatically.
    pub fn allocate(paths: &Paths) -> Result<Self> {
        let dir = paths.uid_locks();
        let mut seed = [0u8; 4];
        let _ = crate::sys::random_bytes(&mut seed);
        let start = u32::from_le_bytes(seed) % SLOTS;
        for i in 0..SLOTS {
            let slot = (start + i) % SLOTS;
            if let Some(range) = claim(paths, &dir, slot)? {
                return Ok(range);
            }
        }
        Err(crate::Error::Setup(format!(
            "all {SLOTS} uid ranges are in use: too many sandboxes are running on this host"
        )))
    }
}

impl IdRange {
    /// Takes one given slot if it is free (used to clean up after dead launchers).
    pub fn try_take(paths: &Paths, slot: u32) -> Option<Self> {
        claim(paths, &paths.uid_locks(), slot).ok().flatten()
    }
}

/// Locks `slot` in `dir`, and in an older fnbox's `run/uids` if that exists (a sandbox of an
/// older fnbox holds its slot there; see docs/architecture.md, "Host state").
fn claim(paths: &Paths, dir: &Path, slot: u32) -> Result<Option<IdRange>> {
    let Some(lock) = try_lock(&dir.join(slot.to_string()))? else { return Ok(None) };
    let legacy_dir = paths.run.join("uids");
    let legacy = match std::fs::symlink_metadata(&legacy_dir).is_ok_and(|m| m.is_dir()) {
        true => match try_lock(&legacy_dir.join(slot.to_string()))? {
            Some(f) => Some(f),
            None => return Ok(None),
        },
        false => None,
    };
    Ok(Some(IdRange { slot, host_base: BASE + slot * SIZE, _lock: lock, _legacy: legacy }))
}

fn try_lock(p: &Path) -> Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .context(|| format!("cannot open {}", p.display()))?;
    Ok(crate::sys::flock(&f, true, true).context(|| format!("cannot lock {}", p.display()))?.then_some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_allocations_get_distinct_ranges() {
        let dir = std::env::temp_dir().join(format!("fnbox-idmap-test-{}", std::process::id()));
        let paths = Paths { state: dir.clone(), run: dir.clone(), slots: dir.join("slots") };
        // `Paths::prepare` makes it before any sandbox; it wants root, this test does not.
        std::fs::create_dir_all(paths.uid_locks()).unwrap();
        let a = IdRange::allocate(&paths).unwrap();
        let b = IdRange::allocate(&paths).unwrap();
        assert_ne!(a.slot, b.slot);
        // An older fnbox's lock (in run/uids) holds its slot for us too, and ours for it.
        std::fs::create_dir_all(dir.join("uids")).unwrap();
        let c = IdRange::allocate(&paths).unwrap();
        assert!(IdRange::try_take(&paths, c.slot).is_none());
        let old = File::open(dir.join("uids").join(c.slot.to_string())).unwrap();
        assert!(!crate::sys::flock(&old, true, true).unwrap(), "an older fnbox could take slot {}", c.slot);
        drop(old);
        // A slot an older fnbox holds is not ours to take, though our own lock is free.
        let (slot, held) = (c.slot, File::create(dir.join("uids").join(c.slot.to_string())).unwrap());
        drop(c);
        assert!(crate::sys::flock(&held, true, true).unwrap());
        assert!(IdRange::try_take(&paths, slot).is_none());
        assert!(a.host_base >= BASE && a.host_base.is_multiple_of(SIZE));
        assert_eq!(a.map_line(), format!("0 {} 65536\n", a.host_base));
        let _ = std::fs::remove_dir_all(dir);
    }
}
