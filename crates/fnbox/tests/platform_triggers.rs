//! Triggers end to end against a real `fnbox serve`: CRON (a real-time firing, then `kill -9`
//! across slots: no slot twice, a missed one once), asynchronous calls (202, their state,
//! callbacks, `kill -9`), and NATS JetStream queue triggers against a real `nats-server -js`
//! (delivery, retries then the dead-letter subject, back-pressure at max scale, at least
//! once across `kill -9`, an unreachable broker retried in the background). The scheduler's
//! slot arithmetic under a fake clock is unit-tested in `crates/platform/src/triggers`.

mod common;
mod nats_support;
mod platform_support;
mod trigger_support;

use common::*;
use platform_support::*;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use trigger_support::*;

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn rfc3339(t: u64) -> String {
    // The slot as fnbox logs it (UTC, seconds).
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn runs_for(logs: &str, what: &str) -> usize {
    logs.lines().filter(|l| l.contains(&format!("ran for {what} "))).count()
}

#[test]
fn trigger_input_errors_name_the_field() {
    let s = Server::start("trg-input");
    let _code = recorder(&s, "rec", &[]);
    let out = s.cli(&["trigger", "create", "rec", "--cron", "*/5 25 * * *"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("field 2 (hour) '25': 25 is out of range 0-23"), "{}", stderr(&out));
    let out = s.cli(&["trigger", "create", "rec", "--cron", "* * * *"]);
    assert!(stderr(&out).contains("has 4 field(s): use five"), "{}", stderr(&out));
    let out = s.cli(&["trigger", "create", "nope", "--cron", "* * * * *"]);
    assert!(stderr(&out).contains("function 'nope' does not exist"), "{}", stderr(&out));
    let out = s.cli(&["trigger", "create", "rec", "--nats", "a b"]);
    assert!(stderr(&out).contains("nats: subject 'a b' is not valid"), "{}", stderr(&out));
    let out = s.cli(&["trigger", "create", "rec", "--cron", "* * * * *", "--data", "{not json"]);
    assert!(stderr(&out).contains("--data is not JSON"), "{}", stderr(&out));
    let auth = format!("Bearer {}", s.admin_token());
    let r = s.request(
        "POST",
        "/api/v1/functions/rec/triggers",
        &[("Authorization", &auth)],
        br#"{"cron": "* * * * *", "colour": 1}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown field `colour`"), "{}", r.text());
    let r = s.request(
        "POST",
        "/api/v1/functions/rec/triggers",
        &[("Authorization", &auth)],
        br#"{"cron": "0 0 31 feb *"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.request(
        "POST",
        "/api/v1/functions/rec/triggers",
        &[("Authorization", &auth)],
        br#"{"cron": "0 0 * * *", "max_in_flight": 3}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("max_in_flight: only for queue triggers"), "{}", r.text());
    // Listed with its next runs (none here), removed with its function.
    let v = json_of(&s.cli(&["trigger", "ls", "rec", "--json"]));
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["next_runs"], serde_json::json!([]));
    ok(&s.cli(&["rm", "rec"]));
    let v = json_of(&s.cli(&["trigger", "ls", "--json"]));
    assert_eq!(v, serde_json::json!([]), "a trigger outlived its function");
    let out = s.cli(&["trigger", "rm", "trg-000000000000"]);
    assert!(stderr(&out).contains("there is no trigger 'trg-000000000000'"), "{}", stderr(&out));
}

/// A real minute: the trigger fires within a second of its slot, with its data and header;
/// `kill -9` right after a slot, down across the next: that one fires once at restart and
/// the one before never again.
#[test]
fn cron_fires_on_time_once_across_kill_9() {
    let mut s = Server::start("trg-cron");
    let _code = recorder(&s, "rec", &[]);
    let v = json_of(&s.cli(&[
        "trigger",
        "create",
        "rec",
        "--cron",
        "* * * * *",
        "--data",
        r#"{"job": "tick"}"#,
        "--name",
        "tick",
        "--json",
    ]));
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["next_runs"].as_array().unwrap().len(), 3, "{v}");
    let first = now_s() / 60 * 60 + 60;
    assert_eq!(v["next_runs"][0], rfc3339(first));
    assert!(
        eventually(Duration::from_secs(75), || runs_for(&s.logs("rec"), &format!("slot {}", rfc3339(first))) == 1),
        "slot {} did not fire: {}",
        rfc3339(first),
        s.logs("rec")
    );
    let logs = s.logs("rec");
    assert!(logs.contains(&format!(r#"CALL trigger=cron/{id} msg=None attempt=1 body={{"job":"tick"}}"#)), "{logs}");
    // Within a second of the slot: fnbox's own lag histogram.
    let series =
        format!("fnbox_trigger_lag_seconds_bucket{{function=\"rec\",trigger=\"{id}\",kind=\"cron\",le=\"1\"}}");
    assert_eq!(s.metric(&series), 1.0, "{}", s.metrics());
    s.kill9();
    let missed = first + 60;
    while now_s() < missed + 2 {
        std::thread::sleep(Duration::from_millis(200));
    }
    s.launch();
    assert!(
        eventually(Duration::from_secs(5), || runs_for(&s.logs("rec"), &format!("slot {}", rfc3339(missed))) == 1),
        "the missed slot {} did not fire at restart: {}",
        rfc3339(missed),
        s.logs("rec")
    );
    std::thread::sleep(Duration::from_secs(2));
    let logs = s.logs("rec");
    // Logs last across restarts: the first slot's run and the missed one, each once.
    assert_eq!(runs_for(&logs, &format!("slot {}", rfc3339(first))), 1, "an old slot again after the restart: {logs}");
    assert_eq!(runs_for(&logs, "slot"), 2, "a burst after the restart: {logs}");
    let v = json_of(&s.cli(&["trigger", "ls", "--json"]));
    assert_eq!(v[0]["last_run"], rfc3339(missed));
}

#[test]
fn async_calls_answer_202_and_survive_kill_9() {
    // The callback receiver is on this host: opened to callbacks, as an operator would.
    let mut s = Server::start_with("trg-async", &["--callback-net", "127.0.0.1"]);
    let _code = recorder(&s, "rec", &["--max-scale", "1"]);
    let auth = format!("Bearer {}", s.admin_token());
    // Answered at once; the answer is kept, and POSTed to the callback.
    let (id, _, cb) = async_call_with_callback(&s);
    assert!(cb.contains("ok hello"), "{cb}");
    assert!(s.logs("rec").contains(&format!("CALL trigger=async/{id} msg={id} attempt=1 body=hello")));
    // A failing call: retried three times, then failed with its answer.
    let id = s.request("POST", "/async/fn/rec/", &[], b"fail").json()["id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(30), || invocation(&s, &id)["status"] == "failed"),
        "{}",
        invocation(&s, &id)
    );
    assert_eq!(invocation(&s, &id)["attempts"], 4);
    // Bad input.
    let r = s.request("POST", "/async/fn/rec/", &[("X-Callback-Url", "http://127.0.0.1:9/done")], b"x");
    assert_eq!(r.status, 403, "a callback without a token: {}", r.text());
    let r =
        s.request("POST", "/async/fn/rec/", &[("X-Callback-Url", "ftp://x"), ("X-Auth-Token", &s.admin_token())], b"x");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("X-Callback-Url: 'ftp://x' is not valid"), "{}", r.text());
    assert_eq!(s.request("POST", "/async/fn/nope/", &[], b"x").status, 404);
    assert_eq!(s.request("GET", "/api/v1/invocations/inv-nope", &[("Authorization", &auth)], b"").status, 404);
    // Queued and running calls survive kill -9: one instance, three calls of 2 s each.
    let ids: Vec<String> = (0..3)
        .map(|i| {
            s.request("POST", "/async/fn/rec/", &[], format!("sleep 2 #{i}").as_bytes()).json()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(eventually(Duration::from_secs(20), || invocation(&s, &ids[0])["status"] == "running"));
    s.kill9();
    s.launch();
    for id in &ids {
        assert!(
            eventually(Duration::from_secs(40), || invocation(&s, id)["status"] == "succeeded"),
            "{id}: {}",
            invocation(&s, id)
        );
    }
}

/// A callback makes fnbox, as root on the host, connect where a token holder says: never to
/// the host itself, link-local (cloud metadata) or private ranges (docs/architecture.md,
/// "Network") unless the operator opened them with `--callback-net`. An address is refused at
/// once; a name that resolves to one is refused when the callback is made.
#[test]
fn callbacks_never_reach_the_host_or_metadata_unless_opened() {
    let s = Server::start("trg-cb");
    let _code = recorder(&s, "rec", &["--max-scale", "1"]);
    let admin = s.admin_token();
    let (sink, got) = callback_sink();
    let port = sink.rsplit(':').next().unwrap().to_string();
    for url in [
        format!("http://{sink}/done"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.1.2.3:8080/x".to_string(),
        format!("http://[::1]:{port}/done"),
        format!("http://LOCALHOST:{port}/done"),
    ] {
        let r = s.request("POST", "/async/fn/rec/", &[("X-Callback-Url", &url), ("X-Auth-Token", &admin)], b"x");
        assert_eq!(r.status, 400, "{url}: {}", r.text());
        assert!(r.text().contains("does not connect to") && r.text().contains("--callback-net"), "{}", r.text());
    }
    // A host that resolves to loopback only through the resolver (inet_aton's short form, as
    // names are): accepted, since names are resolved when the callback is made; the call runs,
    // and the callback is refused then, and logged.
    let url = format!("http://127.1:{port}/done");
    let r = s.request("POST", "/async/fn/rec/", &[("X-Callback-Url", &url), ("X-Auth-Token", &admin)], b"hello");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(20), || invocation(&s, &id)["status"] == "succeeded"));
    let logged = || {
        s.logs("rec").contains(&format!(
            "asynchronous call {id}: callback to {url}: failed: fnbox does not connect to 127.0.0.1"
        ))
    };
    assert!(eventually(Duration::from_secs(15), logged), "{}", s.logs("rec"));
    assert!(got.recv_timeout(Duration::from_secs(2)).is_err(), "the callback reached the host");
}

/// A global IPv6 address of the host itself is the host: a callback to it must be refused as
/// 127.0.0.1 is, or it reaches every service listening on `[::]` (attack20: `reach::refused`
/// knows only the host's IPv4 addresses, so it judged the host's own global IPv6 address as
/// any public one). The address sits on a veth pair of the test's own, removed after.
#[test]
fn callbacks_never_reach_the_hosts_own_ipv6_address() {
    struct Link(&'static str);
    impl Drop for Link {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip").args(["link", "del", self.0]).status();
        }
    }
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip").args(args).status().expect("ip (iproute2) is needed");
        assert!(st.success(), "ip {args:?} failed");
    };
    let (name, addr) = ("atk20cb6", "2a02:ffff:fb20::1");
    let _ = std::process::Command::new("ip").args(["link", "del", name]).status();
    ip(&["link", "add", name, "type", "veth", "peer", "name", "atk20cb6p"]);
    let _link = Link(name);
    ip(&["-6", "addr", "add", &format!("{addr}/128"), "dev", name, "nodad"]);
    ip(&["link", "set", name, "up"]);
    let s = Server::start("trg-cb6");
    let _code = recorder(&s, "rec", &["--max-scale", "1"]);
    let (sink, got) = callback_sink_at("[::]:0");
    let port = sink.rsplit(':').next().unwrap().to_string();
    let url = format!("http://[{addr}]:{port}/done");
    assert_callback_never_reaches(&s, &url, &got, "the host through its own IPv6 address");
}

/// `--allow-net` opens a range to sandboxes, which still never reach the host itself (its
/// input from their links is dropped): a callback must not reach the host's own address
/// through it either (attack20: `reach::refused` let an opened range win over the host's own
/// addresses, so `--allow-net` of the host's LAN let callbacks reach every service on it).
#[test]
fn allow_net_does_not_open_the_host_itself_to_callbacks() {
    let out = std::process::Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (addr, prefix) = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split_once('/'))
        .expect("this host has a global IPv4 address");
    let ip: std::net::Ipv4Addr = addr.parse().unwrap();
    let prefix: u32 = prefix.parse().unwrap();
    let net = std::net::Ipv4Addr::from(u32::from(ip) & (u32::MAX << (32 - prefix)));
    let lan = format!("{net}/{prefix}");
    let s = Server::start_with("trg-cb-an", &["--allow-net", &lan]);
    let _code = recorder(&s, "rec", &["--max-scale", "1"]);
    let (sink, got) = callback_sink_at("0.0.0.0:0");
    let port = sink.rsplit(':').next().unwrap().to_string();
    let url = format!("http://{ip}:{port}/done");
    assert_callback_never_reaches(&s, &url, &got, &format!("the host at {ip} through --allow-net {lan}"));
}

/// Asks for a callback to `url` (with the admin token) and checks that it never reaches
/// `got`: refused at once with a 400 that says why, or accepted, run, and refused when made.
fn assert_callback_never_reaches(s: &Server, url: &str, got: &std::sync::mpsc::Receiver<String>, what: &str) {
    let r = s.request("POST", "/async/fn/rec/", &[("X-Callback-Url", url), ("X-Auth-Token", &s.admin_token())], b"x");
    if r.status == 202 {
        let id = r.json()["id"].as_str().unwrap().to_string();
        assert!(eventually(Duration::from_secs(20), || invocation(s, &id)["status"] == "succeeded"));
        let reached = got.recv_timeout(Duration::from_secs(15));
        assert!(reached.is_err(), "a callback reached {what}: {reached:?}");
    } else {
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("does not connect to"), "{}", r.text());
    }
}

/// Message sequence numbers the function answered < 300 for, from fnbox's log lines.
fn served_seqs(logs: &str) -> BTreeSet<u64> {
    logs.lines()
        .filter(|l| l.contains("ran for message ") && l.contains("HTTP 200"))
        .filter_map(|l| l.split("ran for message ").nth(1)?.split(' ').next()?.rsplit('/').next()?.parse().ok())
        .collect()
}

#[test]
fn nats_messages_are_delivered_retried_and_dead_lettered() {
    let s = Server::start("trg-nats");
    let _code = recorder(&s, "rec", &[]);
    // Created while no broker listens: the trigger exists, says why it waits, and connects
    // once the broker is up.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("nats://127.0.0.1:{port}");
    let v = json_of(&s.cli(&[
        "trigger",
        "create",
        "rec",
        "--nats",
        "orders.*",
        "--nats-server",
        &url,
        "--dead-letter",
        "dead.orders",
        "--json",
    ]));
    let id = v["id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(10), || trigger_status(&s, &id).contains("cannot connect to")),
        "{}",
        trigger_status(&s, &id)
    );
    assert!(trigger_status(&s, &id).contains("retrying in"), "{}", trigger_status(&s, &id));
    assert!(s.logs("rec").contains("retrying in the background"));
    let _nats = nats_support::start_on("trg-nats", port);
    assert!(
        eventually(Duration::from_secs(40), || trigger_status(&s, &id).starts_with("consuming")),
        "{}",
        trigger_status(&s, &id)
    );
    let mut c = nats_support::Client::connect(port).unwrap();
    c.subscribe("dead.orders", 7);
    for i in 0..20 {
        c.publish("orders.new", format!("m{i}").as_bytes());
    }
    c.publish("orders.bad", b"fail please");
    c.flush();
    assert!(eventually(Duration::from_secs(30), || served_seqs(&s.logs("rec")).len() == 20), "{}", s.logs("rec"));
    let logs = s.logs("rec");
    assert!(logs.contains(&format!("CALL trigger=nats/{id} msg=fnbox-{id}/1 attempt=1 body=m0")), "{logs}");
    // The failing one: four attempts (1 + 3 retries), then the dead-letter subject.
    let (subject, head, body) = c.next(Duration::from_secs(30)).expect("a dead letter");
    assert_eq!((subject.as_str(), body.as_slice()), ("dead.orders", &b"fail please"[..]));
    assert!(head.contains("X-Fnbox-Status: 500") && head.contains(&format!("X-Fnbox-Trigger: nats/{id}")), "{head}");
    let logs = s.logs("rec");
    assert!(logs.contains("failed 4 times: published to dead-letter subject dead.orders"), "{logs}");
    assert_retried_then_given_up(&s, &id, "nats", 24.0);
    // Removing the trigger removes its durable consumer.
    let stream = format!("fnbox-{id}");
    assert!(c.js(&format!("CONSUMER.INFO.{stream}.fnbox-{id}")).get("error").is_none());
    ok(&s.cli(&["trigger", "rm", &id]));
    assert!(eventually(Duration::from_secs(10), || c
        .js(&format!("CONSUMER.INFO.{stream}.fnbox-{id}"))
        .get("error")
        .is_some()));
}

#[test]
fn nats_back_pressure_and_at_least_once_across_kill_9() {
    let mut s = Server::start("trg-nats-bp");
    let _code = recorder(&s, "rec", &["--max-scale", "1"]);
    let nats = nats_support::start("trg-nats-bp");
    let v = json_of(&s.cli(&["trigger", "create", "rec", "--nats", "work", "--nats-server", &nats.url, "--json"]));
    let id = v["id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(20), || trigger_status(&s, &id).starts_with("consuming")),
        "{}",
        trigger_status(&s, &id)
    );
    let mut c = nats_support::Client::connect(nats.port).unwrap();
    // Warm the instance, so memory is measured with it up.
    c.publish("work", b"warm");
    c.flush();
    assert!(eventually(Duration::from_secs(20), || served_seqs(&s.logs("rec")).len() == 1));
    let rss_before = s.rss_kib();
    // One instance taking 1 s per message, 1500 messages of 8 KiB (12 MiB) published.
    let filler = "x".repeat(8 << 10);
    for i in 0..1500 {
        c.publish("work", format!("sleep 1 #{i} {filler}").as_bytes());
    }
    c.flush();
    std::thread::sleep(Duration::from_secs(4));
    let info = c.js(&format!("CONSUMER.INFO.fnbox-{id}.fnbox-{id}"));
    let (pending, in_flight) = (info["num_pending"].as_u64().unwrap(), info["num_ack_pending"].as_u64().unwrap());
    // One running, two waiting in the function's queue (the consumer's prefetch), and at most
    // two more on their way (an ack not yet seen by the broker, a message between its pull
    // and the queue): far from the 1500, and from max-in-flight (10).
    assert!(in_flight <= 5, "fnbox took {in_flight} messages while its one instance was busy: {info}");
    assert!(pending >= 1490, "the messages should wait in the stream: {info}");
    let grown = s.rss_kib().saturating_sub(rss_before);
    assert!(grown < 6 << 10, "fnbox serve grew by {grown} KiB while 12 MiB waited in the stream");
    // Purge most of the backlog: five messages are left to survive the kill.
    ok(&s.cli(&["trigger", "rm", &id]));
    drop(c);
    let mut c = nats_support::Client::connect(nats.port).unwrap();
    assert!(c.js(&format!("STREAM.PURGE.fnbox-{id}")).get("error").is_none());
    let v = json_of(&s.cli(&[
        "trigger",
        "create",
        "rec",
        "--nats",
        "work",
        "--stream",
        &format!("fnbox-{id}"),
        "--nats-server",
        &nats.url,
        "--json",
    ]));
    let id2 = v["id"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(20), || trigger_status(&s, &id2).starts_with("consuming")));
    let first = c.js(&format!("STREAM.INFO.fnbox-{id}"))["state"]["last_seq"].as_u64().unwrap() + 1;
    for i in 0..5 {
        c.publish("work", format!("sleep 1 #{i}").as_bytes());
    }
    c.flush();
    assert!(eventually(Duration::from_secs(20), || !served_seqs(&s.logs("rec")).is_empty()));
    let before = served_seqs(&s.logs("rec"));
    s.kill9();
    s.launch();
    let mut after = BTreeSet::new();
    let done = eventually(Duration::from_secs(60), || {
        after = served_seqs(&s.logs("rec"));
        (first..first + 5).all(|q| before.contains(&q) || after.contains(&q))
    });
    assert!(done, "messages lost across kill -9: served before {before:?}, after {after:?}");
}
