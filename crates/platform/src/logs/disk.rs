//! Logs that last: each function's lines appended to segment files under
//! `DATA_DIR/logs/NAME/`, one JSON object a line, rotated by size and age and bounded per
//! function (see docs/architecture.md, "Logs, versions and history"). Every write is one
//! `write(2)` of a whole line on an `O_APPEND` file: a `kill -9` of the server loses nothing
//! written, and a line cut by a full disk is skipped when read. A server start opens a new
//! segment, so nothing is ever appended to a cut line.

use super::line::{LogLine, Stream};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Default bound of a function's log files (`fnbox serve --log-max-mb`).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// Default age past which lines are dropped (`fnbox serve --log-max-age`).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Segments a function's logs are cut into: the oldest goes first when the bound is reached.
const SEGMENTS: u64 = 8;
/// Smallest segment, whatever the bound.
const SEGMENT_MIN: u64 = 64 << 10;
/// Longest record read back: [`super::LINE_MAX`] of text, escaped as JSON, and the tags.
const RECORD_MAX: u64 = 64 << 10;

/// How much of a function's logs is kept.
#[derive(Clone, Copy, Debug)]
pub struct DiskLimits {
    pub max_bytes: u64,
    pub max_age: Duration,
}

impl Default for DiskLimits {
    fn default() -> Self {
        Self { max_bytes: DEFAULT_MAX_BYTES, max_age: DEFAULT_MAX_AGE }
    }
}

impl DiskLimits {
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / SEGMENTS).max(SEGMENT_MIN)
    }
}

/// Which lines a reader wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Lines at or after this time.
    pub since: Option<SystemTime>,
    /// Lines of this instance (`-` for fnbox's events about the function).
    pub instance: Option<String>,
    /// Lines of this stream.
    pub stream: Option<Stream>,
    /// Lines containing this text.
    pub grep: Option<String>,
}

impl Filter {
    pub fn matches(&self, l: &LogLine) -> bool {
        self.instance.as_ref().is_none_or(|i| *i == l.instance)
            && self.stream.is_none_or(|s| s == l.stream)
            && self.grep.as_ref().is_none_or(|g| l.line.contains(g.as_str()))
            && self.since.is_none_or(|since| line_time(l).is_some_and(|t| t >= since))
    }
}

impl Filter {
    /// From a query: `since` (a duration back from now: `90s`, `1h`, `2d`), `instance`,
    /// `stream` (`stdout`, `stderr`, `fnbox`), `grep`. Empty values are no filter.
    pub fn from_query(q: &std::collections::HashMap<String, String>) -> crate::Result<Self> {
        let given = |k: &str| q.get(k).filter(|v| !v.is_empty());
        let since = match given("since") {
            Some(s) => {
                let d = humantime::parse_duration(s).map_err(|e| {
                    crate::Error::Invalid(format!("since '{s}' is not a duration ({e}): use 90s, 15m, 1h or 2d"))
                })?;
                Some(SystemTime::now().checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH))
            }
            None => None,
        };
        Ok(Self {
            since,
            instance: given("instance").cloned(),
            stream: given("stream").map(|s| s.parse()).transpose()?,
            grep: given("grep").cloned(),
        })
    }
}

fn line_time(l: &LogLine) -> Option<SystemTime> {
    humantime::parse_rfc3339(&l.time).ok()
}

/// The segment being written.
struct Writer {
    file: File,
    seq: u64,
    bytes: u64,
    opened: SystemTime,
}

/// One function's log files.
pub struct FunctionFiles {
    dir: PathBuf,
    limits: DiskLimits,
    writer: Option<Writer>,
}

fn segment_name(seq: u64) -> String {
    format!("{seq:016}.log")
}

/// The segments of `dir`, oldest first: (sequence number, path).
fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let seq = name.to_str()?.strip_suffix(".log")?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect();
    v.sort();
    v
}

impl FunctionFiles {
    pub fn new(dir: PathBuf, limits: DiskLimits) -> Self {
        Self { dir, limits, writer: None }
    }

