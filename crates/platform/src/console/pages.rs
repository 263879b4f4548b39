//! The console's pages and actions: what each shows, gathered from the platform.

use super::chart::{Chart, Drawn, Say, Series, BLUE, GREEN, ORANGE, PURPLE, RED, SKY, YELLOW};
use super::{error_page, redirect, render, Form};
use crate::gateway::reply::Body;
use crate::history::{minute_now, Minute};
use crate::logs::disk::Filter;
use crate::platform::{Listed, Platform};
use hyper::Response;
use minijinja::value::{Serde, Value};
use plotters::style::RGBColor;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

fn when(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

/// The open minutes in the registry, so a page shows the last seconds too.
fn flush(p: &Platform) {
    if let Err(e) = p.metrics.history.flush(&p.registry, None) {
        eprintln!("fnbox serve: cannot write the history to the registry: {e}");
    }
}

#[derive(Serialize)]
struct Row {
    name: String,
    disabled: Option<String>,
    runtime: &'static str,
    sandbox: &'static str,
    memory_mb: u64,
    instances: usize,
    min_scale: u32,
    max_scale: u32,
    busy: usize,
    idle: usize,
    requests: u64,
    errors: u64,
    version: u64,
    deployed: String,
}

pub(super) fn list(p: &Arc<Platform>, csrf: &str) -> Response<Body> {
    flush(p);
    let totals = p.registry.history_totals(minute_now().saturating_sub(59)).unwrap_or_default();
    let mut rows = Vec::new();
    for l in p.list() {
        let name = match &l {
            Listed::Serving(v) => v.name.clone(),
            Listed::Disabled { name, .. } => name.clone(),
        };
        let h = totals.get(&name).cloned().unwrap_or_default();
        let (Some(pool), Listed::Serving(_)) = (p.pool(&name), &l) else {
            let why = match l {
                Listed::Disabled { disabled, .. } => disabled,
                Listed::Serving(_) => "not loaded".into(),
            };
            rows.push(Row {
                name,
                disabled: Some(why),
                runtime: "",
                sandbox: "",
                memory_mb: 0,
                instances: 0,
                min_scale: 0,
                max_scale: 0,
                busy: 0,
                idle: 0,
                requests: h.requests(),
                errors: h.errors(),
                version: 0,
                deployed: String::new(),
            });
            continue;
        };
        let f = pool.current().function.clone();
        let g = pool.gauges();
        rows.push(Row {
            name,
            disabled: None,
            runtime: f.config.runtime.as_str(),
            sandbox: f.config.sandbox.as_str(),
            memory_mb: f.config.memory_mb,
            instances: g.busy + g.idle,
            min_scale: f.config.min_scale,
            max_scale: f.config.max_scale,
            busy: g.busy,
            idle: g.idle,
            requests: h.requests(),
            errors: h.errors(),
            version: f.version,
            deployed: when(f.updated_at),
        });
    }
    render(200, "list.html", minijinja::context! { functions => Value::from(Serde(&rows)), csrf => csrf })
}

/// The history of the last hour (60 buckets of a minute) or day (144 of ten minutes).
fn buckets(p: &Platform, name: &str, range: &str) -> (Vec<Minute>, u64) {
    let per = if range == "day" { 10 } else { 1 };
    let n = if range == "day" { 144 } else { 60 };
    let now = minute_now();
    let first = (now / per + 1).saturating_sub(n) * per;
    let mut out = vec![Minute::default(); n as usize];
    for (minute, m) in p.registry.history(name, first).unwrap_or_default() {
        if let Some(b) = out.get_mut(((minute - first) / per) as usize) {
            b.merge(&m);
        }
    }
    (out, first)
}

/// The cold-start phases, as the time each took (the platform records the time from the
/// start to each).
const PHASES: [(&str, &str, RGBColor); 5] = [
    ("sandbox", "sandbox_acquired", BLUE),
    ("process", "process_started", SKY),
    ("import", "handler_imported", GREEN),
    ("ready", "ready", YELLOW),
    ("1st response", "first_response", PURPLE),
];

/// The charts of a function's page: `h` has a bucket of `per` minutes from minute `first`.
fn charts(h: &[Minute], first: u64, per: u64, limit_mb: u64) -> Vec<Drawn> {
    let times: Vec<String> = (0..h.len() as u64).map(|i| when((first + i * per) * 60)[11..16].to_string()).collect();
    let marks: Vec<(usize, String)> = h
        .iter()
        .enumerate()
        .filter(|(_, m)| m.oom_kills + m.crashes > 0)
        .map(|(i, m)| (i, format!("{} OOM kill(s), {} crash(es)", m.oom_kills, m.crashes)))
        .collect();
    let chart =
        |id, title, unit, marks: Vec<(usize, String)>| Chart { id, title, unit, times: &times, marks, ceiling: None };
    let count = |f: &dyn Fn(&Minute) -> u64| h.iter().map(|m| f(m) as f64).collect::<Vec<_>>();
    let per_label = if per == 1 { "per minute" } else { "per 10 minutes" };
    let requests = chart("requests", "Requests by status", per_label, marks.clone()).stacked(
        &[
            Series { name: "2xx", color: GREEN, values: count(&|m| m.status.range(200..300).map(|(_, n)| n).sum()) },
            Series {
                name: "other",
                color: ORANGE,
                values: count(&|m| {
                    m.status.iter().filter(|(s, _)| !(200..300).contains(*s) && **s < 500).map(|(_, n)| n).sum()
                }),
            },
            Series { name: "5xx", color: RED, values: count(&|m| m.errors()) },
        ],
        Say::Total,
    );
    let q = |q: f64| h.iter().map(|m| m.latency_ms(q).unwrap_or(f64::NAN)).collect::<Vec<_>>();
    let latency = chart("latency", "Latency", "ms", Vec::new()).lines(
        &[Series { name: "p50", color: BLUE, values: q(0.5) }, Series { name: "p99", color: PURPLE, values: q(0.99) }],
        &["p99"],
    );
    // Each phase's share: its time from the start less the previous phase's.
    let phases: Vec<Series> = PHASES
        .iter()
        .enumerate()
        .map(|(i, (label, key, color))| Series {
            name: label,
            color: *color,
            values: h
                .iter()
                .map(|m| {
                    let at = m.phase_ms(key).unwrap_or(0.0);
                    let before = PHASES[..i].iter().rev().find_map(|(_, k, _)| m.phase_ms(k)).unwrap_or(0.0);
                    (at - before).max(0.0)
                })
                .collect(),
        })
        .collect();
    let cold = chart("cold", "Cold starts, average phases", "ms", Vec::new()).stacked(&phases, Say::Last);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let memory =
        Chart { ceiling: Some(limit_mb as f64), ..chart("memory", "Memory of the largest instance", "MiB", marks) };
    let memory = memory.stacked(
        &[
            Series {
                name: "processes",
                color: BLUE,
                values: h.iter().map(|m| mib(m.memory.saturating_sub(m.memory_files))).collect(),
            },
            Series {
                name: "in-memory /tmp, /dev",
                color: ORANGE,
                values: h.iter().map(|m| mib(m.memory_files)).collect(),
            },
        ],
        Say::Peak,
    );
    vec![requests, latency, cold, memory]
}

fn range_of(q: &HashMap<String, String>) -> &'static str {
    if q.get("range").is_some_and(|r| r == "day") {
        "day"
    } else {
        "hour"
    }
}

