//! The instance pool against a fake [`InstanceBackend`]: instances that start when told to
//! (or fail to), serve nothing, and end when stopped, killed or crashed. Only the pool's public
//! API is used, so these tests hold whatever the pool's inner workings become. Each test says
//! which bug it catches.

use super::pool::{AcquireError, Deployed, Lease, Outcome, Pool};
use super::{
    BoxFuture, ColdStart, EndCause, Ended, Instance, InstanceBackend, InstanceControl, InstanceSpec, Upstream,
};
use crate::function::{Function, FunctionConfig, Runtime};
use crate::logs::LogStore;
use crate::metrics::Metrics;
use fnbox_sandbox::net::Network;
use fnbox_sandbox::spec::SandboxKind;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// One instance the fake started: how the pool treated it.
struct Handle {
    id: String,
    version: u64,
    /// Started with the start-up CPU boost.
    boost: bool,
    ended: watch::Sender<Option<Ended>>,
    stops: AtomicU32,
    kills: AtomicU32,
}

impl Handle {
    fn end(&self, cause: EndCause, message: &str) {
        self.ended.send_replace(Some(Ended { cause, message: message.into(), oom_kills: 0 }));
    }

    /// The instance dies on its own (a crash, not the pool's doing).
    fn crash(&self) {
        self.end(EndCause::Exited(1), "exited with code 1");
    }

    fn stopped(&self) -> bool {
        self.stops.load(Ordering::SeqCst) + self.kills.load(Ordering::SeqCst) > 0
    }
}

struct Control(Arc<Handle>);

impl InstanceControl for Control {
    fn kill(&self) {
        self.0.kills.fetch_add(1, Ordering::SeqCst);
        self.0.end(EndCause::Signaled, "killed");
    }
    fn stop(&self) {
        self.0.stops.fetch_add(1, Ordering::SeqCst);
        self.0.end(EndCause::Exited(0), "stopped");
    }
}

/// The fake backend. Starts succeed unless a failure is queued with [`Fake::fail_next`];
/// each start waits for a permit of `gate` (plenty unless a test holds starts back).
struct Fake {
    started: Mutex<Vec<Arc<Handle>>>,
    failures: Mutex<VecDeque<String>>,
    gate: Semaphore,
    /// Starts under way now, and the most at once.
    starting: AtomicU32,
    most_starting: AtomicU32,
}

impl Fake {
    fn new() -> Arc<Self> {
        Self::gated(Semaphore::MAX_PERMITS)
    }

    /// Starts wait until [`Fake::let_start`] lets them finish.
    fn held() -> Arc<Self> {
        Self::gated(0)
    }

    fn gated(permits: usize) -> Arc<Self> {
        Arc::new(Self {
            started: Mutex::default(),
            failures: Mutex::default(),
            gate: Semaphore::new(permits),
            starting: AtomicU32::new(0),
            most_starting: AtomicU32::new(0),
        })
    }

    fn let_start(&self, n: usize) {
        self.gate.add_permits(n);
    }

    fn fail_next(&self, message: &str) {
        self.failures.lock().unwrap().push_back(message.into());
    }

    fn started(&self) -> Vec<Arc<Handle>> {
        self.started.lock().unwrap().clone()
    }

    fn handle(&self, id: &str) -> Arc<Handle> {
        self.started().into_iter().find(|h| h.id == id).expect("an instance the fake started")
    }
}

impl InstanceBackend for Fake {
    fn start<'a>(&'a self, spec: &'a InstanceSpec) -> BoxFuture<'a, Result<Instance, Ended>> {
        Box::pin(async move {
            let now = self.starting.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_starting.fetch_max(now, Ordering::SeqCst);
            self.gate.acquire().await.expect("the gate stays open").forget();
            self.starting.fetch_sub(1, Ordering::SeqCst);
            if let Some(message) = self.failures.lock().unwrap().pop_front() {
                return Err(Ended { cause: EndCause::StartFailed, message, oom_kills: 0 });
            }
            let (tx, rx) = watch::channel(None);
            let h = Arc::new(Handle {
                id: spec.id.clone(),
                version: spec.version,
                boost: spec.boost,
                ended: tx,
                stops: AtomicU32::new(0),
                kills: AtomicU32::new(0),
            });
            self.started.lock().unwrap().push(h.clone());
            let upstream = Upstream::new("/nonexistent/fnbox-pool-test.sock".into());
            Ok(Instance::new(spec.id.clone(), upstream, Vec::new(), ColdStart::default(), rx, Box::new(Control(h))))
        })
    }
}

