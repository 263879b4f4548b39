//! Triggers: what calls a function besides HTTP. CRON schedules ([`cron`]), NATS JetStream
//! subjects ([`nats`]), SQS queues ([`sqs`]) and asynchronous calls ([`calls`]); the queue
//! kinds share their consumer machinery ([`queue`]). Every trigger call goes through
//! the gateway's own path ([`crate::gateway::invoke::deliver`]): the same scaling, queue,
//! timeout, logs and metrics as an HTTP call. See docs/architecture.md, "Triggers".

pub mod async_call;
pub mod calls;
pub mod calls_js;
pub mod cron;
pub mod jetstream;
pub mod nats;
mod nats_client;
pub mod nats_source;
pub mod queue;
pub mod runner;
mod sigv4;
pub mod sqs;
mod sqs_client;
pub mod store;

use crate::error::{Error, Result};
use crate::gateway::invoke::{deliver, Delivered, Delivery};
use crate::metrics::TriggerRun;
use crate::platform::Platform;
use cron::Schedule;
use runner::{now_s, rfc3339};
pub use runner::{view, Clock, Runner, SystemClock, TriggerState, TriggerView};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The header naming the trigger a call comes from: `cron/ID`, `nats/ID`, `sqs/ID`, `async/ID`.
pub const TRIGGER_HEADER: &str = "x-fnbox-trigger";
/// A queue message's id (JetStream: `STREAM/SEQUENCE`, SQS: its `MessageId`), or an
/// asynchronous call's.
pub const MESSAGE_ID_HEADER: &str = "x-fnbox-message-id";
/// 1 for the first delivery of a message, 2 for its first retry, ...
pub const ATTEMPT_HEADER: &str = "x-fnbox-delivery-attempt";
/// CRON: the slot (RFC 3339) the call is for.
pub const SLOT_HEADER: &str = "x-fnbox-cron-slot";
/// Retries after the first delivery, as Scaleway's queue triggers.
pub const RETRIES: u32 = 3;
/// Calls in flight per queue trigger, unless configured (Scaleway's).
pub const DEFAULT_IN_FLIGHT: u32 = 10;
const IN_FLIGHT_LIMIT: u32 = 1000;
/// A CRON trigger's `--data`, at most.
const DATA_MAX: usize = 64 << 10;

/// Where a trigger's calls come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Cron {
        schedule: String,
        /// Sent as the body (JSON) of each call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
    },
    Nats(nats::NatsSource),
    Sqs(sqs::SqsSource),
    /// Asynchronous calls (`POST /async/fn/NAME`): never stored as a trigger.
    Async,
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Cron { .. } => "cron",
            Source::Nats(_) => "nats",
            Source::Sqs(_) => "sqs",
            Source::Async => "async",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trigger {
    pub id: String,
    pub function: String,
    pub name: String,
    #[serde(flatten)]
    pub source: Source,
    pub created_at: u64,
}

/// `POST /api/v1/functions/NAME/triggers`: one of `cron`, `nats` and `sqs`, with their options.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTrigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
}

fn check_trigger_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !ok {
        return Err(Error::Invalid(format!(
            "name: trigger name '{name}' is not valid: use 1 to 64 characters among a-z, 0-9, '-', '_' and '.'"
        )));
    }
    Ok(())
}

