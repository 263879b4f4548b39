//! `fnbox serve`: opens (or creates) the data directory, cleans up after a server that died,
//! loads the functions and serves until SIGINT or SIGTERM.
//!
//! ```text
//! DATA_DIR/                the data directory, owner only (0700, set at every start)
//! DATA_DIR/admin.token     the admin token (0600)
//! DATA_DIR/secret.key      the key secrets are sealed with (0400), unless --secret-key-file
//! DATA_DIR/registry.db     functions and tokens (SQLite, WAL; 0600, secrets sealed)
//! DATA_DIR/code/trees/     unpacked code, by digest (code/ is 0700)
//! DATA_DIR/runtime/        the runtime wrappers, bound at /opt/fnbox/runtime
//! DATA_DIR/logs/NAME/      a function's logs, in rotated segments (0700, files 0600)
//! DATA_DIR/instances/      one directory per sandbox (the instance's socket), pre-warmed ones too
//! DATA_DIR/serve.lock      held by the running server
//! ```

use crate::auth::{load_or_create_admin_token, Tokens};
use crate::codestore::CodeStore;
use crate::error::{Context, Error, Result};
use crate::gateway::conn::{fit_to_open_file_limit, ClientLimits};
use crate::gateway::Face;
use crate::instances::backend::FnboxRun;
use crate::instances::disk_budget::{DiskBudget, LAYER_BYTES};
use crate::instances::launcher::Launcher;
use crate::instances::warm::{WarmConfig, WarmPool};
use crate::logs::LogStore;
use crate::platform::Platform;
use crate::registry::Registry;
use crate::seal::SecretKey;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `FNBOX_DATA_DIR`, or `serve` in fnbox's state directory (`FNBOX_STATE_DIR`, default
/// `/var/lib/fnbox`), so one variable moves all of fnbox's state.
pub fn data_dir_from_env() -> PathBuf {
    std::env::var_os("FNBOX_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fnbox_sandbox::Paths::from_env().state.join("serve"))
}

pub struct ServeOptions {
    pub listen: String,
    /// The console on its own address (another origin than the functions'); `None`: on
    /// `listen`, with every function answer given an origin of its own.
    pub console_listen: Option<String>,
    pub data_dir: PathBuf,
    /// Instances idle this long stop (down to min-scale).
    pub idle_timeout: Duration,
    /// Parent cgroup of the instances' sandboxes.
    pub cgroup_parent: String,
    /// The `fnbox` binary that launches sandboxes.
    pub exe: PathBuf,
    /// Pre-warmed sandboxes for cold starts; `None`: off.
    pub warm: Option<WarmConfig>,
    /// What clients may hold: connections, time, memory.
    pub clients: ClientLimits,
    /// The key secrets are sealed with; `None`: `DATA_DIR/secret.key`, made on first start.
    pub secret_key_file: Option<PathBuf>,
    /// `/metrics` without the admin token.
    pub metrics_public: bool,
    /// Private ranges functions with egress may reach.
    pub allow_net: Vec<fnbox_sandbox::net::Cidr>,
    /// Ranges callbacks may reach (`--callback-net`; may hold loopback). `allow_net` does not
    /// open them: it is for sandboxes, which never reach the host.
    pub callback_net: Vec<fnbox_sandbox::net::Cidr>,
    /// How much of the logs, versions and history is kept.
    pub retention: crate::retention::Retention,
    /// Bytes of disk all sandboxes' writable layers may take; `None`: [`default_instance_disk`].
    pub instance_disk: Option<u64>,
    /// How long a `fnbox deploy --build` may run.
    pub build_timeout: Duration,
    /// Keep asynchronous calls in this JetStream stream instead of the registry.
    pub async_nats: Option<crate::triggers::calls_js::AsyncNats>,
}

/// The disk budget when the operator gives none: three quarters of what is free on the
/// filesystem of the sandboxes' state at start, at most 64 GiB, at least one layer.
pub fn default_instance_disk() -> u64 {
    let state = fnbox_sandbox::Paths::from_env();
    let free = fs_free(&state.state).unwrap_or(u64::MAX);
    (free / 4 * 3).clamp(LAYER_BYTES, 64 << 30)
}

/// Bytes free to root on the filesystem holding `dir`.
fn fs_free(dir: &std::path::Path) -> Option<u64> {
    fnbox_sandbox::sys::fs_free(dir).ok()
}

/// Creates `dir` if needed and makes it the owner's only, whatever mode it had.
fn private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .context(|| format!("cannot create the directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .context(|| format!("cannot make the directory {} private (0700)", dir.display()))
}

/// Holds `serve.lock` for the life of the server: two servers on one data directory would
/// remove each other's instances.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    let path = dir.join("serve.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(|| format!("cannot open {}", path.display()))?;
    if !fnbox_sandbox::sys::flock(&f, true, true).context(|| format!("cannot lock {}", path.display()))? {
        return Err(Error::Invalid(format!(
            "another fnbox serve already uses the data directory {}: stop it, or give another --data-dir",
            dir.display()
        )));
    }
    Ok(f)
}

/// Removes what a server that died left behind: instance directories and sandbox cgroups.
fn clean_leftovers(opts: &ServeOptions, instances: &std::path::Path) -> Result<usize> {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(instances) {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
            n += 1;
        }
    }
    let layout = fnbox_sandbox::cgroup::Layout::detect()?;
    fnbox_sandbox::launch::reap_stale(&fnbox_sandbox::Paths::from_env(), &layout, &opts.cgroup_parent);
    Ok(n)
}

