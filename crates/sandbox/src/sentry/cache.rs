//! What the Sentry keeps per calling thread (its credentials, its working directory), so that
//! a call does not read the host's `/proc/<tid>/...` each time.
//!
//! An entry is dropped by the calls that change what it holds (they pass through the Sentry
//! for that reason), and is never used once older than [`FRESH`]: a thread id is reused once
//! the kernel's pid counter wraps (32,768 ids by default), and no machine forks its way around
//! that many ids in so short a time, so an entry can never be read for another thread (see
//! docs/architecture.md, "Per-thread caches").

use std::collections::{HashMap, HashSet};
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
    /// Threads whose call changing what the entries hold for other threads too (a `chdir`:
    /// the working directory is shared by a process's threads) went to the kernel and may not
    /// have run yet ([`PerThread::changing`]): while there is one, nothing is cached or taken from the
    /// cache.
    pending: HashSet<i32>,
}

impl<T> Default for PerThread<T> {
    fn default() -> Self {
        Self(Mutex::new(Entries { map: HashMap::new(), generation: 0, pending: HashSet::new() }))
    }
}

impl<T: Clone> PerThread<T> {
    /// The entry of thread `tid`, if one is fresh.
    pub fn get(&self, tid: i32) -> Option<T> {
        let e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !e.pending.is_empty() {
            return None;
        }
        e.map.get(&tid).filter(|(at, _)| at.elapsed() < FRESH).map(|(_, v)| v.clone())
    }

    /// What [`PerThread::put_since`] takes: read before the value is read from the host.
    pub fn ticket(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).generation
    }

    /// Keeps `value` for thread `tid`, unless the cache was cleared or a change settled since
    /// `ticket` was taken, or a change is pending: the value may then be from before the
    /// change (credentials read just before an `execve` or a `setuid` took effect, a working
    /// directory read just before another thread's `chdir` ran).
    pub fn put_since(&self, tid: i32, value: T, ticket: u64) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if e.generation == ticket && e.pending.is_empty() {
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

    /// Thread `tid` made a call that changes what other threads' entries hold, which the
    /// kernel runs after the Sentry answers: every entry is dropped, and none is kept or
    /// used until `tid` makes its next call ([`PerThread::settled`]). One lock for both, so
    /// a value read from the host meanwhile, on another worker, is never kept.
    pub fn changing(&self, tid: i32) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        e.pending.insert(tid);
        e.map.clear();
        e.generation += 1;
    }

    /// Thread `tid` made a new call: a change of its own has finished. A value read while it
    /// was pending (perhaps before it ran) is not kept either.
    pub fn settled(&self, tid: i32) {
        let mut e = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !e.pending.is_empty() && e.pending.remove(&tid) {
            e.generation += 1;
        }
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

    /// Another thread's `chdir`, answered by one worker while another reads thread
    /// 7's value from the host: the read may come before the kernel ran the call, whichever
    /// of the ticket and the change came first, and whenever the change settles.
    #[test]
    fn a_value_read_while_a_change_was_pending_is_not_kept() {
        let c = PerThread::default();
        c.put_since(7, 0u32, c.ticket());
        c.changing(9);
        assert_eq!(c.get(7), None, "dropped, and not used while the change is pending");
        let ticket = c.ticket(); // taken after the change: the value may still be the old one
        c.put_since(7, 1, ticket);
        assert_eq!(c.get(7), None);
        c.settled(9);
        c.put_since(7, 1, ticket); // read before the change settled
        assert_eq!(c.get(7), None);
        c.put_since(7, 2, c.ticket());
        assert_eq!(c.get(7), Some(2), "cached again once the change settled");
        c.settled(9);
        c.settled(8);
        assert_eq!(c.get(7), Some(2), "a thread with no pending change settles nothing");
    }
}
