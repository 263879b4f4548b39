//! Versions: every deploy of a function is kept in the registry (`function_versions`: its
//! configuration with secrets sealed, its code digest), the last `--keep-versions` of them
//! and always the serving one. A rollback deploys an old version's configuration again as a
//! new version, through the same path as a redeploy: new requests go to the new instances,
//! requests in flight finish on the old ones (see docs/architecture.md, "Logs, versions and
//! history").

use crate::error::{Error, Result};
use crate::function::FunctionConfig;
use crate::registry::Registry;
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// A kept version as listed: its configuration without secret values (their names only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionView {
    pub version: u64,
    pub code: String,
    pub deployed_at: u64,
    /// The version it rolled back to, if it is a rollback.
    pub rollback_of: Option<u64>,
    pub serving: bool,
    pub runtime: crate::function::Runtime,
    pub handler: String,
    pub memory_mb: u64,
    pub sandbox: fnbox_sandbox::spec::SandboxKind,
    pub min_scale: u32,
    pub max_scale: u32,
    pub timeout_s: u64,
    pub env: std::collections::BTreeMap<String, String>,
    pub secrets: Vec<String>,
}

impl Registry {
    /// Sets how many versions each function keeps from its next deploy on.
    pub fn set_keep_versions(&self, n: u32) {
        self.keep_versions.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// A function's kept versions, newest first. `serving`: the version now deployed.
    pub fn versions(&self, function: &str, serving: u64) -> Result<Vec<VersionView>> {
        let rows: Vec<(i64, String, String, i64, Option<i64>)> = {
            let db = self.db();
            let mut st = db.prepare(
                "SELECT version, config, code, deployed_at, rollback_of FROM function_versions
                 WHERE function = ?1 ORDER BY version DESC",
            )?;
            let rows = st.query_map([function], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        Ok(rows
            .into_iter()
            .filter_map(|(version, json, code, deployed_at, rollback_of)| {
                // Listing needs no secret: names only, the values stay sealed.
                let c: FunctionConfig = serde_json::from_str(&json).ok()?;
                Some(VersionView {
                    version: version as u64,
                    code,
                    deployed_at: deployed_at as u64,
                    rollback_of: rollback_of.map(|v| v as u64),
                    serving: version as u64 == serving,
                    runtime: c.runtime,
                    handler: c.handler,
                    memory_mb: c.memory_mb,
                    sandbox: c.sandbox,
                    min_scale: c.min_scale,
                    max_scale: c.max_scale,
                    timeout_s: c.timeout_s,
                    env: c.env,
                    secrets: c.secrets.into_keys().collect(),
                })
            })
            .collect())
    }

    /// The configuration of a kept version, secrets opened; `None`: the newest kept version
    /// before `serving`.
    pub fn version_config(&self, function: &str, version: Option<u64>, serving: u64) -> Result<(u64, FunctionConfig)> {
        let found: Option<(i64, String)> = {
            let db = self.db();
            let mut st = db.prepare(
                "SELECT version, config FROM function_versions WHERE function = ?1
                 AND ((?2 IS NULL AND version < ?3) OR version = ?2) ORDER BY version DESC LIMIT 1",
            )?;
            let mut rows = st.query(params![function, version.map(|v| v as i64), serving as i64])?;
            match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        let Some((v, json)) = found else {
            return Err(Error::NotFound(match version {
                Some(v) => {
                    format!("function '{function}' has no kept version {v}: list them with `fnbox versions {function}`")
                }
                None => format!("function '{function}' has no version before {serving} to roll back to"),
            }));
        };
        Ok((v as u64, self.decode(function, &json)?))
    }

    /// Code digests of every kept version: the code store keeps them for rollbacks.
    pub fn version_codes(&self) -> Result<std::collections::HashSet<String>> {
        let db = self.db();
        let mut st = db.prepare("SELECT DISTINCT code FROM function_versions")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::function::DeployRequest;
    use crate::seal::test_key;

    fn config(code: char, secret: &str) -> FunctionConfig {
        let mut req = DeployRequest::new(crate::function::Runtime::Node, code.to_string().repeat(64));
        req.secrets.insert("KEY".into(), secret.into());
        req.into_config().unwrap()
    }

    #[test]
    fn kept_bounded_rolled_back_and_migrated() {
        let dir = std::env::temp_dir().join(format!("fnbox-versions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.db");
        // A registry from before versions were kept: one function at version 4.
        {
            let db = rusqlite::Connection::open(&path).unwrap();
            db.execute_batch("CREATE TABLE functions (name TEXT PRIMARY KEY, version INTEGER NOT NULL, config TEXT NOT NULL, updated_at INTEGER NOT NULL);").unwrap();
            let json = serde_json::to_string(&config('a', "s0")).unwrap();
            db.execute("INSERT INTO functions VALUES ('f', 4, ?1, 7)", [json]).unwrap();
        }
        let r = Registry::open(&path, test_key("k")).unwrap();
        let v = r.versions("f", 4).unwrap();
        assert_eq!((v.len(), v[0].version, v[0].serving, v[0].deployed_at), (1, 4, true, 7));
        r.set_keep_versions(3);
        for (i, c) in ['b', 'c', 'd', 'e'].into_iter().enumerate() {
            assert_eq!(r.put("f", &config(c, &format!("s{}", i + 1))).unwrap().version, 5 + i as u64);
        }
        let v = r.versions("f", 8).unwrap();
        assert_eq!(v.iter().map(|v| v.version).collect::<Vec<_>>(), [8, 7, 6]);
        assert_eq!(v[0].secrets, ["KEY"]);
        assert!(!serde_json::to_string(&v).unwrap().contains("s4"), "a secret value listed");
        // Default target: the one before the serving version, secrets opened.
        let (n, c) = r.version_config("f", None, 8).unwrap();
        assert_eq!((n, c.code.as_str(), c.secrets["KEY"].as_str()), (7, "d".repeat(64).as_str(), "s3"));
        let back = r.put_version("f", &c, Some(7)).unwrap();
        assert_eq!(back.version, 9);
        assert_eq!(r.versions("f", 9).unwrap()[0].rollback_of, Some(7));
        let e = r.version_config("f", Some(4), 9).unwrap_err().to_string();
        assert!(e.contains("no kept version 4"), "{e}");
        let codes = r.version_codes().unwrap();
        assert!(codes.contains(&"e".repeat(64)) && !codes.contains(&"c".repeat(64)), "{codes:?}");
        assert!(r.remove("f").unwrap());
        assert!(r.versions("f", 0).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
