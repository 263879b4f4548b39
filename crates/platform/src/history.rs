//! Per-minute history of each function, kept in the registry (`history`: one row per function
//! and minute, a JSON object) for the console's charts: requests by status, latency (a
//! log-scale histogram, so percentiles of merged minutes stay right), cold starts and their
//! phases, memory of the largest instance against its limit with the in-memory files share
//! (v2's `/tmp` and `/dev`, v1's `/dev`: `shmem` in the cgroup's memory.stat) apart, OOM kills
//! and crashes. The minute being filled lives in memory and is written every few seconds, so a
//! `kill -9` loses at most that much; rows older than `--history` are dropped.

use crate::error::Result;
use crate::registry::Registry;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The smallest latency bucket's upper bound, in milliseconds; each next one is [`GROWTH`]
/// times larger.
const BUCKET_BASE_MS: f64 = 0.1;
const GROWTH: f64 = 1.2;
/// 0.1 ms × 1.2^99 is past an hour: every timeout fits.
const BUCKETS: u8 = 100;

/// One function's minute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Minute {
    /// Requests by HTTP status.
    pub status: BTreeMap<u16, u64>,
    /// Latency histogram: bucket → requests.
    pub latency: BTreeMap<u8, u64>,
    pub cold_starts: u64,
    /// Cold-start phase → (sum of milliseconds from the start, starts measured).
    pub phases: BTreeMap<String, (f64, u64)>,
    /// The largest instance's memory, its in-memory files, and the instances' limit (bytes).
    pub memory: u64,
    pub memory_files: u64,
    pub memory_limit: u64,
    pub oom_kills: u64,
    pub crashes: u64,
}

fn bucket(ms: f64) -> u8 {
    if ms <= BUCKET_BASE_MS {
        return 0;
    }
    ((ms / BUCKET_BASE_MS).ln() / GROWTH.ln()).ceil().clamp(0.0, (BUCKETS - 1) as f64) as u8
}

fn bucket_ms(b: u8) -> f64 {
    BUCKET_BASE_MS * GROWTH.powi(b as i32)
}

impl Minute {
    pub fn requests(&self) -> u64 {
        self.status.values().sum()
    }

    /// Answers with a status of 500 or more.
    pub fn errors(&self) -> u64 {
        self.status.range(500..).map(|(_, n)| n).sum()
    }

    /// The `q` quantile (0 to 1) of latency in milliseconds (a bucket's upper bound, within
    /// 20 %), if there were requests.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let n: u64 = self.latency.values().sum();
        let rank = ((n as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, c) in &self.latency {
            seen += c;
            if seen >= rank {
                return Some(bucket_ms(*b));
            }
        }
        None
    }

    /// The average of a cold-start phase in milliseconds.
    pub fn phase_ms(&self, phase: &str) -> Option<f64> {
        self.phases.get(phase).filter(|(_, n)| *n > 0).map(|(sum, n)| sum / *n as f64)
    }

    pub(crate) fn merge(&mut self, o: &Minute) {
        o.status.iter().for_each(|(k, v)| *self.status.entry(*k).or_default() += v);
        o.latency.iter().for_each(|(k, v)| *self.latency.entry(*k).or_default() += v);
        for (k, (s, n)) in &o.phases {
            let e = self.phases.entry(k.clone()).or_default();
            e.0 += s;
            e.1 += n;
        }
        self.cold_starts += o.cold_starts;
        self.memory = self.memory.max(o.memory);
        self.memory_files = self.memory_files.max(o.memory_files);
        self.memory_limit = self.memory_limit.max(o.memory_limit);
        self.oom_kills += o.oom_kills;
        self.crashes += o.crashes;
    }
}

/// Minutes since the epoch.
pub fn minute_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}

/// The minutes being filled, by (function, minute).
#[derive(Default)]
pub struct History {
    open: Mutex<HashMap<(String, u64), Minute>>,
    /// What an earlier server wrote for the minute this one started in: added at each write.
    earlier: Mutex<HashMap<(String, u64), Minute>>,
}

