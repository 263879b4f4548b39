//! NATS JetStream queue triggers: a durable pull consumer per trigger (`fnbox-TRIGGER_ID`) on
//! the stream that holds the subject (given with `--stream`, found by subject, or made by
//! fnbox). Each message becomes a `POST` to the function through the gateway's path; it is
//! acknowledged only once the function answered < 300, retried (redelivered) up to
//! [`RETRIES`] times otherwise, then published to the dead-letter subject if one is set and
//! terminated. Messages are pulled only while the trigger has fewer than `max_in_flight` in
//! flight and the function has room ([`super::queue::Flow`]): at max scale with every
//! instance busy, messages wait in the stream, not in fnbox's memory. A message whose call was under way
//! when fnbox died is redelivered after the consumer's ack wait (at least once).

use super::nats_client::{Conn, JsError, Msg};
pub use super::nats_source::{NatsSource, DEFAULT_SERVER};
use super::queue::{self, Flow, Session, Verdict};
use super::runner::Handle;
use super::{Trigger, RETRIES};
use crate::instances::BoxFuture;
use crate::platform::Platform;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How long one pull request stays open on the server.
const PULL_EXPIRES: Duration = Duration::from_secs(2);
/// Messages a pull asks for at least while calls are in flight (see `consume`).
const PULL_MIN: usize = 2;
/// The subject of the message, for the function.
const SUBJECT_HEADER: &str = "x-fnbox-subject";

fn durable(t: &Trigger) -> String {
    format!("fnbox-{}", t.id)
}

/// What a consumer does with each message it pulls, and what JetStream is then told:
/// `trigger_message` for a queue trigger's; the asynchronous calls' consumer has its own.
pub(crate) type OnMessage = for<'a> fn(&'a Arc<Platform>, &'a Trigger, &'a Msg, &'a Delivery) -> BoxFuture<'a, Verdict>;

/// Starts a queue trigger's consumer.
pub fn spawn(p: Arc<Platform>, t: Trigger, src: NatsSource) -> Handle {
    spawn_with(p, t, src, trigger_message)
}

/// Starts a consumer that hands each message to `on_message`.
pub(crate) fn spawn_with(p: Arc<Platform>, t: Trigger, src: NatsSource, on_message: OnMessage) -> Handle {
    let first = format!("connecting to {}", src.server);
    queue::spawn(p, t, first, move |p, t, session| {
        let src = src.clone();
        async move { consume(&p, &t, &src, &session, on_message).await }
    })
}

/// Deletes the trigger's durable consumer on its server (in the background, best effort):
/// the trigger or its function was removed. The stream and its messages are left alone.
pub fn forget(t: &Trigger) {
    let super::Source::Nats(src) = &t.source else { return };
    let (src, name) = (src.clone(), durable(t));
    tokio::spawn(async move {
        let (tx, _rx) = mpsc::channel(1);
        let Ok(conn) = Conn::connect(&src.server, tx).await else { return };
        if let Ok(stream) = stream_of(&conn, &src, None).await {
            let _ = conn.js(&format!("CONSUMER.DELETE.{stream}.{name}"), &serde_json::json!({})).await;
        }
    });
}

/// The stream that holds the subject: the one given, or the one whose subjects cover it, or
/// (`create` with a name) a new one.
async fn stream_of(conn: &Conn, src: &NatsSource, create: Option<&str>) -> std::result::Result<String, String> {
    if let Some(s) = &src.stream {
        return match conn.js(&format!("STREAM.INFO.{s}"), &serde_json::json!({})).await {
            Ok(_) => Ok(s.clone()),
            Err(JsError::Api { code: 404, .. }) => Err(format!(
                "stream '{s}' does not exist on {}: create it, or leave --stream out and fnbox makes one",
                src.server
            )),
            Err(e) => Err(e.to_string()),
        };
    }
    let names =
        conn.js("STREAM.NAMES", &serde_json::json!({ "subject": src.subject })).await.map_err(|e| e.to_string())?;
    if let Some(s) = names["streams"].as_array().and_then(|a| a.first()).and_then(|s| s.as_str()) {
        return Ok(s.to_string());
    }
    let Some(name) = create else { return Err("no stream holds the subject".into()) };
    let config = serde_json::json!({
        "name": name, "subjects": [src.subject], "retention": "limits", "storage": "file",
        "discard": "old", "num_replicas": 1,
    });
    conn.js(&format!("STREAM.CREATE.{name}"), &config)
        .await
        .map_err(|e| format!("cannot create stream {name}: {e}"))?;
    Ok(name.to_string())
}

