//! The registry: functions and invocation tokens, in SQLite (WAL) under the data directory.
//! The serving path never reads it: the server keeps the functions in memory and writes here
//! on every change, so a restarted server (even after `kill -9`) finds them all again.
//!
//! Its files (database, WAL, shared memory) are the owner's only (0600), and secret values in
//! it are sealed ([`crate::seal`]): plain-text ones a registry from before sealing holds are
//! sealed when it is opened, and their old pages wiped.

use crate::error::{Error, Result};
use crate::function::{Function, FunctionConfig};
use crate::seal::{is_sealed, SecretKey};
use rusqlite::{params, Connection, OptionalExtension};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

mod schema;

pub struct Registry {
    db: Mutex<Connection>,
    key: SecretKey,
    /// Deployed versions kept per function ([`crate::versions`]).
    pub(crate) keep_versions: std::sync::atomic::AtomicU32,
}

/// A registry row: the function, or why it cannot be served (the server starts anyway).
pub type Row = (String, Result<Function>);

/// Makes `path` (and SQLite's `-wal` and `-shm` next to it) readable by the owner only,
/// whatever an older fnbox or the umask made them. SQLite creates the other two with the
/// database's mode.
fn owner_only(path: &Path) -> Result<()> {
    let _ = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    context: format!("cannot make {} private", Path::new(&p).display()),
                    source: e,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// `POST /api/v1/functions/NAME/tokens`: the new token, shown only in this answer (the
/// client reads it as `api::NewToken`).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct NewToken {
    pub id: String,
    pub function: String,
    pub token: String,
    pub created_at: u64,
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

/// Records a deployed version (`config`: the stored JSON, secrets sealed) and drops the
/// oldest past `keep`.
#[allow(clippy::too_many_arguments)]
fn record_version(
    db: &Connection,
    function: &str,
    version: i64,
    config: &str,
    code: &str,
    now: u64,
    rollback_of: Option<u64>,
    keep: u32,
) -> Result<()> {
    db.execute(
        "INSERT OR REPLACE INTO function_versions (function, version, config, code, deployed_at, rollback_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![function, version, config, code, now as i64, rollback_of.map(|v| v as i64)],
    )?;
    db.execute(
        "DELETE FROM function_versions WHERE function = ?1 AND version NOT IN
            (SELECT version FROM function_versions WHERE function = ?1 ORDER BY version DESC LIMIT ?2)",
        params![function, keep.max(1)],
    )?;
    Ok(())
}

impl Registry {
    pub fn open(path: &Path, key: SecretKey) -> Result<Self> {
        owner_only(path)?;
        let db = Connection::open(path)?;
        // Deleted and overwritten rows (secrets of an old version) are zeroed, not left in
        // free pages.
        db.pragma_update(None, "secure_delete", "on")?;
        db.pragma_update(None, "journal_mode", "wal")?;
        db.pragma_update(None, "synchronous", "normal")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::create(&db)?;
        owner_only(path)?;
        let keep = std::sync::atomic::AtomicU32::new(crate::retention::DEFAULT_VERSIONS);
        let r = Self { db: Mutex::new(db), key, keep_versions: keep };
        r.seal_plain_secrets()?;
        // After sealing: the versions it seeds copy the functions' rows.
        schema::seed_versions(&r.db())?;
        Ok(r)
    }

    /// Seals the plain-text secrets of a registry written before sealing, then rewrites the
    /// database so no page (nor the WAL) keeps them.
    fn seal_plain_secrets(&self) -> Result<()> {
        let rows: Vec<(String, String)> = {
            let db = self.db();
            let mut st = db.prepare("SELECT name, config FROM functions")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut sealed = 0;
        for (name, json) in rows {
            let Ok(mut config) = serde_json::from_str::<FunctionConfig>(&json) else { continue };
            if config.secrets.values().all(|v| is_sealed(v)) {
                continue;
            }
            for (k, v) in config.secrets.iter_mut().filter(|(_, v)| !is_sealed(v)) {
                *v = self.key.seal(&name, k, v)?;
            }
            let json = serde_json::to_string(&config).map_err(|e| Error::Internal(e.to_string()))?;
            self.db().execute("UPDATE functions SET config = ?1 WHERE name = ?2", params![json, name])?;
            sealed += 1;
        }
        if sealed > 0 {
            let db = self.db();
            db.execute_batch("VACUUM;")?;
            db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            eprintln!("fnbox serve: sealed the plain-text secrets of {sealed} function(s) in the registry");
        }
        Ok(())
    }

    /// The key secrets are sealed with (triggers' credentials too).
    pub(crate) fn key(&self) -> &SecretKey {
        &self.key
    }

    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every function, each with its secrets opened, or the reason its row cannot be served.
    pub fn functions(&self) -> Result<Vec<Row>> {
        let rows: Vec<(String, i64, String, i64)> = {
            let db = self.db();
            let mut st = db.prepare("SELECT name, version, config, updated_at FROM functions ORDER BY name")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        Ok(rows
            .into_iter()
            .map(|(name, version, config, updated_at)| {
                let f = self.decode(&name, &config).map(|config| Function {
                    name: name.clone(),
                    version: version as u64,
                    config,
                    updated_at: updated_at as u64,
                });
                (name, f)
            })
            .collect())
    }

    pub(crate) fn decode(&self, name: &str, json: &str) -> Result<FunctionConfig> {
        let mut config: FunctionConfig = serde_json::from_str(json)
            .map_err(|e| Error::Invalid(format!("its registry entry cannot be read ({e}): redeploy it")))?;
        for (k, v) in config.secrets.iter_mut() {
            *v = self.key.open(name, k, v)?;
        }
        config.validate().map_err(|e| Error::Invalid(format!("its registry entry is not valid ({e}): redeploy it")))?;
        Ok(config)
    }

    /// Creates or replaces a function; its version goes up by one.
    pub fn put(&self, name: &str, config: &FunctionConfig) -> Result<Function> {
        self.put_version(name, config, None)
    }

    /// [`Registry::put`], recording the version as a rollback to `rollback_of` if given.
    pub fn put_version(&self, name: &str, config: &FunctionConfig, rollback_of: Option<u64>) -> Result<Function> {
        let mut stored = config.clone();
        for (k, v) in stored.secrets.iter_mut() {
            *v = self.key.seal(name, k, v)?;
        }
        let json = serde_json::to_string(&stored).map_err(|e| Error::Internal(e.to_string()))?;
        let now = now_s();
        let mut db = self.db();
        let tx = db.transaction()?;
        let old: Option<i64> =
            tx.query_row("SELECT version FROM functions WHERE name = ?1", [name], |r| r.get(0)).optional()?;
        // Never a number a kept version already has.
        let kept: Option<i64> =
            tx.query_row("SELECT MAX(version) FROM function_versions WHERE function = ?1", [name], |r| r.get(0))?;
        let version = old.unwrap_or(0).max(kept.unwrap_or(0)) + 1;
        tx.execute(
            "INSERT INTO functions (name, version, config, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET version = ?2, config = ?3, updated_at = ?4",
            params![name, version, json, now as i64],
        )?;
        let keep = self.keep_versions.load(std::sync::atomic::Ordering::Relaxed);
        record_version(&tx, name, version, &json, &config.code, now, rollback_of, keep)?;
        tx.commit()?;
        Ok(Function { name: name.to_string(), version: version as u64, config: config.clone(), updated_at: now })
    }

    /// Removes a function and everything that belongs to it: tokens, triggers, asynchronous
    /// calls, kept versions and history (`schema::forget_function`). Returns false if there
    /// was none.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let n = tx.execute("DELETE FROM functions WHERE name = ?1", [name])?;
        schema::forget_function(&tx, name)?;
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
    use crate::seal::test_key;

    fn tmp(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("fnbox-registry-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config_with_secret() -> FunctionConfig {
        let mut req = DeployRequest::new(crate::function::Runtime::Node, "b".repeat(64));
        req.secrets.insert("KEY".into(), "s3cr3t-value".into());
        req.into_config().unwrap()
    }

    fn only(r: &Registry) -> Function {
        let mut rows = r.functions().unwrap();
        assert_eq!(rows.len(), 1);
        rows.remove(0).1.unwrap()
    }

    /// Every byte of the database and its WAL.
    fn raw(path: &Path) -> Vec<u8> {
        ["", "-wal"].iter().flat_map(|s| std::fs::read(format!("{}{s}", path.display())).unwrap_or_default()).collect()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn functions_survive_reopening() {
        let dir = tmp("reopen");
        let path = dir.join("registry.db");
        let cfg = config_with_secret();
        {
            let r = Registry::open(&path, test_key("k")).unwrap();
            assert_eq!(r.put("f", &cfg).unwrap().version, 1);
            assert_eq!(r.put("f", &cfg).unwrap().version, 2);
            r.add_token("t1", "f", "h").unwrap();
        }
        let r = Registry::open(&path, test_key("k")).unwrap();
        let f = only(&r);
        assert_eq!((f.version, &f.config), (2, &cfg));
        assert_eq!(r.tokens("f").unwrap().len(), 1);
        assert!(r.remove("f").unwrap());
        assert!(r.tokens("f").unwrap().is_empty() && r.functions().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_are_sealed_and_the_files_private() {
        let dir = tmp("sealed");
        let path = dir.join("registry.db");
        // A registry as an older fnbox left it: world-readable, secrets in plain text.
        {
            let db = Connection::open(&path).unwrap();
            db.pragma_update(None, "journal_mode", "wal").unwrap();
            db.execute_batch("CREATE TABLE functions (name TEXT PRIMARY KEY, version INTEGER NOT NULL, config TEXT NOT NULL, updated_at INTEGER NOT NULL);").unwrap();
            let json = serde_json::to_string(&config_with_secret()).unwrap();
            db.execute("INSERT INTO functions VALUES ('old', 1, ?1, 0)", [json]).unwrap();
            db.execute("INSERT INTO functions VALUES ('broken', 1, '{\"runtime\": \"cobol\"}', 0)", []).unwrap();
            std::mem::forget(db); // as a killed server would: the WAL stays
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(contains(&raw(&path), b"s3cr3t-value"));
        let r = Registry::open(&path, test_key("k")).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let mode = std::fs::metadata(format!("{}{suffix}", path.display())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "registry.db{suffix}");
        }
        let rows = r.functions().unwrap();
        let old = rows.iter().find(|(n, _)| n == "old").unwrap().1.as_ref().unwrap();
        assert_eq!(old.config.secrets["KEY"], "s3cr3t-value");
        // One bad row is that function's problem only.
        let broken = rows.iter().find(|(n, _)| n == "broken").unwrap().1.as_ref().unwrap_err().to_string();
        assert!(broken.contains("redeploy it"), "{broken}");
        r.put("new", &config_with_secret()).unwrap();
        assert!(!contains(&raw(&path), b"s3cr3t-value"), "a secret in plain text in the registry files");
        drop(r);
        // Another key opens nothing, and says so for that function only.
        let r = Registry::open(&path, test_key("other")).unwrap();
        let rows = r.functions().unwrap();
        let e = rows.iter().find(|(n, _)| n == "new").unwrap().1.as_ref().unwrap_err().to_string();
        assert!(e.contains("cannot be decrypted"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