/// What the page's activity part shows (and refreshes on its own): totals and charts over
/// the range, from the registry's history with the open minutes written first.
fn activity(p: &Platform, name: &str, memory_mb: u64, range: &str) -> Value {
    flush(p);
    let (h, first) = buckets(p, name, range);
    let mut totals = Minute::default();
    h.iter().for_each(|m| totals.merge(m));
    let charts = charts(&h, first, if range == "day" { 10 } else { 1 }, memory_mb);
    minijinja::context! {
        name => name,
        range => range,
        totals => minijinja::context! { requests => totals.requests(), errors => totals.errors(), cold_starts => totals.cold_starts,
            oom_kills => totals.oom_kills, crashes => totals.crashes },
        charts => Value::from(Serde(&charts)),
    }
}

/// The activity part alone: what the page's script fetches to refresh it.
pub(super) fn activity_part(p: &Arc<Platform>, name: &str, q: &HashMap<String, String>) -> Response<Body> {
    let Some(pool) = p.pool(name) else {
        return error_page(404, &format!("there is no function '{name}'"), "/console/", None);
    };
    let memory_mb = pool.current().function.config.memory_mb;
    render(200, "activity.html", minijinja::context! { a => activity(p, name, memory_mb, range_of(q)) })
}

#[derive(Serialize)]
struct LineView {
    stream: &'static str,
    text: String,
}

