//! What callers see when functions misbehave: timeouts (504), OOM kills and crashes (502, then
//! a fresh instance), full queues (503), and the server restarted, even after `kill -9`.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::time::{Duration, Instant};

const MISBEHAVING: &str = r#"
import os, time
def handle(event, context):
    q = event["queryStringParameters"]
    if "sleep" in q:
        time.sleep(float(q["sleep"]))
    if "oom" in q:
        hog = bytearray(400 << 20)
        return str(len(hog))
    if "crash" in q:
        os._exit(3)
    return "fine " + os.environ["FNBOX_INSTANCE_ID"]
"#;

fn misbehaving(s: &Server, name: &str, args: &[&str]) -> TempDir {
    let code = TempDir::with(name, &[("handler.py", MISBEHAVING)]);
    let mut a = vec!["--runtime", "python3"];
    a.extend_from_slice(args);
    s.deploy(name, code.path(), &a);
    code
}

#[test]
fn a_request_past_the_timeout_gets_504_and_the_instance_is_replaced() {
    let s = Server::start("timeout");
    let _c = misbehaving(&s, "slow", &["--timeout", "10"]);
    let first_pid = s.get("/fn/slow/").text();
    let t = Instant::now();
    let r = s.get("/fn/slow/?sleep=60");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(30), "took {:?}", t.elapsed());
    assert!(r.text().contains("timed out after 10 s"), "{}", r.text());
    let again = s.get("/fn/slow/");
    assert_eq!(again.status, 200);
    assert_ne!(again.text(), first_pid, "a new instance serves after the timeout");
    assert!(s.logs("slow").contains("timed out after 10 s: instance killed"));
}

#[test]
fn an_oom_kill_fails_the_request_with_502_then_the_function_recovers() {
    let s = Server::start("oom");
    let _c = misbehaving(&s, "hog", &["--memory", "128"]);
    assert_eq!(s.get("/fn/hog/").status, 200);
    let r = s.get("/fn/hog/?oom=1");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("out of memory") && r.text().contains("128 MiB"), "{}", r.text());
    let r = s.get("/fn/hog/");
    assert_eq!((r.status, r.text().starts_with("fine")), (200, true), "{}", r.text());
    assert!(s.metric("fnbox_oom_kills_total{function=\"hog\"}") >= 1.0);
    let logs = s.logs("hog");
    assert!(logs.contains("out of memory (limit 128 MiB)"), "{logs}");
}

#[test]
fn a_crash_fails_the_request_with_502_then_the_function_recovers() {
    let s = Server::start("crash");
    let _c = misbehaving(&s, "crashy", &[]);
    let r = s.get("/fn/crashy/?crash=1");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("crashed: exited with code 3"), "{}", r.text());
    assert_eq!(s.get("/fn/crashy/").status, 200, "the next request gets a new instance");
    assert!(s.logs("crashy").contains("instance ended: exited with code 3"));
    assert_eq!(s.metric("fnbox_instance_crashes_total{function=\"crashy\"}"), 1.0);
    assert!(s.metrics().contains("fnbox_invocations_total{function=\"crashy\",status=\"502\"} 1"));
}

#[test]
fn requests_queue_when_instances_are_busy_and_get_503_when_the_queue_is_full() {
    let s = Server::start("queue");
    let _c = misbehaving(&s, "busy", &["--max-scale", "1", "--max-queue", "1"]);
    assert_eq!(s.get("/fn/busy/").status, 200, "warm");
    std::thread::scope(|t| {
        let a = t.spawn(|| s.get("/fn/busy/?sleep=6"));
        assert!(eventually(Duration::from_secs(10), || s.metric("fnbox_instances{function=\"busy\",state=\"busy\"}")
            == 1.0));
        let b = t.spawn(|| s.get("/fn/busy/?sleep=0"));
        assert!(eventually(Duration::from_secs(10), || s.metric("fnbox_queued_requests{function=\"busy\"}") == 1.0));
        let c = s.get("/fn/busy/");
        assert_eq!(c.status, 503, "{}", c.text());
        assert!(c.text().contains("is busy") && c.text().contains("--max-queue"), "{}", c.text());
        assert_eq!(a.join().unwrap().status, 200);
        assert_eq!(b.join().unwrap().status, 200, "the queued request is served once the instance is free");
    });
    assert_eq!(ok(&s.cli(&["ls", "--json"])).matches("\"instances\": 1").count(), 1, "max-scale 1 held");
}

