//! The warm pool: sandboxes started ahead of need, each already running a runtime's zygote
//! (the interpreter up, the wrapper imported), with its socket directory bound, and not yet
//! bound to any function. A cold start takes one and binds it (see `backend.rs`); the pool
//! refills in the background. Sandboxes are single-use: one function, one instance, then gone.
//! Both sandbox kinds have shelves (docs/architecture.md, "Cold starts in bursts").
//!
//! Shelves are per sandbox kind, runtime and memory tier: the Sentry reports the memory limit
//! the sandbox started with in `/proc/meminfo` and `sysinfo`, so a sandbox serves the tier it
//! was started at (a tier change on a running v2 sandbox would leave `/proc/meminfo` wrong).
//!
//! Sizing: each shelf holds the largest of
//! * the cold starts expected over [`HORIZON`] at its average rate (an exponentially decaying
//!   estimate, time constant [`RATE_TAU`]),
//! * its peak of cold starts within one second over the last [`PEAK_WINDOW`] (a burst like the
//!   last one is served from the shelf),
//! * the functions deployed on it within `FRESH_FOR` (10 minutes) that have not had their first cold
//!   start yet (a deploy of many functions is followed by their first calls),
//!
//! at least `min` while a deployed function uses the shelf, at most `max`. Each function has a
//! fair share (`per_function`): within [`FAIR_WINDOW`] only that many of its cold starts count
//! toward the shelf's size, and, on a shelf other functions use, only those take from it, so
//! one function's burst cannot empty the pool nor fill the memory budget the others need. All shelves together
//! never hold more than the memory budget, counted from each sandbox's cgroup (and, for
//! sandboxes still starting, from the last one measured). At most `parallel` sandboxes start at
//! once. A cold start that finds the shelf empty while one of its sandboxes is starting, not yet
//! promised to another, waits for that one ([`Take::Pending`]) rather than start its own: it is
//! further along.

use super::disk_budget::WARM_POOL;
use super::launcher::{start_failed, Boost, Launched, Launcher};
use super::log_route::LogRoute;
use super::warm_sizing::{sized, FairShare, Peak, Rate};
use super::zygote::{self, ZygoteAt};
use crate::function::Runtime;
use fnbox_sandbox::spec::SandboxKind;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub use super::warm_sizing::{FAIR_WINDOW, HORIZON, PEAK_WINDOW, RATE_TAU};
/// Sandboxes warming up at once, by default: each start costs a core for tens of
/// milliseconds, and part of it is waiting (clone, mounts, the Sentry's set-up).
pub fn default_parallel() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u32 * 2).clamp(2, 16)
}
/// How long shutdown waits for sandboxes still starting.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// How long a deployed function not yet called keeps a sandbox ready for its first call.
const FRESH_FOR: Duration = Duration::from_secs(600);
/// How long the pool must go without a take before a refill asked for by a first answer runs
/// ([`WarmPool::fill_when_quiet`]).
pub const QUIET: Duration = Duration::from_millis(50);
/// The longest a refill asked for by a first answer waits for a quiet pool: takes from other
/// shelves (another tenant's cold starts) cannot put it off further.
pub const QUIET_AT_MOST: Duration = Duration::from_millis(200);
/// Memory assumed for a sandbox before one of its shelf was measured.
const FIRST_ESTIMATE: u64 = 48 << 20;

pub use super::warm_sizing::{WarmConfig, DEFAULT_PER_FUNCTION};

/// A shelf: the runtime and memory tier its sandboxes were started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WarmKey {
    pub kind: SandboxKind,
    pub runtime: Runtime,
    pub memory_mb: u64,
    /// A pre-warmed sandbox's link is made before it is claimed: its network is part of it.
    pub network: fnbox_sandbox::net::Network,
}

/// What a cold start gets from a shelf.
pub enum Take {
    /// A ready sandbox.
    Ready(Box<Launched>),
    /// The shelf's next sandbox to finish starting, promised to this cold start; the sender
    /// is dropped if that start fails.
    Pending(oneshot::Receiver<Launched>),
    /// Nothing ready or starting for it: start one of its own.
    Miss,
}

