//! The platform's subcommands: `fnbox serve` and the verbs that talk to it. Argument parsing
//! only; the work is in `fnbox_platform`.

use clap::{Args, Subcommand};
use fnbox_platform::client::{self, InvokeArgs, Target};
use fnbox_platform::function::DeployRequest;
use fnbox_platform::gateway::conn::{self, ClientLimits};
use fnbox_platform::instances::warm::WarmConfig;
use fnbox_platform::logs::disk::DiskLimits;
use fnbox_platform::retention::Retention;
use fnbox_platform::server::{self, ServeOptions};
use fnbox_platform::triggers::calls_js::AsyncNats;
use fnbox_platform::triggers::CreateTrigger;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum PlatformCmd {
    /// Run the function platform: HTTP gateway, admin API and metrics on one port.
    Serve(Box<ServeArgs>),
    /// Deploy (or redeploy) a function from a directory or a .zip, or every function of a
    /// Scaleway serverless.yml project (-f).
    Deploy(Box<DeployArgs>),
    /// Call a function over HTTP and print its answer.
    Invoke(InvokeCli),
    /// List the functions.
    Ls(ClientArgs),
    /// Remove a function.
    Rm {
        name: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Print a function's logs (its instances' output and fnbox's events about it).
    Logs {
        name: String,
        /// Keep printing new lines as they come.
        #[arg(long, short)]
        follow: bool,
        /// How many of the last lines to print first.
        #[arg(long, default_value_t = 200)]
        tail: usize,
        /// Print what functions wrote byte for byte. By default control characters (C0 but
        /// newline and tab, DEL, C1), bidi and zero-width marks are shown escaped (`\x1b`,
        /// `\u{202e}`), on a terminal or not: a pipe into grep or less reaches one anyway.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        filter: LogFilterArgs,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// List a function's kept versions (the last --keep-versions deploys), newest first.
    Versions {
        name: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Deploy a kept version again (default: the one before the serving version); requests
    /// in flight finish on the old instances.
    Rollback {
        name: String,
        version: Option<u64>,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Tokens that open a private function (sent in the X-Auth-Token header).
    #[command(subcommand)]
    Token(TokenCmd),
    /// What calls a function besides HTTP: CRON schedules, NATS JetStream subjects, SQS queues.
    #[command(subcommand)]
    Trigger(TriggerCmd),
}

#[derive(Subcommand)]
pub enum TriggerCmd {
    /// Make a trigger for a function: --cron 'EXPR', --nats SUBJECT or --sqs QUEUE_URL.
    Create(Box<TriggerCreate>),
    /// List the triggers (of one function), with the next runs of CRON triggers and the
    /// state of queue consumers.
    Ls {
        function: Option<String>,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Remove a trigger.
    Rm {
        id: String,
        #[command(flatten)]
        c: ClientArgs,
    },
}

#[derive(Args)]
pub struct TriggerCreate {
    function: String,
    /// A CRON expression, five fields in UTC: minute hour day-of-month month day-of-week.
    #[arg(long, value_name = "EXPR")]
    cron: Option<String>,
    /// CRON: JSON sent as the body of each call.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    /// A NATS subject: each message of it becomes a POST to the function (JetStream).
    #[arg(long, value_name = "SUBJECT")]
    nats: Option<String>,
    /// NATS: the JetStream stream holding the subject [default: the one whose subjects cover
    /// it, or one fnbox makes].
    #[arg(long)]
    stream: Option<String>,
    /// NATS: the server, nats://HOST:PORT [default: nats://127.0.0.1:4222]. (`--server`
    /// names the fnbox server, as for every verb.)
    #[arg(long, value_name = "URL")]
    nats_server: Option<String>,
    /// Queues: where a message goes after its last failed attempt (1 + 3 retries): a NATS
    /// subject, or an SQS queue URL on the same endpoint.
    #[arg(long, value_name = "SUBJECT|QUEUE_URL")]
    dead_letter: Option<String>,
    /// Queues: calls in flight at most [default: 10].
    #[arg(long, value_name = "N")]
    max_in_flight: Option<u32>,
    /// An SQS queue URL (Scaleway Queues, AWS): each message becomes a POST to the function.
    #[arg(long, value_name = "QUEUE_URL")]
    sqs: Option<String>,
    /// SQS: the signing region [default: the one the URL names, else us-east-1].
    #[arg(long)]
    region: Option<String>,
    /// SQS: the access key and secret key: a file with `aws_access_key_id = ...` and
    /// `aws_secret_access_key = ...` lines (or `access_key`/`secret_key`), or `env` for
    /// $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY. The server keeps the secret sealed.
    #[arg(long, value_name = "FILE|env")]
    credentials: Option<String>,
    /// A name for the trigger, unique per function [default: its id].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    c: ClientArgs,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Make a token for a function; it is printed once.
    Create {
        name: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// List a function's tokens (their ids, never their values).
    Ls {
        name: String,
        #[command(flatten)]
        c: ClientArgs,
    },
    /// Revoke a token.
    Rm {
        name: String,
        id: String,
        #[command(flatten)]
        c: ClientArgs,
    },
}

#[derive(Args)]
pub struct LogFilterArgs {
    /// Only lines from this long ago on: 90s, 15m, 1h, 2d.
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// Only lines of this instance (`-` for fnbox's events about the function).
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
    /// Only lines of this stream: stdout, stderr or fnbox.
    #[arg(long)]
    stream: Option<String>,
    /// Only lines containing this text.
    #[arg(long, value_name = "TEXT")]
    grep: Option<String>,
}

impl LogFilterArgs {
    fn pairs(self) -> Vec<(&'static str, String)> {
        [("since", self.since), ("instance", self.instance), ("stream", self.stream), ("grep", self.grep)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
    }
}

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
    #[arg(long, default_value = "on", value_name = "on|off")]
    warm_pool: String,
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
        match self.warm_pool.as_str() {
            "off" => return Ok(None),
            "on" => {}
            other => return Err(format!("--warm-pool '{other}' is not valid: use on or off")),
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

#[derive(Args)]
pub struct ClientArgs {
    /// The fnbox server [env: FNBOX_SERVER; default http://127.0.0.1:8080].
    #[arg(long)]
    server: Option<String>,
    /// The server's data directory, to read the admin token from [env: FNBOX_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl ClientArgs {
    fn target(&self) -> Target {
        Target {
            server: self
                .server
                .clone()
                .or_else(|| std::env::var("FNBOX_SERVER").ok())
                .unwrap_or_else(|| client::DEFAULT_SERVER.to_string()),
            data_dir: self.data_dir.clone().unwrap_or_else(server::data_dir_from_env),
            json: self.json,
        }
    }
}

#[derive(Args)]
pub struct DeployArgs {
    /// 1 to 34 characters among a-z, 0-9 and '-'.
    #[arg(required_unless_present = "file")]
    name: Option<String>,
    /// A directory or a .zip with the function's code.
    #[arg(required_unless_present = "file")]
    path: Option<PathBuf>,
    /// A Scaleway Serverless Framework project file: deploys its functions and schedules
    /// (the project's directory is the code); says which keys it ignores.
    #[arg(short = 'f', long = "file", value_name = "serverless.yml", conflicts_with_all = ["name", "path", "runtime"])]
    file: Option<PathBuf>,
    /// python3, node or binary.
    #[arg(long, required_unless_present = "file")]
    runtime: Option<String>,
    /// MODULE.FUNCTION (python3, node; default handler.handle) or an executable's path (binary; default main).
    #[arg(long)]
    handler: Option<String>,
    /// Memory in MiB, a tier: 128, 256, 512, 1024, 2048, 3072 or 4096 [default: 256].
    #[arg(long)]
    memory: Option<String>,
    /// v2 (the Sentry: pre-warmed sandboxes, the fastest cold starts) or v1 (container) [default: v2].
    #[arg(long)]
    sandbox: Option<String>,
    /// Instances kept running even with no requests [default: 0].
    #[arg(long)]
    min_scale: Option<u32>,
    /// Most instances at once, 1 to 50 [default: 20].
    #[arg(long)]
    max_scale: Option<u32>,
    /// Seconds a request may take, 10 to 3600 [default: 300].
    #[arg(long)]
    timeout: Option<u64>,
    /// Requests one instance serves at once [default: 1].
    #[arg(long)]
    concurrency: Option<u32>,
    /// Requests that may wait when every instance is busy; past it, 503 [default: 100].
    #[arg(long)]
    max_queue: Option<u32>,
    /// An environment variable, KEY=VALUE. Repeatable.
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// A secret environment variable, KEY=VALUE: never shown again. Repeatable.
    #[arg(long = "secret", value_name = "K=V")]
    secrets: Vec<String>,
    /// Callers need a token (fnbox token create NAME) in X-Auth-Token.
    #[arg(long)]
    private: bool,
    /// Outbound network: egress (the internet; not the host, private ranges or other
    /// functions) or none [default: egress].
    #[arg(long, value_name = "egress|none")]
    network: Option<String>,
    /// Install the dependencies on the server first, in a sandbox with egress on the
    /// function's runtime: python3 `pip install -r requirements.txt --target package`, node
    /// `npm ci` (needs package-lock.json). The built tree is what is stored.
    #[arg(long, conflicts_with = "file")]
    build: bool,
    #[command(flatten)]
    c: ClientArgs,
}

#[derive(Args)]
pub struct InvokeCli {
    name: String,
    /// Request body; the method is then POST unless --method says otherwise.
    #[arg(long, short)]
    data: Option<String>,
    #[arg(long, short = 'X')]
    method: Option<String>,
    /// Path after /fn/NAME.
    #[arg(long, default_value = "/")]
    path: String,
    /// A request header, 'Name: value'. Repeatable.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// A function token for a private function (default: the admin token, if readable).
    #[arg(long)]
    token: Option<String>,
    #[command(flatten)]
    c: ClientArgs,
}

fn pairs(items: &[String], what: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            // Never echo a secret's value back.
            _ => Err(format!("{what} '{}' is not valid: use KEY=VALUE", if what == "--secret" { "..." } else { s })),
        })
        .collect()
}

fn deploy_request(a: &DeployArgs) -> Result<DeployRequest, String> {
    let memory_mb = match &a.memory {
        Some(m) => Some(
            fnbox_sandbox::spec::parse_size_mb(m)
                .ok_or_else(|| format!("memory '{m}' is not a size: use a tier such as 128, 256 or 1024 (MiB)"))?,
        ),
        None => None,
    };
    Ok(DeployRequest {
        runtime: a.runtime.clone().unwrap_or_default(),
        code: String::new(),
        handler: a.handler.clone(),
        memory_mb,
        sandbox: a.sandbox.clone(),
        min_scale: a.min_scale,
        max_scale: a.max_scale,
        timeout_s: a.timeout,
        concurrency: a.concurrency,
        max_queue: a.max_queue,
        env: pairs(&a.env, "--env")?,
        secrets: pairs(&a.secrets, "--secret")?,
        private: a.private,
        network: a.network.clone(),
    })
}

pub fn run(cmd: PlatformCmd) -> ExitCode {
    let code = match cmd {
        PlatformCmd::Serve(a) => {
            let exe = match std::env::current_exe() {
                Ok(e) => e,
                Err(e) => return fail(&format!("cannot find the fnbox binary itself: {e}")),
            };
            let warm = match a.warm() {
                Ok(w) => w,
                Err(e) => return fail(&e),
            };
            let clients = a.clients();
            let allow_net = match a.allow_net.iter().map(|c| fnbox_sandbox::net::Cidr::parse(c)).collect() {
                Ok(v) => v,
                Err(e) => return fail(&e.to_string()),
            };
            let retention = match a.retention() {
                Ok(r) => r,
                Err(e) => return fail(&e),
            };
            let async_nats = match &a.async_nats {
                Some(url) => match AsyncNats::new(url, a.async_stream.clone()) {
                    Ok(q) => Some(q),
                    Err(e) => return fail(&e.to_string()),
                },
                None => None,
            };
            let opts = ServeOptions {
                async_nats,
                allow_net,
                listen: a.listen,
                console_listen: a.console_listen,
                data_dir: a.data_dir.unwrap_or_else(server::data_dir_from_env),
                idle_timeout: Duration::from_secs(a.idle_timeout),
                cgroup_parent: a.cgroup_parent,
                exe,
                warm,
                clients,
                secret_key_file: a
                    .secret_key_file
                    .or_else(|| std::env::var_os("FNBOX_SECRET_KEY_FILE").map(PathBuf::from)),
                metrics_public: a.metrics_public,
                retention,
                instance_disk: a.instance_disk.map(|gib| gib << 30),
                build_timeout: Duration::from_secs(a.build_timeout),
            };
            match server::serve(opts) {
                Ok(()) => 0,
                Err(e) => return fail(&e.to_string()),
            }
        }
        PlatformCmd::Deploy(a) => match (&a.file, &a.name, &a.path, deploy_request(&a)) {
            (Some(file), ..) => client::run(client::serverless::deploy_file(&a.c.target(), file)),
            (None, Some(name), Some(path), Ok(req)) => {
                client::run(client::deploy(&a.c.target(), name, path, req, a.build))
            }
            (None, _, _, Err(e)) => return fail(&e),
            (None, ..) => return fail("deploy needs NAME PATH --runtime ..., or -f serverless.yml"),
        },
        PlatformCmd::Invoke(a) => {
            let t = a.c.target();
            let args = InvokeArgs { method: a.method, path: a.path, data: a.data, headers: a.headers, token: a.token };
            client::run(client::invoke(&t, &a.name, args))
        }
        PlatformCmd::Ls(c) => client::run(client::ls(&c.target())),
        PlatformCmd::Rm { name, c } => client::run(client::rm(&c.target(), &name)),
        PlatformCmd::Logs { name, follow, tail, filter, raw, c } => {
            client::run(client::logs(&c.target(), &name, follow, tail, &filter.pairs(), raw))
        }
        PlatformCmd::Versions { name, c } => client::run(client::versions::versions(&c.target(), &name)),
        PlatformCmd::Rollback { name, version, c } => {
            client::run(client::versions::rollback(&c.target(), &name, version))
        }
        PlatformCmd::Token(TokenCmd::Create { name, c }) => client::run(client::token_create(&c.target(), &name)),
        PlatformCmd::Token(TokenCmd::Ls { name, c }) => client::run(client::token_ls(&c.target(), &name)),
        PlatformCmd::Token(TokenCmd::Rm { name, id, c }) => client::run(client::token_rm(&c.target(), &name, &id)),
        PlatformCmd::Trigger(TriggerCmd::Create(a)) => {
            let data = match a.data.as_deref().map(serde_json::from_str::<serde_json::Value>) {
                Some(Err(e)) => {
                    return fail(&format!("--data is not JSON ({e}): quote it, e.g. --data '{{\"k\": 1}}'"))
                }
                Some(Ok(v)) => Some(v),
                None => None,
            };
            let (access_key, secret_key) = match a.credentials.as_deref().map(client::trigger::credentials) {
                Some(Err(e)) => return fail(&e.to_string()),
                Some(Ok((k, s))) => (Some(k), Some(s)),
                None => (None, None),
            };
            let req = CreateTrigger {
                name: a.name.clone(),
                cron: a.cron.clone(),
                data,
                nats: a.nats.clone(),
                stream: a.stream.clone(),
                server: a.nats_server.clone(),
                dead_letter: a.dead_letter.clone(),
                max_in_flight: a.max_in_flight,
                sqs: a.sqs.clone(),
                region: a.region.clone(),
                access_key,
                secret_key,
            };
            client::run(client::trigger::create(&a.c.target(), &a.function, &req))
        }
        PlatformCmd::Trigger(TriggerCmd::Ls { function, c }) => {
            client::run(client::trigger::ls(&c.target(), function.as_deref()))
        }
        PlatformCmd::Trigger(TriggerCmd::Rm { id, c }) => client::run(client::trigger::rm(&c.target(), &id)),
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("fnbox: {msg}");
    ExitCode::FAILURE
}