    /// Appends one line; opens a new segment first when the current one is full or old.
    pub fn append(&mut self, l: &LogLine) -> std::io::Result<()> {
        let mut rec = serde_json::to_vec(l).map_err(std::io::Error::other)?;
        rec.push(b'\n');
        let full = self.writer.as_ref().is_none_or(|w| {
            w.bytes + rec.len() as u64 > self.limits.segment_bytes()
                || w.opened.elapsed().unwrap_or_default() > self.limits.max_age / SEGMENTS as u32
        });
        if full {
            self.rotate()?;
        }
        let w = self.writer.as_mut().ok_or_else(|| std::io::Error::other("no segment"))?;
        w.file.write_all(&rec)?;
        w.bytes += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.writer = None;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let next = segments(&self.dir).last().map(|(s, _)| s + 1).unwrap_or(1);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.dir.join(segment_name(next)))?;
        self.writer = Some(Writer { file, seq: next, bytes: 0, opened: SystemTime::now() });
        self.prune();
        Ok(())
    }

    /// Drops the oldest segments past the size bound and those last written before the age
    /// bound; never the one being written.
    pub fn prune(&mut self) {
        let mut all = segments(&self.dir);
        let current = self.writer.as_ref().and(all.last().map(|(s, _)| *s));
        let sizes: Vec<(u64, SystemTime)> = all
            .iter()
            .map(|(_, p)| {
                std::fs::symlink_metadata(p)
                    .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
                    .unwrap_or((0, SystemTime::UNIX_EPOCH))
            })
            .collect();
        let mut total: u64 = sizes.iter().map(|(b, _)| b).sum();
        let too_old = SystemTime::now().checked_sub(self.limits.max_age).unwrap_or(SystemTime::UNIX_EPOCH);
        for ((seq, path), (bytes, modified)) in all.drain(..).zip(sizes) {
            if Some(seq) == current {
                break;
            }
            if (total > self.limits.max_bytes || modified < too_old) && std::fs::remove_file(&path).is_ok() {
                total -= bytes;
            }
        }
    }

    /// What is on disk now, to be read without the store's lock: lines written after this
    /// are not read (the caller gets them from the store's followers).
    pub fn snapshot(&self) -> Snapshot {
        let upto = match &self.writer {
            Some(w) => (w.seq, Some(w.bytes)),
            // Nothing written since the start: the next line opens a new segment.
            None => (segments(&self.dir).last().map(|(s, _)| *s).unwrap_or(0), None),
        };
        Snapshot { dir: self.dir.clone(), limits: self.limits, upto }
    }

    /// The last `tail` lines that pass `filter`, oldest first, none older than the age bound.
    pub fn read(&self, filter: &Filter, tail: usize) -> Vec<LogLine> {
        self.snapshot().read(filter, tail)
    }

    /// Removes every file (the function was removed).
    pub fn remove(&mut self) {
        self.writer = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A function's log files as they were at [`FunctionFiles::snapshot`]. Reading is blocking
/// file work: async code runs it on a blocking thread.
pub struct Snapshot {
    dir: PathBuf,
    limits: DiskLimits,
    /// The newest segment to read, and how much of it (all of it: `None`).
    upto: (u64, Option<u64>),
}

impl Snapshot {
    /// The last `tail` lines that pass `filter`, oldest first, none older than the age bound.
    /// Segments are read newest first, and reading stops once `tail` lines are found or a
    /// segment was last written before `since`.
    pub fn read(&self, filter: &Filter, tail: usize) -> Vec<LogLine> {
        self.read_counted(filter, tail).0
    }

    /// [`Snapshot::read`], and how many segments it opened.
    fn read_counted(&self, filter: &Filter, tail: usize) -> (Vec<LogLine>, usize) {
        let mut found: Vec<VecDeque<LogLine>> = Vec::new();
        let (mut have, mut opened) = (0, 0);
        let oldest = SystemTime::now().checked_sub(self.limits.max_age);
        let filter = Filter { since: filter.since.max(oldest), ..filter.clone() };
        for (seq, path) in segments(&self.dir).into_iter().rev() {
            if have >= tail {
                break;
            }
            let cap = match self.upto {
                (last, _) if seq > last => continue,
                (last, Some(bytes)) if seq == last => bytes,
                // A segment is written up to its bound plus one record.
                _ => self.limits.segment_bytes() + RECORD_MAX,
            };
            let Ok(f) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path) else {
                continue;
            };
            opened += 1;
            let modified = f.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            if filter.since.is_some_and(|since| modified < since) {
                // Every line in it and in the older ones is older than `since`.
                break;
            }
            let lines = read_segment(f.take(cap), &filter, tail - have);
            have += lines.len();
            found.push(lines);
        }
        (found.into_iter().rev().flatten().collect(), opened)
    }
}

