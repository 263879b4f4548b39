//! A function's instances: picks a free one for each request, starts more on demand (up to
//! max-scale), queues requests when all are busy (503 when the queue is full), keeps min-scale
//! warm, stops idle ones, replaces crashed ones (backing off when they keep crashing or keep
//! ending soon after they start, [`STEADY`]), keeps the function's starts within its budget of
//! boosted starts ([`BoostBudget`]) and rolls over to a new version without dropping requests
//! in flight.

use super::start_budget::BoostBudget;
use super::{Ended, Instance, InstanceBackend, InstanceSpec, StartPath};
use crate::function::Function;
use crate::logs::LogStore;
use crate::metrics::{Gauges, Metrics};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A deployed version of a function.
pub struct Deployed {
    pub function: Function,
    /// Its unpacked code.
    pub code: PathBuf,
}

/// Why no instance could take a request.
#[derive(Debug)]
pub enum AcquireError {
    /// All instances busy and the queue full (503).
    QueueFull { max_queue: u32, max_scale: u32 },
    /// Queued for this long without an instance becoming free (503).
    QueueTimeout(Duration),
    /// No instance could be started (502).
    StartFailed(Ended),
    /// The function was removed meanwhile (404).
    Removed,
}

/// How a request on a leased instance went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Served,
    /// The instance failed under the request (crash, OOM): it is dropped from the pool.
    InstanceFailed,
    /// The request took too long: the instance is killed.
    TimedOut,
}

struct Slot {
    inst: Arc<Instance>,
    version: u64,
    in_flight: u32,
    idle_since: Instant,
    /// Served nothing yet: its first request completes its cold start.
    fresh: bool,
    /// When its start began, and when it was ready (tokio's clock, which tests can advance).
    started_at: Instant,
    ready_at: tokio::time::Instant,
    /// Failures in a row of the restart chain it continues (see [`State::restarts`]); set to
    /// 0 once it serves after [`STEADY`]. Shared with the task that watches for its end.
    chain: Arc<AtomicU32>,
    /// Stop it once its requests are done (its function's instances were recycled).
    retiring: bool,
}

type Waiter = oneshot::Sender<Result<Lease, AcquireError>>;

struct State {
    current: Arc<Deployed>,
    slots: Vec<Slot>,
    starting: u32,
    waiters: VecDeque<Waiter>,
    /// Restart chains waiting for their next start: for each instance that crashed or failed
    /// to start and is not replaced yet, the failures in a row of its chain (its own start's,
    /// plus one). The next start continues the longest chain and waits
    /// [`super::restart_delay`] of it; a start with no chain waiting begins a new one. Per
    /// chain, so that a steady instance's responses do not cut the back-off of another
    /// instance that keeps crashing. At most max-scale chains are kept (the longest).
    restarts: Vec<u32>,
    /// Which starts may run with the start-up CPU boost.
    boosts: BoostBudget,
    /// The last start was refused the boost (its budget is used up): said once in the logs.
    unboosted: bool,
    removed: bool,
}

/// An instance that has served a request after being up this long is healthy: its response ends
/// a run of failures. One that ends sooner on its own, even right after answering, counts as a
/// failure however many requests it served, so that a function whose instances exit after each
/// response is restarted with the growing back-off of a crash loop, not at once each time.
pub const STEADY: Duration = Duration::from_secs(10);

pub struct Pool {
    pub name: String,
    backend: Arc<dyn InstanceBackend>,
    logs: Arc<LogStore>,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    seq: AtomicU64,
}

/// An instance reserved for one request. Finish it with [`Lease::finish`]; dropping it counts
/// as served.
pub struct Lease {
    pool: Arc<Pool>,
    pub instance: Arc<Instance>,
    /// Set on the first request of an instance: when and how it was started.
    pub cold_start: Option<(Instant, StartPath)>,
    done: bool,
}

impl Lease {
    pub fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.pool.release(&self.instance, outcome);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.done {
            self.pool.release(&self.instance, Outcome::Served);
        }
    }
}

