//! What a long deploy shows while it works. On a terminal, a status line on stderr, redrawn
//! in place: the upload (bytes sent of total), then the build, then the handler check; it is
//! cleared before the result is printed. Not on a terminal (CI, pipes), no status line at all.
//! The build's own output is printed as lines, on a terminal or not, always escaped
//! ([`super::for_terminal`]): whatever a build prints reaches a terminal sooner or later.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The status line is redrawn at most this often (but always at the end of a phase).
const REDRAW: Duration = Duration::from_millis(100);

pub struct Status {
    terminal: bool,
    shown: bool,
    drawn: Option<Instant>,
}

pub type SharedStatus = Arc<Mutex<Status>>;

impl Status {
    /// `terminal`: stderr is one (the status line is drawn only then).
    pub fn new(terminal: bool) -> SharedStatus {
        Arc::new(Mutex::new(Self { terminal, shown: false, drawn: None }))
    }

    /// Replaces the status line with `text` (skipped when the last redraw is too recent,
    /// unless `now`).
    pub fn show(&mut self, text: &str, now: bool) {
        if !self.terminal || (!now && self.drawn.is_some_and(|d| d.elapsed() < REDRAW)) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{text}");
        let _ = err.flush();
        self.shown = true;
        self.drawn = Some(Instant::now());
    }

    /// Removes the status line.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.shown = false;
        }
    }

    /// A line that stays (the build's output, escaped here), printed above the status line.
    pub fn line(&mut self, text: &str) {
        self.clear();
        let mut err = std::io::stderr().lock();
        let mut bytes = super::for_terminal(text.as_bytes(), true);
        bytes.push(b'\n');
        let _ = err.write_all(&bytes);
        let _ = err.flush();
        // The next status comes at once, not after the redraw interval.
        self.drawn = None;
    }
}

/// `bytes` for a person: `512 B`, `3.4 KiB`, `12.0 MiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
    }
}

/// The upload's status line.
pub fn upload_line(sent: u64, total: u64) -> String {
    let pct = (sent * 100).checked_div(total).unwrap_or(100);
    format!("uploading the code: {} of {} ({pct}%)", size(sent), size(total))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_the_upload_line() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(3 << 20), "3.0 MiB");
        assert_eq!(super::upload_line(1 << 20, 4 << 20), "uploading the code: 1.0 MiB of 4.0 MiB (25%)");
        assert_eq!(super::upload_line(0, 0), "uploading the code: 0 B of 0 B (100%)");
    }
}
