//! `fnbox trigger ...`: the verbs and their options, turned into the API's requests.

use super::ClientArgs;
use clap::{Args, Subcommand};
use fnbox_platform::client;
use fnbox_platform::triggers::CreateTrigger;
use std::process::ExitCode;

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

/// `fnbox trigger create`.
pub fn create(a: &TriggerCreate) -> ExitCode {
    let data = match a.data.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        Some(Err(e)) => return super::fail(&format!("--data is not JSON ({e}): quote it, e.g. --data '{{\"k\": 1}}'")),
        Some(Ok(v)) => Some(v),
        None => None,
    };
    let (access_key, secret_key) = match a.credentials.as_deref().map(client::trigger::credentials) {
        Some(Err(e)) => return super::fail(&e.to_string()),
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
    super::exit(client::run(client::trigger::create(&a.c.target(), &a.function, &req)))
}
