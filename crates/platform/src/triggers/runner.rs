//! The triggers running in this server, as state: CRON schedules and their last slots, queue
//! consumers' handles and what `fnbox trigger ls` shows of them. Held by the platform's state and
//! started by [`super::activate`]; a leaf, so that state needs none of the code that runs the
//! triggers, which takes the platform (see docs/architecture.md, "Crates and modules").

use super::cron::Schedule;
use super::{Source, Trigger};
use crate::registry::Registry;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A running consumer.
pub struct Handle {
    pub function: String,
    status: Arc<Mutex<String>>,
    task: tokio::task::AbortHandle,
}

impl Handle {
    pub(super) fn new(function: String, status: Arc<Mutex<String>>, task: tokio::task::AbortHandle) -> Self {
        Self { function, status, task }
    }

    pub fn status(&self) -> String {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

pub(super) fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub(super) fn rfc3339(t: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)).to_string()
}

/// The time, for the CRON scheduler: the system's, or a test's.
pub trait Clock: Send + Sync {
    /// Unix seconds.
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        now_s()
    }
}

pub(super) struct CronEntry {
    trigger: Trigger,
    schedule: Schedule,
    /// The last slot fired (or, never fired, when the trigger was made).
    last: i64,
}

/// The triggers running in this server: CRON schedules, queue consumers and their states.
pub struct Runner {
    clock: Box<dyn Clock>,
    cron: Mutex<BTreeMap<String, CronEntry>>,
    /// Queue consumers, by trigger id: their task, and what `fnbox trigger ls` shows.
    consumers: Mutex<HashMap<String, Handle>>,
}

impl Default for Runner {
    fn default() -> Self {
        Self::with_clock(Box::new(SystemClock))
    }
}

impl Runner {
    pub fn with_clock(clock: Box<dyn Clock>) -> Self {
        Self { clock, cron: Mutex::new(BTreeMap::new()), consumers: Mutex::new(HashMap::new()) }
    }

    pub(super) fn cron(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CronEntry>> {
        self.cron.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn consumers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.consumers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a CRON schedule from its last slot.
    pub(super) fn schedule(&self, t: Trigger, schedule: Schedule, last: i64) {
        self.cron().insert(t.id.clone(), CronEntry { trigger: t, schedule, last });
    }

    /// Keeps a queue consumer's handle (stopping none: the trigger is new).
    pub(super) fn consume(&self, id: &str, handle: Handle) {
        self.consumers().insert(id.to_string(), handle);
    }

    /// Starts the consumer `id` (made by `make`) unless it runs.
    pub(crate) fn start_once(&self, id: &str, make: impl FnOnce() -> Handle) {
        let mut consumers = self.consumers();
        if !consumers.contains_key(id) {
            consumers.insert(id.to_string(), make());
        }
    }

    pub fn deactivate(&self, id: &str) {
        self.cron().remove(id);
        if let Some(h) = self.consumers().remove(id) {
            h.stop();
        }
    }

    pub fn deactivate_function(&self, function: &str) {
        self.cron().retain(|_, e| e.trigger.function != function);
        let mut consumers = self.consumers();
        let ids: Vec<String> =
            consumers.iter().filter(|(_, h)| h.function == function).map(|(k, _)| k.clone()).collect();
        for id in ids {
            if let Some(h) = consumers.remove(&id) {
                h.stop();
            }
        }
    }

    /// The CRON slots due at the clock's now, each recorded as fired in the registry before
    /// it is returned: a slot is fired once, whatever happens next (a crash included). After
    /// a pause, only the newest missed slot is due.
    pub fn due(&self, registry: &Registry) -> Vec<(Trigger, i64)> {
        let now = self.clock.now();
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (id, e) in self.cron().iter_mut() {
            if e.last > now + 60 {
                // The clock was set back by more than a slot (or was far ahead when the last
                // slot fired): start again from now rather than wait for the old time.
                eprintln!("fnbox serve: trigger {id}: the clock went back before its last slot: scheduling from now");
                e.last = now;
            }
            let Some(slot) = e.schedule.last_between(e.last, now) else { continue };
            match registry.set_last_slot(id, slot) {
                Ok(true) => {
                    e.last = slot;
                    out.push((e.trigger.clone(), slot));
                }
                Ok(false) => gone.push(id.clone()),
                // Not recorded, not fired: the next tick tries again.
                Err(err) => eprintln!("fnbox serve: trigger {id}: cannot record its slot: {err}"),
            }
        }
        let mut cron = self.cron();
        for id in gone {
            cron.remove(&id);
        }
        out
    }

    /// What `fnbox trigger ls` shows of a trigger besides its definition.
    pub fn status(&self, t: &Trigger) -> TriggerState {
        match &t.source {
            Source::Cron { schedule, .. } => {
                let Ok(s) = Schedule::parse(schedule) else {
                    return TriggerState::Status { status: "not valid".into() };
                };
                let mut next = Vec::new();
                let mut at = self.clock.now();
                while let Some(n) = s.next_after(at).filter(|_| next.len() < 3) {
                    next.push(rfc3339(n));
                    at = n;
                }
                let last = self.cron().get(&t.id).map(|e| e.last).filter(|l| *l > t.created_at as i64);
                TriggerState::Scheduled { status: "scheduled".into(), next_runs: next, last_run: last.map(rfc3339) }
            }
            Source::Nats(_) | Source::Sqs(_) => {
                let status = self.consumers().get(&t.id).map(|h| h.status()).unwrap_or_else(|| "stopped".into());
                TriggerState::Status { status }
            }
            Source::Async => TriggerState::Nothing {},
        }
    }
}

/// A trigger as the API and `fnbox trigger ls` show it (served and read back as this type):
/// its definition, never a secret (an SQS trigger's secret key is left out), and its state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TriggerView {
    #[serde(flatten)]
    pub trigger: Trigger,
    #[serde(flatten)]
    pub state: TriggerState,
}

/// What a trigger is doing, as listed next to its definition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TriggerState {
    /// A CRON trigger: its next three runs (RFC 3339; none when no date matches) and its last
    /// one since it was made.
    Scheduled { status: String, next_runs: Vec<String>, last_run: Option<String> },
    /// A queue consumer's state (`stopped`, `consuming ...`, `error: ...`), or a CRON
    /// trigger's schedule that is `not valid`.
    Status { status: String },
    /// Asynchronous calls' trigger, never listed.
    Nothing {},
}

/// A trigger as listed: its definition (never a secret) and its state.
pub fn view(runner: &Runner, t: &Trigger) -> TriggerView {
    let mut trigger = t.clone();
    if let Source::Sqs(src) = &mut trigger.source {
        src.secret_key.clear();
    }
    TriggerView { state: runner.status(t), trigger }
}
