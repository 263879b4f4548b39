//! SQS queue triggers (Scaleway Queues, AWS SQS): long-polling `ReceiveMessage` while the
//! trigger and the function have room ([`super::queue::Flow`]); each message becomes a `POST`
//! to the function; `DeleteMessage` once it answered < 300; otherwise the message is made
//! visible again after 1, 2, 4 s (`ChangeMessageVisibility`) and its receive count is the
//! attempt; after [`super::RETRIES`] retries it is sent to the dead-letter queue if one is set
//! (`SendMessage`, then deleted), or dropped, and logged. A message whose call was under way
//! when fnbox died comes back after its visibility timeout (at least once). See
//! docs/architecture.md, "SQS".

use super::queue::{self, Flow, Session, Verdict};
use super::runner::Handle;
use super::sigv4::Credentials;
use super::sqs_client::{Client, QueueUrl};
use super::Trigger;
use crate::error::{Error, Result};
use crate::platform::Platform;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The longest long poll SQS allows.
const WAIT_S: u64 = 20;
/// Messages per `ReceiveMessage`, at most (SQS's limit).
const BATCH_MAX: usize = 10;
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// The queue's URL, for the function.
const QUEUE_HEADER: &str = "x-fnbox-queue";
/// Where no region is given nor named by the URL (moto and most stand-ins accept any).
const DEFAULT_REGION: &str = "us-east-1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SqsSource {
    pub queue_url: String,
    pub region: String,
    pub access_key: String,
    /// Sealed in the registry (`crate::seal`), never shown: empty in a trigger's view
    /// ([`super::runner::view`]), which leaves it out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    pub max_in_flight: u32,
}

impl SqsSource {
    pub fn new(
        queue_url: String,
        region: Option<String>,
        access_key: Option<String>,
        secret_key: Option<String>,
        dead_letter: Option<String>,
        max_in_flight: u32,
    ) -> Result<Self> {
        let q = QueueUrl::parse(&queue_url, "sqs").map_err(Error::Invalid)?;
        if let Some(d) = &dead_letter {
            let dq = QueueUrl::parse(d, "dead_letter").map_err(Error::Invalid)?;
            if !dq.same_endpoint(&q) {
                return Err(Error::Invalid(format!(
                    "dead_letter: '{d}' is on another endpoint than the queue ({}): the trigger's credentials are for that one; use a queue there",
                    q.authority
                )));
            }
            if dq.url.trim_end_matches('/') == q.url.trim_end_matches('/') {
                return Err(Error::Invalid(format!(
                    "dead_letter: '{d}' is the trigger's own queue: dead letters would come back"
                )));
            }
        }
        let region = region.or_else(|| q.region()).unwrap_or_else(|| DEFAULT_REGION.to_string());
        let region_ok = (1..=32).contains(&region.len())
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(Error::Invalid(format!("region: '{region}' is not a region name (fr-par, eu-west-3, ...)")));
        }
        let (Some(access_key), Some(secret_key)) = (access_key, secret_key) else {
            return Err(Error::Invalid(
                "access_key, secret_key: an SQS trigger needs both: give them with --credentials FILE (aws_access_key_id = ..., aws_secret_access_key = ...)".into(),
            ));
        };
        let key_ok = |k: &str| (1..=256).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok(&access_key) || !key_ok(&secret_key) {
            return Err(Error::Invalid(
                "access_key, secret_key: 1 to 256 printable characters without spaces each".into(),
            ));
        }
        Ok(Self { queue_url: q.url, region, access_key, secret_key, dead_letter, max_in_flight })
    }
}

pub fn spawn(p: Arc<Platform>, t: Trigger, src: SqsSource) -> Handle {
    let first = format!("connecting to {}", src.queue_url);
    queue::spawn(p, t, first, move |p, t, session| {
        let src = src.clone();
        async move { consume(&p, &t, &src, &session).await }
    })
}

