//! Where fnbox keeps its state on the host.

use std::path::PathBuf;

/// The host directories fnbox uses.
///
/// * `state` (default `/var/lib/fnbox`, env `FNBOX_STATE_DIR`): on disk. Per-sandbox
///   directories (their disk-backed writable layer lives here), the generated `host` image,
///   the disk templates and the spare layers.
/// * `run` (default `/run/fnbox`, env `FNBOX_RUN_DIR`): locks for uid ranges.
#[derive(Clone, Debug)]
pub struct Paths {
    pub state: PathBuf,
    pub run: PathBuf,
}

impl Paths {
    pub fn from_env() -> Self {
        let get = |k: &str, d: &str| std::env::var_os(k).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(d));
        Self { state: get("FNBOX_STATE_DIR", "/var/lib/fnbox"), run: get("FNBOX_RUN_DIR", "/run/fnbox") }
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

    pub fn uid_locks(&self) -> PathBuf {
        self.run.join("uids")
    }
}
