//! The server's builds' limits: how long one may run, how many run at once and how many may wait.
//! Held by the platform's state; a leaf, so that state needs nothing of the builds' code
//! ([`super`]), which takes the platform (see docs/architecture.md, "Crates and modules").

use std::sync::Arc;
use std::time::Duration;

/// How long a build may run (`fnbox serve --build-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Builds running at once; more wait (told so) for a place.
pub(super) const AT_ONCE: usize = 2;

/// Builds that may wait for a place, on top of those running: each holds its unpacked upload
/// (up to the code store's limit) on the server's disk while it waits.
pub(super) const WAITING_MAX: usize = 4;

/// The server's builds: their time limit, the places for those running at once, and the
/// admissions (running or waiting) taken before an upload is unpacked.
pub struct Builds {
    pub timeout: Duration,
    pub(super) places: tokio::sync::Semaphore,
    pub(super) admitted: Arc<tokio::sync::Semaphore>,
}

impl Builds {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            places: tokio::sync::Semaphore::new(AT_ONCE),
            admitted: Arc::new(tokio::sync::Semaphore::new(AT_ONCE + WAITING_MAX)),
        }
    }
}

impl Default for Builds {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT)
    }
}