struct Scale {
    min: u32,
    max: u32,
    concurrency: u32,
    queue: u32,
    timeout_s: u64,
}

const SCALE: Scale = Scale { min: 0, max: 2, concurrency: 1, queue: 1, timeout_s: 30 };

fn deployed(version: u64, s: &Scale) -> Deployed {
    let config = FunctionConfig {
        runtime: Runtime::Python3,
        handler: "main.handler".into(),
        memory_mb: 128,
        sandbox: SandboxKind::V2,
        min_scale: s.min,
        max_scale: s.max,
        timeout_s: s.timeout_s,
        concurrency: s.concurrency,
        max_queue: s.queue,
        env: Default::default(),
        secrets: Default::default(),
        private: false,
        code: String::new(),
        network: Network::None,
    };
    Deployed { function: Function { name: "f".into(), version, config, updated_at: 0 }, code: "/nonexistent".into() }
}

fn pool(fake: &Arc<Fake>, s: &Scale) -> Arc<Pool> {
    observed(fake, s).0
}

/// A pool, with the logs and metrics it writes to.
fn observed(fake: &Arc<Fake>, s: &Scale) -> (Arc<Pool>, Arc<LogStore>, Arc<Metrics>) {
    let (logs, metrics) = (Arc::new(LogStore::default()), Arc::new(Metrics::default()));
    (Pool::new(deployed(1, s), fake.clone(), logs.clone(), metrics.clone()), logs, metrics)
}

/// The pool's events in the function's logs that contain `text`.
fn events(logs: &LogStore, text: &str) -> usize {
    logs.read("f", 10_000).0.iter().filter(|l| l.line.contains(text)).count()
}

/// Waits (at most 5 s) for `f` to hold; whether it did.
async fn until(f: impl Fn() -> bool) -> bool {
    for _ in 0..5000 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    f()
}

/// Lets the pool's spawned tasks run, then says whether `task` is still waiting.
async fn still_waiting<T>(task: &tokio::task::JoinHandle<T>) -> bool {
    tokio::time::sleep(Duration::from_millis(50)).await;
    !task.is_finished()
}

fn queued(p: &Arc<Pool>) -> tokio::task::JoinHandle<Result<Lease, AcquireError>> {
    let p = p.clone();
    tokio::spawn(async move { p.acquire().await })
}

// Catches: a cold start per request (instances not reused), a lease that does not give its
// instance back, the cold start reported on every request instead of the first.
#[tokio::test]
async fn a_request_starts_an_instance_and_the_next_one_reuses_it() {
    let fake = Fake::new();
    let p = pool(&fake, &SCALE);
    let first = p.acquire().await.unwrap();
    assert!(first.cold_start.is_some(), "the first request of an instance reports its start");
    let id = first.instance.id.clone();
    first.finish(Outcome::Served);
    for _ in 0..3 {
        let l = p.acquire().await.unwrap();
        assert_eq!(l.instance.id, id, "a free instance is reused");
        assert!(l.cold_start.is_none());
        drop(l); // dropping a lease counts as served
    }
    assert_eq!(fake.started().len(), 1);
    assert_eq!((p.instance_count(), p.gauges().busy, p.gauges().idle), (1, 0, 1));
    // Two at once with concurrency 1: a second instance.
    let (a, b) = (p.acquire().await.unwrap(), p.acquire().await.unwrap());
    assert_ne!(a.instance.id, b.instance.id);
    assert_eq!(fake.started().len(), 2);
}

