//! Triggers and asynchronous calls in the registry (SQLite), next to the functions they
//! belong to and removed with them. A CRON trigger's `last_slot` (the last minute it fired
//! for) is written before the call is made, so a restarted server never fires a slot twice.

use super::{Source, Trigger};
use crate::error::{Error, Result};
use crate::registry::{now_s, Registry};
use rusqlite::{params, OptionalExtension};

/// A stored asynchronous call.
#[derive(Clone, Debug)]
pub struct StoredCall {
    pub id: String,
    pub function: String,
    pub state: String,
    /// The request as JSON (`super::invocations::Request`).
    pub request: String,
    pub callback: Option<String>,
    pub attempts: u32,
    pub created_at: u64,
    pub finished_at: Option<u64>,
    /// The answer as JSON, once finished.
    pub response: Option<String>,
    /// Where its request waits: `registry` or `jetstream`.
    pub queue: String,
}

fn decode_source(json: &str) -> Result<Source> {
    serde_json::from_str(json).map_err(|e| Error::Invalid(format!("a trigger's registry entry cannot be read: {e}")))
}

const CALL_COLUMNS: &str = "id, function, state, request, callback, attempts, created_at, finished_at, response, queue";

fn call_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCall> {
    Ok(StoredCall {
        id: r.get(0)?,
        function: r.get(1)?,
        state: r.get(2)?,
        request: r.get(3)?,
        callback: r.get(4)?,
        attempts: r.get::<_, i64>(5)? as u32,
        created_at: r.get::<_, i64>(6)? as u64,
        finished_at: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        response: r.get(8)?,
        queue: r.get(9)?,
    })
}

/// What a trigger's secret is sealed for: its function and id.
fn secret_place(t: &Trigger) -> String {
    format!("trigger {} secret_key", t.id)
}

impl Registry {
    /// Seals a trigger's secret (an SQS secret key) before it is stored or held.
    pub fn seal_trigger(&self, t: &mut Trigger) -> Result<()> {
        let place = secret_place(t);
        if let Source::Sqs(src) = &mut t.source {
            src.secret_key = self.key().seal(&t.function, &place, &src.secret_key)?;
        }
        Ok(())
    }

    /// A trigger's secret, opened.
    pub fn trigger_secret(&self, t: &Trigger) -> Result<String> {
        match &t.source {
            Source::Sqs(src) => self.key().open(&t.function, &secret_place(t), &src.secret_key),
            _ => Err(Error::Invalid(format!("trigger {} has no secret", t.id))),
        }
    }