pub fn serve(opts: ServeOptions) -> Result<()> {
    if !fnbox_sandbox::sys::is_root() {
        return Err(Error::Sandbox(fnbox_sandbox::Error::NotRoot));
    }
    // The sandboxes' host state first: a fresh machine has none, and its errors name the fix.
    fnbox_sandbox::Paths::from_env().prepare()?;
    let state = State::open(&opts)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context(|| "cannot start the async runtime".into())?;
    rt.block_on(run(opts, state))
}

/// What `serve` holds of its data directory, opened (and locked) before anything listens.
struct State {
    _lock: std::fs::File,
    clients: ClientLimits,
    registry: Registry,
    tokens: Tokens,
    code: CodeStore,
    logs: Arc<LogStore>,
    launcher: Arc<Launcher>,
    /// Instances a previous run left, now cleaned.
    left: usize,
}

impl State {
    fn open(opts: &ServeOptions) -> Result<Self> {
        let dir = &opts.data_dir;
        private_dir(dir)?;
        let lock = lock_data_dir(dir)?;
        let mut clients = opts.clients.clone();
        if let Some(warning) = fit_to_open_file_limit(&mut clients) {
            eprintln!("fnbox serve: {warning}");
        }
        let admin = load_or_create_admin_token(dir)?;
        let key = match &opts.secret_key_file {
            Some(path) => SecretKey::load(path)?,
            None => SecretKey::load_or_create(dir)?,
        };
        let instances = dir.join("instances");
        let left = clean_leftovers(opts, &instances)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&instances)
            .context(|| format!("cannot create {}", instances.display()))?;
        let runtime_dir = dir.join("runtime");
        crate::runtimes::install(&runtime_dir)?;
        let registry = Registry::open(&dir.join("registry.db"), key)?;
        registry.set_keep_versions(opts.retention.versions);
        let tokens = Tokens::new(admin, registry.token_hashes()?);
        // Sandboxes reach their code through a bind mount, never through this path.
        private_dir(&dir.join("code"))?;
        let code = CodeStore::open(&dir.join("code"))?;
        let logs = Arc::new(LogStore::on_disk(dir.join("logs"), opts.retention.logs));
        let launcher = Arc::new(Launcher {
            exe: opts.exe.clone(),
            runtime_dir,
            instances_dir: instances,
            cgroup_parent: opts.cgroup_parent.clone(),
            logs: logs.clone(),
            allow_net: opts.allow_net.clone(),
            disk: DiskBudget::new(opts.instance_disk.unwrap_or_else(default_instance_disk)),
        });
        Ok(Self { _lock: lock, clients, registry, tokens, code, logs, launcher, left })
    }
}

