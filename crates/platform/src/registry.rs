//! The registry: functions and invocation tokens, in SQLite (WAL) under the data directory.
//! The serving path never reads it: the server keeps the functions in memory and writes here
//! on every change, so a restarted server (even after `kill -9`) finds them all again.

use crate::error::{Error, Result};
use crate::function::{Function, FunctionConfig};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

pub struct Registry {
    db: Mutex<Connection>,
}

/// A token as listed: never its value, which is shown once at creation.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub function: String,
    pub created_at: u64,
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Registry {
    pub fn open(path: &Path) -> Result<Self> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "wal")?;
        db.pragma_update(None, "synchronous", "normal")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
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
            CREATE INDEX IF NOT EXISTS tokens_by_function ON tokens(function);",
        )?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn functions(&self) -> Result<Vec<Function>> {
        let db = self.db();
        let mut st = db.prepare("SELECT name, version, config, updated_at FROM functions ORDER BY name")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, version, config, updated_at) = row?;
            let config: FunctionConfig = serde_json::from_str(&config).map_err(|e| {
                Error::Internal(format!("the registry entry of function '{name}' cannot be read ({e}): redeploy it"))
            })?;
            out.push(Function { name, version: version as u64, config, updated_at: updated_at as u64 });
        }
        Ok(out)
    }

    /// Creates or replaces a function; its version goes up by one.
    pub fn put(&self, name: &str, config: &FunctionConfig) -> Result<Function> {
        let json = serde_json::to_string(config).map_err(|e| Error::Internal(e.to_string()))?;
        let now = now_s();
        let db = self.db();
        let old: Option<i64> =
            db.query_row("SELECT version FROM functions WHERE name = ?1", [name], |r| r.get(0)).optional()?;
        let version = old.unwrap_or(0) + 1;
        db.execute(
            "INSERT INTO functions (name, version, config, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET version = ?2, config = ?3, updated_at = ?4",
            params![name, version, json, now as i64],
        )?;
        Ok(Function { name: name.to_string(), version: version as u64, config: config.clone(), updated_at: now })
    }

    /// Removes a function and its tokens. Returns false if there was none.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let n = tx.execute("DELETE FROM functions WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM tokens WHERE function = ?1", [name])?;
        tx.commit()?;
        Ok(n > 0)
    }

    pub fn add_token(&self, id: &str, function: &str, hash: &str) -> Result<TokenInfo> {
        let now = now_s();
        self.db().execute(
            "INSERT INTO tokens (id, function, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, function, hash, now as i64],
        )?;
        Ok(TokenInfo { id: id.to_string(), function: function.to_string(), created_at: now })
    }

    pub fn tokens(&self, function: &str) -> Result<Vec<TokenInfo>> {
        let db = self.db();
        let mut st =
            db.prepare("SELECT id, function, created_at FROM tokens WHERE function = ?1 ORDER BY created_at, id")?;
        let rows = st.query_map([function], |r| {
            Ok(TokenInfo { id: r.get(0)?, function: r.get(1)?, created_at: r.get::<_, i64>(2)? as u64 })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every (function, token hash) pair, to load into memory.
    pub fn token_hashes(&self) -> Result<Vec<(String, String)>> {
        let db = self.db();
        let mut st = db.prepare("SELECT function, hash FROM tokens")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn remove_token(&self, function: &str, id: &str) -> Result<bool> {
        Ok(self.db().execute("DELETE FROM tokens WHERE function = ?1 AND id = ?2", [function, id])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::function::DeployRequest;

    #[test]
    fn functions_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("fnbox-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.db");
        let _ = std::fs::remove_file(&path);
        let mut req = DeployRequest { runtime: "node".into(), code: "b".repeat(64), ..Default::default() };
        req.secrets.insert("KEY".into(), "v".into());
        let cfg = req.into_config().unwrap();
        {
            let r = Registry::open(&path).unwrap();
            assert_eq!(r.put("f", &cfg).unwrap().version, 1);
            assert_eq!(r.put("f", &cfg).unwrap().version, 2);
            r.add_token("t1", "f", "h").unwrap();
        }
        let r = Registry::open(&path).unwrap();
        let fs = r.functions().unwrap();
        assert_eq!((fs.len(), fs[0].version, &fs[0].config), (1, 2, &cfg));
        assert_eq!(r.tokens("f").unwrap().len(), 1);
        assert!(r.remove("f").unwrap());
        assert!(r.tokens("f").unwrap().is_empty() && r.functions().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
