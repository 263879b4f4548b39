//! `fnbox serve`: its options, checked and turned into the server's (`ServeOptions`).

use clap::Args;
use fnbox_platform::gateway::conn::{self, ClientLimits};
use fnbox_platform::instances::warm::WarmConfig;
use fnbox_platform::logs::disk::DiskLimits;
use fnbox_platform::retention::Retention;
use fnbox_platform::server::{self, ServeOptions};
use fnbox_platform::triggers::calls_js::AsyncNats;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A feature turned `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// `fnbox serve`'s options.
#[derive(Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = server::DEFAULT_LISTEN)]
    listen: String,
    /// Serve the web console on this address and port instead of on --listen. Its own origin
    /// keeps functions' pages away from it (and it may listen where only operators reach);
    /// without it, every function answer gets `Content-Security-Policy: sandbox ...`.
    #[arg(long, value_name = "ADDR")]
    console_listen: Option<String>,
    /// Where functions, code and the admin token are kept [env: FNBOX_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Stop instances idle this many seconds (down to each function's min-scale), 1 to 604800.
    #[arg(long, default_value_t = 900, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=604_800))]
    idle_timeout: u64,
    /// Keep pre-warmed sandboxes (v1 and v2, a Python or Node runtime already started) for
    /// the cold starts of python3 and node functions: on or off.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    warm_pool: Switch,
    /// Pre-warmed sandboxes kept per runtime and memory tier in use, even with no cold starts.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=64))]
    warm_min: u32,
    /// Most pre-warmed sandboxes per sandbox kind, runtime and memory tier (the pool grows up
    /// to this with the rate and the recent peak of cold starts, and the functions deployed
    /// and not called yet), within --warm-memory.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    warm_max: u32,
    /// One function's fair share of a shelf: its cold starts counted toward the shelf's size
    /// within 10 s, and, on a shelf other functions use, taking from it (the others start
    /// their own sandbox).
    #[arg(long, default_value_t = fnbox_platform::instances::warm::DEFAULT_PER_FUNCTION, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    warm_per_function: u32,
    /// Pre-warmed sandboxes starting at once [default: twice the CPUs, 2 to 16].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    warm_parallel: Option<u32>,
    /// Most memory all pre-warmed sandboxes may use together, in MiB (counted from their
    /// cgroups), up to 1048576 (1 TiB).
    #[arg(long, default_value_t = 512, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    warm_memory: u64,
    /// Connections served at once; more wait until one closes. Lowered to half the open-file
    /// limit if that is lower (the soft limit is first raised to the hard one).
    #[arg(long, default_value_t = conn::DEFAULT_MAX_CONNECTIONS as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Seconds a client has to send a request's headers (and an idle connection is kept).
    #[arg(long, default_value_t = conn::DEFAULT_HEADER_TIMEOUT_S, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Seconds a client has to send a request's body, and to take an answer.
    #[arg(long, default_value_t = conn::DEFAULT_BODY_TIMEOUT_S, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout: u64,
    /// MiB of request bodies of function calls held at once; past it, requests wait briefly,
    /// then get 503.
    #[arg(long, default_value_t = conn::DEFAULT_BODY_MEMORY_MIB as u64, value_name = "MIB", value_parser = clap::value_parser!(u64).range(6..=1 << 20))]
    body_memory: u64,
    /// Connections one client (an IPv4 address, an IPv6 /64) may hold at once; more get 503
    /// and are closed. Behind a reverse proxy (one client for all), raise it.
    #[arg(long, default_value_t = conn::DEFAULT_MAX_CONNECTIONS_PER_CLIENT as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_client: u64,
    /// MiB of request bodies one client may hold at once, of --body-memory [default: an
    /// eighth of it, at least 6].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(6..=1 << 20))]
    client_body_memory: Option<u64>,
    /// MiB of functions' answers held in memory for clients at once: an answer is read whole
    /// from its instance, which is freed at once, while this has room; past it answers are
    /// streamed and a client holds an instance 10 s at most.
    #[arg(long, default_value_t = fnbox_platform::gateway::relay::DEFAULT_ANSWER_MEMORY_MIB as u64, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    answer_memory: u64,
    /// GiB of disk the writable layers of all sandboxes (instances, pre-warmed ones) may take
    /// together, each counted at its full 1 GiB: past it no sandbox starts (the request gets
    /// 502, the log says why) [default: 3/4 of the free space of fnbox's state, at most 64].
    #[arg(long, value_name = "GIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    instance_disk: Option<u64>,
    /// The key that seals secrets in the registry: a file of 64 hex characters, readable by
    /// its owner only. Default: DATA_DIR/secret.key, made on first start. Keep a copy apart
    /// from backups of the registry [env: FNBOX_SECRET_KEY_FILE].
    #[arg(long, value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    /// Serve /metrics without the admin token (it names every function, private ones too).
    #[arg(long)]
    metrics_public: bool,
    /// A private range (CIDR, e.g. 10.1.0.0/16) functions with egress may reach although
    /// private, shared and link-local ranges are denied. Repeatable.
    #[arg(long = "allow-net", value_name = "CIDR")]
    allow_net: Vec<String>,
    /// A range (CIDR) asynchronous calls' callbacks (X-Callback-Url) may reach although it is
    /// private, shared, link-local or this host (loopback may be named, on its own);
    /// --allow-net does not open ranges to callbacks. Repeatable.
    #[arg(long = "callback-net", value_name = "CIDR")]
    callback_net: Vec<String>,
    /// Seconds a `fnbox deploy --build` may run (its sandbox is then killed), 10 to 7200.
    #[arg(long, default_value_t = fnbox_platform::build::DEFAULT_TIMEOUT.as_secs(), value_name = "SECS", value_parser = clap::value_parser!(u64).range(10..=7200))]
    build_timeout: u64,
    /// Most MiB of log files kept per function (the oldest go first), 1 to 1048576.
    #[arg(long, default_value_t = fnbox_platform::logs::disk::DEFAULT_MAX_BYTES >> 20, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    log_max_mb: u64,
    /// Log lines older than this are dropped: 12h, 7d, 30d.
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    log_max_age: String,
    /// Deployed versions kept per function for rollback, 1 to 1000.
    #[arg(long, default_value_t = fnbox_platform::retention::DEFAULT_VERSIONS, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    keep_versions: u32,
    /// Per-minute history (requests, latency, cold starts, memory) kept: 6h, 1d, 7d.
    #[arg(long, default_value = "1d", value_name = "DURATION")]
    history: String,
    /// Keep asynchronous calls (/async/fn/NAME) in NATS JetStream, nats://HOST:PORT, instead
    /// of the registry: a call is answered 202 once the broker has stored it, and runs through
    /// the queue triggers' consumer.
    #[arg(long, value_name = "URL")]
    async_nats: Option<String>,
    /// The JetStream stream of asynchronous calls (made, as a work queue on disk, if missing).
    #[arg(long, value_name = "NAME", requires = "async_nats")]
    async_stream: Option<String>,
    /// Parent cgroup of the instances' sandboxes (tests use their own).
    #[arg(long, default_value = "fnbox/serve", hide = true)]
    cgroup_parent: String,
}

impl ServeArgs {
    fn warm(&self) -> Result<Option<WarmConfig>, String> {
        if self.warm_pool == Switch::Off {
            return Ok(None);
        }
        if self.warm_min > self.warm_max {
            return Err(format!(
                "--warm-min {} is above --warm-max {}: lower --warm-min or raise --warm-max",
                self.warm_min, self.warm_max
            ));
        }
        Ok(Some(WarmConfig {
            min: self.warm_min,
            max: self.warm_max,
            memory_budget: self.warm_memory << 20,
            parallel: self.warm_parallel.unwrap_or_else(fnbox_platform::instances::warm::default_parallel),
            per_function: self.warm_per_function,
        }))
    }

    fn retention(&self) -> Result<Retention, String> {
        let duration = |flag: &str, v: &str| {
            humantime::parse_duration(v)
                .ok()
                .filter(|d| d.as_secs() >= 60)
                .ok_or_else(|| format!("{flag} '{v}' is not a duration of a minute or more: use 12h, 1d or 7d"))
        };
        Ok(Retention {
            logs: DiskLimits {
                max_bytes: self.log_max_mb << 20,
                max_age: duration("--log-max-age", &self.log_max_age)?,
            },
            versions: self.keep_versions,
            history: duration("--history", &self.history)?,
        })
    }

    fn clients(&self) -> ClientLimits {
        ClientLimits {
            max_connections: self.max_connections as usize,
            header_timeout: Duration::from_secs(self.header_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            body_memory: (self.body_memory as usize) << 20,
            max_connections_per_client: self.max_connections_per_client as usize,
            client_body_memory: match self.client_body_memory {
                Some(mib) => ((mib as usize) << 20).min((self.body_memory as usize) << 20),
                None => conn::default_client_body_memory((self.body_memory as usize) << 20),
            },
            answer_memory: (self.answer_memory as usize) << 20,
        }
    }
}

/// Runs the server until it is stopped.
pub fn serve(a: ServeArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return super::fail(&format!("cannot find the fnbox binary itself: {e}")),
    };
    let warm = match a.warm() {
        Ok(w) => w,
        Err(e) => return super::fail(&e),
    };
    let clients = a.clients();
    let allow_net = match a.allow_net.iter().map(|c| fnbox_sandbox::net::Cidr::parse(c)).collect() {
        Ok(v) => v,
        Err(e) => return super::fail(&e.to_string()),
    };
    let callback_net = match a.callback_net.iter().map(|c| fnbox_sandbox::net::Cidr::parse_callback(c)).collect() {
        Ok(v) => v,
        Err(e) => return super::fail(&e.to_string()),
    };
    let retention = match a.retention() {
        Ok(r) => r,
        Err(e) => return super::fail(&e),
    };
    let async_nats = match &a.async_nats {
        Some(url) => match AsyncNats::new(url, a.async_stream.clone()) {
            Ok(q) => Some(q),
            Err(e) => return super::fail(&e.to_string()),
        },
        None => None,
    };
    let opts = ServeOptions {
        async_nats,
        allow_net,
        callback_net,
        listen: a.listen,
        console_listen: a.console_listen,
        data_dir: a.data_dir.unwrap_or_else(server::data_dir_from_env),
        idle_timeout: Duration::from_secs(a.idle_timeout),
        cgroup_parent: a.cgroup_parent,
        exe,
        warm,
        clients,
        secret_key_file: a.secret_key_file.or_else(|| std::env::var_os("FNBOX_SECRET_KEY_FILE").map(PathBuf::from)),
        metrics_public: a.metrics_public,
        retention,
        instance_disk: a.instance_disk.map(|gib| gib << 30),
        build_timeout: Duration::from_secs(a.build_timeout),
    };
    match server::serve(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(&e.to_string()),
    }
}
