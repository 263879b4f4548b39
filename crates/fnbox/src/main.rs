//! The `fnbox` command line. It parses arguments and calls the libraries; nothing else.

mod runc_cli;
mod serve_cli;

use clap::{Args, Parser, Subcommand};
use fnbox_sandbox::launch::{self, WaitOptions};
use fnbox_sandbox::net::Network;
use fnbox_sandbox::spec::{self, Bind, Image, SandboxKind, SandboxSpec, Tier};
use fnbox_sandbox::syscalls;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "fnbox", version, about = "Serverless functions in strong sandboxes")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

const RUN_ABOUT: &str = "Run a program in a sandbox and exit with its status";

/// `fnbox run` on its own. Building the whole command line (every platform verb) takes clap a
/// third of a millisecond, which `fnbox run` would pay on every sandbox's start.
#[derive(Parser)]
#[command(name = "fnbox run", bin_name = "fnbox run", about = RUN_ABOUT)]
struct RunOnly {
    #[command(flatten)]
    args: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(about = RUN_ABOUT)]
    Run(Box<RunArgs>),
    /// List the syscalls a sandbox supports, generated from fnbox's syscall table.
    Syscalls {
        #[arg(long, value_enum, default_value_t = SandboxKind::V2)]
        sandbox: SandboxKind,
        #[arg(long, value_enum, default_value_t = syscalls::Format::Table)]
        format: syscalls::Format,
    },
    /// Remove what fnbox keeps on this host between sandboxes (spare disk layers: loop
    /// devices) and what dead sandboxes left (cgroups, network links and rules; the nftables
    /// table once no sandbox has a link). Running sandboxes are untouched.
    Cleanup {
        /// Parent cgroups to reap (those of `fnbox run` and `fnbox serve` by default).
        #[arg(long = "cgroup-parent", default_values = ["fnbox", "fnbox/serve"], hide = true)]
        cgroup_parents: Vec<String>,
        /// Print what was removed as JSON.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Platform(serve_cli::PlatformCmd),
}

#[derive(Args)]
struct RunArgs {
    /// v2 (the Sentry, the default) or v1 (container: the full Linux syscall interface).
    #[arg(long, value_enum, default_value_t = SandboxKind::V2)]
    sandbox: SandboxKind,
    /// Memory limit, one of the tiers: 128M, 256M, 512M, 1G, 2G, 3G, 4G. Brings a CPU share.
    #[arg(long, default_value = "1024M")]
    memory: String,
    /// `host` (this machine's /usr, read-only) or a root filesystem directory.
    #[arg(long, default_value = "host")]
    image: String,
    // A `help` string, not a doc comment: rustdoc would read `[:ro]` as a link.
    #[arg(
        long = "bind",
        value_name = "SRC[:DST][:ro]",
        help = "Make a host path visible: SRC[:DST][:ro]. Repeatable."
    )]
    binds: Vec<String>,
    /// Set an environment variable: K=V. Repeatable.
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Working directory inside the sandbox.
    #[arg(long, default_value = "/")]
    workdir: String,
    /// Kill the sandbox after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Start without the CPU quota (the start-up boost) for at most SECS seconds (up to 60);
    /// the supervisor ends it earlier with `{"v":1,"op":"throttle"}` on --control-fd.
    #[arg(long, value_name = "SECS")]
    cpu_boost: Option<f64>,
    /// With --cpu-boost: the boost runs at the lowest CPU weight (work nothing waits for yet).
    #[arg(long, requires = "cpu_boost")]
    cpu_boost_background: bool,
    /// Cap of the disk-backed writable layer.
    #[arg(long, default_value = "1024M")]
    disk: String,
    /// Maximum number of processes and threads.
    #[arg(long, default_value_t = spec::DEFAULT_PIDS_MAX)]
    pids: u64,
    /// Print the sandbox's peak memory on exit (process memory and in-memory files).
    #[arg(long)]
    stats: bool,
    /// v2: write a compatibility report (unsupported and partial syscalls hit) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Read K=V lines (like --env) from FILE: keeps secrets off command lines.
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Write JSON status lines (started, exec, ended) to this inherited descriptor.
    #[arg(long, hide = true)]
    status_fd: Option<i32>,
    /// Read JSON control requests (attach, limits, kill) from this inherited descriptor;
    /// replies go back on it. End of file stops the sandbox.
    #[arg(long, hide = true)]
    control_fd: Option<i32>,
    /// Give this inherited descriptor (a bound Unix socket) to the program as descriptor 3,
    /// named in $FNBOX_LISTEN_FD: the program listens on it (fnbox serve's instances).
    #[arg(long, hide = true)]
    listen_fd: Option<i32>,
    /// Outbound network: `none` (loopback only, the default) or `egress` (the internet, but
    /// not this host, private or link-local addresses, other sandboxes, nor ports 25/465).
    #[arg(long, value_enum, default_value_t = Network::None)]
    network: Network,
    /// With --network egress: also reach this private range (CIDR, e.g. 10.1.0.0/16).
    /// Repeatable.
    #[arg(long = "allow-net", value_name = "CIDR")]
    allow_net: Vec<String>,
    /// Parent cgroup of the sandbox (tests and the platform use their own).
    #[arg(long, default_value = "fnbox", hide = true)]
    cgroup_parent: String,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    argv: Vec<String>,
}

