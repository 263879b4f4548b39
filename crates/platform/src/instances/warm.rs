//! The warm pool: sandboxes v2 started ahead of need, each already running a runtime's zygote
//! (the interpreter up, the wrapper imported), with its socket directory bound, and not yet
//! bound to any function. A cold start takes one and binds it (see `backend.rs`); the pool
//! refills in the background. Sandboxes are single-use: one function, one instance, then gone.
//!
//! Shelves are per runtime and memory tier: the Sentry reports the memory limit the sandbox
//! started with in `/proc/meminfo` and `sysinfo`, so a sandbox serves the tier it was started
//! at (a tier change on a running v2 sandbox would leave `/proc/meminfo` wrong).
//!
//! Sizing: each shelf keeps an exponentially decaying estimate of its cold starts per second
//! (time constant [`RATE_TAU`]) and holds the cold starts expected over [`HORIZON`], at least
//! `min` while a deployed v2 function uses the shelf, at most `max`. All shelves together never
//! hold more than the memory budget, counted from each sandbox's cgroup (and, for sandboxes
//! still starting, from the last one measured).

use super::launcher::{start_failed, Launched, Launcher, LogRoute, WARM_POOL};
use super::zygote::{self, ZygoteAt};
use crate::function::Runtime;
use fnbox_sandbox::spec::SandboxKind;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Time constant of the cold-start rate estimate.
pub const RATE_TAU: Duration = Duration::from_secs(60);
/// A shelf holds the cold starts expected within this long.
pub const HORIZON: Duration = Duration::from_secs(10);
/// Sandboxes warming up at once: each start costs a core for tens of milliseconds.
const MAX_STARTING: u32 = 2;
/// How long shutdown waits for sandboxes still starting.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Memory assumed for a sandbox before one of its shelf was measured.
const FIRST_ESTIMATE: u64 = 48 << 20;

#[derive(Clone, Copy, Debug)]
pub struct WarmConfig {
    /// Kept per shelf in use, even with no cold starts.
    pub min: u32,
    /// Most kept per shelf.
    pub max: u32,
    /// Most memory all pre-warmed sandboxes may use together, in bytes.
    pub memory_budget: u64,
}

/// A shelf: the runtime and memory tier its sandboxes were started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WarmKey {
    pub runtime: Runtime,
    pub memory_mb: u64,
    /// A pre-warmed sandbox's link is made before it is claimed: its network is part of it.
    pub network: fnbox_sandbox::net::Network,
}

/// Events per second, decaying exponentially between events.
#[derive(Clone, Copy, Debug, Default)]
struct Rate {
    per_s: f64,
    at: Option<Instant>,
}

impl Rate {
    fn at(&self, now: Instant) -> f64 {
        match self.at {
            Some(t) => self.per_s * (-now.saturating_duration_since(t).as_secs_f64() / RATE_TAU.as_secs_f64()).exp(),
            None => 0.0,
        }
    }

    fn record(&mut self, now: Instant) {
        self.per_s = self.at(now) + 1.0 / RATE_TAU.as_secs_f64();
        self.at = Some(now);
    }
}

#[derive(Default)]
struct Shelf {
    ready: VecDeque<Launched>,
    starting: u32,
    rate: Rate,
    /// A deployed v2 function uses this shelf.
    wanted: bool,
    /// Memory of this shelf's last sandbox measured when ready.
    size: Option<u64>,
    /// Failed starts in a row, and when to try again.
    failures: u32,
    retry_at: Option<Instant>,
    hits: u64,
    misses: u64,
}

impl Shelf {
    /// What one more sandbox of this shelf will use: the last one measured, with an eighth
    /// more for what an idle sandbox still grows (kernel objects, a late page): the budget
    /// holds against the measured figures, not only against the estimates.
    fn estimate(&self) -> u64 {
        self.size.map_or(FIRST_ESTIMATE, |s| s + s / 8)
    }
}

#[derive(Default)]
struct State {
    shelves: BTreeMap<WarmKey, Shelf>,
    starting: u32,
    started: u64,
    failed: u64,
    closed: bool,
}

pub struct WarmPool {
    launcher: Arc<Launcher>,
    pub config: WarmConfig,
    state: Mutex<State>,
}

/// A shelf's figures, for `/metrics`.
pub struct ShelfGauges {
    pub key: WarmKey,
    pub ready: usize,
    pub starting: u32,
    pub target: u32,
    pub rate: f64,
    pub memory_bytes: u64,
    pub hits: u64,
    pub misses: u64,
}