#[test]
fn instances_scale_out_to_max_scale_and_stop_when_idle() {
    let s = Server::start_with("scale", &["--idle-timeout", "2"]);
    let _c = misbehaving(&s, "wide", &["--max-scale", "3", "--memory", "1024"]);
    let _w = misbehaving(&s, "warm", &["--min-scale", "1"]);
    std::thread::scope(|t| {
        // Each request outlasts any cold start, so no instance is free before all three are up.
        let hs: Vec<_> = (0..3).map(|_| t.spawn(|| s.get("/fn/wide/?sleep=8"))).collect();
        let pids: std::collections::HashSet<String> = hs.into_iter().map(|h| h.join().unwrap().text()).collect();
        assert_eq!(pids.len(), 3, "three concurrent requests, three instances: {pids:?}");
    });
    assert!(
        eventually(Duration::from_secs(20), || s.metric("fnbox_instances{function=\"wide\",state=\"idle\"}") == 0.0),
        "idle instances stop"
    );
    assert_eq!(s.metric("fnbox_instances{function=\"warm\",state=\"idle\"}"), 1.0, "min-scale stays warm");
}

#[test]
fn in_sandbox_v2_filling_tmp_is_an_oom_kill_with_502_then_recovery() {
    let s = Server::start("v2-tmp");
    let code = TempDir::with(
        "v2-tmp",
        &[(
            "handler.py",
            "def handle(event, context):\n    if 'fill' in event['queryStringParameters']:\n        with open('/tmp/big', 'wb') as f:\n            for _ in range(400):\n                f.write(b'x' * (1 << 20))\n    return 'ok'\n",
        )],
    );
    s.deploy("tmpfill", code.path(), &["--runtime", "python3", "--sandbox", "v2", "--memory", "128"]);
    assert_eq!(s.get("/fn/tmpfill/").text(), "ok");
    let r = s.get("/fn/tmpfill/?fill=1");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("ran out of memory (limit 128 MiB)"), "{}", r.text());
    assert_eq!(s.get("/fn/tmpfill/").text(), "ok", "a fresh instance, with an empty /tmp");
    assert!(s.logs("tmpfill").contains("instance ended: out of memory (limit 128 MiB)"));
    assert!(s.metric("fnbox_oom_kills_total{function=\"tmpfill\"}") >= 1.0);
}

/// The launchers of this server's instances (their command line binds the data directory's
/// runtime wrappers).
fn launchers(s: &Server) -> Vec<i32> {
    pids_with(&format!("{}/runtime:", s.data.display()))
}

#[test]
fn functions_survive_a_restart_even_after_kill_9() {
    let mut s = Server::start("restart");
    let _c = misbehaving(&s, "durable", &["--min-scale", "1"]);
    let tok = {
        let _p = misbehaving(&s, "secretive", &["--private"]);
        ok(&s.cli(&["token", "create", "secretive"])).trim().to_string()
    };
    assert_eq!(s.get("/fn/durable/").status, 200);
    assert!(!launchers(&s).is_empty());

    s.stop();
    assert!(eventually(Duration::from_secs(10), || launchers(&s).is_empty()), "a stopped server stops its instances");
    s.launch();
    assert_eq!(s.get("/fn/durable/").status, 200);

    let dirs = |s: &Server| -> Vec<std::ffi::OsString> {
        std::fs::read_dir(s.data.join("instances")).unwrap().flatten().map(|e| e.file_name()).collect()
    };
    let before = dirs(&s);
    assert!(!before.is_empty());
    s.kill9();
    assert!(
        eventually(Duration::from_secs(10), || launchers(&s).is_empty()),
        "kill -9 of the server takes its sandboxes down: {:?}",
        launchers(&s)
    );
    s.launch();
    let r = s.get("/fn/durable/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.request("GET", "/fn/secretive/", &[("X-Auth-Token", &tok)], b"").status, 200, "tokens survive too");
    assert_eq!(s.get("/fn/secretive/").status, 401);
    // Instances and pre-warmed sandboxes: the new server's, none left from the killed one.
    let left: Vec<_> = dirs(&s).into_iter().filter(|d| before.contains(d)).collect();
    assert!(left.is_empty(), "leftover instance directories were removed: {left:?}");
    s.stop();
    assert!(
        eventually(Duration::from_secs(10), || s.scope.leftover_cgroups().is_empty()),
        "{:?}",
        s.scope.leftover_cgroups()
    );
}