impl CreateTrigger {
    /// The trigger this asks for, checked: every error names the field.
    pub fn into_trigger(self, function: &str) -> Result<Trigger> {
        let id = format!("trg-{}", crate::auth::random_hex(6));
        let name = self.name.clone().unwrap_or_else(|| id.clone());
        check_trigger_name(&name)?;
        let kinds = [self.cron.is_some(), self.nats.is_some(), self.sqs.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(Error::Invalid(
                "cron, nats, sqs: give exactly one of them (--cron 'EXPR', --nats SUBJECT, --sqs QUEUE_URL)".into(),
            ));
        }
        let nats_only = [("stream", self.stream.is_some()), ("server", self.server.is_some())];
        let sqs_only = [
            ("region", self.region.is_some()),
            ("access_key", self.access_key.is_some()),
            ("secret_key", self.secret_key.is_some()),
        ];
        let queue_only = [("dead_letter", self.dead_letter.is_some()), ("max_in_flight", self.max_in_flight.is_some())];
        let given = |fields: &[(&'static str, bool)]| fields.iter().find(|(_, g)| *g).map(|(f, _)| *f);
        if self.cron.is_some() {
            if let Some(field) = given(&nats_only).or(given(&sqs_only)).or(given(&queue_only)) {
                return Err(Error::Invalid(format!(
                    "{field}: only for queue triggers (--nats, --sqs), not for --cron"
                )));
            }
        } else if self.data.is_some() {
            return Err(Error::Invalid("data: only for --cron triggers (a queue message is the body)".into()));
        }
        if let (Some(field), true) = (given(&nats_only), self.sqs.is_some()) {
            return Err(Error::Invalid(format!("{field}: only for --nats triggers, not for --sqs")));
        }
        if let (Some(field), true) = (given(&sqs_only), self.nats.is_some()) {
            return Err(Error::Invalid(format!("{field}: only for --sqs triggers, not for --nats")));
        }
        let max_in_flight = self.max_in_flight.unwrap_or(DEFAULT_IN_FLIGHT);
        if !(1..=IN_FLIGHT_LIMIT).contains(&max_in_flight) {
            return Err(Error::Invalid(format!("max_in_flight: {max_in_flight} is not 1 to {IN_FLIGHT_LIMIT}")));
        }
        let source = if let Some(expr) = self.cron {
            Schedule::parse(&expr).map_err(|e| Error::Invalid(format!("cron: {e}")))?;
            if let Some(d) = &self.data {
                if d.to_string().len() > DATA_MAX {
                    return Err(Error::Invalid(format!("data: over {} KiB: send less", DATA_MAX >> 10)));
                }
            }
            Source::Cron { schedule: expr.trim().to_string(), data: self.data }
        } else if let Some(subject) = self.nats {
            Source::Nats(nats::NatsSource::new(subject, self.stream, self.server, self.dead_letter, max_in_flight)?)
        } else {
            let url = self.sqs.unwrap_or_default();
            let (region, access, secret) = (self.region, self.access_key, self.secret_key);
            Source::Sqs(sqs::SqsSource::new(url, region, access, secret, self.dead_letter, max_in_flight)?)
        };
        Ok(Trigger { id, function: function.to_string(), name, source, created_at: now_s() as u64 })
    }
}

/// Starts a trigger: a CRON schedule from its last slot, a consumer for a queue.
pub fn activate(p: &Arc<Platform>, t: Trigger, last_slot: i64) {
    match &t.source {
        Source::Cron { schedule, .. } => match Schedule::parse(schedule) {
            Ok(schedule) => {
                p.triggers.schedule(t, schedule, last_slot);
            }
            Err(e) => p.logs.event(&t.function, "-", format!("trigger {} cannot run: {e}", t.id)),
        },
        Source::Nats(src) => {
            let handle = nats::spawn(p.clone(), t.clone(), src.clone());
            p.triggers.consume(&t.id, handle);
        }
        Source::Sqs(src) => {
            let handle = sqs::spawn(p.clone(), t.clone(), src.clone());
            p.triggers.consume(&t.id, handle);
        }
        Source::Async => {}
    }
}

/// Makes a trigger for a function (which must exist) and starts it.
pub fn create(p: &Arc<Platform>, function: &str, req: CreateTrigger) -> Result<TriggerView> {
    p.view(function)?;
    let mut t = req.into_trigger(function)?;
    p.registry.seal_trigger(&mut t)?;
    p.registry.add_trigger(&t)?;
    p.logs.event(function, "-", format!("{} trigger {} ({}) created", t.source.kind(), t.name, t.id));
    activate(p, t.clone(), t.created_at as i64);
    Ok(view(&p.triggers, &t))
}

/// Every trigger, or a function's (which must exist), with its state.
pub fn list(p: &Platform, function: Option<&str>) -> Result<Vec<TriggerView>> {
    if let Some(f) = function {
        p.view(f)?;
    }
    Ok(p.registry.triggers(function)?.iter().map(|(t, _)| view(&p.triggers, t)).collect())
}

pub fn remove(p: &Platform, id: &str) -> Result<TriggerRemoved> {
    let t = p
        .registry
        .remove_trigger(id)?
        .ok_or_else(|| Error::NotFound(format!("there is no trigger '{id}': list them with `fnbox trigger ls`")))?;
    p.triggers.deactivate(id);
    nats::forget(&t);
    p.logs.event(&t.function, "-", format!("{} trigger {} ({id}) removed", t.source.kind(), t.name));
    Ok(TriggerRemoved { function: t.function, removed: id.to_string() })
}

/// `DELETE /api/v1/triggers/ID`: the trigger removed and its function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TriggerRemoved {
    pub function: String,
    pub removed: String,
}

/// Removes a function ([`Platform::remove`]) and what its triggers and asynchronous calls
/// hold on their brokers: NATS triggers' durable consumers, the calls waiting in JetStream
/// (best effort, in the background).
pub fn remove_function(p: &Platform, name: &str) -> Result<()> {
    let triggers = p.registry.triggers(Some(name)).unwrap_or_default();
    p.remove(name)?;
    for (t, _) in &triggers {
        nats::forget(t);
    }
    if let Some(q) = &p.async_queue {
        q.forget(name);
    }
    Ok(())
}

/// Starts the CRON scheduler and the asynchronous calls' worker, and every stored trigger.
pub fn start(p: &Arc<Platform>) -> Result<()> {
    for (t, last) in p.registry.triggers(None)? {
        if p.pool(&t.function).is_some() {
            activate(p, t, last);
        }
    }
    let p2 = p.clone();
    tokio::spawn(async move {
        // Four looks a second: a slot fires within a quarter of a second of its time.
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            for (t, slot) in p2.triggers.due(&p2.registry) {
                tokio::spawn(fire_cron(p2.clone(), t, slot));
            }
        }
    });
    calls::start(p.clone())
}

