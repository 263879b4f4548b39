//! `fnbox deploy`: its options, turned into a deploy request (the closed sets are the
//! libraries' enums, so that clap refuses a wrong value before the code is packed and sent).

use super::ClientArgs;
use clap::Args;
use fnbox_platform::function::{DeployRequest, Runtime};
use fnbox_sandbox::net::Network;
use fnbox_sandbox::spec::SandboxKind;
use std::path::PathBuf;

/// `fnbox deploy`'s options.
#[derive(Args)]
pub struct DeployArgs {
    /// 1 to 34 characters among a-z, 0-9 and '-'.
    #[arg(required_unless_present = "file")]
    pub name: Option<String>,
    /// A directory or a .zip with the function's code.
    #[arg(required_unless_present = "file")]
    pub path: Option<PathBuf>,
    /// A Scaleway Serverless Framework project file: deploys its functions and schedules
    /// (the project's directory is the code); says which keys it ignores.
    #[arg(short = 'f', long = "file", value_name = "serverless.yml", conflicts_with_all = ["name", "path", "runtime"])]
    pub file: Option<PathBuf>,
    /// python3, node or binary.
    #[arg(long, value_enum, required_unless_present = "file")]
    runtime: Option<Runtime>,
    /// MODULE.FUNCTION (python3, node; default handler.handle) or an executable's path (binary; default main).
    #[arg(long)]
    handler: Option<String>,
    /// Memory in MiB, a tier: 128, 256, 512, 1024, 2048, 3072 or 4096 [default: 256].
    #[arg(long)]
    memory: Option<String>,
    /// v2 (the Sentry: pre-warmed sandboxes, the fastest cold starts) or v1 (container) [default: v2].
    #[arg(long, value_enum)]
    sandbox: Option<SandboxKind>,
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
    #[arg(long, value_enum)]
    network: Option<Network>,
    /// Install the dependencies on the server first, in a sandbox with egress on the
    /// function's runtime: python3 `pip install -r requirements.txt --target package`, node
    /// `npm ci` (needs package-lock.json). The built tree is what is stored.
    #[arg(long, conflicts_with = "file")]
    pub build: bool,
    #[command(flatten)]
    pub c: ClientArgs,
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

pub fn deploy_request(a: &DeployArgs) -> Result<DeployRequest, String> {
    let memory_mb = match &a.memory {
        Some(m) => Some(
            fnbox_sandbox::spec::parse_size_mb(m)
                .ok_or_else(|| format!("memory '{m}' is not a size: use a tier such as 128, 256 or 1024 (MiB)"))?,
        ),
        None => None,
    };
    let runtime: Runtime = a.runtime.ok_or("deploy needs --runtime python3, node or binary")?;
    Ok(DeployRequest {
        runtime,
        code: String::new(),
        handler: a.handler.clone(),
        memory_mb,
        sandbox: a.sandbox,
        min_scale: a.min_scale,
        max_scale: a.max_scale,
        timeout_s: a.timeout,
        concurrency: a.concurrency,
        max_queue: a.max_queue,
        env: pairs(&a.env, "--env")?,
        secrets: pairs(&a.secrets, "--secret")?,
        private: a.private,
        network: a.network,
    })
}
