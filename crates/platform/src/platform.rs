//! The platform's state and the operations behind the admin API: upload, deploy, remove,
//! list, tokens. The gateway reaches functions through [`Platform::pool`].

use crate::auth::Tokens;
use crate::codestore::CodeStore;
use crate::error::{Error, Result};
use crate::function::Runtime;
use crate::function::{check_name, DeployRequest, FunctionView};
use crate::instances::backend::FnboxRun;
use crate::instances::pool::{Deployed, Pool};
use crate::instances::warm::{WarmKey, WarmPool};
use crate::instances::InstanceBackend;
use crate::logs::LogStore;
use crate::metrics::Metrics;
use crate::registry::{Registry, TokenInfo};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A function as `fnbox ls` shows it.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum Listed {
    Serving(FunctionView),
    /// Its registry row cannot be served: the reason, and the fix.
    Disabled {
        name: String,
        disabled: String,
    },
}

impl Listed {
    fn name(&self) -> &str {
        match self {
            Listed::Serving(v) => &v.name,
            Listed::Disabled { name, .. } => name,
        }
    }
}

pub struct Platform {
    pub data_dir: PathBuf,
    pub registry: Registry,
    pub code: Arc<CodeStore>,
    pub tokens: Tokens,
    pub logs: Arc<LogStore>,
    pub metrics: Arc<Metrics>,
    /// Starts instances.
    pub backend: Arc<dyn InstanceBackend>,
    /// Loads handlers in a sandbox at deploy time.
    pub checker: Arc<FnboxRun>,
    /// Pre-warmed sandboxes, unless the pool is off.
    pub warm: Option<Arc<WarmPool>>,
    /// `/metrics` answers without the admin token (`fnbox serve --metrics-public`).
    pub metrics_public: bool,
    /// Ranges an asynchronous call's callback may reach although [`fnbox_sandbox::net::reach`]
    /// refuses them (`fnbox serve --callback-net`).
    pub callback_net: Vec<fnbox_sandbox::net::Cidr>,
    /// The web console's sessions.
    pub console: crate::console::session::Sessions,
    pools: RwLock<HashMap<String, Arc<Pool>>>,
    /// Functions whose registry row cannot be served, and why: listed, never started, until
    /// redeployed or removed.
    disabled: RwLock<BTreeMap<String, String>>,
    /// One deploy or removal at a time.
    changes: tokio::sync::Mutex<()>,
    /// CRON schedules and queue consumers.
    pub triggers: crate::triggers::runner::Runner,
    /// Wakes the asynchronous calls' worker.
    pub calls_waiting: tokio::sync::Notify,
    /// Asynchronous calls kept in JetStream (`fnbox serve --async-nats`); `None`: in the registry.
    pub async_queue: Option<crate::triggers::jetstream::JetQueue>,
    /// `fnbox deploy --build`: the builds' time limit and places.
    pub builds: crate::build::places::Builds,
}

/// Uploads younger than this are kept by the code store's garbage collection.
const UPLOAD_GRACE: Duration = Duration::from_secs(3600);
/// How long recycling waits for an instance to end.
const RECYCLE_WAIT: Duration = Duration::from_secs(10);

impl Platform {
    /// `logs`: the store the backend's instances log to.
    pub fn new(
        data_dir: PathBuf,
        registry: Registry,
        code: CodeStore,
        tokens: Tokens,
        logs: Arc<LogStore>,
        backend: Arc<dyn InstanceBackend>,
        checker: Arc<FnboxRun>,
    ) -> Self {
        let warm = checker.warm.clone();
        Self {
            data_dir,
            registry,
            code: Arc::new(code),
            tokens,
            logs,
            metrics: Arc::new(Metrics::default()),
            backend,
            checker,
            warm,
            metrics_public: false,
            callback_net: Vec::new(),
            console: Default::default(),
            pools: RwLock::new(HashMap::new()),
            disabled: RwLock::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
            triggers: Default::default(),
            calls_waiting: tokio::sync::Notify::new(),
            async_queue: None,
            builds: Default::default(),
        }
    }

    pub fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.pools.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Loads the registry's functions (server start) and warms their min-scale instances.
    pub fn load(&self) -> Result<usize> {
        let rows = self.registry.functions()?;
        let n = rows.len();
        let mut used = HashSet::new();
        for (name, row) in rows {
            let f = match row {
                Ok(f) => f,
                Err(why) => {
                    let why = format!("function '{name}' is disabled: {why}");
                    eprintln!("fnbox serve: {why}");
                    self.logs.event(&name, "-", why.clone());
                    self.disabled.write().unwrap_or_else(|p| p.into_inner()).insert(name, why);
                    continue;
                }
            };
            used.insert(f.config.code.clone());
            let code = self.code.tree(&f.config.code);
            let name = f.name.clone();
            if !code.is_dir() {
                self.logs.event(
                    &name,
                    "-",
                    format!("its code {} is missing from the store: redeploy it", f.config.code),
                );
            }
            let pool = Pool::new(
                Deployed { function: f, code },
                self.backend.clone(),
                self.logs.clone(),
                self.metrics.clone(),
            );
            pool.maintain(Duration::MAX);
            self.pools.write().unwrap_or_else(|p| p.into_inner()).insert(name, pool);
        }
        self.collect_code_garbage(used);
        self.update_warm_shelves();
        Ok(n)
    }

