//! Reading a sandbox's stdout and stderr: hostile bytes, read with bounded memory.
//!
//! The output is read in chunks and cut into lines while reading ([`LineCutter`]): a line
//! longer than [`LINE_MAX`] is logged cut at that length as soon as it gets there, and the
//! rest of it, up to the next newline, is read and dropped. Bytes that are not UTF-8 are kept,
//! escaped as `\xNN`. Nothing a program writes ends the reading: the pipe stays open until the
//! program closes it, so a program never gets `EPIPE` (Python's `BrokenPipeError`, Node's
//! crash) for what it printed.
//!
//! Each sandbox's output is read at a bounded rate ([`OutputPace`]): past it, the program's
//! writes wait, as with any slow terminal or Docker's blocking log mode, instead of the
//! server's CPU and the function's logs going to one flooding instance.

use crate::logs::{Stream, LINE_MAX};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read at once from a pipe: with the line being cut, a stream holds at most
/// `CHUNK + LINE_MAX` bytes, however long its lines.
const CHUNK: usize = 16 << 10;
/// Log text one sandbox may produce per second, over a burst of [`PACE_BURST`].
const PACE_RATE: f64 = (2 << 20) as f64;
const PACE_BURST: f64 = (4 << 20) as f64;
/// What a line costs on top of its bytes (it is timestamped, stored and sent to followers):
/// a flood of empty lines is paced too.
const LINE_COST: f64 = 128.0;
/// Bytes past a line's cut are only read and dropped: they cost this fraction of a byte kept.
const DROPPED_COST: f64 = 1.0 / 16.0;

/// Cuts a byte stream into log lines, holding at most [`LINE_MAX`] bytes.
#[derive(Default)]
pub struct LineCutter {
    line: Vec<u8>,
    /// The current line was cut: drop its bytes until the next newline.
    dropping: bool,
}

/// What feeding a chunk cost, for [`OutputPace`].
#[derive(Debug, Default, PartialEq)]
pub struct Fed {
    pub kept: usize,
    pub dropped: usize,
    pub lines: usize,
}

impl LineCutter {
    /// Feeds a chunk; `emit` gets each complete (or cut) line.
    pub fn feed(&mut self, mut chunk: &[u8], mut emit: impl FnMut(String)) -> Fed {
        let mut fed = Fed::default();
        while !chunk.is_empty() {
            let (part, rest, ends) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &chunk[chunk.len()..], false),
            };
            chunk = rest;
            if self.dropping {
                fed.dropped += part.len();
            } else {
                let room = LINE_MAX - self.line.len();
                let take = part.len().min(room);
                self.line.extend_from_slice(&part[..take]);
                fed.kept += take;
                fed.dropped += part.len() - take;
                if part.len() > room {
                    // Logged now, not at a newline that may never come.
                    emit(render(&self.line, true));
                    fed.lines += 1;
                    self.line.clear();
                    self.dropping = true;
                }
            }
            if ends {
                if !self.dropping {
                    emit(render(&self.line, false));
                    fed.lines += 1;
                }
                self.line.clear();
                self.dropping = false;
            }
        }
        fed
    }

    /// The last line, if the stream ended without a newline.
    pub fn finish(&mut self) -> Option<String> {
        let last = (!self.line.is_empty()).then(|| render(&self.line, false));
        self.line.clear();
        self.dropping = false;
        last
    }
}

/// A line as text: a trailing `\r` dropped, bytes that are not UTF-8 escaped as `\xNN`, and
/// ` [cut]` after a cut line (a character split by the cut is dropped whole).
fn render(line: &[u8], cut: bool) -> String {
    let mut bytes = line.strip_suffix(b"\r").unwrap_or(line);
    if cut {
        bytes = &bytes[..bytes.len() - split_char_len(bytes)];
    }
    let mut s = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if cut {
        s.push_str(" [cut]");
    }
    s
}