pub(super) async fn function(
    p: &Arc<Platform>,
    name: &str,
    q: &HashMap<String, String>,
    csrf: &str,
    new_token: Option<String>,
) -> Response<Body> {
    let Some(pool) = p.pool(name) else {
        let why = p.disabled(name).unwrap_or_else(|| format!("there is no function '{name}'"));
        return error_page(404, &why, "/console/", Some(csrf));
    };
    let f = pool.current().function.clone();
    let g = pool.gauges();
    let range = range_of(q);
    let activity = activity(p, name, f.config.memory_mb, range);
    let filter = match Filter::from_query(q) {
        Ok(f) => f,
        Err(e) => return error_page(400, &e.to_string(), &format!("/console/functions/{name}"), Some(csrf)),
    };
    let (lines, _) = p.logs.query_async(name, &filter, 200).await;
    let logs: Vec<LineView> = lines
        .iter()
        .map(|l| LineView {
            stream: l.stream.as_str(),
            text: String::from_utf8_lossy(&crate::client::for_terminal(l.to_text().as_bytes(), true)).into_owned(),
        })
        .collect();
    let mut instances = pool.instance_ids();
    instances.extend(filter.instance.clone());
    instances.sort();
    instances.dedup();
    let enc = |v: &Option<String>| crate::urlenc::encode(v.as_deref().unwrap_or(""));
    let live_src = format!(
        "/console/functions/{name}/logs?follow=1&tail=200&escape=1&instance={}&stream={}&grep={}",
        enc(&filter.instance),
        crate::urlenc::encode(filter.stream.map(|s| s.as_str()).unwrap_or("")),
        enc(&filter.grep)
    );
    let versions: Vec<_> = p
        .versions(name)
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            minijinja::context! { version => v.version, deployed => when(v.deployed_at), code => v.code.get(..12).unwrap_or(""),
            runtime => v.runtime.as_str(), memory_mb => v.memory_mb, sandbox => v.sandbox.as_str(), serving => v.serving, rollback_of => v.rollback_of }
        })
        .collect();
    let tokens: Vec<_> = p
        .list_tokens(name)
        .unwrap_or_default()
        .into_iter()
        .map(|t| minijinja::context! { id => t.id, created => when(t.created_at) })
        .collect();
    let triggers = crate::triggers::list(p, Some(name)).unwrap_or_default();
    let message = match q.get("done").map(String::as_str) {
        Some("trigger") => Some("The trigger is created."),
        Some("untriggered") => Some("The trigger is removed."),
        Some("rollback") => Some("Rolled back: the new instances serve the old version."),
        Some("deployed") => Some("Deployed: the new instances serve the new code."),
        Some("revoked") => Some("The token is revoked."),
        _ => None,
    };
    let c = &f.config;
    render(
        if new_token.is_some() { 201 } else { 200 },
        "function.html",
        minijinja::context! {
            f => minijinja::context! { name => f.name, version => f.version, runtime => c.runtime.as_str(), handler => &c.handler,
                sandbox => c.sandbox.as_str(), memory_mb => c.memory_mb, min_scale => c.min_scale, max_scale => c.max_scale,
                private => c.private, url => format!("/fn/{name}/"), deployed => when(f.updated_at) },
            g => minijinja::context! { instances => g.busy + g.idle, busy => g.busy, idle => g.idle, starting => g.starting, queued => g.queued },
            range => range,
            a => activity,
            logs => Value::from(Serde(&logs)),
            instances => instances,
            filter => minijinja::context! { instance => filter.instance, stream => filter.stream.map(|s| s.as_str()), grep => filter.grep },
            live_src => live_src,
            versions => versions,
            tokens => tokens,
            triggers => Value::from(Serde(&triggers)),
            new_token => new_token,
            message => message,
            csrf => csrf,
        },
    )
}