impl Pool {
    pub fn new(
        deployed: Deployed,
        backend: Arc<dyn InstanceBackend>,
        logs: Arc<LogStore>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: deployed.function.name.clone(),
            backend,
            logs,
            metrics,
            state: Mutex::new(State {
                current: Arc::new(deployed),
                slots: Vec::new(),
                starting: 0,
                waiters: VecDeque::new(),
                restarts: Vec::new(),
                boosts: BoostBudget::default(),
                unboosted: false,
                removed: false,
            }),
            seq: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn current(&self) -> Arc<Deployed> {
        self.lock().current.clone()
    }

    pub fn instance_count(&self) -> usize {
        self.lock().slots.len()
    }

    /// An instance for one request: a free one, a new one, or one freed while queued.
    pub async fn acquire(self: &Arc<Self>) -> Result<Lease, AcquireError> {
        let (rx, wait) = {
            let mut st = self.lock();
            if st.removed {
                return Err(AcquireError::Removed);
            }
            if let Some(i) = free_slot(&st) {
                return Ok(self.lease(&mut st, i));
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            self.pump(&mut st);
            st.waiters.retain(|w| !w.is_closed());
            let c = &st.current.function.config;
            let (max_queue, max_scale, conc) = (c.max_queue, c.max_scale, c.concurrency);
            // Requests covered by instances being started are not waiting on a busy one.
            if st.waiters.len() > (max_queue + st.starting * conc) as usize {
                st.waiters.pop_back();
                return Err(AcquireError::QueueFull { max_queue, max_scale });
            }
            (rx, Duration::from_secs(c.timeout_s))
        };
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(AcquireError::Removed),
            Err(_) => Err(AcquireError::QueueTimeout(wait)),
        }
    }

    fn lease(self: &Arc<Self>, st: &mut State, i: usize) -> Lease {
        let s = &mut st.slots[i];
        s.in_flight += 1;
        let cold_start = std::mem::take(&mut s.fresh).then_some((s.started_at, s.inst.cold_start.path));
        Lease { pool: self.clone(), instance: s.inst.clone(), cold_start, done: false }
    }

    /// Hands free instances to waiters, and starts instances for the waiters left.
    fn pump(self: &Arc<Self>, st: &mut State) {
        loop {
            while st.waiters.front().is_some_and(|w| w.is_closed()) {
                st.waiters.pop_front();
            }
            let Some(i) = free_slot(st) else { break };
            let Some(tx) = st.waiters.pop_front() else { break };
            let lease = self.lease(st, i);
            if let Err(Ok(mut lease)) = tx.send(Ok(lease)) {
                // The waiter gave up meanwhile: undo without re-entering the lock.
                lease.done = true;
                st.slots[i].in_flight -= 1;
            }
        }
        let c = &st.current.function.config;
        let live = live(st) as u32;
        let waiting = st.waiters.iter().filter(|w| !w.is_closed()).count() as u32;
        let want = waiting.div_ceil(c.concurrency).saturating_sub(st.starting);
        let room = c.max_scale.saturating_sub(live + st.starting);
        for _ in 0..want.min(room) {
            self.spawn_start(st);
        }
    }

    fn spawn_start(self: &Arc<Self>, st: &mut State) {
        st.starting += 1;
        let deployed = st.current.clone();
        let chain = take_longest(&mut st.restarts);
        let delay = super::restart_delay(chain);
        let boost = st.boosts.take(Instant::now());
        // Said when the budget runs out, not at every start past it.
        let newly_unboosted = !boost && !st.unboosted;
        st.unboosted = !boost;
        let pool = self.clone();
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            if !boost {
                pool.metrics.start_unboosted(&pool.name);
            }
            if newly_unboosted {
                pool.logs.event(
                    &pool.name,
                    "-",
                    format!(
                        "its {} boosted starts are used up (one more every {} s): instances start under the CPU quota, without a pre-warmed sandbox",
                        super::start_budget::BOOSTED_BURST,
                        super::start_budget::BOOST_REFILL.as_secs()
                    ),
                );
            }
            if !delay.is_zero() {
                pool.logs.event(&pool.name, "-", format!("backing off {} ms before the next start", delay.as_millis()));
                tokio::time::sleep(delay).await;
            }
            let f = &deployed.function;
            let spec = InstanceSpec {
                id: format!("{}-{}-{n}", f.name, crate::auth::random_hex(3)),
                function: f.name.clone(),
                version: f.version,
                config: f.config.clone(),
                code: deployed.code.clone(),
                logs: pool.logs.clone(),
                boost,
            };
            let started_at = Instant::now();
            let result = pool.backend.start(&spec).await;
            pool.started(deployed.function.version, started_at, chain, &spec.id, result);
        });
    }

    /// A start of `version` that continued a restart chain of `chain` failures has ended.
    fn started(
        self: &Arc<Self>,
        version: u64,
        started_at: Instant,
        chain: u32,
        id: &str,
        result: Result<Instance, Ended>,
    ) {
        match result {
            Ok(inst) => {
                let c = inst.cold_start;
                self.logs.event(
                    &self.name,
                    id,
                    format!(
                        "instance started in {:.1} ms (sandbox {} {:.1} ms, handler imported at {})",
                        c.ready.as_secs_f64() * 1e3,
                        if c.path.pooled { "pre-warmed" } else { "launched" },
                        c.sandbox_acquired.as_secs_f64() * 1e3,
                        c.handler_imported.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3)).unwrap_or("-".into())
                    ),
                );
                self.metrics.cold_start(
                    &self.name,
                    c.path,
                    Some(c.ready),
                    &[
                        ("sandbox_acquired", Some(c.sandbox_acquired)),
                        ("process_started", c.process_started),
                        ("handler_imported", c.handler_imported),
                        ("ready", Some(c.ready)),
                    ],
                );
                let inst = Arc::new(inst);
                let chain = Arc::new(AtomicU32::new(chain));
                let mut st = self.lock();
                st.starting -= 1;
                if st.removed || version != st.current.function.version {
                    drop(st);
                    inst.stop();
                } else {
                    st.slots.push(Slot {
                        inst: inst.clone(),
                        version,
                        in_flight: 0,
                        idle_since: Instant::now(),
                        fresh: true,
                        started_at,
                        ready_at: tokio::time::Instant::now(),
                        chain: chain.clone(),
                        retiring: false,
                    });
                    self.pump(&mut st);
                }
                let pool = self.clone();
                tokio::spawn(async move { pool.watch(inst, chain).await });
            }
            Err(ended) => {
                self.logs.event(&self.name, id, format!("instance failed to start: {}", ended.message));
                self.metrics.instance_ended(&self.name, ended.oom_kills, true);
                let mut st = self.lock();
                st.starting -= 1;
                failed(&mut st, chain);
                if st.starting == 0 && st.slots.iter().all(|s| s.version != st.current.function.version) {
                    for w in st.waiters.drain(..) {
                        let _ = w.send(Err(AcquireError::StartFailed(ended.clone())));
                    }
                }
            }
        }
    }

    /// Waits for an instance's end, drops it from the pool and says why in the logs; a crash
    /// leaves its restart chain, one failure longer, for the next start.
    async fn watch(self: Arc<Self>, inst: Arc<Instance>, chain: Arc<AtomicU32>) {
        let ended = inst.wait_ended().await;
        let crashed = !inst.retired();
        self.metrics.instance_ended(&self.name, ended.oom_kills, crashed);
        let line = if crashed { format!("instance ended: {}", ended.message) } else { "instance stopped".to_string() };
        self.logs.event(&self.name, &inst.id, line);
        let mut st = self.lock();
        st.slots.retain(|s| !Arc::ptr_eq(&s.inst, &inst));
        if crashed {
            failed(&mut st, chain.load(Ordering::SeqCst));
        }
        self.pump(&mut st);
    }

    fn release(self: &Arc<Self>, inst: &Arc<Instance>, outcome: Outcome) {
        let mut st = self.lock();
        let mut retire = None;
        if let Some(i) = st.slots.iter().position(|s| Arc::ptr_eq(&s.inst, inst)) {
            let current = st.current.function.version;
            let removed = st.removed;
            let s = &mut st.slots[i];
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
            if outcome == Outcome::Served && s.ready_at.elapsed() >= STEADY {
                // Its chain is healthy again; other instances' chains are theirs.
                s.chain.store(0, Ordering::SeqCst);
            }
            let stale = (removed || s.retiring || s.version != current) && s.in_flight == 0;
            if outcome != Outcome::Served || stale {
                retire = Some(st.slots.remove(i).inst);
            }
        }
        self.pump(&mut st);
        drop(st);
        match (retire, outcome) {
            (Some(i), Outcome::Served) => i.stop(),
            (Some(i), Outcome::TimedOut) => i.kill(),
            // It failed: it is ending or gone; make sure, still counting it as a crash.
            (Some(i), Outcome::InstanceFailed) => i.terminate(),
            (None, _) => {}
        }
    }

    /// A new version: new requests go to its instances; the old ones finish what they serve.
    pub fn update(self: &Arc<Self>, deployed: Deployed) {
        let mut st = self.lock();
        st.current = Arc::new(deployed);
        st.restarts.clear();
        let v = st.current.function.version;
        let old: Vec<Arc<Instance>> = extract(&mut st.slots, |s| s.version != v && s.in_flight == 0);
        self.keep_min_scale(&mut st);
        self.pump(&mut st);
        drop(st);
        old.iter().for_each(|i| i.stop());
    }

    /// Stops every instance: the idle ones now, the busy ones once their requests are done.
    /// The next request starts a new one. Returns those stopped now.
    pub fn recycle(self: &Arc<Self>) -> Vec<Arc<Instance>> {
        let mut st = self.lock();
        let idle = extract(&mut st.slots, |s| s.in_flight == 0);
        st.slots.iter_mut().for_each(|s| s.retiring = true);
        self.keep_min_scale(&mut st);
        drop(st);
        idle.iter().for_each(|i| i.stop());
        idle
    }

    /// Removes the function: queued requests get 404, instances stop once idle.
    pub fn remove(&self) {
        let mut st = self.lock();
        st.removed = true;
        for w in st.waiters.drain(..) {
            let _ = w.send(Err(AcquireError::Removed));
        }
        let idle = extract(&mut st.slots, |s| s.in_flight == 0);
        drop(st);
        idle.iter().for_each(|i| i.stop());
    }

    /// Stops every instance now (server shutdown).
    pub fn shutdown(&self) -> Vec<Arc<Instance>> {
        let mut st = self.lock();
        st.removed = true;
        st.waiters.clear();
        let all = extract(&mut st.slots, |_| true);
        all.iter().for_each(|i| i.stop());
        all
    }

    fn keep_min_scale(self: &Arc<Self>, st: &mut State) {
        let live = live(st) as u32;
        for _ in (live + st.starting)..st.current.function.config.min_scale {
            self.spawn_start(st);
        }
    }

    /// Called every second or so: stops instances idle longer than `idle` (down to
    /// min-scale), and starts instances up to min-scale.
    pub fn maintain(self: &Arc<Self>, idle: Duration) {
        let mut st = self.lock();
        if st.removed {
            return;
        }
        let min = st.current.function.config.min_scale as usize;
        let mut live = live(&st);
        let mut order: Vec<(Instant, usize)> = st
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.in_flight == 0 && s.idle_since.elapsed() >= idle)
            .map(|(i, s)| (s.idle_since, i))
            .collect();
        order.sort();
        let mut doomed = Vec::new();
        for (_, i) in order {
            if live <= min {
                break;
            }
            doomed.push(st.slots[i].inst.clone());
            live -= 1;
        }
        st.slots.retain(|s| !doomed.iter().any(|d| Arc::ptr_eq(d, &s.inst)));
        self.keep_min_scale(&mut st);
        drop(st);
        for i in doomed {
            self.logs.event(&self.name, &i.id, format!("stopping: idle for {} s", idle.as_secs()));
            i.stop();
        }
    }

    /// Requests the function could take now without queueing: free places on its live
    /// instances, plus those of instances starting or it may still start, less the requests
    /// already waiting. Triggers take at most this many messages from a queue (back-pressure:
    /// at max scale with every instance busy, messages wait in the queue, not in memory).
    pub fn spare(&self) -> usize {
        self.room().max(0) as usize
    }

    /// [`Pool::spare`], negative when more requests wait than its instances can take at once.
    pub fn room(&self) -> i64 {
        let st = self.lock();
        let c = &st.current.function.config;
        let v = st.current.function.version;
        let live: Vec<&Slot> = st.slots.iter().filter(|s| s.version == v && !s.retiring).collect();
        let free: u32 = live.iter().map(|s| c.concurrency.saturating_sub(s.in_flight)).sum();
        let startable = c.max_scale.saturating_sub(live.len() as u32);
        let waiting = st.waiters.iter().filter(|w| !w.is_closed()).count() as u32;
        (free + startable * c.concurrency) as i64 - waiting as i64
    }

    /// Its instances' ids.
    pub fn instance_ids(&self) -> Vec<String> {
        self.lock().slots.iter().map(|s| s.inst.id.clone()).collect()
    }

    /// The cgroup directories of its instances, for memory samples.
    pub fn instance_cgroups(&self) -> Vec<Vec<PathBuf>> {
        self.lock().slots.iter().map(|s| s.inst.cgroup.clone()).collect()
    }

    pub fn gauges(&self) -> Gauges {
        let st = self.lock();
        let busy = st.slots.iter().filter(|s| s.in_flight > 0).count();
        Gauges {
            function: self.name.clone(),
            busy,
            idle: st.slots.len() - busy,
            starting: st.starting as usize,
            queued: st.waiters.iter().filter(|w| !w.is_closed()).count(),
            memory_bytes: st.slots.iter().map(|s| s.inst.memory_bytes()).sum(),
        }
    }
}

