//! The registry's tables, all in one list: the functions and tokens ([`super`]), the kept versions
//! ([`crate::versions`]), triggers and asynchronous calls ([`crate::triggers::store`]), the
//! per-minute history ([`crate::history`]) and the console's sessions
//! ([`crate::console::session`]). Those modules query their tables through the [`super::Registry`]
//! they are given; the registry itself needs none of them: it creates the tables from here and,
//! when a function goes, deletes its rows from here (see docs/architecture.md, "Crates and
//! modules").

use crate::error::Result;
use rusqlite::{Connection, Transaction};

/// Creates every table a registry of any age lacks, and adds the columns later fnbox versions
/// added. The versions of functions deployed before versions were kept are recorded by
/// [`seed_versions`], once their secrets are sealed.
pub(super) fn create(db: &Connection) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS functions (
            name TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            config TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS tokens (
            id TEXT PRIMARY KEY,
            function TEXT NOT NULL,
            hash TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS tokens_by_function ON tokens(function);
        CREATE TABLE IF NOT EXISTS triggers (
            id TEXT PRIMARY KEY,
            function TEXT NOT NULL,
            name TEXT NOT NULL,
            source TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_slot INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS triggers_by_function ON triggers(function);
        CREATE TABLE IF NOT EXISTS invocations (
            id TEXT PRIMARY KEY,
            function TEXT NOT NULL,
            state TEXT NOT NULL,
            request TEXT NOT NULL,
            callback TEXT,
            attempts INTEGER NOT NULL,
            not_before INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            finished_at INTEGER,
            response TEXT
        );
        CREATE INDEX IF NOT EXISTS invocations_by_state ON invocations(state, function, not_before);
        CREATE TABLE IF NOT EXISTS history (
            function TEXT NOT NULL,
            minute INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (function, minute)
        );
        CREATE TABLE IF NOT EXISTS console_sessions (
            hash TEXT PRIMARY KEY,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS function_versions (
            function TEXT NOT NULL,
            version INTEGER NOT NULL,
            config TEXT NOT NULL,
            code TEXT NOT NULL,
            deployed_at INTEGER NOT NULL,
            rollback_of INTEGER,
            PRIMARY KEY (function, version)
        );",
    )?;
    // Where an asynchronous call's request waits: `registry` (the row's `request`), or
    // `jetstream` (a message of `fnbox serve --async-nats`'s stream). Registries made before
    // it get it.
    let has_queue: bool =
        db.query_row("SELECT COUNT(*) FROM pragma_table_info('invocations') WHERE name = 'queue'", [], |r| {
            r.get::<_, i64>(0).map(|n| n > 0)
        })?;
    if !has_queue {
        db.execute_batch("ALTER TABLE invocations ADD COLUMN queue TEXT NOT NULL DEFAULT 'registry'")?;
    }
    Ok(())
}

/// Records the serving version of functions deployed before versions were kept (their
/// stored configuration, secrets already sealed).
pub(super) fn seed_versions(db: &Connection) -> Result<()> {
    db.execute_batch(
        "INSERT OR IGNORE INTO function_versions (function, version, config, code, deployed_at)
            SELECT name, version, config, COALESCE(json_extract(config, '$.code'), ''), updated_at FROM functions;",
    )?;
    Ok(())
}

/// Deletes what belongs to a function being removed, in its removal's transaction: its
/// tokens, triggers, asynchronous calls, kept versions and history.
pub(super) fn forget_function(tx: &Transaction<'_>, name: &str) -> Result<()> {
    for table in ["tokens", "triggers", "invocations", "function_versions", "history"] {
        tx.execute(&format!("DELETE FROM {table} WHERE function = ?1"), [name])?;
    }
    Ok(())
}
