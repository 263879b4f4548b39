//! Helpers for this crate's unit tests (see docs/architecture.md, "Unit-test fakes").

use std::path::{Path, PathBuf};

/// A directory under the system's temporary directory, removed (with what it holds) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let mut seed = [0u8; 8];
        crate::sys::random_bytes(&mut seed).expect("getrandom");
        let p = std::env::temp_dir().join(format!("fnbox-{tag}-{:016x}", u64::from_le_bytes(seed)));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// [`crate::Paths`] whose state, run and slot directories all live in this directory.
    pub fn paths(&self) -> crate::Paths {
        let p = crate::Paths { state: self.0.join("state"), run: self.0.join("run"), slots: self.0.join("slots") };
        for d in [&p.state, &p.run, &p.slots] {
            std::fs::create_dir_all(d).expect("create a test directory");
        }
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether this test may do what needs root (loop devices, real cgroups, chroot). When not,
/// says loudly that the test `name` was skipped: a skip must never pass unnoticed.
pub fn root_or_skip(name: &str) -> bool {
    let root = crate::sys::is_root();
    if !root {
        eprintln!("SKIPPED {name}: needs root (run the unit tests as root to cover it)");
    }
    root
}
