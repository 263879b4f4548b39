//! `fnbox-runc-v1` / `fnbox-runc-v2`: the runc-compatible command line containerd's
//! `io.containerd.runc.v2` shim drives. It parses arguments and calls `fnbox_oci`.

use clap::{Parser, Subcommand};
use fnbox_oci::{log::Log, Globals};
use fnbox_sandbox::spec::SandboxKind;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--log-format`: how the runtime's own messages are written (runc's two).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `ps --format`: runc's two.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PsFormat {
    Table,
    Json,
}

#[derive(Parser)]
#[command(name = "fnbox-runc", version, about = "fnbox's sandboxes as an OCI runtime (runc-compatible)")]
struct Cli {
    /// Where containers' state lives.
    #[arg(long, global = true, default_value = fnbox_oci::DEFAULT_ROOT)]
    root: PathBuf,
    /// Append the runtime's messages to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,
    /// json or text.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Accepted: fnbox creates the cgroup systemd would use itself, without asking systemd.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    #[arg(long, global = true, hide = true)]
    debug: bool,
    /// runc's `--rootless true|false|auto` (`spec --rootless` too): accepted, fnbox always maps
    /// the container's ids itself.
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Build a container from a bundle and hold its program until `start`.
    Create {
        #[command(flatten)]
        c: CreateArgs,
    },
    /// Start a created container's program.
    Start { id: String },
    /// Print a container's OCI state.
    State { id: String },
    /// Send a signal (number or name; default SIGTERM) to a container's program.
    Kill {
        /// Signal every process of the container.
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Remove a stopped container (--force: stop it first).
    Delete {
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Create and start a container; in the foreground, wait for it and remove it.
    Run {
        #[command(flatten)]
        c: CreateArgs,
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Run a process (an OCI process JSON) in a running container.
    Exec {
        #[arg(long, short = 'p')]
        process: Option<PathBuf>,
        #[arg(long, short = 'd')]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long, short = 't')]
        tty: bool,
        id: String,
        /// Without --process: the command and its arguments.
        #[arg(trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// List a container's processes.
    Ps {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: PsFormat,
        id: String,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a container's limits (OCI LinuxResources JSON; - reads standard input).
    Update {
        #[arg(long, short = 'r')]
        resources: PathBuf,
        id: String,
    },
    /// Print what this runtime supports (OCI runtime features).
    Features,
    /// Write a config.json to start a bundle from.
    Spec {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
    },
}

#[derive(clap::Args)]
struct CreateArgs {
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot", hide = true)]
    no_pivot: bool,
    #[arg(long = "no-new-keyring", hide = true)]
    no_new_keyring: bool,
    #[arg(long = "preserve-fds", hide = true)]
    preserve_fds: Option<u32>,
    id: String,
}

pub fn main(kind: SandboxKind) -> ExitCode {
    let cli = Cli::parse();
    let g = Globals {
        root: cli.root,
        log: Log { path: cli.log, json: cli.log_format == LogFormat::Json },
        systemd_cgroup: cli.systemd_cgroup,
        kind,
    };
    match dispatch(&g, cli.verb) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            let msg = e.to_string();
            // The shim reads the last error from --log; a person reads standard error.
            g.log.error(&msg);
            if g.log.path.is_some() {
                eprintln!("fnbox-runc: {msg}");
            }
            ExitCode::from(1)
        }
    }
}

fn print(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn dispatch(g: &Globals, verb: Verb) -> fnbox_oci::Result<i32> {
    match verb {
        Verb::Create { c } => {
            fnbox_oci::create(g, &c.id, &c.bundle, c.pid_file.as_deref(), c.console_socket.as_deref())?
        }
        Verb::Start { id } => fnbox_oci::start(g, &id)?,
        Verb::State { id } => print(&fnbox_oci::state(g, &id)?),
        Verb::Kill { all, id, signal } => {
            let sig = fnbox_oci::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            fnbox_oci::kill(g, &id, sig, all)?
        }
        Verb::Delete { force, id } => fnbox_oci::delete(g, &id, force)?,
        Verb::Run { c, detach } => {
            return fnbox_oci::run(g, &c.id, &c.bundle, c.pid_file.as_deref(), c.console_socket.as_deref(), detach)
        }
        Verb::Exec { process, detach, pid_file, console_socket, tty, id, command } => {
            let process = match &process {
                Some(p) => fnbox_oci::ProcessFrom::File(p),
                None if command.is_empty() => {
                    return Err(fnbox_oci::Error::Usage("exec needs --process FILE or a command".into()))
                }
                None => fnbox_oci::ProcessFrom::Command { args: command, tty },
            };
            let args = fnbox_oci::ExecArgs {
                id: &id,
                process,
                detach,
                pid_file: pid_file.as_deref(),
                console_socket: console_socket.as_deref(),
            };
            return fnbox_oci::exec(g, &args);
        }
        Verb::Ps { format, id } => {
            let pids = fnbox_oci::ps(g, &id)?;
            if format == PsFormat::Json {
                println!("{}", serde_json::to_string(&pids).unwrap_or_default());
            } else {
                println!("PID");
                for p in pids {
                    println!("{p}");
                }
            }
        }
        Verb::Pause { id } => fnbox_oci::pause(g, &id)?,
        Verb::Resume { id } => fnbox_oci::resume(g, &id)?,
        Verb::Update { resources, id } => {
            let text = if resources == std::path::Path::new("-") {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&resources)
            }
            .map_err(|e| fnbox_oci::Error::Usage(format!("cannot read {}: {e}", resources.display())))?;
            fnbox_oci::update(g, &id, &text)?
        }
        Verb::Features => print(&fnbox_oci::features()),
        Verb::Spec { bundle } => fnbox_oci::write_spec(&bundle)?,
    }
    Ok(0)
}
