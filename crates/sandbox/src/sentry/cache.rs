//! What the Sentry keeps per calling thread (its credentials, its working directory), so that
//! a call does not read the host's `/proc/<tid>/...` each time.
//!
//! An entry is dropped by the calls that change what it holds (they pass through the Sentry
//! for that reason), and is never used once older than [`FRESH`]: a thread id is reused once
//! the kernel's pid counter wraps (32,768 ids by default), and no machine forks its way around
//! that many ids in so short a time, so an entry can never be read for another thread (see
//! docs/architecture.md, "Per-thread caches").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry may be used.
pub const FRESH: Duration = Duration::from_millis(50);

/// Entries kept at most (a sandbox has up to a few thousand threads).
const MAX: usize = 4096;

pub struct PerThread<T>(Mutex<Entries<T>>);

struct Entries<T> {
    map: HashMap<i32, (Instant, T)>,
    /// Bumped by every [`PerThread::clear`]: a value read from the host before a clear is
    /// not put back after it ([`PerThread::put_since`]).
    generation: u64,
}

impl<T> Default for PerThread<T> {
    fn default() -> Self {
        Self(Mutex::new(Entries { map: HashMap::new(), generation: 0 }))
    }
}

impl<T: Clone> PerThread<T> {
    /// The entry of thread `tid`, if one is fresh.
    pub fn get(&self, tid: i32) -> Option<T> {
        let e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        e.map.get(&tid).filter(|(at, _)| at.elapsed() < FRESH).map(|(_, v)| v.clone())
    }

    /// What [`PerThread::put_since`] takes: read before the value is read from the host.
    pub fn ticket(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).generation
    }

    /// [`PerThread::put`], unless the cache was cleared since `ticket` was taken: the value
    /// may then be from before the change that cleared it (credentials read just before an
    /// `execve` or a `setuid` took effect).
    pub fn put_since(&self, tid: i32, value: T, ticket: u64) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if e.generation == ticket {
            Self::insert(&mut e.map, tid, value);
        }
    }

    fn insert(map: &mut HashMap<i32, (Instant, T)>, tid: i32, value: T) {
        if map.len() >= MAX {
            map.retain(|_, (at, _)| at.elapsed() < FRESH);
            if map.len() >= MAX {
                map.clear();
            }
        }
        map.insert(tid, (Instant::now(), value));
    }

    pub fn clear(&self) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        e.map.clear();
        e.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_clear() {
        let c = PerThread::default();
        c.put_since(7, 1u32, c.ticket());
        assert_eq!(c.get(7), Some(1));
        assert_eq!(c.get(8), None);
        c.clear();
        assert_eq!(c.get(7), None);
        c.put_since(7, 2, c.ticket());
        std::thread::sleep(FRESH + Duration::from_millis(5));
        assert_eq!(c.get(7), None, "an old entry may belong to a thread that has gone");
    }

    #[test]
    fn a_value_read_before_a_clear_is_not_kept() {
        let c = PerThread::default();
        let ticket = c.ticket();
        c.clear(); // a rename on another worker, while this one read the value
        c.put_since(7, 1u32, ticket);
        assert_eq!(c.get(7), None);
    }
}