/// The last `keep` lines of one segment that pass `filter`.
fn read_segment(f: impl Read, filter: &Filter, keep: usize) -> VecDeque<LogLine> {
    let mut out = VecDeque::new();
    let mut r = BufReader::new(f);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut r).take(RECORD_MAX).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // A record cut by a full disk, or longer than any fnbox writes: skipped.
        if buf.last() != Some(&b'\n') {
            if buf.len() as u64 >= RECORD_MAX {
                let _ = r.skip_until(b'\n');
            }
            continue;
        }
        let Ok(l) = serde_json::from_slice::<LogLine>(&buf) else { continue };
        if filter.matches(&l) {
            if out.len() == keep {
                out.pop_front();
            }
            if keep > 0 {
                out.push_back(l);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fnbox-logstore-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn line(instance: &str, stream: Stream, text: &str) -> LogLine {
        LogLine {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            function: "f".into(),
            instance: instance.into(),
            stream,
            line: text.into(),
        }
    }

    #[test]
    fn rotates_and_stays_within_its_bound() {
        let dir = tmp("bound");
        let limits = DiskLimits { max_bytes: 1 << 20, max_age: DEFAULT_MAX_AGE };
        let mut f = FunctionFiles::new(dir.clone(), limits);
        let text = "x".repeat(1000);
        for i in 0..5000 {
            f.append(&line("i1", Stream::Stdout, &format!("{i} {text}"))).unwrap();
        }
        let segs = segments(&dir);
        assert!(segs.len() > 2 && segs.len() as u64 <= SEGMENTS + 1, "{} segments", segs.len());
        let total: u64 = segs.iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum();
        assert!(total <= limits.max_bytes + limits.segment_bytes(), "{total} bytes on disk");
        let last = f.read(&Filter::default(), 1);
        assert!(last[0].line.starts_with("4999 "), "the newest line is kept");
        let all = f.read(&Filter::default(), usize::MAX);
        assert!(all.len() < 5000 && all.len() > 500, "{} lines kept", all.len());
        // The newest lines are in the newest segment: the older ones are not even opened.
        let (last, opened) = f.snapshot().read_counted(&Filter::default(), 3);
        assert!(
            last.len() == 3 && opened <= 2 && opened < segs.len(),
            "tail=3 read {opened} of {} segments",
            segs.len()
        );
        assert!(last[2].line.starts_with("4999 ") && last[0].line.starts_with("4997 "));
        // Lines across segments come out in order.
        let (many, opened) = f.snapshot().read_counted(&Filter::default(), 500);
        assert!(opened >= 2 && many.len() == 500, "{opened} segments for {} lines", many.len());
        assert!(many[499].line.starts_with("4999 ") && many[0].line.starts_with("4500 "));
        // A line written after the snapshot is not read from it (followers get it).
        let snap = f.snapshot();
        f.append(&line("i1", Stream::Stdout, "after the snapshot")).unwrap();
        assert!(snap.read(&Filter::default(), 1)[0].line.starts_with("4999 "));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn survives_a_restart_and_a_cut_record() {
        let dir = tmp("restart");
        let mut f = FunctionFiles::new(dir.clone(), DiskLimits::default());
        f.append(&line("i1", Stream::Stdout, "before")).unwrap();
        f.append(&line("i2", Stream::Stderr, "boom")).unwrap();
        // As a full disk leaves it: half a record.
        std::mem::forget(f);
        let (_, last) = segments(&dir).pop().unwrap();
        std::fs::OpenOptions::new().append(true).open(&last).unwrap().write_all(b"{\"time\":\"2026").unwrap();
        let mut f = FunctionFiles::new(dir.clone(), DiskLimits::default());
        f.append(&line("i3", Stream::Fnbox, "after")).unwrap();
        let texts: Vec<String> = f.read(&Filter::default(), 100).into_iter().map(|l| l.line).collect();
        assert_eq!(texts, ["before", "boom", "after"]);
        let only = |filter: Filter| f.read(&filter, 100).into_iter().map(|l| l.line).collect::<Vec<_>>();
        assert_eq!(only(Filter { instance: Some("i2".into()), ..Default::default() }), ["boom"]);
        assert_eq!(only(Filter { stream: Some(Stream::Fnbox), ..Default::default() }), ["after"]);
        assert_eq!(only(Filter { grep: Some("fore".into()), ..Default::default() }), ["before"]);
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(only(Filter { since: Some(later), ..Default::default() }).is_empty());
        f.remove();
        assert!(!dir.exists());
    }

    #[test]
    fn old_segments_go() {
        let dir = tmp("age");
        let limits = DiskLimits { max_bytes: 1 << 30, max_age: Duration::from_secs(3600) };
        let mut f = FunctionFiles::new(dir.clone(), limits);
        f.append(&line("i1", Stream::Stdout, "old")).unwrap();
        let (_, first) = segments(&dir).pop().unwrap();
        let day_ago = SystemTime::now() - Duration::from_secs(86400);
        File::options().write(true).open(&first).unwrap().set_modified(day_ago).unwrap();
        // A restart opens a new segment and prunes.
        let mut f = FunctionFiles::new(dir.clone(), limits);
        f.append(&line("i1", Stream::Stdout, "new")).unwrap();
        assert!(!first.exists(), "a segment past the age bound is removed");
        assert_eq!(f.read(&Filter::default(), 10).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