/// Runs the consumer until its connection fails; returns why.
async fn consume(p: &Arc<Platform>, t: &Trigger, src: &NatsSource, session: &Session, on_message: OnMessage) -> String {
    let (tx, mut pulls) = mpsc::channel::<Msg>(src.max_in_flight as usize + 16);
    let conn = match Conn::connect(&src.server, tx).await {
        Ok(c) => c,
        Err(e) => return format!("{e} (is nats-server running with -js?)"),
    };
    let stream = match stream_of(&conn, src, Some(&durable(t))).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let name = durable(t);
    let Some(pool) = p.pool(&t.function) else { return format!("function {} is gone", t.function) };
    // Long enough for a call that waited in the function's queue, then ran to its timeout.
    let ack_wait = Duration::from_secs(2 * pool.current().function.config.timeout_s + 5);
    let config = serde_json::json!({
        "stream_name": stream,
        "config": {
            "durable_name": name, "deliver_policy": "all", "ack_policy": "explicit",
            "ack_wait": ack_wait.as_nanos() as u64, "max_deliver": RETRIES + 1,
            "filter_subject": src.subject, "max_ack_pending": src.max_in_flight * 2,
            "replay_policy": "instant",
        },
    });
    if let Err(e) = conn.js(&format!("CONSUMER.DURABLE.CREATE.{stream}.{name}"), &config).await {
        // It exists with an older configuration (another ack wait): use it as it is.
        if conn.js(&format!("CONSUMER.INFO.{stream}.{name}"), &serde_json::json!({})).await.is_err() {
            return format!("cannot create the consumer {name} on stream {stream}: {e}");
        }
    }
    session.connected(format!("consuming {} from stream {stream} on {} (consumer {name})", src.subject, src.server));
    let flow = Flow::new(src.max_in_flight);
    let next = format!("CONSUMER.MSG.NEXT.{stream}.{name}");
    let inbox = conn.pull_inbox();
    loop {
        if let Some(why) = conn.ended() {
            return format!("the connection to {} ended: {why}", src.server);
        }
        let Some(room) = flow.room(p, &t.function) else { return format!("function {} is gone", t.function) };
        if room == 0 || (room < PULL_MIN && flow.in_flight() > 0) {
            // Back-pressure: nothing is pulled until a call ends. While calls run, a pull
            // waits for room for two: half the pull requests the broker handles per message.
            flow.wait().await;
            continue;
        }
        let ask = serde_json::json!({ "batch": room, "expires": PULL_EXPIRES.as_nanos() as u64 });
        if let Err(e) = conn.publish(&format!("$JS.API.{next}"), Some(&inbox), &[], ask.to_string().as_bytes()).await {
            return e;
        }
        let deadline = tokio::time::Instant::now() + PULL_EXPIRES + Duration::from_millis(500);
        let mut got = 0;
        while got < room {
            match tokio::time::timeout_at(deadline, pulls.recv()).await {
                Err(_) => break,
                Ok(None) => {
                    let why = conn.ended().unwrap_or_else(|| "closed".into());
                    return format!("the connection to {} ended: {why}", src.server);
                }
                // 100: a heartbeat; 404, 408, 409: this pull request is over.
                Ok(Some(m)) if m.status == Some(100) => {}
                Ok(Some(m)) if m.status.is_some() => break,
                Ok(Some(m)) => {
                    got += 1;
                    let (p, t, src, conn) = (p.clone(), t.clone(), src.clone(), conn.clone());
                    flow.start(async move { handle(&p, &t, &src, &conn, m, on_message).await });
                }
            }
        }
    }
}

/// What JetStream's ack subject tells of a message:
/// `$JS.ACK.[DOMAIN.ACCOUNT_HASH.]STREAM.CONSUMER.DELIVERED.STREAM_SEQ.CONSUMER_SEQ.TIMESTAMP.PENDING[.TOKEN]`.
pub(crate) struct Delivery {
    stream: String,
    /// 1 for the first delivery of the message.
    pub delivered: u32,
    stream_seq: u64,
    published_ns: u64,
}

impl Delivery {
    /// The message's id: `STREAM/SEQUENCE`.
    fn id(&self) -> String {
        format!("{}/{}", self.stream, self.stream_seq)
    }
}