// Catches: idle instances never stopped (scale to zero), busy ones stopped under a request,
// min-scale not kept (stopped below it, or not started up to it).
#[tokio::test]
async fn idle_instances_stop_after_the_idle_time_down_to_min_scale() {
    let fake = Fake::new();
    let p = pool(&fake, &SCALE);
    let (a, b) = (p.acquire().await.unwrap(), p.acquire().await.unwrap());
    let (busy, idle) = (fake.handle(&a.instance.id), fake.handle(&b.instance.id));
    drop(b);
    p.maintain(Duration::from_secs(3600));
    assert_eq!(p.instance_count(), 2, "idle for less than the idle time: kept");
    p.maintain(Duration::ZERO);
    assert!(idle.stopped() && !busy.stopped(), "only the idle instance stops");
    assert_eq!(p.instance_count(), 1);
    drop(a);
    p.maintain(Duration::ZERO);
    assert!(busy.stopped());
    assert_eq!(p.instance_count(), 0, "scaled to zero");

    // With min-scale 1: started by maintenance, and the last one is kept however idle.
    let fake = Fake::new();
    let p = pool(&fake, &Scale { min: 1, ..SCALE });
    p.maintain(Duration::ZERO);
    assert!(until(|| p.instance_count() == 1).await, "min-scale started");
    let (a, b) = (p.acquire().await.unwrap(), p.acquire().await.unwrap());
    drop((a, b));
    p.maintain(Duration::ZERO);
    assert_eq!(p.instance_count(), 1, "kept at min-scale");
    assert_eq!(fake.started().iter().filter(|h| h.stopped()).count(), 1);
}

// Catches: starting past max-scale under load, an unbounded queue (requests pile up in
// memory instead of getting 503), a freed instance not handed to the waiting request, and
// a trigger's back-pressure figure (`spare`) that offers room where there is none.
#[tokio::test]
async fn at_max_scale_requests_queue_and_a_full_queue_is_refused() {
    let fake = Fake::new();
    let p = pool(&fake, &SCALE);
    assert_eq!(p.spare(), 2, "max-scale 2 x concurrency 1");
    let (a, b) = (p.acquire().await.unwrap(), p.acquire().await.unwrap());
    assert_eq!(p.spare(), 0);
    let waiting = queued(&p);
    assert!(still_waiting(&waiting).await, "a third request waits for a free instance");
    assert!(p.room() < 0, "more requests wait than the instances take: {}", p.room());
    match p.acquire().await {
        Err(AcquireError::QueueFull { max_queue: 1, max_scale: 2 }) => {}
        other => panic!("a full queue must refuse: {:?}", other.map(|l| l.instance.id.clone())),
    }
    assert_eq!(fake.started().len(), 2, "never more than max-scale");
    let freed = a.instance.id.clone();
    a.finish(Outcome::Served);
    let third = waiting.await.unwrap().expect("the waiting request gets the freed instance");
    assert_eq!(third.instance.id, freed);
    assert_eq!(fake.started().len(), 2);
    drop((b, third));
}

// Catches: a queued request waiting forever when no instance frees up.
#[tokio::test]
async fn a_queued_request_gives_up_after_the_function_timeout() {
    let fake = Fake::new();
    let p = pool(&fake, &Scale { max: 1, timeout_s: 1, ..SCALE });
    let busy = p.acquire().await.unwrap();
    let t0 = std::time::Instant::now();
    match p.acquire().await {
        Err(AcquireError::QueueTimeout(d)) => assert_eq!(d, Duration::from_secs(1)),
        other => panic!("expected a queue timeout: {:?}", other.map(|l| l.instance.id.clone())),
    }
    assert!(t0.elapsed() >= Duration::from_secs(1));
    drop(busy);
}