/// A form that changes something, its CSRF token checked.
pub(super) async fn act(p: &Arc<Platform>, parts: &[&str], form: Form, csrf: &str) -> Response<Body> {
    let name = match parts {
        ["functions", name, ..] => *name,
        _ => return error_page(404, "the console has no such form", "/console/", Some(csrf)),
    };
    let back = format!("/console/functions/{name}");
    let done = |what: &str| redirect(&format!("{back}?done={what}"), None);
    let result = match parts {
        [_, _, "rollback"] => match form.fields.get("version").and_then(|v| v.parse::<u64>().ok()) {
            Some(v) => p.rollback(name, Some(v)).await.map(|_| done("rollback")),
            None => Err(crate::Error::Invalid("the rollback form names no version".into())),
        },
        // Checked before the code is unpacked and stored: nothing is kept for no function.
        [_, _, "deploy"] => match form.file {
            Some(_) if p.pool(name).is_none() => Err(crate::Error::NoFunction(name.to_string())),
            Some(zip) if !zip.is_empty() => match p.upload(zip).await {
                Ok(digest) => p.redeploy_code(name, digest).await.map(|_| done("deployed")),
                Err(e) => Err(e),
            },
            _ => Err(crate::Error::Invalid("choose a .zip with the function's code to deploy".into())),
        },
        [_, _, "tokens"] => match p.create_token(name) {
            Ok(t) => Ok(function(p, name, &HashMap::new(), csrf, Some(t.token)).await),
            Err(e) => Err(e),
        },
        [_, _, "tokens", id, "revoke"] => p.remove_token(name, id).map(|_| done("revoked")),
        // A CRON trigger from the form's schedule (and optional JSON data); the same checks as
        // `fnbox trigger create --cron`, whose errors name the field.
        [_, _, "triggers"] => {
            cron_request(&form).and_then(|req| crate::triggers::create(p, name, req)).map(|_| done("trigger"))
        }
        // Only a trigger of this function: the id comes from the page's own list.
        [_, _, "triggers", id, "remove"] => match crate::triggers::list(p, Some(name)) {
            Ok(ts) if ts.iter().any(|t| t.trigger.id == *id) => {
                crate::triggers::remove(p, id).map(|_| done("untriggered"))
            }
            Ok(_) => Err(crate::Error::NotFound(format!("function '{name}' has no trigger '{id}'"))),
            Err(e) => Err(e),
        },
        _ => Err(crate::Error::NotFound("the console has no such form".into())),
    };
    result.unwrap_or_else(|e| error_page(e.status(), &p.without_host_paths(&e.to_string()), &back, Some(csrf)))
}

/// The console's trigger form: `schedule` (5 fields), optional `name` and `data` (JSON).
fn cron_request(form: &Form) -> crate::Result<crate::triggers::CreateTrigger> {
    let field = |k: &str| form.fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let schedule = field("schedule").ok_or_else(|| crate::Error::Invalid("schedule: give a CRON expression".into()))?;
    let data = match field("data") {
        Some(d) => {
            Some(serde_json::from_str(d).map_err(|e| crate::Error::Invalid(format!("data: not valid JSON ({e})")))?)
        }
        None => None,
    };
    Ok(crate::triggers::CreateTrigger {
        name: field("name").map(str::to_string),
        cron: Some(schedule.to_string()),
        data,
        ..Default::default()
    })
}