fn parse_ack(reply: &str) -> Option<Delivery> {
    let tokens: Vec<&str> = reply.strip_prefix("$JS.ACK.")?.split('.').collect();
    let t = match tokens.len() {
        7 => &tokens[..],
        n if n >= 9 => &tokens[2..],
        _ => return None,
    };
    Some(Delivery {
        stream: t[0].to_string(),
        delivered: t[2].parse().ok()?,
        stream_seq: t[3].parse().ok()?,
        published_ns: t[5].parse().ok()?,
    })
}

/// A queue trigger's message: a `POST` of its payload to the function.
fn trigger_message<'a>(p: &'a Arc<Platform>, t: &'a Trigger, m: &'a Msg, d: &'a Delivery) -> BoxFuture<'a, Verdict> {
    let id = d.id();
    let mut headers = vec![(SUBJECT_HEADER.to_string(), m.subject.clone())];
    if let Some((_, v)) = m.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("content-type".into(), v.clone()));
    }
    let message = queue::Message {
        what: format!("message {id} on {}", m.subject),
        id,
        attempt: d.delivered,
        published: UNIX_EPOCH + Duration::from_nanos(d.published_ns),
        headers,
        body: m.payload.clone(),
    };
    Box::pin(queue::call(p, t, message))
}

async fn handle(p: &Arc<Platform>, t: &Trigger, src: &NatsSource, conn: &Conn, m: Msg, on_message: OnMessage) {
    let Some(reply) = m.reply.as_deref() else { return };
    let Some(d) = parse_ack(reply) else { return };
    let id = d.id();
    let verdict = on_message(p, t, &m, &d).await;
    let answer: Vec<u8> = match verdict {
        Verdict::Done => b"+ACK".to_vec(),
        Verdict::Retry(delay) => format!("-NAK {{\"delay\": {}}}", delay.as_nanos()).into_bytes(),
        Verdict::GiveUp(status) => {
            let said = match &src.dead_letter {
                Some(dl) => {
                    let headers = vec![
                        ("X-Fnbox-Trigger".to_string(), format!("nats/{}", t.id)),
                        ("X-Fnbox-Function".to_string(), t.function.clone()),
                        ("X-Fnbox-Message-Id".to_string(), id.clone()),
                        ("X-Fnbox-Subject".to_string(), m.subject.clone()),
                        ("X-Fnbox-Status".to_string(), status.to_string()),
                        ("Nats-Msg-Id".to_string(), format!("fnbox-dl-{id}")),
                    ];
                    match conn.publish(dl, None, &headers, &m.payload).await {
                        Ok(()) => format!("published to dead-letter subject {dl}"),
                        Err(e) => format!("could not be published to dead-letter subject {dl} ({e}); dropped"),
                    }
                }
                None => "dropped (no --dead-letter subject)".into(),
            };
            queue::gave_up(p, t, &id, d.delivered, &said);
            b"+TERM".to_vec()
        }
    };
    let _ = conn.publish(reply, None, &[], &answer).await;
}

#[cfg(test)]
mod tests {
    use super::super::nats_source::subject_matches;
    use super::*;

    #[test]
    fn ack_subjects_and_checks() {
        let d = parse_ack("$JS.ACK.ORDERS.fnbox-trg-1.3.42.40.1796551230000000000.7").unwrap();
        assert_eq!((d.stream.as_str(), d.delivered, d.stream_seq), ("ORDERS", 3, 42));
        let d = parse_ack("$JS.ACK.dom.hash.ORDERS.c.1.9.9.5.0.tok").unwrap();
        assert_eq!((d.stream.as_str(), d.delivered, d.stream_seq, d.published_ns), ("ORDERS", 1, 9, 5));
        assert!(parse_ack("$JS.ACK.x.y").is_none() && parse_ack("other.subject").is_none());
        assert!(subject_matches("orders.*", "orders.new") && subject_matches("orders.>", "orders.a.b"));
        assert!(!subject_matches("orders.*", "orders.a.b") && !subject_matches("orders.new", "orders.dead"));
        let e = NatsSource::new("a b".into(), None, None, None, 10).unwrap_err().to_string();
        assert!(e.starts_with("nats: subject 'a b'"), "{e}");
        let e = NatsSource::new("o.*".into(), None, None, Some("o.dl".into()), 10).unwrap_err().to_string();
        assert!(e.starts_with("dead_letter: "), "{e}");
        let e = NatsSource::new("o".into(), None, Some("http://x".into()), None, 10).unwrap_err().to_string();
        assert!(e.starts_with("server: "), "{e}");
        let s = NatsSource::new("o".into(), None, Some("127.0.0.1:4222".into()), None, 10).unwrap();
        assert_eq!(s.server, "nats://127.0.0.1:4222");
    }
}