impl History {
    fn with(&self, function: &str, f: impl FnOnce(&mut Minute)) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        f(open.entry((function.to_string(), minute_now())).or_default())
    }

    pub fn invocation(&self, function: &str, status: u16, took: Duration) {
        self.with(function, |m| {
            *m.status.entry(status).or_default() += 1;
            *m.latency.entry(bucket(took.as_secs_f64() * 1e3)).or_default() += 1;
        });
    }

    /// A cold start (`total` given once, when it is ready) and its phases.
    pub fn cold_start(&self, function: &str, total: Option<Duration>, phases: &[(&'static str, Option<Duration>)]) {
        self.with(function, |m| {
            m.cold_starts += total.is_some() as u64;
            for (p, d) in phases {
                if let Some(d) = d {
                    let e = m.phases.entry(p.to_string()).or_default();
                    e.0 += d.as_secs_f64() * 1e3;
                    e.1 += 1;
                }
            }
        });
    }

    pub fn instance_ended(&self, function: &str, oom_kills: u64, crashed: bool) {
        self.with(function, |m| {
            m.oom_kills += oom_kills;
            m.crashes += crashed as u64;
        });
    }

    /// Samples the memory of a function's instances (their cgroup directories) against
    /// their limit.
    pub fn sample_memory(&self, function: &str, instances: &[Vec<PathBuf>], limit: u64) {
        let mut top = (0, 0);
        for dirs in instances {
            let used = crate::instances::launcher::cgroup_memory(dirs);
            if used >= top.0 {
                top = (used, in_memory_files(dirs));
            }
        }
        self.with(function, |m| {
            if top.0 >= m.memory {
                (m.memory, m.memory_files) = top;
            }
            m.memory_limit = limit;
        });
    }

    /// Writes the open minutes to the registry (merged with what an earlier server wrote
    /// for the same minute) and closes the past ones; drops rows older than `keep` if given.
    pub fn flush(&self, registry: &Registry, keep: Option<Duration>) -> Result<()> {
        let now = minute_now();
        let rows: Vec<((String, u64), Minute)> = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let rows = open.iter().map(|(k, m)| (k.clone(), m.clone())).collect();
            open.retain(|(_, minute), _| *minute >= now);
            rows
        };
        let mut earlier = self.earlier.lock().unwrap_or_else(|p| p.into_inner());
        let mut db = registry.db();
        let tx = db.transaction()?;
        for ((function, minute), mut m) in rows {
            if let Some(e) = earlier.get(&(function.clone(), minute)) {
                m.merge(e);
            }
            let json = serde_json::to_string(&m).map_err(|e| crate::Error::Internal(e.to_string()))?;
            tx.execute(
                "INSERT OR REPLACE INTO history (function, minute, data) VALUES (?1, ?2, ?3)",
                params![function, minute as i64, json],
            )?;
        }
        earlier.retain(|(_, minute), _| *minute >= now);
        if let Some(keep) = keep {
            let oldest = now.saturating_sub(keep.as_secs() / 60);
            tx.execute("DELETE FROM history WHERE minute < ?1", [oldest as i64])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// At a server's start: the minute an earlier server was filling is added to, not
    /// overwritten.
    pub fn resume(&self, registry: &Registry) -> Result<()> {
        let now = minute_now();
        let db = registry.db();
        let mut st = db.prepare("SELECT function, data FROM history WHERE minute = ?1")?;
        let rows = st.query_map([now as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut earlier = self.earlier.lock().unwrap_or_else(|p| p.into_inner());
        for (f, d) in rows.flatten() {
            if let Ok(m) = serde_json::from_str(&d) {
                earlier.insert((f, now), m);
            }
        }
        Ok(())
    }

    pub fn forget(&self, function: &str) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).retain(|(f, _), _| f != function);
        self.earlier.lock().unwrap_or_else(|p| p.into_inner()).retain(|(f, _), _| f != function);
    }
}

/// `shmem` of the first cgroup directory that has a memory.stat.
fn in_memory_files(dirs: &[PathBuf]) -> u64 {
    dirs.iter()
        .find_map(|d| std::fs::read_to_string(d.join("memory.stat")).ok())
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("shmem ").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

impl Registry {
    /// A function's minutes from `since` (minutes since the epoch) on, oldest first.
    pub fn history(&self, function: &str, since: u64) -> Result<Vec<(u64, Minute)>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT minute, data FROM history WHERE function = ?1 AND minute >= ?2 ORDER BY minute")?;
        let rows =
            st.query_map(params![function, since as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let rows: Vec<(i64, String)> = rows.collect::<Result<_, _>>()?;
        Ok(rows.into_iter().filter_map(|(m, d)| Some((m as u64, serde_json::from_str(&d).ok()?))).collect())
    }

    /// Every function's minutes from `since` on, merged into one.
    pub fn history_totals(&self, since: u64) -> Result<HashMap<String, Minute>> {
        let db = self.db();
        let mut st = db.prepare("SELECT function, data FROM history WHERE minute >= ?1")?;
        let rows = st.query_map([since as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out: HashMap<String, Minute> = HashMap::new();
        for (f, d) in rows.flatten() {
            if let Ok(m) = serde_json::from_str::<Minute>(&d) {
                out.entry(f).or_default().merge(&m);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::test_key;

    #[test]
    fn minutes_add_up_survive_a_restart_and_are_bounded() {
        let dir = std::env::temp_dir().join(format!("fnbox-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.db");
        let day = Duration::from_secs(86400);
        {
            let r = Registry::open(&path, test_key("k")).unwrap();
            let h = History::default();
            for ms in 1..=100 {
                h.invocation("f", 200, Duration::from_millis(ms));
            }
            h.invocation("f", 502, Duration::from_millis(3));
            h.cold_start(
                "f",
                Some(Duration::from_millis(40)),
                &[("sandbox_acquired", Some(Duration::from_millis(10)))],
            );
            h.instance_ended("f", 1, true);
            h.flush(&r, Some(day)).unwrap();
            // An old row, past the bound.
            r.db().execute("INSERT INTO history VALUES ('f', 5, '{}')", []).unwrap();
            h.flush(&r, Some(day)).unwrap();
        }
        // kill -9 and a new server: the same minute goes on from what was written.
        let r = Registry::open(&path, test_key("k")).unwrap();
        let h = History::default();
        h.resume(&r).unwrap();
        h.invocation("f", 200, Duration::from_millis(50));
        h.flush(&r, Some(day)).unwrap();
        let rows = r.history("f", 0).unwrap();
        assert_eq!(rows.len(), 1, "the old row is dropped: {rows:?}");
        let m = &rows[0].1;
        assert_eq!((m.requests(), m.errors(), m.cold_starts, m.oom_kills, m.crashes), (102, 1, 1, 1, 1));
        let p50 = m.latency_ms(0.5).unwrap();
        let p99 = m.latency_ms(0.99).unwrap();
        assert!((45.0..=62.0).contains(&p50), "p50 {p50}");
        assert!((95.0..=121.0).contains(&p99), "p99 {p99}");
        assert_eq!(m.phase_ms("sandbox_acquired"), Some(10.0));
        assert_eq!(r.history_totals(0).unwrap()["f"].requests(), 102);
        assert!(r.remove("f").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