/// The server itself: the platform, its listeners, triggers and upkeep, until a signal; then
/// its instances are stopped.
async fn run(opts: ServeOptions, state: State) -> Result<()> {
    let State { _lock, clients, registry, tokens, code, logs, launcher, left } = state;
    let dir = opts.data_dir.clone();
    let warm = opts.warm.map(|c| WarmPool::new(launcher.clone(), c));
    let backend = Arc::new(FnboxRun { launcher, warm: warm.clone() });
    let mut platform = Platform::new(dir.clone(), registry, code, tokens, logs, backend.clone(), backend);
    platform.metrics_public = opts.metrics_public;
    platform.callback_net = opts.callback_net.clone();
    platform.builds = crate::build::places::Builds::new(opts.build_timeout);
    platform.async_queue = opts.async_nats.clone().map(crate::triggers::calls_js::JetQueue::new);
    let platform = Arc::new(platform);
    let (listener, console) = listen(&opts).await?;
    let n = platform.load()?;
    crate::triggers::start(&platform)?;
    platform.metrics.history.resume(&platform.registry)?;
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or(opts.listen.clone());
    eprintln!(
        "fnbox serve: listening on http://{addr} ({n} function(s), data in {}{})",
        dir.display(),
        if left > 0 { format!(", cleaned {left} instance(s) left by a previous run") } else { String::new() }
    );
    for (prog, package) in fnbox_sandbox::net::missing_programs() {
        eprintln!(
            "fnbox serve: warning: `{prog}` is not installed: functions with egress (the default network) cannot start; apt-get install {package}, or deploy with --network none"
        );
    }
    let listeners = match console {
        Some(c) => {
            let at = c.local_addr().map(|a| a.to_string()).unwrap_or_default();
            eprintln!("fnbox serve: the console is on http://{at}/console/");
            vec![(listener, Face::Functions), (c, Face::Console)]
        }
        None => vec![(listener, Face::Shared)],
    };
    let maintenance = tokio::spawn(upkeep(platform.clone(), opts.idle_timeout, opts.retention.history));
    crate::gateway::serve(listeners, platform.clone(), clients, shutdown_signal()).await;
    maintenance.abort();
    platform.record_history(opts.retention.history);
    eprintln!("fnbox serve: stopping instances");
    if let Some(w) = &warm {
        w.shutdown().await;
    }
    let all: Vec<_> = platform.pools().iter().flat_map(|p| p.shutdown()).collect();
    let _ = tokio::time::timeout(Duration::from_secs(8), async {
        for i in all {
            i.wait_ended().await;
        }
    })
    .await;
    Ok(())
}

/// The functions' listener and the console's own, when it has one; an address in use is an
/// error that names the flag to change.
async fn listen(opts: &ServeOptions) -> Result<(tokio::net::TcpListener, Option<tokio::net::TcpListener>)> {
    let bind = |addr: String, flag: &'static str| async move {
        tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
            Error::Invalid(format!("cannot listen on {addr} ({e}): is another server there? give another {flag}"))
        })
    };
    let listener = bind(opts.listen.clone(), "--listen").await?;
    let console = match &opts.console_listen {
        Some(a) => Some(bind(a.clone(), "--console-listen").await?),
        None => None,
    };
    Ok((listener, console))
}

/// Every 500 ms: idle instances end and the warm pool refills; every 5 s the history is
/// recorded (a registry write), every minute the logs' age bound applied.
async fn upkeep(p: Arc<Platform>, idle: Duration, keep: Duration) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    for n in 0u64.. {
        tick.tick().await;
        if n % 10 == 0 {
            let p = p.clone();
            let _ = tokio::task::spawn_blocking(move || {
                p.record_history(keep);
                if n % 120 == 0 {
                    p.logs.prune();
                }
            })
            .await;
        }
        for pool in p.pools() {
            pool.maintain(idle);
        }
        if let Some(w) = &p.warm {
            w.fill();
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
