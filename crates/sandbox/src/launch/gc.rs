//! Cleaning up after launchers that died without cleaning up (killed with SIGKILL, say).
//! Each sandbox's state directory holds a lock its launcher keeps for the sandbox's life; a
//! directory whose lock can be taken belongs to nobody.

use crate::cgroup::{Cgroup, HostCgroupFs, Layout};
use crate::paths::Paths;
use std::sync::Arc;

/// Removes the cgroups and state of dead sandboxes. Returns how many were reaped.
pub fn reap_stale(paths: &Paths, layout: &Layout) -> usize {
    let Ok(entries) = std::fs::read_dir(paths.sandboxes()) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        let dir = e.path();
        let Ok(lock) = std::fs::File::open(dir.join("lock")) else {
            // A directory without a lock is either being created right now or a leftover of
            // a crash during creation; only the latter is old.
            if e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a.as_secs() > 60) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            continue;
        };
        if !crate::sys::flock(&lock, true, true).unwrap_or(false) {
            continue; // alive
        }
        if let Ok(meta) = std::fs::read(dir.join("meta.json")) {
            if let Ok(m) = serde_json::from_slice::<super::Meta>(&meta) {
                let cg = Cgroup::open(layout, Arc::new(HostCgroupFs), &m.cgroup_parent, &m.cgroup_name);
                cg.kill_all();
                let _ = cg.destroy();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        n += 1;
    }
    n
}