    /// Tells the warm pool which sandbox kinds, runtimes and tiers the deployed functions use,
    /// and which function versions use each.
    fn update_warm_shelves(&self) {
        let Some(warm) = &self.warm else { return };
        let mut keys: std::collections::HashMap<WarmKey, Vec<(String, u64)>> = Default::default();
        for p in self.pools() {
            let current = p.current();
            let c = &current.function.config;
            if c.runtime == Runtime::Binary {
                continue;
            }
            let key = WarmKey { kind: c.sandbox, runtime: c.runtime, memory_mb: c.memory_mb, network: c.network };
            keys.entry(key).or_default().push((current.function.name.clone(), current.function.version));
        }
        warm.want(&keys);
    }

    pub async fn upload(&self, zip: Bytes) -> Result<String> {
        let code = self.code.clone();
        tokio::task::spawn_blocking(move || code.put_zip(&zip))
            .await
            .map_err(|e| Error::Internal(format!("the unpacking task failed: {e}")))?
    }

    /// Deploys (creates or replaces) a function: its view, whether it is new, and whether
    /// anything changed (a configuration identical to the deployed one changes nothing).
    pub async fn deploy(&self, name: &str, req: DeployRequest) -> Result<(FunctionView, bool, bool)> {
        check_name(name)?;
        self.deploy_config(name, req.into_config()?, None).await
    }

    /// Deploys a kept version again (`None`: the one before the serving version), as a new
    /// version: the same path as a redeploy, so requests in flight finish on the old
    /// instances.
    pub async fn rollback(&self, name: &str, version: Option<u64>) -> Result<FunctionView> {
        let serving = self.view(name)?.version;
        let (to, config) = self.registry.version_config(name, version, serving)?;
        let (view, _, _) = self.deploy_config(name, config, Some(to)).await?;
        Ok(view)
    }

    /// Deploys new code with the serving configuration (the console's upload).
    pub async fn redeploy_code(&self, name: &str, code: String) -> Result<FunctionView> {
        let pool = self.pool(name).ok_or_else(|| Error::NoFunction(name.to_string()))?;
        let config = crate::function::FunctionConfig { code, ..pool.current().function.config.clone() };
        Ok(self.deploy_config(name, config, None).await?.0)
    }

    /// A function's kept versions, newest first.
    pub fn versions(&self, name: &str) -> Result<Vec<crate::versions::VersionView>> {
        let serving = self.view(name)?.version;
        self.registry.versions(name, serving)
    }

    /// Samples memory, writes the per-minute history and applies the logs' age bound:
    /// called every few seconds.
    pub fn record_history(&self, keep: Duration) {
        for pool in self.pools() {
            let limit = pool.current().function.config.memory_mb << 20;
            self.metrics.history.sample_memory(&pool.name, &pool.instance_cgroups(), limit);
        }
        if let Err(e) = self.metrics.history.flush(&self.registry, Some(keep)) {
            eprintln!("fnbox serve: cannot write the history to the registry: {e}");
        }
    }

    /// Removes stored code no function serves (`used` adds to those) and no kept version
    /// needs; when the versions cannot be read, nothing.
    fn collect_code_garbage(&self, mut used: HashSet<String>) {
        used.extend(self.pools().iter().map(|p| p.current().function.config.code.clone()));
        match self.registry.version_codes() {
            Ok(kept) => used.extend(kept),
            Err(e) => return eprintln!("fnbox serve: stored code kept: the versions cannot be read ({e})"),
        }
        self.code.collect_garbage(&used, UPLOAD_GRACE);
    }

