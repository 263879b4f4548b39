//! Asynchronous calls kept in NATS JetStream (`fnbox serve --async-nats`), against a real
//! `nats-server -js` on a free port: 202 at once, the request in the stream, its state and
//! answer in `GET /api/v1/invocations/ID`, the callback, retries then `failed`, a request
//! over the broker's `max_payload`, a broker that is down then up, and calls accepted but not
//! run when `fnbox serve` gets `kill -9`: they run after the restart, once.

mod common;
mod nats_support;
mod platform_support;
mod trigger_support;

use common::*;
use platform_support::*;
use std::time::Duration;
use trigger_support::*;

const STREAM: &str = "FNBOX_ASYNC";

fn call_lines(logs: &str, id: &str) -> usize {
    logs.lines().filter(|l| l.contains(&format!("CALL trigger=async/{id} "))).count()
}

#[test]
fn async_calls_in_jetstream_run_once_across_kill_9() {
    let mut nats = nats_support::start("async-js");
    let mut s = Server::start_with("async-js", &["--async-nats", &nats.url, "--callback-net", "127.0.0.1"]);
    // Timeout 10 s: a delivery fnbox took before dying comes back after 2 x 10 + 5 s.
    let _code = recorder(&s, "rec", &["--max-scale", "1"]);
    let post = |s: &Server, body: &[u8]| {
        let r = s.request("POST", "/async/fn/rec/", &[], body);
        assert_eq!(r.status, 202, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };
    let mut c = nats_support::Client::connect(nats.port).unwrap();

    // 202, run from the stream, the answer kept and POSTed to the callback.
    let (id, v, _) = async_call_with_callback(&s);
    assert_eq!(v["queue"], "jetstream", "{v}");
    assert!(s.logs("rec").contains(&format!("CALL trigger=async/{id} msg={id} attempt=1 body=hello")));
    // The stream is fnbox's work queue: the message went once acknowledged.
    let info = c.js(&format!("STREAM.INFO.{STREAM}"));
    assert_eq!(info["config"]["retention"], "workqueue", "{info}");
    assert!(eventually(Duration::from_secs(5), || c.js(&format!("STREAM.INFO.{STREAM}"))["state"]["messages"] == 0));
    assert!(c.js(&format!("CONSUMER.INFO.{STREAM}.fnbox-async-rec")).get("error").is_none());

    // Retried (redelivered after 1, 2, 4 s), then failed with its answer.
    let id = post(&s, b"fail");
    assert!(
        eventually(Duration::from_secs(30), || invocation(&s, &id)["status"] == "failed"),
        "{}",
        invocation(&s, &id)
    );
    assert_eq!(invocation(&s, &id)["attempts"], 4);
    assert_eq!(call_lines(&s.logs("rec"), &id), 4);

    // Over the broker's max_payload (1 MiB by default): refused, nothing kept.
    let r = s.request("POST", "/async/fn/rec/", &[], &vec![b'x'; 2 << 20]);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("max_payload"), "{}", r.text());

    // The broker down: 503, said; up again (its store kept): calls are taken again.
    nats.stop();
    let r = s.request("POST", "/async/fn/rec/", &[], b"while down");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("cannot be queued now"), "{}", r.text());
    nats.launch();
    let mut c = nats_support::Client::connect(nats.port).unwrap();
    let id = post(&s, b"back up");
    assert!(
        eventually(Duration::from_secs(40), || invocation(&s, &id)["status"] == "succeeded"),
        "{}",
        invocation(&s, &id)
    );

    // kill -9 with calls accepted and not run: one instance, six calls of 4 s; at most three
    // are in fnbox's hands (one running, two waiting for the instance), the rest in the stream.
    let ids: Vec<String> = (0..6).map(|i| post(&s, format!("sleep 4 #{i}").as_bytes())).collect();
    assert!(eventually(Duration::from_secs(20), || call_lines(&s.logs("rec"), &ids[0]) == 1));
    let pending = c.js(&format!("CONSUMER.INFO.{STREAM}.fnbox-async-rec"))["num_pending"].as_u64().unwrap_or(0);
    assert!(pending >= 2, "the calls should wait in the stream, not in fnbox: {pending} pending");
    // Half a second into the first call (the next starts 4 s after it): what ran, then kill -9.
    std::thread::sleep(Duration::from_millis(500));
    let before = s.logs("rec");
    s.kill9();
    s.launch();
    for id in &ids {
        assert!(
            eventually(Duration::from_secs(90), || invocation(&s, id)["status"] == "succeeded"),
            "{id}: {}",
            invocation(&s, id)
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let logs = s.logs("rec");
    for id in &ids {
        let (was, now) = (call_lines(&before, id), call_lines(&logs, id));
        if was == 0 {
            assert_eq!(now, 1, "call {id}, not started before the kill, ran {now} times: {logs}");
        } else {
            // Cut short by the kill: run again (at least once), then never more.
            assert!((1..=2).contains(&now), "call {id} ran {now} times: {logs}");
        }
    }

    // Removing the function removes its consumer.
    ok(&s.cli(&["rm", "rec"]));
    assert!(eventually(Duration::from_secs(10), || c
        .js(&format!("CONSUMER.INFO.{STREAM}.fnbox-async-rec"))
        .get("error")
        .is_some()));
}

#[test]
fn async_nats_flags_are_checked() {
    let out =
        std::process::Command::new(FNBOX).args(["serve", "--async-nats", "http://127.0.0.1:4222"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--async-nats: 'http://127.0.0.1:4222' is not a NATS server address"),
        "{}",
        stderr(&out)
    );
    let out = std::process::Command::new(FNBOX)
        .args(["serve", "--async-nats", "nats://127.0.0.1:4222", "--async-stream", "a.b"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("--async-stream: 'a.b' is not a stream name"), "{}", stderr(&out));
}