// Catches: a failed start keeping its place among the instances being started (the pool then
// believes it is at max-scale and every later request waits for nothing), its waiters not
// told why, and a crashed instance kept in the pool.
#[tokio::test]
async fn a_failed_start_gives_its_place_back_and_tells_the_waiters() {
    let fake = Fake::new();
    // A short queue timeout: a start that never gives its place back fails the test in 5 s.
    let p = pool(&fake, &Scale { max: 1, timeout_s: 5, ..SCALE });
    fake.fail_next("its handler failed to load: SyntaxError");
    match p.acquire().await {
        Err(AcquireError::StartFailed(e)) => assert!(e.message.contains("SyntaxError"), "{}", e.message),
        other => panic!("expected the start failure: {:?}", other.map(|l| l.instance.id.clone())),
    }
    assert_eq!(p.gauges().starting, 0, "the failed start still counts as starting");
    assert_eq!(p.spare(), 1, "the failed start still holds the only place");
    let l = tokio::time::timeout(Duration::from_secs(5), p.acquire())
        .await
        .expect("the next request starts an instance in the freed place")
        .unwrap();
    // It crashes under the request: it leaves the pool and the next request gets a new one.
    let crashed = fake.handle(&l.instance.id);
    l.finish(Outcome::InstanceFailed);
    assert_eq!(crashed.kills.load(Ordering::SeqCst), 1, "a failed instance is made sure of");
    assert_eq!(p.instance_count(), 0);
    let l = p.acquire().await.unwrap();
    assert_ne!(l.instance.id, crashed.id);
    // One that dies between requests is dropped too.
    let id = l.instance.id.clone();
    drop(l);
    fake.handle(&id).crash();
    assert!(until(|| p.instance_count() == 0).await, "a crashed instance stays in the pool");
}

// Catches: a request not taken over by a warm (min-scale) instance, starting one more instead;
// a warm instance started while the first request's start is already under way.
#[tokio::test]
async fn a_warm_instance_takes_the_first_request_without_a_new_start() {
    let fake = Fake::held();
    let p = pool(&fake, &Scale { min: 1, ..SCALE });
    p.maintain(Duration::from_secs(60));
    // A request arrives while the warm instance is still starting: it waits for that one.
    let waiting = queued(&p);
    assert!(still_waiting(&waiting).await);
    assert_eq!(fake.most_starting.load(Ordering::SeqCst), 1, "a second start for a request a start covers");
    fake.let_start(1);
    let l = waiting.await.unwrap().unwrap();
    assert!(l.cold_start.is_some(), "its first request reports how it was started");
    assert_eq!(fake.started().len(), 1);
    drop(l);
    let l = p.acquire().await.unwrap();
    assert_eq!(fake.started().len(), 1, "the warm instance serves on");
    drop(l);
}

// Catches: a new version not taking over (requests still going to old instances), old
// instances stopped under a request in flight, or left running once their requests end.
#[tokio::test]
async fn a_new_version_takes_over_without_dropping_requests_in_flight() {
    let fake = Fake::new();
    let p = pool(&fake, &SCALE);
    let (in_flight, idle) = (p.acquire().await.unwrap(), p.acquire().await.unwrap());
    let old_idle = fake.handle(&idle.instance.id);
    let old_busy = fake.handle(&in_flight.instance.id);
    drop(idle);
    p.update(deployed(2, &SCALE));
    assert!(old_idle.stopped(), "an idle old instance stops at once");
    assert!(!old_busy.stopped(), "an old instance serving a request is left to finish");
    let new = p.acquire().await.unwrap();
    assert_eq!(fake.handle(&new.instance.id).version, 2, "new requests go to the new version");
    in_flight.finish(Outcome::Served);
    assert!(old_busy.stopped(), "the old instance stops once its request is done");
    assert_eq!(p.instance_ids(), vec![new.instance.id.clone()]);
    drop(new);
    // Removing the function: queued requests are told, idle instances stop.
    p.remove();
    assert!(matches!(p.acquire().await, Err(AcquireError::Removed)));
    assert!(fake.started().iter().all(|h| h.stopped()));
}

