//! Cleaning up after launchers that died without cleaning up (killed with SIGKILL, say).
//!
//! A sandbox's cgroup is named `<uid slot>-<random>`, and its launcher holds the lock of that
//! uid slot for the sandbox's life. A cgroup whose slot lock can be taken belongs to nobody:
//! whatever still runs in it is killed and the cgroup removed. The rest of a sandbox (mounts,
//! disk layer, namespaces) dies with its processes.

use crate::cgroup::{Cgroup, HostCgroupFs, Layout};
use crate::idmap::IdRange;
use crate::paths::Paths;
use std::path::PathBuf;
use std::sync::Arc;

/// Removes the cgroups of dead sandboxes under `parent`. Returns how many were reaped.
pub fn reap_stale(paths: &Paths, layout: &Layout, parent: &str) -> usize {
    let dir: PathBuf = match layout {
        Layout::V1 { controllers } => match controllers.iter().find(|(c, _)| c == "memory") {
            Some((_, m)) => m.join(parent),
            None => return 0,
        },
        Layout::V2 { root } => root.join(parent),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(slot) = name.split_once('-').and_then(|(s, _)| s.parse::<u32>().ok()) else {
            continue;
        };
        // Holding the slot while cleaning keeps a new sandbox from taking it meanwhile.
        let Some(_held) = IdRange::try_take(paths, slot) else {
            continue;
        };
        let cg = Cgroup::open(layout, Arc::new(HostCgroupFs), parent, &name);
        cg.kill_all();
        if cg.destroy().is_ok() {
            n += 1;
        }
        // Its network rules, if it had egress (its link went with its network namespace).
        crate::net::forget(slot);
    }
    n
}

/// What [`clean_host`] removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Cleaned {
    /// Cgroups of sandboxes whose launcher died.
    pub cgroups: usize,
    /// Spare writable layers (loop devices and their files).
    pub spares: usize,
    /// Network links and rule chains of dead sandboxes, and the nftables table once no
    /// sandbox has a link (see docs/architecture.md, "Network").
    pub network: usize,
}

/// Removes what fnbox keeps on the host between sandboxes and what dead ones left: the
/// cgroups of dead sandboxes under `parent` and every spare writable layer. Running
/// sandboxes are untouched. `fnbox cleanup` calls it; so does uninstalling.
pub fn clean_host(paths: &Paths, layout: &Layout, parent: &str) -> Cleaned {
    Cleaned {
        cgroups: reap_stale(paths, layout, parent),
        spares: crate::disk::release_spares(paths),
        network: crate::net::clean(paths),
    }
}