#[derive(Default)]
struct Shelf {
    ready: VecDeque<Launched>,
    starting: u32,
    /// Cold starts promised the next sandboxes to finish starting, oldest first.
    waiters: VecDeque<oneshot::Sender<Launched>>,
    rate: Rate,
    peak: Peak,
    /// Each function's cold starts counted within its fair share.
    fair: FairShare,
    /// Deployed function versions using this shelf, and whether each had its first cold start.
    /// Each function version using the shelf, with when it was first seen while it had not
    /// had its first cold start (`None` once it has).
    functions: HashMap<(String, u64), Option<Instant>>,
    /// A deployed v2 function uses this shelf.
    wanted: bool,
    /// Memory of this shelf's last sandbox measured when ready.
    size: Option<u64>,
    /// Failed starts in a row, and when to try again.
    failures: u32,
    retry_at: Option<Instant>,
    hits: u64,
    misses: u64,
    /// Cold starts that waited for a sandbox still starting.
    pending: u64,
    /// Cold starts of a function over its fair share, which started their own.
    capped: u64,
}

impl Shelf {
    /// Forgets cold starts that stopped waiting.
    fn prune_waiters(&mut self) {
        self.waiters.retain(|w| !w.is_closed());
    }

    /// Starting sandboxes no cold start waits for.
    fn unpromised(&self) -> u32 {
        self.starting.saturating_sub(self.waiters.len() as u32)
    }

    /// Deployed function versions still to have their first cold start, deployed within
    /// [`FRESH_FOR`]: a function never called stops holding a sandbox ready then (the shelf
    /// would otherwise grow with every idle function, until the budget is theirs).
    fn fresh(&self, now: Instant) -> u32 {
        self.functions.values().filter(|since| since.is_some_and(|t| now.duration_since(t) < FRESH_FOR)).count() as u32
    }

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
    /// The last take from any shelf.
    last_take: Option<Instant>,
    /// When the refill now waiting for a quiet pool was asked for ([`WarmPool::fill_when_quiet`]).
    quiet_fill: Option<Instant>,
}

/// How long a refill asked for at `asked` still waits at `now`: until [`QUIET`] after the last
/// take, and at most until [`QUIET_AT_MOST`] after `asked`.
fn quiet_wait(last_take: Option<Instant>, asked: Instant, now: Instant) -> Duration {
    let quiet = last_take.map_or(Duration::ZERO, |t| (t + QUIET).saturating_duration_since(now));
    quiet.min((asked + QUIET_AT_MOST).saturating_duration_since(now))
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
    pub pending: u64,
    pub capped: u64,
    pub peak: u32,
}

pub struct WarmGauges {
    pub shelves: Vec<ShelfGauges>,
    pub memory_budget: u64,
    pub started: u64,
    pub failed: u64,
}

