//! The platform's subcommands: `fnbox serve` ([`serve`]) and the verbs that talk to it
//! (deploy: [`deploy`], triggers: [`trigger`]). Argument parsing only; the work is in
//! `fnbox_platform`.

mod deploy;
mod serve;
mod trigger;

use clap::{Args, Subcommand};
use deploy::{deploy_request, DeployArgs};
use fnbox_platform::client::{self, InvokeArgs, Target};
use fnbox_platform::logs::Stream;
use fnbox_platform::server;
use serve::ServeArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use trigger::TriggerCmd;

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
    #[arg(long, value_enum)]
    stream: Option<Stream>,
    /// Only lines containing this text.
    #[arg(long, value_name = "TEXT")]
    grep: Option<String>,
}

impl LogFilterArgs {
    fn pairs(self) -> Vec<(&'static str, String)> {
        let stream = self.stream.map(|s| s.as_str().to_string());
        [("since", self.since), ("instance", self.instance), ("stream", stream), ("grep", self.grep)]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
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

pub fn run(cmd: PlatformCmd) -> ExitCode {
    let code = match cmd {
        PlatformCmd::Serve(a) => return serve::serve(*a),
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
        PlatformCmd::Trigger(TriggerCmd::Create(a)) => return trigger::create(&a),
        PlatformCmd::Trigger(TriggerCmd::Ls { function, c }) => {
            client::run(client::trigger::ls(&c.target(), function.as_deref()))
        }
        PlatformCmd::Trigger(TriggerCmd::Rm { id, c }) => client::run(client::trigger::rm(&c.target(), &id)),
    };
    exit(code)
}

/// A verb's exit status as the process's.
fn exit(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("fnbox: {msg}");
    ExitCode::FAILURE
}