/// One call a trigger makes, its outcome logged and counted.
pub(crate) struct Run<'a> {
    pub trigger: &'a Trigger,
    /// What the function's trigger header names after the kind: the trigger's id, or an
    /// asynchronous call's.
    pub source_id: String,
    pub method: hyper::Method,
    pub path: String,
    /// What the log says the call is for: "slot 2026-...", "message S/42".
    pub what: String,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
    pub attempt: u32,
    /// When what triggered it was published (lag is counted from there).
    pub published: SystemTime,
    /// This is the message's last attempt.
    pub last_attempt: bool,
}

impl Run<'_> {
    /// Makes the call and logs and counts it. `Ok` when the function answered < 300.
    pub(crate) async fn call(self, p: &Arc<Platform>) -> std::result::Result<Delivered, Delivered> {
        let t = self.trigger;
        let lag = SystemTime::now().duration_since(self.published).unwrap_or_default();
        let mut headers = self.headers;
        headers.push((TRIGGER_HEADER.into(), format!("{}/{}", t.source.kind(), self.source_id)));
        headers.push((ATTEMPT_HEADER.into(), self.attempt.to_string()));
        let request_id = crate::auth::random_hex(16);
        let t0 = Instant::now();
        let d =
            Delivery { method: self.method, path: self.path, headers, body: self.body, request_id: request_id.clone() };
        let got = deliver(p, &t.function, d).await;
        let failed = got.status >= 300;
        let dead = failed && self.last_attempt;
        let outcome = match (failed, dead) {
            (false, _) => String::new(),
            (true, true) => ": its last attempt, given up".into(),
            (true, false) => ": to be retried".into(),
        };
        let who = match t.source {
            Source::Async => "asynchronous".to_string(),
            _ => format!("{} trigger {} ({}) ran for", t.source.kind(), t.name, t.id),
        };
        p.logs.event(
            &t.function,
            "-",
            format!(
                "{who} {} (attempt {}, request {request_id}): HTTP {} in {} ms{outcome}",
                self.what,
                self.attempt,
                got.status,
                t0.elapsed().as_millis()
            ),
        );
        let run = TriggerRun { failed, retry: self.attempt > 1, dead_lettered: dead, lag };
        p.metrics.trigger_run(&t.function, &t.id, t.source.kind(), run);
        if failed {
            Err(got)
        } else {
            Ok(got)
        }
    }
}