fn build_spec(a: RunArgs) -> Result<SandboxSpec, fnbox_sandbox::Error> {
    let kind = a.sandbox;
    let mut s = SandboxSpec::new(kind, a.argv);
    s.tier = Tier::parse(&a.memory)?;
    s.image = Image::parse(&a.image)?;
    s.binds = a.binds.iter().map(|b| Bind::parse(b)).collect::<Result<_, _>>()?;
    for f in &a.env_files {
        s.env.extend(spec::parse_env_file(f)?);
    }
    s.env.extend(a.env.iter().map(|e| spec::parse_env(e)).collect::<Result<Vec<_>, _>>()?);
    s.workdir = PathBuf::from(&a.workdir);
    if let Some(t) = a.timeout {
        s.timeout = Some(spec::timeout_from_secs(t)?);
    }
    if let Some(t) = a.cpu_boost {
        s.cpu_boost = Some(spec::cpu_boost_from_secs(t)?);
    }
    s.cpu_boost_background = a.cpu_boost_background;
    s.disk_bytes = spec::parse_size_mb(&a.disk)
        .and_then(|mb| mb.checked_mul(1 << 20))
        .ok_or_else(|| fnbox_sandbox::Error::BadDisk(a.disk.clone()))?;
    s.pids_max = a.pids;
    s.network = a.network;
    s.allow_net = a.allow_net.iter().map(|c| spec::Cidr::parse(c)).collect::<Result<_, _>>()?;
    if a.cgroup_parent.is_empty() || a.cgroup_parent.contains("..") || a.cgroup_parent.starts_with('/') {
        return Err(fnbox_sandbox::Error::Invalid(format!(
            "cgroup parent '{}' is not valid: use a relative name",
            a.cgroup_parent
        )));
    }
    s.cgroup_parent = a.cgroup_parent;
    if a.report.is_some() && kind != SandboxKind::V2 {
        return Err(fnbox_sandbox::Error::Invalid(
            "--report needs --sandbox v2 (v1 runs every syscall natively)".into(),
        ));
    }
    s.report = a.report;
    Ok(s)
}

fn main() -> ExitCode {
    // Installed as `fnbox-runc-v1` / `fnbox-runc-v2` (symlinks), fnbox is an OCI runtime.
    if let Some(kind) = std::env::args().next().as_deref().and_then(fnbox_oci::kind_for_binary) {
        return runc_cli::main(kind);
    }
    let cmd = if std::env::args_os().nth(1).is_some_and(|a| a == "run") {
        let args = std::iter::once(std::ffi::OsString::from("fnbox run")).chain(std::env::args_os().skip(2));
        Cmd::Run(Box::new(RunOnly::parse_from(args).args))
    } else {
        Cli::parse().cmd
    };
    match cmd {
        Cmd::Run(a) => {
            let stats = a.stats;
            let status = match a.status_fd.map(fnbox_sandbox::sys::inherited_file) {
                Some(Ok(f)) => Some(f),
                Some(Err(e)) => return fail(&e.to_string(), 125),
                None => None,
            };
            let control = match a.control_fd.map(fnbox_sandbox::sys::inherited_file) {
                Some(Ok(f)) => Some(std::os::fd::OwnedFd::from(f)),
                Some(Err(e)) => return fail(&e.to_string(), 125),
                None => None,
            };
            // Held open until the sandbox has ended: its init takes its own copy at clone.
            let listen = match a.listen_fd.map(fnbox_sandbox::sys::inherited_socket) {
                Some(Ok(f)) => Some(f),
                Some(Err(e)) => return fail(&format!("--listen-fd: {e}"), 125),
                None => None,
            };
            let mut spec = match build_spec(*a) {
                Ok(s) => s,
                Err(e) => return fail(&e.to_string(), 125),
            };
            spec.listen_fd = listen.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
            let paths = fnbox_sandbox::Paths::from_env();
            match launch::run(
                &spec,
                &paths,
                WaitOptions { forward_signals: true, sample_memory: stats },
                launch::Channels::new(status, control),
            ) {
                Ok(o) => {
                    if let Some(m) = o.message(&spec.argv[0]) {
                        eprintln!("{m}");
                    }
                    if stats {
                        eprintln!("{}", fnbox_sandbox::launch::stats_line(&o));
                    }
                    ExitCode::from(o.code.clamp(0, 255) as u8)
                }
                Err(e) => fail(&e.to_string(), 125),
            }
        }
        Cmd::Syscalls { sandbox, format } => {
            print!("{}", syscalls::render(sandbox, format));
            ExitCode::SUCCESS
        }
        Cmd::Cleanup { cgroup_parents, json } => cleanup(&cgroup_parents, json),
        Cmd::Platform(c) => serve_cli::run(c),
    }
}

fn cleanup(parents: &[String], json: bool) -> ExitCode {
    if !fnbox_sandbox::sys::is_root() {
        return fail(&fnbox_sandbox::Error::NotRoot.to_string(), 1);
    }
    let layout = match fnbox_sandbox::cgroup::Layout::detect() {
        Ok(l) => l,
        Err(e) => return fail(&e.to_string(), 1),
    };
    let paths = fnbox_sandbox::Paths::from_env();
    let mut total = launch::Cleaned::default();
    for parent in parents {
        let c = launch::clean_host(&paths, &layout, parent);
        total.cgroups += c.cgroups;
        total.spares += c.spares;
        total.network += c.network;
    }
    if json {
        println!("{}", serde_json::to_string(&total).unwrap_or_default());
    } else {
        println!(
            "removed {} spare disk layer(s), {} cgroup(s) and {} network link(s)/rule chain(s) of dead sandboxes",
            total.spares, total.cgroups, total.network
        );
    }
    ExitCode::SUCCESS
}

fn fail(msg: &str, code: u8) -> ExitCode {
    eprintln!("fnbox: {msg}");
    ExitCode::from(code)
}