/// Runs the consumer until a call to the queue fails; returns why.
async fn consume(p: &Arc<Platform>, t: &Trigger, src: &SqsSource, session: &Session) -> String {
    let secret_key = match p.registry.trigger_secret(t) {
        Ok(s) => s,
        Err(e) => return format!("the trigger's secret key cannot be opened ({e}): make the trigger again"),
    };
    let Ok(queue) = QueueUrl::parse(&src.queue_url, "sqs") else { return "the queue URL is not valid".into() };
    let authority = queue.authority.clone();
    let creds = Credentials { access_key: src.access_key.clone(), secret_key };
    let client = Arc::new(Client::new(queue, creds, src.region.clone()));
    let url = serde_json::json!(src.queue_url);
    let ask = serde_json::json!({ "QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"] });
    if let Err(e) = client.call("GetQueueAttributes", ask, CALL_TIMEOUT).await {
        return e;
    }
    session.connected(format!("consuming {} on {authority}", src.queue_url));
    let flow = Flow::new(src.max_in_flight);
    loop {
        let Some(room) = flow.room(p, &t.function) else { return format!("function {} is gone", t.function) };
        if room == 0 {
            // Back-pressure: nothing is received until a call ends.
            flow.wait().await;
            continue;
        }
        let Some(pool) = p.pool(&t.function) else { return format!("function {} is gone", t.function) };
        // Long enough for a call that waited in the function's queue, then ran to its
        // timeout: not delivered again while still running.
        let visibility = 2 * pool.current().function.config.timeout_s + 5;
        let ask = serde_json::json!({
            "QueueUrl": url, "MaxNumberOfMessages": room.min(BATCH_MAX), "WaitTimeSeconds": WAIT_S,
            "VisibilityTimeout": visibility,
            "AttributeNames": ["ApproximateReceiveCount", "SentTimestamp"],
            "MessageSystemAttributeNames": ["ApproximateReceiveCount", "SentTimestamp"],
        });
        let got = match client.call("ReceiveMessage", ask, Duration::from_secs(WAIT_S) + CALL_TIMEOUT).await {
            Ok(v) => v,
            Err(e) => return e,
        };
        let messages = got["Messages"].as_array().cloned().unwrap_or_default();
        for m in messages.into_iter().take(room.min(BATCH_MAX)) {
            let (p, t, src, client) = (p.clone(), t.clone(), src.clone(), client.clone());
            flow.start(async move { handle(&p, &t, &src, &client, m).await });
        }
    }
}

async fn handle(p: &Arc<Platform>, t: &Trigger, src: &SqsSource, client: &Client, m: serde_json::Value) {
    let (Some(id), Some(receipt)) = (m["MessageId"].as_str(), m["ReceiptHandle"].as_str()) else {
        p.logs.event(
            &t.function,
            "-",
            format!("sqs trigger {}: a message without MessageId or ReceiptHandle was skipped", t.id),
        );
        return;
    };
    let attrs = &m["Attributes"];
    let number = |k: &str| attrs[k].as_str().and_then(|s| s.parse::<u64>().ok());
    let attempt = number("ApproximateReceiveCount").unwrap_or(1).clamp(1, u32::MAX as u64) as u32;
    let published = UNIX_EPOCH + Duration::from_millis(number("SentTimestamp").unwrap_or(0));
    let body = m["Body"].as_str().unwrap_or("").to_string();
    let message = queue::Message {
        id: id.to_string(),
        what: format!("message {id} of {}", src.queue_url),
        attempt,
        published,
        headers: vec![(QUEUE_HEADER.to_string(), src.queue_url.clone())],
        body: bytes::Bytes::from(body.clone()),
    };
    let delete = serde_json::json!({ "QueueUrl": src.queue_url, "ReceiptHandle": receipt });
    match queue::call(p, t, message).await {
        Verdict::Done => {
            if let Err(e) = client.call("DeleteMessage", delete, CALL_TIMEOUT).await {
                p.logs.event(&t.function, "-", format!("message {id}: {e}: it will be delivered again"));
            }
        }
        Verdict::Retry(delay) => {
            let ask = serde_json::json!({
                "QueueUrl": src.queue_url, "ReceiptHandle": receipt, "VisibilityTimeout": delay.as_secs(),
            });
            // Failing, it comes back at the end of its visibility timeout instead.
            let _ = client.call("ChangeMessageVisibility", ask, CALL_TIMEOUT).await;
        }
        Verdict::GiveUp(status) => {
            let said = match &src.dead_letter {
                Some(dl) => {
                    let attr = |v: String| serde_json::json!({ "DataType": "String", "StringValue": v });
                    let send = serde_json::json!({
                        "QueueUrl": dl, "MessageBody": body,
                        "MessageAttributes": {
                            "fnbox-trigger": attr(format!("sqs/{}", t.id)),
                            "fnbox-function": attr(t.function.clone()),
                            "fnbox-message-id": attr(id.to_string()),
                            "fnbox-status": attr(status.to_string()),
                        },
                    });
                    match client.call("SendMessage", send, CALL_TIMEOUT).await {
                        Ok(_) => match client.call("DeleteMessage", delete, CALL_TIMEOUT).await {
                            Ok(_) => format!("sent to dead-letter queue {dl}"),
                            Err(e) => format!("sent to dead-letter queue {dl}, but {e}: it may be delivered again"),
                        },
                        Err(e) => format!(
                            "could not be sent to dead-letter queue {dl} ({e}): left in the queue, to be tried again"
                        ),
                    }
                }
                None => match client.call("DeleteMessage", delete, CALL_TIMEOUT).await {
                    Ok(_) => "dropped (no --dead-letter queue)".into(),
                    Err(e) => format!("not dropped ({e}): it will be delivered again"),
                },
            };
            queue::gave_up(p, t, id, attempt, &said);
        }
    }
}