async fn fire_cron(p: Arc<Platform>, t: Trigger, slot: i64) {
    let Source::Cron { data, .. } = &t.source else { return };
    let mut headers = vec![(SLOT_HEADER.to_string(), rfc3339(slot))];
    let body = match data {
        Some(d) => {
            headers.push(("content-type".into(), "application/json".into()));
            bytes::Bytes::from(d.to_string())
        }
        None => bytes::Bytes::new(),
    };
    let run = Run {
        trigger: &t,
        source_id: t.id.clone(),
        method: hyper::Method::POST,
        path: "/".into(),
        what: format!("slot {}", rfc3339(slot)),
        headers,
        body,
        attempt: 1,
        published: UNIX_EPOCH + Duration::from_secs(slot.max(0) as u64),
        // A CRON slot is called once (Scaleway's CRON does not retry either).
        last_attempt: true,
    };
    let _ = run.call(&p).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use std::sync::atomic::{AtomicI64, Ordering};

    struct FakeClock(Arc<AtomicI64>);
    impl Clock for FakeClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn registry(dir: &std::path::Path) -> Registry {
        Registry::open(&dir.join("registry.db"), crate::seal::test_key("k")).unwrap()
    }

    fn cron(expr: &str, created_at: i64) -> Trigger {
        let req = CreateTrigger { cron: Some(expr.into()), ..Default::default() };
        Trigger { created_at: created_at as u64, ..req.into_trigger("f").unwrap() }
    }

    /// Adds `t` to the registry and a runner on `clock`, as a starting server does.
    fn runner(reg: &Registry, clock: &Arc<AtomicI64>) -> Runner {
        let r = Runner::with_clock(Box::new(FakeClock(clock.clone())));
        for (t, last) in reg.triggers(None).unwrap() {
            let Source::Cron { schedule, .. } = &t.source else { panic!() };
            let schedule = Schedule::parse(schedule).unwrap();
            r.schedule(t, schedule, last);
        }
        r
    }

    #[test]
    fn slots_fire_once_and_restarts_neither_repeat_nor_burst() {
        let dir = std::env::temp_dir().join(format!("fnbox-cron-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // 2026-12-06T10:00:30Z
        let start = 1_796_551_230;
        let clock = Arc::new(AtomicI64::new(start));
        let reg = registry(&dir);
        let t = cron("*/5 * * * *", start);
        reg.add_trigger(&t).unwrap();
        let r = runner(&reg, &clock);
        let slots = |r: &Runner| r.due(&reg).into_iter().map(|(_, s)| s).collect::<Vec<_>>();
        assert!(slots(&r).is_empty(), "nothing is due before the first slot");
        clock.store(start + 270, Ordering::SeqCst); // 10:05:00
        assert_eq!(slots(&r), vec![start - 30 + 300]);
        clock.store(start + 271, Ordering::SeqCst);
        assert!(slots(&r).is_empty(), "a slot fired twice");
        // A restart (a new runner on the same registry) repeats nothing.
        let r = runner(&reg, &clock);
        assert!(slots(&r).is_empty(), "a restart fired a slot again");
        // Down for 47 minutes: nine slots missed, one fires, the newest.
        clock.store(start + 270 + 47 * 60, Ordering::SeqCst); // 10:52:00
        let r = runner(&reg, &clock);
        assert_eq!(slots(&r), vec![start - 30 + 50 * 60]);
        assert!(slots(&r).is_empty());
        // The clock set far ahead, then back: the schedule goes on from the new now.
        clock.store(start + 400 * 86_400, Ordering::SeqCst);
        assert_eq!(slots(&r).len(), 1);
        clock.store(start + 270 + 50 * 60, Ordering::SeqCst); // 10:55:00
        assert!(slots(&r).is_empty(), "the slot at the time the clock was set back to fires with the next");
        clock.store(start + 270 + 55 * 60, Ordering::SeqCst); // 11:00:00
        assert_eq!(slots(&r), vec![start - 30 + 60 * 60]);
        // Removed: the registry says so, and the runner drops it.
        reg.remove_trigger(&t.id).unwrap();
        clock.store(start + 3600 + 300, Ordering::SeqCst);
        assert!(slots(&r).is_empty() && r.cron().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_trigger_requests_name_the_field() {
        let err = |req: CreateTrigger| req.into_trigger("f").unwrap_err().to_string();
        assert!(err(CreateTrigger::default()).starts_with("cron, nats, sqs: give exactly one"));
        let e = err(CreateTrigger { cron: Some("61 * * * *".into()), ..Default::default() });
        assert!(e.starts_with("cron: ") && e.contains("field 1 (minute)"), "{e}");
        let e = err(CreateTrigger { cron: Some("* * * * *".into()), stream: Some("S".into()), ..Default::default() });
        assert!(e.starts_with("stream: only for queue triggers"), "{e}");
        let e =
            err(CreateTrigger { cron: Some("* * * * *".into()), name: Some("Bad Name".into()), ..Default::default() });
        assert!(e.starts_with("name: "), "{e}");
    }
}