// Catches: a start-up CPU boost without bound (every start of a function whose instances keep
// ending boosted, the platform's CPU spent past the function's quota), and a budget that is
// not the function's own (a burst of one function taking the others' boost).
#[tokio::test]
async fn a_function_past_its_boosted_starts_starts_under_its_quota() {
    use super::start_budget::BOOSTED_BURST;
    let fake = Fake::new();
    let many = Scale { max: BOOSTED_BURST + 5, ..SCALE };
    let (p, logs, metrics) = observed(&fake, &many);
    let mut held = Vec::new();
    for _ in 0..BOOSTED_BURST + 2 {
        held.push(p.acquire().await.unwrap());
    }
    let boosted: Vec<bool> = fake.started().iter().map(|h| h.boost).collect();
    assert_eq!(boosted.len() as u32, BOOSTED_BURST + 2, "each request held its own instance");
    assert_eq!(boosted.iter().filter(|b| **b).count() as u32, BOOSTED_BURST, "{boosted:?}");
    assert!(!boosted[boosted.len() - 1] && !boosted[boosted.len() - 2], "the last starts are past the budget");
    assert!(
        until(|| events(&logs, "boosted starts are used up") == 1).await,
        "the logs say it once, not at every start: {}",
        events(&logs, "boosted starts are used up")
    );
    let counted = || metrics.render(&[], None).contains("fnbox_unboosted_starts_total{function=\"f\"} 2");
    assert!(until(counted).await, "{}", metrics.render(&[], None));
    // Another function's pool has its own budget.
    let other = Fake::new();
    let q = pool(&other, &SCALE);
    drop(q.acquire().await.unwrap());
    assert!(other.started()[0].boost);
    drop(held);
}

// Catches: a function whose instances exit after each response restarted at once each time
// (each served response used to end the run of failures), which with the boost turned its
// requests into the platform's CPU; and a steady instance's response not ending the run.
#[tokio::test]
async fn instances_that_keep_ending_right_after_answering_are_restarted_with_a_back_off() {
    let fake = Fake::new();
    let (p, logs, _) = observed(&fake, &SCALE);
    for round in 0..3 {
        let l = p.acquire().await.unwrap();
        let id = l.instance.id.clone();
        drop(l); // served
        fake.handle(&id).crash(); // and ended right after
        assert!(until(|| p.instance_count() == 0).await, "round {round}");
    }
    // Two quick ends in a row: the third restart waited.
    assert!(until(|| events(&logs, "backing off") >= 1).await, "no back-off after instances kept ending");
    let l = p.acquire().await.unwrap();
    assert!(events(&logs, "backing off 500 ms") == 1, "the delay grows with each quick end");
    drop(l);
}

// Catches: one instance that stays up resetting the back-off of the whole function, so that
// another instance of it that keeps crashing was restarted at once, forever (the run of
// failures was the function's, not the crashing instance's restart chain's).
#[tokio::test(start_paused = true)]
async fn a_steady_instance_does_not_cut_the_back_off_of_another_that_keeps_crashing() {
    let fake = Fake::new();
    let (p, logs, _) = observed(&fake, &SCALE);
    let mut steady = p.acquire().await.unwrap();
    let steady_id = steady.instance.id.clone();
    tokio::time::advance(super::pool::STEADY + Duration::from_secs(1)).await;
    for round in 0..3 {
        // The steady instance is busy: a second one starts, answers, and crashes at once.
        let l = p.acquire().await.unwrap();
        let id = l.instance.id.clone();
        assert_ne!(id, steady_id, "round {round}");
        drop(l);
        fake.handle(&id).crash();
        assert!(until(|| p.instance_count() == 1).await, "round {round}");
        // The steady instance answers (after STEADY): its own chain is healthy.
        drop(steady);
        steady = p.acquire().await.unwrap();
        assert_eq!(steady.instance.id, steady_id, "round {round}");
    }
    // The crashing chain's third start (two failures in a row) waited.
    assert_eq!(events(&logs, "backing off 250 ms"), 1, "the crashing instance was restarted at once");
    drop(steady);
}