/// How many bytes at the end of `b` are the start of a UTF-8 character that the cut split.
fn split_char_len(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let lead = b[b.len() - back];
        if lead & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let need = match lead {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if need > back { back } else { 0 };
    }
    0
}

/// The rate at which one sandbox's output is read (a token bucket shared by its streams).
#[derive(Clone)]
pub struct OutputPace(Arc<Mutex<Bucket>>);

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Default for OutputPace {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Bucket { tokens: PACE_BURST, at: Instant::now() })))
    }
}

impl OutputPace {
    /// Charges what was read; returns how long to wait before reading more.
    fn charge(&self, fed: &Fed) -> Duration {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * PACE_RATE).min(PACE_BURST);
        b.at = now;
        b.tokens -= fed.kept as f64 + fed.dropped as f64 * DROPPED_COST + fed.lines as f64 * LINE_COST;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / PACE_RATE)
        }
    }
}

/// Reads `out` to its end, giving each line to `push`.
pub async fn pump(mut out: impl AsyncRead + Unpin, stream: Stream, pace: OutputPace, push: impl Fn(Stream, String)) {
    let mut buf = vec![0u8; CHUNK];
    let mut cutter = LineCutter::default();
    loop {
        let n = match out.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A pipe read fails only if the descriptor is broken: nothing more can come.
            Err(_) => break,
        };
        let fed = cutter.feed(&buf[..n], |line| push(stream, line));
        let wait = pace.charge(&fed);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    if let Some(last) = cutter.finish() {
        push(stream, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[&[u8]]) -> Vec<String> {
        let mut c = LineCutter::default();
        let mut out = Vec::new();
        for ch in chunks {
            c.feed(ch, |l| out.push(l));
        }
        out.extend(c.finish());
        out
    }

    #[test]
    fn lines_across_chunks_and_crlf() {
        assert_eq!(cut(&[b"a\nb", b"c\r\n", b"\n", b"tail"]), ["a", "bc", "", "tail"]);
    }

    #[test]
    fn invalid_utf8_is_escaped_and_reading_goes_on() {
        assert_eq!(cut(&[b"ok \xff\xfe x\n", "é\n".as_bytes(), b"after\n"]), ["ok \\xff\\xfe x", "é", "after"]);
    }

    #[test]
    fn a_long_line_is_cut_at_once_and_its_rest_dropped() {
        let mut c = LineCutter::default();
        let mut out = Vec::new();
        let big = vec![b'x'; LINE_MAX + 100];
        let fed = c.feed(&big, |l| out.push(l));
        assert_eq!(out.len(), 1, "cut without waiting for the newline");
        assert_eq!(out[0].len(), LINE_MAX + " [cut]".len());
        assert!(out[0].ends_with("x [cut]"));
        assert_eq!(fed, Fed { kept: LINE_MAX, dropped: 100, lines: 1 });
        for _ in 0..1000 {
            c.feed(&[b'y'; 4096], |l| out.push(l));
        }
        assert!(c.line.is_empty(), "nothing held while dropping");
        c.feed(b"yyy\nnext\n", |l| out.push(l));
        assert_eq!(out[1..], ["next"]);
    }

    #[test]
    fn a_cut_does_not_split_a_character() {
        let mut line = vec![b'a'; LINE_MAX - 1];
        line.extend_from_slice("€€\n".as_bytes());
        let out = cut(&[&line]);
        assert_eq!(out[0], format!("{} [cut]", "a".repeat(LINE_MAX - 1)));
    }

    #[test]
    fn the_pace_lets_a_burst_through_then_slows() {
        let pace = OutputPace::default();
        assert!(pace.charge(&Fed { kept: 1 << 20, ..Fed::default() }).is_zero());
        let wait = pace.charge(&Fed { kept: 5 << 20, ..Fed::default() });
        assert!(wait >= Duration::from_millis(900) && wait <= Duration::from_millis(1100), "{wait:?}");
    }
}
