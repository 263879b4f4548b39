//! How much `fnbox serve` keeps of what happened: log files, versions, per-minute history
//! (`fnbox serve --log-max-mb --log-max-age --keep-versions --history`).

use crate::logs::disk::DiskLimits;
use std::time::Duration;

/// Versions kept per function by default.
pub const DEFAULT_VERSIONS: u32 = 10;
/// Per-minute history kept by default.
pub const DEFAULT_HISTORY: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub logs: DiskLimits,
    /// Deployed versions kept per function (the serving one always is).
    pub versions: u32,
    /// Per-minute aggregates kept.
    pub history: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self { logs: DiskLimits::default(), versions: DEFAULT_VERSIONS, history: DEFAULT_HISTORY }
    }
}