    async fn deploy_config(
        &self,
        name: &str,
        config: crate::function::FunctionConfig,
        rollback_of: Option<u64>,
    ) -> Result<(FunctionView, bool, bool)> {
        if !self.code.has(&config.code) {
            return Err(Error::Invalid(format!(
                "code {} is not in the code store: upload it first (POST /api/v1/code)",
                config.code
            )));
        }
        let code = self.code.tree(&config.code);
        if let Some(pool) = self.pool(name) {
            let current = pool.current();
            if current.function.config == config {
                // Nothing changed (a second `fnbox deploy -f`): no new version, no restart.
                return Ok((current.function.view(pool.instance_count()), false, false));
            }
        }
        self.checker.check_handler(name, &config, &code).await.map_err(|why| {
            Error::HandlerCheck(format!(
                "handler '{}' of function '{name}' cannot be loaded: {}",
                config.handler,
                self.without_host_paths(&why)
            ))
        })?;
        let _one = self.changes.lock().await;
        let function = self.registry.put_version(name, &config, rollback_of)?;
        self.disabled.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        let version = function.version;
        let view = function.view(0);
        let deployed = Deployed { function, code };
        let existing = self.pool(name);
        match &existing {
            Some(pool) => pool.update(deployed),
            None => {
                let pool = Pool::new(deployed, self.backend.clone(), self.logs.clone(), self.metrics.clone());
                pool.maintain(Duration::MAX);
                self.pools.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), pool);
            }
        }
        match rollback_of {
            Some(old) => self.logs.event(name, "-", format!("deployed version {version}: a rollback to version {old}")),
            None => self.logs.event(name, "-", format!("deployed version {version}")),
        }
        self.update_warm_shelves();
        Ok((view, existing.is_none(), true))
    }

    /// Removes a function: its registry rows, its instances, its triggers' schedules and
    /// consumers here. What its triggers hold on a broker goes in
    /// [`crate::triggers::remove_function`], the removal the admin API makes.
    pub fn remove(&self, name: &str) -> Result<()> {
        if !self.registry.remove(name)? {
            return Err(Error::NoFunction(name.to_string()));
        }
        self.disabled.write().unwrap_or_else(|p| p.into_inner()).remove(name);
        self.triggers.deactivate_function(name);
        self.tokens.forget(name, None);
        if let Some(pool) = self.pools.write().unwrap_or_else(|p| p.into_inner()).remove(name) {
            pool.remove();
        }
        self.logs.forget(name);
        self.metrics.forget(name);
        self.collect_code_garbage(HashSet::new());
        self.update_warm_shelves();
        Ok(())
    }

    /// Stops every instance of a function (the busy ones once their requests are done) and
    /// waits until the idle ones have ended: the next request is a cold start. Returns how
    /// many were stopped now.
    pub async fn recycle(&self, name: &str) -> Result<usize> {
        let pool = self.pool(name).ok_or_else(|| Error::NoFunction(name.to_string()))?;
        let stopped = pool.recycle();
        for i in &stopped {
            if i.ended_within(RECYCLE_WAIT).await.is_none() {
                break;
            }
        }
        self.logs.event(name, "-", format!("{} idle instance(s) recycled", stopped.len()));
        Ok(stopped.len())
    }

    pub fn list(&self) -> Vec<Listed> {
        let mut v: Vec<Listed> =
            self.pools().iter().map(|p| Listed::Serving(p.current().function.view(p.instance_count()))).collect();
        let disabled = self.disabled.read().unwrap_or_else(|p| p.into_inner());
        v.extend(disabled.iter().map(|(name, why)| Listed::Disabled { name: name.clone(), disabled: why.clone() }));
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// `msg` with the server's host paths (data directory, fnbox binary) replaced by names:
    /// what an answer may say about a failure without telling a client the host's layout.
    pub fn without_host_paths(&self, msg: &str) -> String {
        let exe = self.checker.launcher.exe.to_string_lossy().into_owned();
        let data = self.data_dir.to_string_lossy().into_owned();
        // The longer first: the binary may live in the data directory.
        let mut pairs = [(exe, "fnbox"), (data, "DATA_DIR")];
        pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        pairs.iter().filter(|(p, _)| p.len() > 1).fold(msg.to_string(), |m, (p, name)| m.replace(p.as_str(), name))
    }

    /// Why a function that is in the registry cannot be served, if it is disabled.
    pub fn disabled(&self, name: &str) -> Option<String> {
        self.disabled.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn view(&self, name: &str) -> Result<FunctionView> {
        if let Some(why) = self.disabled(name) {
            return Err(Error::Disabled(why));
        }
        let pool = self.pool(name).ok_or_else(|| Error::NoFunction(name.to_string()))?;
        let v = pool.current().function.view(pool.instance_count());
        Ok(v)
    }

    pub fn create_token(&self, name: &str) -> Result<crate::registry::NewToken> {
        self.view(name)?;
        let (id, token, hash) = self.tokens.mint(name);
        let info = self.registry.add_token(&id, name, &hash)?;
        Ok(crate::registry::NewToken { id: info.id, function: name.into(), token, created_at: info.created_at })
    }

    pub fn list_tokens(&self, name: &str) -> Result<Vec<TokenInfo>> {
        self.view(name)?;
        self.registry.tokens(name)
    }

    pub fn remove_token(&self, name: &str, id: &str) -> Result<()> {
        if !self.registry.remove_token(name, id)? {
            return Err(Error::NotFound(format!(
                "function '{name}' has no token '{id}': list them with `fnbox token ls {name}`"
            )));
        }
        self.tokens.forget(name, Some(id));
        Ok(())
    }

    pub fn render_metrics(&self) -> String {
        let gauges: Vec<_> = self.pools().iter().map(|p| p.gauges()).collect();
        let warm = self.warm.as_ref().map(|w| w.gauges());
        self.metrics.render(&gauges, warm.as_ref())
    }
}