impl WarmPool {
    pub fn new(launcher: Arc<Launcher>, config: WarmConfig) -> Arc<Self> {
        Arc::new(Self { launcher, config, state: Mutex::new(State::default()) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn target(&self, shelf: &mut Shelf, now: Instant) -> u32 {
        match shelf.wanted {
            true => sized(shelf.rate.at(now), shelf.peak.at(now), shelf.fresh(now), &self.config),
            false => 0,
        }
    }

    /// The shelves deployed functions use, with the function versions on each: they are kept
    /// at least at `min` (and a version not yet cold-started keeps a sandbox ready for its
    /// first call); the other shelves are emptied.
    pub fn want(self: &Arc<Self>, keys: &HashMap<WarmKey, Vec<(String, u64)>>) {
        {
            let mut st = self.lock();
            for k in keys.keys() {
                st.shelves.entry(*k).or_default();
            }
            for (k, shelf) in st.shelves.iter_mut() {
                let using = keys.get(k);
                shelf.wanted = using.is_some();
                let old = std::mem::take(&mut shelf.functions);
                let now = Instant::now();
                shelf.functions = using
                    .into_iter()
                    .flatten()
                    .map(|f| (f.clone(), old.get(f).copied().unwrap_or(Some(now))))
                    .collect();
            }
        }
        self.fill();
    }

    /// A sandbox for a cold start of `key` by `function` (name, version): a ready one, else
    /// the next of the shelf's to finish starting if one is not promised yet. Counts the cold
    /// start either way. A hit does not refill: a sandbox starting now would take the CPU the
    /// cold start needs (on two cores, a Node start under the Sentry delays it by tens of
    /// milliseconds); the refill comes after the instance has answered its first request and
    /// the pool has been quiet ([`Self::fill_when_quiet`] from the gateway), or at the next
    /// maintenance tick. A cold start that did not find one ready refills at once: the shelf
    /// is behind.
    pub fn take(self: &Arc<Self>, key: WarmKey, function: (&str, u64)) -> Take {
        let (got, dead) = {
            let mut st = self.lock();
            st.last_take = Some(Instant::now());
            let shelf = st.shelves.entry(key).or_default();
            let now = Instant::now();
            if let Some(since) = shelf.functions.get_mut(&(function.0.to_string(), function.1)) {
                *since = None;
            }
            // Over its share, a function's cold start does not grow the shelf, and takes
            // nothing from it while other functions use it: one function's burst cannot
            // starve the others (alone on its shelf, it starves nobody).
            if shelf.fair.admit(function.0, self.config.per_function, now) {
                shelf.rate.record(now);
                shelf.peak.record(now);
            } else if shelf.functions.keys().any(|(name, _)| name != function.0) {
                shelf.capped += 1;
                return Take::Miss;
            }
            let mut dead = Vec::new();
            let mut got = Take::Miss;
            while let Some(sb) = shelf.ready.pop_front() {
                if sb.has_ended() {
                    dead.push(sb);
                } else {
                    got = Take::Ready(Box::new(sb));
                    break;
                }
            }
            if matches!(got, Take::Miss) {
                shelf.prune_waiters();
                if shelf.unpromised() > 0 {
                    let (tx, rx) = oneshot::channel();
                    shelf.waiters.push_back(tx);
                    got = Take::Pending(rx);
                }
            }
            match got {
                Take::Ready(_) => shelf.hits += 1,
                Take::Pending(_) => shelf.pending += 1,
                Take::Miss => shelf.misses += 1,
            }
            (got, dead)
        };
        drop(dead);
        if !matches!(got, Take::Ready(_)) {
            self.fill();
        }
        got
    }

    /// A pooled instance has answered its first request: refills once the pool has gone
    /// [`QUIET`] without a take, or [`QUIET_AT_MOST`] after this call, whichever comes first.
    /// The cold starts of a burst that all find a sandbox ready then finish before the first
    /// ones' refills take CPU from the rest (refills start at the lowest priority, and still
    /// took about a third of the CPU during 20 cold starts at once on two cores). With the
    /// deferral, p50 went from 21-36 ms to 12-28 and cpu/call from 4-7.5 to 2.5-5 ms. Other
    /// refills are not deferred: a take that finds nothing ready, the end of a start, a deploy
    /// and the maintenance tick fill at once. Calls made while a deferred refill waits join it.
    pub fn fill_when_quiet(self: &Arc<Self>) {
        {
            let mut st = self.lock();
            let now = Instant::now();
            // One waits already (unless its task was lost: it would be long overdue).
            if st.closed || st.quiet_fill.is_some_and(|asked| now < asked + QUIET_AT_MOST * 2) {
                return;
            }
            st.quiet_fill = Some(now);
        }
        self.fill_once_quiet();
    }

    /// The waiting refill's turn: fills if the pool is quiet (or has been waited for long
    /// enough), else checks again when it could be.
    fn fill_once_quiet(self: &Arc<Self>) {
        let wait = {
            let mut st = self.lock();
            let Some(asked) = st.quiet_fill else { return };
            let wait = quiet_wait(st.last_take, asked, Instant::now());
            if wait.is_zero() || st.closed {
                st.quiet_fill = None;
            }
            wait
        };
        if wait.is_zero() {
            return self.fill();
        }
        let pool = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            pool.fill_once_quiet();
        });
    }

    /// Brings every shelf to its target within the budget: stops what is over, starts what is
    /// missing. Called once the pool is quiet after a pooled instance's first response
    /// ([`Self::fill_when_quiet`]), on every start's end, on a take that found nothing ready,
    /// on a deploy and periodically.
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
                shelf.prune_waiters();
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
            let parallel = self.config.parallel.max(1);
            while more && st.starting < parallel {
                more = false;
                for (k, target) in &plan {
                    if st.starting >= parallel {
                        break;
                    }
                    let shelf = st.shelves.get_mut(k).expect("planned shelves exist");
                    // Sandboxes promised to waiting cold starts are not the shelf's.
                    let have = shelf.ready.len() as u32 + shelf.unpromised();
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
            kind: key.kind,
            runtime: key.runtime,
            memory_mb: key.memory_mb,
            code: None,
            env: None,
            network: key.network,
            // Nothing of a function's runs before it is bound: the whole start is boosted, at
            // the lowest weight (no request waits for it yet).
            cpu_boost: Boost::Background,
        };
        let route = LogRoute::unbound(self.launcher.logs.clone());
        // Spares hold half of the disk budget at most (disk_budget::WARM_POOL).
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
                    // The oldest cold start still waiting gets it; else the shelf (even when
                    // closed: shutdown stops it with the others).
                    let mut sb = Some(sb);
                    while let Some(s) = sb.take() {
                        match shelf.waiters.pop_front() {
                            Some(w) => sb = w.send(s).err(),
                            None => shelf.ready.push_back(s),
                        }
                    }
                }
                Err(e) => {
                    // A waiting cold start starts its own instead (dropping its sender).
                    if shelf.waiters.len() as u32 > shelf.starting {
                        shelf.waiters.pop_front();
                    }
                    shelf.failures += 1;
                    // Later than an instance's restart (no request waits for a spare): 0.5 s
                    // after its first failure, doubling.
                    let wait = super::restart_delay(shelf.failures.saturating_add(2));
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
        let mut st = self.lock();
        let shelves = st
            .shelves
            .iter_mut()
            .map(|(k, s)| ShelfGauges {
                key: *k,
                ready: s.ready.len(),
                starting: s.starting,
                target: self.target(s, now),
                rate: s.rate.at(now),
                memory_bytes: s.ready.iter().map(Launched::memory_bytes).sum(),
                hits: s.hits,
                misses: s.misses,
                pending: s.pending,
                capped: s.capped,
                peak: s.peak.at(now),
            })
            .collect();
        WarmGauges { shelves, memory_budget: self.config.memory_budget, started: st.started, failed: st.failed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_never_called_stops_holding_a_sandbox_ready_after_a_while() {
        let now = Instant::now();
        let mut shelf = Shelf::default();
        shelf.functions.insert(("new".into(), 1), Some(now));
        shelf.functions.insert(("called".into(), 1), None);
        assert_eq!(shelf.fresh(now), 1);
        assert_eq!(shelf.fresh(now + FRESH_FOR), 0, "an idle function kept its sandbox forever");
    }

    // Catches: a refill that runs while takes are still coming (it takes the CPU of the cold
    // starts of a burst), and one that waits for ever (no take yet, or long ago).
    #[test]
    fn a_refill_waits_until_the_pool_has_been_quiet() {
        let t = Instant::now();
        assert_eq!(quiet_wait(None, t, t), Duration::ZERO, "no take yet: at once");
        assert_eq!(quiet_wait(Some(t), t, t), QUIET);
        assert_eq!(quiet_wait(Some(t), t, t + QUIET / 5), QUIET - QUIET / 5);
        assert_eq!(quiet_wait(Some(t), t, t + QUIET), Duration::ZERO);
        assert_eq!(quiet_wait(Some(t), t, t + QUIET * 100), Duration::ZERO);
    }

    // Catches: a refill put off for as long as takes keep coming (another tenant's cold
    // starts on any shelf, one every 50 ms, kept every first answer's refill waiting for the
    // tick).
    #[test]
    fn takes_cannot_put_a_refill_off_past_its_limit() {
        let asked = Instant::now();
        let mut now = asked;
        while now < asked + QUIET_AT_MOST {
            let wait = quiet_wait(Some(now), asked, now);
            assert!(now + wait <= asked + QUIET_AT_MOST, "waits past the limit");
            now += QUIET / 2;
        }
        assert_eq!(quiet_wait(Some(now), asked, now), Duration::ZERO, "a take at the limit still waits");
    }
}