/// Instances of the current version that take requests.
fn live(st: &State) -> usize {
    let v = st.current.function.version;
    st.slots.iter().filter(|s| s.version == v && !s.retiring).count()
}

fn free_slot(st: &State) -> Option<usize> {
    let v = st.current.function.version;
    let conc = st.current.function.config.concurrency;
    // The least loaded instance of the current version.
    st.slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.version == v && !s.retiring && s.in_flight < conc)
        .min_by_key(|(_, s)| s.in_flight)
        .map(|(i, _)| i)
}

/// A restart chain of `chain` failures in a row failed once more: kept for the next start.
fn failed(st: &mut State, chain: u32) {
    st.restarts.push(chain.saturating_add(1));
    let most = st.current.function.config.max_scale.max(1) as usize;
    if st.restarts.len() > most {
        st.restarts.sort_unstable_by(|a, b| b.cmp(a));
        st.restarts.truncate(most);
    }
}

/// The longest restart chain waiting, taken out; 0 (a new chain) when none waits.
fn take_longest(restarts: &mut Vec<u32>) -> u32 {
    let longest = restarts.iter().enumerate().max_by_key(|(_, n)| **n).map(|(i, _)| i);
    longest.map_or(0, |i| restarts.swap_remove(i))
}

fn extract(slots: &mut Vec<Slot>, pick: impl Fn(&Slot) -> bool) -> Vec<Arc<Instance>> {
    let mut out = Vec::new();
    slots.retain(|s| {
        if pick(s) {
            out.push(s.inst.clone());
            false
        } else {
            true
        }
    });
    out
}
