//! Metrics in Prometheus' text format: invocations by status, their duration, cold starts and
//! each phase of them (by the path they took: sandbox kind, pooled or new sandbox, zygote or
//! exec), OOM kills and crashes, per function. Gauges (instances, memory, queue, the warm
//! pool) are read when scraped.

use crate::instances::warm::WarmGauges;
use crate::instances::StartPath;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct FunctionMetrics {
    invocations: BTreeMap<u16, u64>,
    duration: Histogram,
    cold_start: BTreeMap<StartPath, Histogram>,
    phases: BTreeMap<(StartPath, &'static str), Histogram>,
    oom_kills: u64,
    crashes: u64,
    /// Instance starts past the function's budget of boosted starts (`instances::start_budget`).
    unboosted_starts: u64,
    /// By (trigger id, kind).
    triggers: BTreeMap<(String, &'static str), TriggerCounters>,
}

#[derive(Default)]
struct TriggerCounters {
    runs: u64,
    failures: u64,
    retries: u64,
    dead_lettered: u64,
    /// From when a message was published (a CRON slot's time) to its call.
    lag: Histogram,
}

/// How one trigger run (one call of the function for a message or a CRON slot) went.
pub struct TriggerRun {
    /// The function answered 300 or more, or could not be called.
    pub failed: bool,
    /// This was a redelivery.
    pub retry: bool,
    /// The message was given up on and sent to the dead-letter subject (or dropped).
    pub dead_lettered: bool,
    pub lag: Duration,
}

/// A function's gauges at scrape time.
pub struct Gauges {
    pub function: String,
    pub busy: usize,
    pub idle: usize,
    pub starting: usize,
    pub queued: usize,
    pub memory_bytes: u64,
}

#[derive(Default)]
pub struct Metrics {
    by_function: Mutex<BTreeMap<String, FunctionMetrics>>,
    /// The same events, by minute, for the console's charts.
    pub history: crate::history::History,
}

impl Metrics {
    fn with(&self, function: &str, f: impl FnOnce(&mut FunctionMetrics)) {
        let mut m = self.by_function.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(function) {
            Some(fm) => f(fm),
            None => f(m.entry(function.to_string()).or_default()),
        }
    }

    pub fn invocation(&self, function: &str, status: u16, took: Duration) {
        self.history.invocation(function, status, took);
        self.with(function, |m| {
            *m.invocations.entry(status).or_default() += 1;
            m.duration.observe(took);
        });
    }

    /// A cold start: its total (start to ready), and phases (time from the start). The first
    /// response comes later, with no total.
    pub fn cold_start(
        &self,
        function: &str,
        path: StartPath,
        total: Option<Duration>,
        phases: &[(&'static str, Option<Duration>)],
    ) {
        self.history.cold_start(function, total, phases);
        self.with(function, |m| {
            if let Some(t) = total {
                m.cold_start.entry(path).or_default().observe(t);
            }
            for (p, d) in phases {
                if let Some(d) = d {
                    m.phases.entry((path, p)).or_default().observe(*d);
                }
            }
        });
    }

    pub fn instance_ended(&self, function: &str, oom_kills: u64, crashed: bool) {
        self.history.instance_ended(function, oom_kills, crashed);
        self.with(function, |m| {
            m.oom_kills += oom_kills;
            m.crashes += crashed as u64;
        });
    }

    /// An instance start without the start-up CPU boost: its function used up its budget.
    pub fn start_unboosted(&self, function: &str) {
        self.with(function, |m| m.unboosted_starts += 1);
    }

    pub fn trigger_run(&self, function: &str, trigger: &str, kind: &'static str, run: TriggerRun) {
        self.with(function, |m| {
            let c = m.triggers.entry((trigger.to_string(), kind)).or_default();
            c.runs += 1;
            c.failures += run.failed as u64;
            c.retries += run.retry as u64;
            c.dead_lettered += run.dead_lettered as u64;
            c.lag.observe(run.lag);
        });
    }

    fn render_triggers(m: &BTreeMap<String, FunctionMetrics>, out: &mut String) {
        type Count = fn(&TriggerCounters) -> u64;
        let counters: [(&str, &str, Count); 4] = [
            (
                "fnbox_trigger_runs_total",
                "Calls made by a trigger (CRON slots, queue messages, asynchronous calls).",
                |c| c.runs,
            ),
            ("fnbox_trigger_failures_total", "Trigger calls answered with 300 or more, or that failed.", |c| {
                c.failures
            }),
            ("fnbox_trigger_retries_total", "Trigger calls that were a redelivery of a message.", |c| c.retries),
            ("fnbox_trigger_dead_lettered_total", "Messages given up on after their last attempt.", |c| {
                c.dead_lettered
            }),
        ];
        for (name, help, count) in counters {
            head(out, name, "counter", help);
            for (f, fm) in m.iter() {
                for ((id, kind), c) in &fm.triggers {
                    let _ = writeln!(out, "{name}{{function=\"{f}\",trigger=\"{id}\",kind=\"{kind}\"}} {}", count(c));
                }
            }
        }
        head(
            out,
            "fnbox_trigger_lag_seconds",
            "histogram",
            "Time from a message's publication (a CRON slot) to its call.",
        );
        for (f, fm) in m.iter() {
            for ((id, kind), c) in &fm.triggers {
                c.lag.render(
                    out,
                    "fnbox_trigger_lag_seconds",
                    &format!("function=\"{f}\",trigger=\"{id}\",kind=\"{kind}\""),
                );
            }
        }
    }

    pub fn render(&self, gauges: &[Gauges], warm: Option<&WarmGauges>) -> String {
        let m = self.by_function.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        head(&mut out, "fnbox_invocations_total", "counter", "Invocations by function and HTTP status.");
        for (f, fm) in m.iter() {
            for (status, n) in &fm.invocations {
                let _ = writeln!(out, "fnbox_invocations_total{{function=\"{f}\",status=\"{status}\"}} {n}");
            }
        }
        head(&mut out, "fnbox_invocation_duration_seconds", "histogram", "Time from request to response.");
        for (f, fm) in m.iter() {
            fm.duration.render(&mut out, "fnbox_invocation_duration_seconds", &format!("function=\"{f}\""));
        }
        head(
            &mut out,
            "fnbox_cold_starts_total",
            "counter",
            "Instances started for a request or min-scale, by sandbox kind, sandbox origin (pool: pre-warmed, new: launched for it) and process origin (zygote, exec).",
        );
        for (f, fm) in m.iter() {
            for (path, h) in &fm.cold_start {
                let _ = writeln!(out, "fnbox_cold_starts_total{{function=\"{f}\",{}}} {}", path.labels(), h.count);
            }
        }
        head(
            &mut out,
            "fnbox_cold_start_duration_seconds",
            "histogram",
            "Time from instance start to accepting requests.",
        );
        for (f, fm) in m.iter() {
            for (path, h) in &fm.cold_start {
                h.render(&mut out, "fnbox_cold_start_duration_seconds", &format!("function=\"{f}\",{}", path.labels()));
            }
        }
        head(
            &mut out,
            "fnbox_cold_start_phase_seconds",
            "histogram",
            "Time from instance start to each phase: sandbox_acquired, process_started, handler_imported, ready, first_response.",
        );
        for (f, fm) in m.iter() {
            for ((path, p), h) in &fm.phases {
                let labels = format!("function=\"{f}\",{},phase=\"{p}\"", path.labels());
                h.render(&mut out, "fnbox_cold_start_phase_seconds", &labels);
            }
        }
        head(
            &mut out,
            "fnbox_oom_kills_total",
            "counter",
            "Processes the OOM killer ended in the function's instances.",
        );
        for (f, fm) in m.iter() {
            let _ = writeln!(out, "fnbox_oom_kills_total{{function=\"{f}\"}} {}", fm.oom_kills);
        }
        head(&mut out, "fnbox_instance_crashes_total", "counter", "Instances that ended without being told to.");
        for (f, fm) in m.iter() {
            let _ = writeln!(out, "fnbox_instance_crashes_total{{function=\"{f}\"}} {}", fm.crashes);
        }
        head(
            &mut out,
            "fnbox_unboosted_starts_total",
            "counter",
            "Instance starts under the CPU quota from the first instruction: the function used up its boosted starts.",
        );
        for (f, fm) in m.iter() {
            let _ = writeln!(out, "fnbox_unboosted_starts_total{{function=\"{f}\"}} {}", fm.unboosted_starts);
        }
        head(&mut out, "fnbox_instances", "gauge", "Instances by state.");
        for g in gauges {
            for (state, n) in [("busy", g.busy), ("idle", g.idle), ("starting", g.starting)] {
                let _ = writeln!(out, "fnbox_instances{{function=\"{}\",state=\"{state}\"}} {n}", g.function);
            }
        }
        head(&mut out, "fnbox_queued_requests", "gauge", "Requests waiting for an instance.");
        for g in gauges {
            let _ = writeln!(out, "fnbox_queued_requests{{function=\"{}\"}} {}", g.function, g.queued);
        }
        head(&mut out, "fnbox_memory_bytes", "gauge", "Memory charged to the function's instances now.");
        for g in gauges {
            let _ = writeln!(out, "fnbox_memory_bytes{{function=\"{}\"}} {}", g.function, g.memory_bytes);
        }
        Self::render_triggers(&m, &mut out);
        render_warm(&mut out, warm);
        out
    }

    pub fn forget(&self, function: &str) {
        self.history.forget(function);
        self.by_function.lock().unwrap_or_else(|p| p.into_inner()).remove(function);
    }
}

/// A metric's `# HELP` and `# TYPE` lines.
fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The warm pool's gauges and counters (`fnbox_warm_*`).
fn render_warm(out: &mut String, warm: Option<&WarmGauges>) {
    head(out, "fnbox_warm_pool_enabled", "gauge", "1 when pre-warmed sandboxes are kept for cold starts.");
    let _ = writeln!(out, "fnbox_warm_pool_enabled {}", warm.is_some() as u8);
    let Some(w) = warm else {
        return;
    };
    let shelf = |k: &crate::instances::warm::WarmKey| {
        // Shelves of functions without network are labelled; the default (egress) is not, so
        // the series of earlier versions keep their names.
        let net = match k.network {
            fnbox_sandbox::net::Network::Egress => String::new(),
            n => format!(",network=\"{n}\""),
        };
        // v1 shelves are labelled; v2's (the only ones before) keep their series names.
        let kind = match k.kind {
            fnbox_sandbox::spec::SandboxKind::V2 => String::new(),
            v1 => format!(",sandbox=\"{}\"", v1.as_str()),
        };
        format!("runtime=\"{}\",memory_mb=\"{}\"{net}{kind}", k.runtime.as_str(), k.memory_mb)
    };
    head(
        out,
        "fnbox_warm_sandboxes",
        "gauge",
        "Pre-warmed sandboxes by runtime, memory tier and state (ready, starting).",
    );
    for s in &w.shelves {
        let _ = writeln!(out, "fnbox_warm_sandboxes{{{},state=\"ready\"}} {}", shelf(&s.key), s.ready);
        let _ = writeln!(out, "fnbox_warm_sandboxes{{{},state=\"starting\"}} {}", shelf(&s.key), s.starting);
    }
    head(out, "fnbox_warm_target", "gauge", "Pre-warmed sandboxes each shelf aims to hold.");
    for s in &w.shelves {
        let _ = writeln!(out, "fnbox_warm_target{{{}}} {}", shelf(&s.key), s.target);
    }
    head(out, "fnbox_warm_cold_start_rate", "gauge", "Cold starts per second, exponentially decaying estimate.");
    for s in &w.shelves {
        let _ = writeln!(out, "fnbox_warm_cold_start_rate{{{}}} {:.4}", shelf(&s.key), s.rate);
    }
    head(out, "fnbox_warm_takes_total", "counter", "Cold starts that found a pre-warmed sandbox ready (hit), took the next one to finish starting (pending), or started their own (miss; capped: the function was over its fair share).");
    for s in &w.shelves {
        let _ = writeln!(out, "fnbox_warm_takes_total{{{},result=\"hit\"}} {}", shelf(&s.key), s.hits);
        let _ = writeln!(out, "fnbox_warm_takes_total{{{},result=\"miss\"}} {}", shelf(&s.key), s.misses);
        let _ = writeln!(out, "fnbox_warm_takes_total{{{},result=\"pending\"}} {}", shelf(&s.key), s.pending);
        let _ = writeln!(out, "fnbox_warm_takes_total{{{},result=\"capped\"}} {}", shelf(&s.key), s.capped);
    }
    head(out, "fnbox_warm_cold_start_peak", "gauge", "Most cold starts within one second over the last minute.");
    for s in &w.shelves {
        let _ = writeln!(out, "fnbox_warm_cold_start_peak{{{}}} {}", shelf(&s.key), s.peak);
    }
    head(out, "fnbox_warm_memory_bytes", "gauge", "Memory the ready pre-warmed sandboxes use, from their cgroups.");
    let _ = writeln!(out, "fnbox_warm_memory_bytes {}", w.shelves.iter().map(|s| s.memory_bytes).sum::<u64>());
    head(out, "fnbox_warm_memory_budget_bytes", "gauge", "Most memory the pre-warmed sandboxes may use together.");
    let _ = writeln!(out, "fnbox_warm_memory_budget_bytes {}", w.memory_budget);
    head(out, "fnbox_warm_starts_total", "counter", "Pre-warmed sandboxes started (ok) or failed to start (failed).");
    let _ = writeln!(out, "fnbox_warm_starts_total{{result=\"ok\"}} {}", w.started);
    let _ = writeln!(out, "fnbox_warm_starts_total{{result=\"failed\"}} {}", w.failed);
}