pub struct WarmGauges {
    pub shelves: Vec<ShelfGauges>,
    pub memory_budget: u64,
    pub started: u64,
    pub failed: u64,
}

/// What a shelf in use holds at `rate` cold starts per second: those expected within
/// [`HORIZON`], between `min` and `max`.
fn sized(rate: f64, c: &WarmConfig) -> u32 {
    let expected = (rate * HORIZON.as_secs_f64()).ceil() as u32;
    expected.max(c.min).min(c.max)
}

/// Delay before retrying a shelf whose sandboxes failed to start `failures` times in a row.
fn backoff(failures: u32) -> Duration {
    super::retry_backoff(failures)
}

impl WarmPool {
    pub fn new(launcher: Arc<Launcher>, config: WarmConfig) -> Arc<Self> {
        Arc::new(Self { launcher, config, state: Mutex::new(State::default()) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn target(&self, shelf: &Shelf, now: Instant) -> u32 {
        match shelf.wanted {
            true => sized(shelf.rate.at(now), &self.config),
            false => 0,
        }
    }

    /// The shelves deployed v2 functions use: they are kept at least at `min`; the others
    /// are emptied.
    pub fn want(self: &Arc<Self>, keys: &HashSet<WarmKey>) {
        {
            let mut st = self.lock();
            for k in keys {
                st.shelves.entry(*k).or_default();
            }
            for (k, shelf) in st.shelves.iter_mut() {
                shelf.wanted = keys.contains(k);
            }
        }
        self.fill();
    }

    /// A ready sandbox for a cold start of `key`, if the shelf has one. Counts the cold start
    /// either way. It does not refill: a sandbox starting now would take the CPU the cold start
    /// needs (on two cores, a Node start under the Sentry delays it by tens of milliseconds).
    /// The refill comes when the instance has answered its first request ([`Self::fill`] from
    /// the gateway), or at the next maintenance tick.
    pub fn take(self: &Arc<Self>, key: WarmKey) -> Option<Launched> {
        let (got, dead) = {
            let mut st = self.lock();
            let shelf = st.shelves.entry(key).or_default();
            shelf.rate.record(Instant::now());
            let mut dead = Vec::new();
            let mut got = None;
            while let Some(sb) = shelf.ready.pop_front() {
                if sb.has_ended() {
                    dead.push(sb);
                } else {
                    got = Some(sb);
                    break;
                }
            }
            match got {
                Some(_) => shelf.hits += 1,
                None => shelf.misses += 1,
            }
            (got, dead)
        };
        drop(dead);
        got
    }

    /// Brings every shelf to its target within the budget: stops what is over, starts what is
    /// missing. Called after a pooled instance's first response, on every start's end and
    /// periodically.
    pub fn fill(self: &Arc<Self>) {
        let now = Instant::now();
        let mut stopped = Vec::new();
        let mut start = Vec::new();
        {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            // What each shelf holds now, and its target.
            let mut used = 0u64;
            let mut plan: Vec<(WarmKey, u32)> = Vec::new();
            for (k, shelf) in st.shelves.iter_mut() {
                let (gone, live): (Vec<Launched>, Vec<Launched>) = shelf.ready.drain(..).partition(|s| s.has_ended());
                stopped.extend(gone);
                shelf.ready = live.into();
                let target = self.target(shelf, now);
                while shelf.ready.len() as u32 > target {
                    stopped.extend(shelf.ready.pop_back());
                }
                used += shelf.ready.iter().map(Launched::memory_bytes).sum::<u64>();
                used += u64::from(shelf.starting) * shelf.estimate();
                plan.push((*k, target));
            }
            // Over budget (sandboxes grow): give back from the fullest shelves.
            while used > self.config.memory_budget {
                let Some(shelf) = st.shelves.values_mut().filter(|s| !s.ready.is_empty()).max_by_key(|s| s.ready.len())
                else {
                    break;
                };
                let Some(sb) = shelf.ready.pop_back() else { break };
                used = used.saturating_sub(sb.memory_bytes());
                stopped.push(sb);
            }
            // Start what is missing, one shelf at a time so every shelf gets its turn.
            let mut more = true;
            while more && st.starting < MAX_STARTING {
                more = false;
                for (k, target) in &plan {
                    if st.starting >= MAX_STARTING {
                        break;
                    }
                    let shelf = st.shelves.get_mut(k).expect("planned shelves exist");
                    let have = shelf.ready.len() as u32 + shelf.starting;
                    let waiting = shelf.retry_at.is_some_and(|t| now < t);
                    if have >= *target || waiting || used + shelf.estimate() > self.config.memory_budget {
                        continue;
                    }
                    used += shelf.estimate();
                    shelf.starting += 1;
                    st.starting += 1;
                    start.push(*k);
                    more = true;
                }
            }
        }
        drop(stopped);
        for key in start {
            let pool = self.clone();
            tokio::spawn(async move { pool.start(key).await });
        }
    }

    async fn start(self: Arc<Self>, key: WarmKey) {
        let at = ZygoteAt {
            kind: SandboxKind::V2,
            runtime: key.runtime,
            memory_mb: key.memory_mb,
            code: None,
            env: None,
            network: key.network,
        };
        let route = LogRoute::unbound(self.launcher.logs.clone());
        // Spares hold half of the disk budget at most (launcher::WARM_POOL).
        let disk = &self.launcher.disk;
        let result = match disk.function_room(WARM_POOL, u32::MAX) {
            Ok(()) => zygote::launch(&self.launcher, at, route, None)
                .await
                .and_then(|sb| sb.disk.assign(WARM_POOL, u32::MAX).map(|()| sb).map_err(start_failed)),
            Err(e) => Err(start_failed(e)),
        };
        {
            let mut st = self.lock();
            st.starting -= 1;
            match &result {
                Ok(_) => st.started += 1,
                Err(_) => st.failed += 1,
            }
            let shelf = st.shelves.entry(key).or_default();
            shelf.starting -= 1;
            match result {
                Ok(sb) => {
                    shelf.failures = 0;
                    shelf.retry_at = None;
                    shelf.size = Some(sb.memory_bytes());
                    // Even when closed: shutdown stops it with the others.
                    shelf.ready.push_back(sb);
                }
                Err(e) => {
                    shelf.failures += 1;
                    let wait = backoff(shelf.failures);
                    shelf.retry_at = Some(Instant::now() + wait);
                    eprintln!(
                        "fnbox serve: a pre-warmed {} sandbox ({} MiB) failed to start, retrying in {} ms: {}",
                        key.runtime.as_str(),
                        key.memory_mb,
                        wait.as_millis(),
                        e.message
                    );
                }
            }
        }
        self.fill();
    }

    /// Stops every pre-warmed sandbox (server shutdown) and waits (a little) for their ends.
    /// Those still starting are waited for first: a launcher outliving the server would be
    /// killed with it and leave its cgroup for the next start to clean.
    pub async fn shutdown(&self) {
        self.lock().closed = true;
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while self.lock().starting > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all: Vec<Launched> = {
            let mut st = self.lock();
            st.shelves.values_mut().flat_map(|s| s.ready.drain(..)).collect()
        };
        let ends: Vec<_> = all.iter().map(|s| s.ended.clone()).collect();
        drop(all);
        for mut e in ends {
            let _ = tokio::time::timeout(Duration::from_secs(5), e.wait_for(|e| e.is_some())).await;
        }
    }

    pub fn gauges(&self) -> WarmGauges {
        let now = Instant::now();
        let st = self.lock();
        let shelves = st
            .shelves
            .iter()
            .map(|(k, s)| ShelfGauges {
                key: *k,
                ready: s.ready.len(),
                starting: s.starting,
                target: self.target(s, now),
                rate: s.rate.at(now),
                memory_bytes: s.ready.iter().map(Launched::memory_bytes).sum(),
                hits: s.hits,
                misses: s.misses,
            })
            .collect();
        WarmGauges { shelves, memory_budget: self.config.memory_budget, started: st.started, failed: st.failed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_grows_with_events_and_decays_without() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        assert_eq!(r.at(t0), 0.0);
        for i in 0..60 {
            r.record(t0 + Duration::from_secs(i));
        }
        // One a second for a minute: most of the way to 1/s.
        let now = t0 + Duration::from_secs(60);
        assert!((0.55..0.7).contains(&r.at(now)), "{}", r.at(now));
        let later = now + RATE_TAU * 3;
        assert!(r.at(later) < 0.05 * r.at(now));
    }

    #[test]
    fn a_shelf_holds_the_cold_starts_expected_within_its_bounds() {
        let c = WarmConfig { min: 1, max: 8, memory_budget: 0 };
        assert_eq!(sized(0.0, &c), 1, "kept at min with no cold starts");
        assert_eq!(sized(0.15, &c), 2, "1.5 expected within 10 s");
        assert_eq!(sized(0.5, &c), 5);
        assert_eq!(sized(30.0, &c), 8, "capped at max");
        assert_eq!(sized(0.5, &WarmConfig { min: 0, max: 0, memory_budget: 0 }), 0);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
