//! Logs: each instance's stdout and stderr, and the platform's own events about a function,
//! timestamped and tagged with function and instance, kept in a bounded store per function
//! (the oldest lines go first). Followers get new lines as they come. With a directory
//! ([`LogStore::on_disk`]), every line is also written to disk ([`disk`]) and
//! readers get the lines kept there, across restarts.

pub mod disk;
mod line;

pub use line::{LogLine, Stream, LINE_MAX};

use disk::{DiskLimits, Filter, FunctionFiles};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::sync::broadcast;

/// Lines kept per function.
pub const LINES_PER_FUNCTION: usize = 5000;
/// Bytes of line text kept per function: long lines are cut at [`LINE_MAX`], but 5000 of
/// them would still be 40 MiB a function.
pub const BYTES_PER_FUNCTION: usize = 4 << 20;

struct FunctionLog {
    lines: VecDeque<LogLine>,
    /// Bytes of text in `lines`.
    bytes: usize,
    tx: broadcast::Sender<LogLine>,
    /// Its files, when the store is on disk.
    files: Option<FunctionFiles>,
}

impl FunctionLog {
    fn new(disk: &Option<(PathBuf, DiskLimits)>, function: &str) -> Self {
        // Names come checked from the registry; a name that is not one never becomes a path.
        let files = disk
            .as_ref()
            .filter(|_| crate::function::check_name(function).is_ok())
            .map(|(root, limits)| FunctionFiles::new(root.join(function), *limits));
        Self { lines: VecDeque::new(), bytes: 0, tx: broadcast::channel(1024).0, files }
    }
}

#[derive(Default)]
pub struct LogStore {
    by_function: Mutex<HashMap<String, FunctionLog>>,
    /// Where the functions' log directories are, and their bounds.
    disk: Option<(PathBuf, DiskLimits)>,
}

impl LogStore {
    /// A store that also keeps every function's lines under `root` (one directory each).
    pub fn on_disk(root: PathBuf, limits: DiskLimits) -> Self {
        Self { by_function: Mutex::default(), disk: Some((root, limits)) }
    }

    fn entry<'a>(&self, map: &'a mut HashMap<String, FunctionLog>, function: &str) -> &'a mut FunctionLog {
        map.entry(function.to_string()).or_insert_with(|| FunctionLog::new(&self.disk, function))
    }

    pub fn push(&self, function: &str, instance: &str, stream: Stream, mut line: String) {
        if line.len() > LINE_MAX {
            let mut cut = LINE_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [cut]");
        }
        let entry = LogLine {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            function: function.to_string(),
            instance: instance.to_string(),
            stream,
            line,
        };
        let mut map = self.by_function.lock().unwrap_or_else(|p| p.into_inner());
        let log = self.entry(&mut map, function);
        if let Some(files) = &mut log.files {
            if let Err(e) = files.append(&entry) {
                eprintln!("fnbox serve: cannot write the logs of function '{function}' to disk: {e}");
            }
        }
        log.bytes += entry.line.len();
        log.lines.push_back(entry.clone());
        while log.lines.len() > LINES_PER_FUNCTION || log.bytes > BYTES_PER_FUNCTION {
            let Some(old) = log.lines.pop_front() else { break };
            log.bytes -= old.line.len();
        }
        let _ = log.tx.send(entry);
    }

    /// A platform event about a function.
    pub fn event(&self, function: &str, instance: &str, line: impl Into<String>) {
        self.push(function, instance, Stream::Fnbox, line.into());
    }

    /// The last `tail` lines, and a receiver of the lines that come after them.
    pub fn read(&self, function: &str, tail: usize) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        self.query(function, &Filter::default(), tail)
    }

    /// The last `tail` lines that pass `filter` (from disk when the store is there), and a
    /// receiver of every line that comes after them (the caller filters those). Reading the
    /// disk blocks: async code calls this on a blocking thread. The store's lock is held only
    /// to mark where the files end, so writers never wait for a reader.
    pub fn query(&self, function: &str, filter: &Filter, tail: usize) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let (snapshot, lines, rx) = {
            let mut map = self.by_function.lock().unwrap_or_else(|p| p.into_inner());
            let log = self.entry(&mut map, function);
            // Taken together: no line is both in the answer and sent to the receiver.
            let rx = log.tx.subscribe();
            match &log.files {
                Some(files) => (Some(files.snapshot()), Vec::new(), rx),
                None => {
                    let matching: Vec<&LogLine> = log.lines.iter().filter(|l| filter.matches(l)).collect();
                    let lines = matching[matching.len().saturating_sub(tail)..].iter().map(|l| (*l).clone()).collect();
                    (None, lines, rx)
                }
            }
        };
        match snapshot {
            Some(s) => (s.read(filter, tail), rx),
            None => (lines, rx),
        }
    }

    /// [`LogStore::query`] on a blocking thread.
    pub async fn query_async(
        self: &std::sync::Arc<Self>,
        function: &str,
        filter: &Filter,
        tail: usize,
    ) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let (store, name, f) = (self.clone(), function.to_string(), filter.clone());
        match tokio::task::spawn_blocking(move || store.query(&name, &f, tail)).await {
            Ok(r) => r,
            // The reader panicked: no lines, and the followers from now (reads nothing).
            Err(_) => self.query(function, &Filter::default(), 0),
        }
    }

    /// Applies the age bound to every function's files (the quiet ones too).
    pub fn prune(&self) {
        let mut map = self.by_function.lock().unwrap_or_else(|p| p.into_inner());
        map.values_mut().filter_map(|l| l.files.as_mut()).for_each(FunctionFiles::prune);
    }

    /// Drops a removed function's lines, from disk too.
    pub fn forget(&self, function: &str) {
        let mut map = self.by_function.lock().unwrap_or_else(|p| p.into_inner());
        self.entry(&mut map, function).files.as_mut().map(FunctionFiles::remove);
        map.remove(function);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_followed() {
        let s = LogStore::default();
        let (_, mut rx) = s.read("f", 10);
        s.push("f", "i1", Stream::Stdout, "line 0".into());
        assert_eq!(rx.try_recv().unwrap().line, "line 0");
        for i in 1..LINES_PER_FUNCTION + 5 {
            s.push("f", "i1", Stream::Stdout, format!("line {i}"));
        }
        let (lines, _) = s.read("f", usize::MAX);
        assert_eq!(lines.len(), LINES_PER_FUNCTION);
        assert_eq!(lines[0].line, "line 5");
        assert!(lines[0].to_text().contains("f/i1 stdout: line 5"));
    }

    #[test]
    fn bounded_in_bytes() {
        let s = LogStore::default();
        let long = "x".repeat(LINE_MAX);
        for _ in 0..LINES_PER_FUNCTION {
            s.push("f", "i1", Stream::Stdout, long.clone());
        }
        s.push("f", "i1", Stream::Stdout, "last".into());
        let (lines, _) = s.read("f", usize::MAX);
        assert_eq!(lines.len(), BYTES_PER_FUNCTION / LINE_MAX);
        assert_eq!(lines.last().unwrap().line, "last");
    }
}
