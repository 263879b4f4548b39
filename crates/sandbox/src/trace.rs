//! Phase timing for performance work: with `FNBOX_TRACE=1`, fnbox prints how long each step
//! of starting and ending a sandbox took (to stderr, in microseconds since the first mark).

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Option<&'static Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    START.get_or_init(|| std::env::var_os("FNBOX_TRACE").map(|_| Instant::now())).as_ref()
}

/// Whether `FNBOX_TRACE` is on.
pub fn enabled() -> bool {
    start().is_some()
}

/// Records that `what` just finished.
pub fn mark(what: &str) {
    if let Some(t0) = start() {
        eprintln!("fnbox-trace {:>8} us  [{}] {what}", t0.elapsed().as_micros(), std::process::id());
    }
}