    pub fn add_trigger(&self, t: &Trigger) -> Result<()> {
        let source = serde_json::to_string(&t.source).map_err(|e| Error::Internal(e.to_string()))?;
        let db = self.db();
        let exists: Option<String> = db
            .query_row("SELECT id FROM triggers WHERE function = ?1 AND name = ?2", params![t.function, t.name], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(id) = exists {
            return Err(Error::Invalid(format!(
                "name: function '{}' already has a trigger named '{}' ({id}): give another --name, or remove it first",
                t.function, t.name
            )));
        }
        db.execute(
            "INSERT INTO triggers (id, function, name, source, created_at, last_slot) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.id, t.function, t.name, source, t.created_at as i64, t.created_at as i64],
        )?;
        Ok(())
    }

    /// Every trigger (of one function), with its last fired slot; rows that cannot be read
    /// are skipped with a line in the server's log.
    pub fn triggers(&self, function: Option<&str>) -> Result<Vec<(Trigger, i64)>> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT id, function, name, source, created_at, last_slot FROM triggers
             WHERE ?1 IS NULL OR function = ?1 ORDER BY function, created_at, id",
        )?;
        let rows = st.query_map([function], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, function, name, source, created_at, last) = row?;
            match decode_source(&source) {
                Ok(source) => out.push((Trigger { id, function, name, source, created_at: created_at as u64 }, last)),
                Err(e) => eprintln!("fnbox serve: trigger {id} of {function} skipped: {e}"),
            }
        }
        Ok(out)
    }

    /// Removes a trigger; returns it, or `None` if there was none.
    pub fn remove_trigger(&self, id: &str) -> Result<Option<Trigger>> {
        let found = self.triggers(None)?.into_iter().find(|(t, _)| t.id == id).map(|(t, _)| t);
        if found.is_some() {
            self.db().execute("DELETE FROM triggers WHERE id = ?1", [id])?;
        }
        Ok(found)
    }

    /// Records that a CRON trigger fired for `slot`. False if the trigger is gone.
    pub fn set_last_slot(&self, id: &str, slot: i64) -> Result<bool> {
        Ok(self.db().execute("UPDATE triggers SET last_slot = ?2 WHERE id = ?1", params![id, slot])? > 0)
    }

    pub fn add_call(&self, id: &str, function: &str, request: &str, callback: Option<&str>, queue: &str) -> Result<()> {
        let now = now_s() as i64;
        self.db().execute(
            "INSERT INTO invocations (id, function, state, request, callback, attempts, not_before, created_at, queue)
             VALUES (?1, ?2, 'queued', ?3, ?4, 0, 0, ?5, ?6)",
            params![id, function, request, callback, now, queue],
        )?;
        Ok(())
    }

    /// Forgets a call that could not be queued.
    pub fn drop_call(&self, id: &str) -> Result<()> {
        self.db().execute("DELETE FROM invocations WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Marks a call running for its attempt `attempt` (a JetStream delivery) and returns it;
    /// `None` when it has finished (a redelivery after a crash: never run twice) or is gone.
    pub fn start_call(&self, id: &str, attempt: u32) -> Result<Option<StoredCall>> {
        let changed = self.db().execute(
            "UPDATE invocations SET state = 'running', attempts = ?2 WHERE id = ?1 AND state IN ('queued', 'running')",
            params![id, attempt as i64],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        self.call(id)
    }

    pub fn call(&self, id: &str) -> Result<Option<StoredCall>> {
        let db = self.db();
        let q = format!("SELECT {CALL_COLUMNS} FROM invocations WHERE id = ?1");
        Ok(db.query_row(&q, [id], call_row).optional()?)
    }

    /// Calls of `function` waiting to run (and due), oldest first, at most `limit`: marked
    /// running, their attempt counted.
    pub fn take_calls(&self, function: &str, limit: usize) -> Result<Vec<StoredCall>> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let calls: Vec<StoredCall> = {
            let q = format!(
                "SELECT {CALL_COLUMNS} FROM invocations WHERE state = 'queued' AND function = ?1 AND not_before <= ?2
                 AND queue = 'registry' ORDER BY created_at, rowid LIMIT ?3"
            );
            let mut st = tx.prepare(&q)?;
            let rows = st.query_map(params![function, now_s() as i64, limit as i64], call_row)?;
            rows.collect::<Result<_, _>>()?
        };
        for c in &calls {
            tx.execute("UPDATE invocations SET state = 'running', attempts = attempts + 1 WHERE id = ?1", [&c.id])?;
        }
        tx.commit()?;
        Ok(calls.into_iter().map(|c| StoredCall { state: "running".into(), attempts: c.attempts + 1, ..c }).collect())
    }

    /// Functions that have calls waiting in the registry.
    pub fn functions_with_calls(&self) -> Result<Vec<String>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT DISTINCT function FROM invocations WHERE state = 'queued' AND queue = 'registry'")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Functions with calls not finished whose requests wait in `queue`.
    pub fn functions_with_calls_in(&self, queue: &str) -> Result<Vec<String>> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT DISTINCT function FROM invocations WHERE state IN ('queued', 'running') AND queue = ?1")?;
        let rows = st.query_map([queue], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many calls of `function` wait.
    pub fn queued_calls(&self, function: &str) -> Result<u64> {
        let db = self.db();
        let n: i64 = db.query_row(
            "SELECT COUNT(*) FROM invocations WHERE state IN ('queued', 'running') AND function = ?1",
            [function],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Puts a call back in the queue, to run again at `not_before` (a retry).
    pub fn requeue_call(&self, id: &str, not_before: u64) -> Result<()> {
        self.db().execute(
            "UPDATE invocations SET state = 'queued', not_before = ?2 WHERE id = ?1",
            params![id, not_before as i64],
        )?;
        Ok(())
    }

    pub fn finish_call(&self, id: &str, state: &str, response: &str) -> Result<()> {
        self.db().execute(
            "UPDATE invocations SET state = ?2, response = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, state, response, now_s() as i64],
        )?;
        Ok(())
    }

    /// At start: calls a killed server was running run again (at least once).
    pub fn requeue_running_calls(&self) -> Result<usize> {
        Ok(self.db().execute("UPDATE invocations SET state = 'queued' WHERE state = 'running'", [])?)
    }

    /// Forgets finished calls older than `age_s`.
    pub fn expire_calls(&self, age_s: u64) -> Result<usize> {
        let before = now_s().saturating_sub(age_s) as i64;
        Ok(self
            .db()
            .execute("DELETE FROM invocations WHERE state IN ('succeeded', 'failed') AND finished_at < ?1", [before])?)
    }
}
