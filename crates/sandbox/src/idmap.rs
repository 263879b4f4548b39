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
            if let Some(lock) = try_lock(&dir.join(slot.to_string()))? {
                if !legacy_held(paths, slot) {
                    return Ok(Self { slot, host_base: BASE + slot * SIZE, _lock: lock });
                }
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
        let lock = try_lock(&paths.uid_locks().join(slot.to_string())).ok().flatten()?;
        (!legacy_held(paths, slot)).then_some(Self { slot, host_base: BASE + slot * SIZE, _lock: lock })
    }
}

/// Whether a sandbox of an older fnbox (which locked slots in `run/uids`) holds `slot`: its
/// uids and cgroup are in use until it ends, after an upgrade too.
fn legacy_held(paths: &Paths, slot: u32) -> bool {
    let p = paths.run.join("uids").join(slot.to_string());
    let Ok(f) = File::open(&p) else { return false };
    !matches!(crate::sys::flock(&f, true, true), Ok(true))
}

fn try_lock(p: &Path) -> Result<Option<File>> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
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
        assert!(a.host_base >= BASE && a.host_base.is_multiple_of(SIZE));
        assert_eq!(a.map_line(), format!("0 {} 65536\n", a.host_base));
        let _ = std::fs::remove_dir_all(dir);
    }
}
