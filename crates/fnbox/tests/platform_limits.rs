//! What unauthenticated clients cannot do to `fnbox serve`: hold it with idle connections past
//! its descriptors, keep a connection with a header that never ends, or take its memory with
//! request bodies that never end. Small limits (flags) keep these tests quick.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Connects `n` clients that send nothing.
fn idle_clients(s: &Server, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| TcpStream::connect(&s.addr).expect("connect")).collect()
}

/// True once the server closed the connection (EOF or reset), false if it was still open
/// after `within`.
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an answer (408) before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_connections_past_the_descriptor_limit_do_not_stop_a_request() {
    // 300 idle connections against a server with 256 descriptors: it must neither run out
    // of them nor keep the idle ones, and a request behind them is served.
    let s = Server::start_limited("idle", &["--header-timeout", "2"], Some(256));
    let _idle = idle_clients(&s, 300);
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let r = c.read_to_string(&mut answer);
    assert!(r.is_ok() && answer.starts_with("HTTP/1.1 200"), "behind 300 idle connections: {r:?} {answer:?}");
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn a_slowloris_header_is_dropped_after_the_header_timeout() {
    let s = Server::start_with("slowloris", &["--header-timeout", "2"]);
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let start = Instant::now();
    let mut dropped = false;
    // A header byte every half second, for up to 20 s.
    while start.elapsed() < Duration::from_secs(20) {
        if c.write_all(b"X-a: b\r\n").is_err() || closed_within(&mut c, Duration::from_millis(500)) {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "a header still unfinished after 20 s kept its connection");
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn an_idle_connection_is_closed_after_the_header_timeout() {
    let s = Server::start_with("idle-close", &["--header-timeout", "2"]);
    let mut c = TcpStream::connect(&s.addr).unwrap();
    assert!(closed_within(&mut c, Duration::from_secs(20)), "an idle connection was kept 20 s");
}

#[test]
fn stalled_large_bodies_do_not_take_memory_past_the_body_budget() {
    let s = Server::start_with("bodies", &["--body-memory", "16", "--body-timeout", "4"]);
    s.deploy("hello", &examples().join("hello-python"), &["--runtime", "python3"]);
    assert_eq!(s.get("/fn/hello/").status, 200);
    let before = s.rss_kib();
    // 40 clients each declare 6 MiB - 1, send 5 MiB of it, and stall.
    let stalled: Vec<_> = (0..40)
        .map(|_| {
            let addr = s.addr.clone();
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
                let head = format!("POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", (6 << 20) - 1);
                let _ = c.write_all(head.as_bytes());
                let _ = c.write_all(&vec![b'a'; 5 << 20]);
                c
            })
        })
        .collect();
    let clients: Vec<TcpStream> = stalled.into_iter().map(|t| t.join().unwrap()).collect();
    let during = s.rss_kib();
    assert!(
        during < before + 48 * 1024,
        "the server's RSS went from {before} KiB to {during} KiB with 40 stalled 6 MiB bodies and a 16 MiB budget"
    );
    // The stalled ones time out; a request is served again.
    let served = eventually(Duration::from_secs(30), || {
        let r = s.request("POST", "/fn/hello/", &[], b"hi");
        assert!(r.status == 200 || r.status == 503, "{} {}", r.status, r.text());
        r.status == 200
    });
    assert!(served, "no request served after the stalled bodies timed out");
    drop(clients);
}

/// A client at `src` that declares a 6 MiB - 1 body, sends `sent` bytes of it and stalls.
fn stalled_upload(s: &Server, src: &str, sent: usize) -> TcpStream {
    let mut c = connect_from(src, &s.addr, None).expect("connect");
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", (6 << 20) - 1);
    c.write_all(head.as_bytes()).unwrap();
    let _ = c.write_all(&vec![b'a'; sent]);
    c
}

/// A POST of `len` bytes from `src`: (status, body).
fn post_from(s: &Server, src: &str, len: usize) -> (u16, String) {
    let mut c = connect_from(src, &s.addr, None).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!("POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let _ = c.write_all(&vec![b'a'; len]);
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn a_body_over_the_budget_wait_gets_503_and_the_server_stays_up() {
    let s = Server::start_with("budget", &["--body-memory", "12", "--client-body-memory", "6", "--body-timeout", "20"]);
    s.deploy("hello", &examples().join("hello-python"), &["--runtime", "python3"]);
    // Two clients hold the whole budget with bytes they really sent...
    let hogs = [stalled_upload(&s, "127.0.0.2", 5 << 20), stalled_upload(&s, "127.0.0.3", 5 << 20)];
    std::thread::sleep(Duration::from_millis(500));
    // ...so a third's body waits, then is refused with a reason.
    let (status, answer) = post_from(&s, "127.0.0.1", 100 << 10);
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("--body-memory"), "{answer}");
    drop(hogs);
    assert!(eventually(Duration::from_secs(10), || s.request("POST", "/fn/hello/", &[], b"hi").status == 200));
}

#[test]
fn a_declared_length_holds_no_memory() {
    // Forty clients declare 6 MiB bodies and send none of them: against a 6 MiB budget
    // reserved from Content-Length they would refuse everybody else.
    let s = Server::start_with("declared", &["--body-memory", "6", "--body-timeout", "20"]);
    s.deploy("hello", &examples().join("hello-python"), &["--runtime", "python3"]);
    let _declared: Vec<TcpStream> = (0..40).map(|_| stalled_upload(&s, "127.0.0.2", 0)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let (status, answer) = post_from(&s, "127.0.0.1", 100 << 10);
    assert_eq!(status, 200, "a body behind 40 declared-only ones: {answer}");
}

#[test]
fn one_client_cannot_take_the_whole_body_budget() {
    // The body timeout is long: the stalled bodies must outlive a cold start on a loaded machine.
    let s = Server::start_with("fair", &["--body-memory", "24", "--client-body-memory", "6", "--body-timeout", "90"]);
    s.deploy("hello", &examples().join("hello-python"), &["--runtime", "python3"]);
    // One client sends four 5 MiB bodies and stalls: it may hold 6 MiB of them, no more. The
    // first is read whole before the others start: bodies sent at once could each take a part
    // of the share, all wait for the rest, and all get 503, which would leave the share empty.
    let mut hogs = vec![stalled_upload(&s, "127.0.0.2", 5 << 20)];
    std::thread::sleep(Duration::from_secs(1));
    hogs.extend((0..3).map(|_| stalled_upload(&s, "127.0.0.2", 5 << 20)));
    std::thread::sleep(Duration::from_millis(500));
    let (status, answer) = post_from(&s, "127.0.0.1", 1 << 20);
    assert_eq!(status, 200, "another client, while one holds its share: {answer}");
    let (status, answer) = post_from(&s, "127.0.0.2", 1 << 20);
    assert_eq!(status, 503, "the client over its share: {answer}");
    assert!(answer.contains("--client-body-memory"), "{answer}");
    drop(hogs);
}

#[test]
fn a_client_past_its_connections_gets_503_and_the_others_are_served() {
    let s = Server::start_with("per-client", &["--max-connections-per-client", "4"]);
    let mut idle: Vec<TcpStream> = (0..4).map(|_| connect_from("127.0.0.2", &s.addr, None).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut fifth = connect_from("127.0.0.2", &s.addr, None).unwrap();
    fifth.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = fifth.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "a fifth connection from one client: {answer:?}");
    assert!(answer.contains("--max-connections-per-client"), "{answer}");
    assert_eq!(s.get("/healthz").status, 200, "another client was refused");
    // Closing one makes room for the next.
    idle.pop();
    let served = eventually(Duration::from_secs(5), || {
        let mut c = connect_from("127.0.0.2", &s.addr, None).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut a = String::new();
        let _ = c.read_to_string(&mut a);
        a.starts_with("HTTP/1.1 200")
    });
    assert!(served, "a client under its cap again was still refused");
}

/// Answers 6 MiB less 64 KiB, from Python.
const BIG_ANSWER: &str = r#"def handle(event, context):
    return "x" * ((6 << 20) - (64 << 10))
"#;

#[test]
fn answers_to_clients_that_never_read_do_not_take_memory() {
    // Answers are held in memory up to --answer-memory (32 MiB here), no more.
    let s = Server::start_with("unread", &["--answer-memory", "32"]);
    let code = TempDir::with("big", &[("handler.py", BIG_ANSWER)]);
    s.deploy("big", code.path(), &["--runtime", "python3", "--max-scale", "4"]);
    // Read whole by a client that reads: the answer is intact.
    let r = s.get("/fn/big/");
    assert_eq!(
        (r.status, r.body.len()),
        (200, (6 << 20) - (64 << 10)),
        "{}",
        r.header("content-length").unwrap_or("-")
    );
    let before = s.rss_kib();
    // 60 clients ask for it and never read, with a small receive window.
    let unread: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut c = connect_from("127.0.0.2", &s.addr, Some(4096)).unwrap();
            c.write_all(b"GET /fn/big/ HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            c
        })
        .collect();
    let mut peak = before;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        peak = peak.max(s.rss_kib());
    }
    eprintln!("server RSS: {before} KiB before, {peak} KiB at most with 60 unread answers");
    assert!(
        peak < before + (32 + 64) * 1024,
        "the server's RSS went from {before} KiB to {peak} KiB with 60 clients not reading 6 MiB answers"
    );
    drop(unread);
    let r = s.get("/fn/big/");
    assert_eq!((r.status, r.body.len()), (200, (6 << 20) - (64 << 10)), "after the unread ones left");
}

#[test]
fn a_body_that_does_not_arrive_in_time_gets_408() {
    let s = Server::start_with("slowbody", &["--body-timeout", "2"]);
    s.deploy("hello", &examples().join("hello-python"), &["--runtime", "python3"]);
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = c.read(&mut buf) {
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 2 s"), "{answer}");
}

/// Takes four seconds to answer.
const SLOW: &str = r#"import time
def handle(event, context):
    time.sleep(4)
    return "slept"
"#;

/// The `fnbox run` launchers the server `pid` has now (instances and pre-warmed sandboxes).
fn launchers_of(pid: i32) -> usize {
    children_of(pid)
        .into_iter()
        .filter(|(child, _)| {
            let cmd = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            cmd.split(|b| *b == 0).nth(1) == Some(b"run")
        })
        .count()
}

#[test]
fn sandboxes_past_the_disk_budget_do_not_start_and_the_log_says_why() {
    // Two writable layers of 1 GiB at most; one function gets half of them.
    let s = Server::start_with("disk", &["--instance-disk", "2", "--warm-pool", "off", "--idle-timeout", "3"]);
    let code = TempDir::with("slow", &[("handler.py", SLOW)]);
    s.deploy("slow", code.path(), &["--runtime", "python3", "--max-scale", "5"]);
    s.deploy("slow2", code.path(), &["--runtime", "python3", "--max-scale", "5"]);
    s.deploy("hello", &examples().join("hello-python"), &["--runtime", "python3"]);
    // The deploys' checks hold their layers until their sandboxes have exited.
    assert!(eventually(Duration::from_secs(10), || launchers_of(s.pid()) == 0), "the deploys' checks did not end");
    let call = |path: &'static str| {
        let addr = s.addr.clone();
        std::thread::spawn(move || http_request(&addr, "GET", path, &[], b"").unwrap())
    };
    // slow2 first: two starts of `slow` at once may both launch before either is charged to
    // it (the share is checked, then charged), and the loser holds a layer until it exits.
    let started = |f: &str| s.logs(f).contains("instance started");
    let mut calls = vec![call("/fn/slow2/")];
    assert!(eventually(Duration::from_secs(20), || started("slow2")), "{}", s.logs("slow2"));
    calls.extend([call("/fn/slow/"), call("/fn/slow/")]);
    // Both functions have their instance (each its half of the budget) before another asks.
    assert!(eventually(Duration::from_secs(20), || started("slow") && started("slow2")), "{}", s.logs("slow2"));
    // Another function finds no room: a clear answer and log line, and the server lives on.
    let r = s.get("/fn/hello/");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("could not start an instance"), "{}", r.text());
    let logs = s.logs("hello");
    assert!(logs.contains("disk budget for writable layers is used up") && logs.contains("--instance-disk"), "{logs}");
    // The second call of `slow` found its share taken: it waited for the first instance.
    assert!(s.logs("slow").contains("its share of the server's budget"), "{}", s.logs("slow"));
    for c in calls {
        assert_eq!(c.join().unwrap().status, 200);
    }
    // Once the idle instances stop, their room is given back.
    assert!(eventually(Duration::from_secs(30), || s.get("/fn/hello/").status == 200), "the budget was not given back");
}

#[test]
fn pre_warmed_and_launched_sandboxes_stay_within_the_disk_budget() {
    // The warm pool on: its spares, those handed to functions and those launched all count,
    // each until its launcher has exited (a deploy's check too: 3 layers leave it room).
    let s = Server::start_with("disk-warm", &["--instance-disk", "3", "--idle-timeout", "2"]);
    let code = TempDir::with("slow", &[("handler.py", SLOW)]);
    s.deploy("slow", code.path(), &["--runtime", "python3", "--max-scale", "5"]);
    s.deploy("slow2", code.path(), &["--runtime", "python3", "--max-scale", "5"]);
    let calls: Vec<_> = ["/fn/slow/", "/fn/slow/", "/fn/slow/", "/fn/slow2/", "/fn/slow2/"]
        .into_iter()
        .map(|path| {
            let addr = s.addr.clone();
            std::thread::spawn(move || http_request(&addr, "GET", path, &[], b"").map(|r| r.status).unwrap_or(0))
        })
        .collect();
    let (mut most, t0) = (0, Instant::now());
    while t0.elapsed() < Duration::from_secs(25) {
        most = most.max(launchers_of(s.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in calls {
        c.join().unwrap();
    }
    assert!(most <= 3, "{most} sandboxes ran at once with a disk budget of 3 layers");
    assert_eq!(s.get("/fn/slow/").status, 200);
}

/// Answers 6 MiB less 100 bytes.
const SIX_MIB: &str = r#"def handle(event, context):
    return "x" * ((6 << 20) - 100)
"#;

/// Sends `GET path` from `src` and reads nothing.
fn unread_call(s: &Server, src: &str, path: &str) -> TcpStream {
    let mut c = connect_from(src, &s.addr, Some(4096)).unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    c
}

#[test]
fn clients_that_do_not_read_do_not_hold_instances() {
    // Within the answer budget, answers are held in memory and the instance is free at once.
    let s = Server::start_with("pin", &["--body-timeout", "60"]);
    let code = TempDir::with("big", &[("handler.py", SIX_MIB)]);
    s.deploy("big", code.path(), &["--runtime", "python3", "--max-scale", "2"]);
    assert_eq!(s.get("/fn/big/").status, 200);
    let unread: Vec<TcpStream> = (0..12).map(|_| unread_call(&s, "127.0.0.2", "/fn/big/")).collect();
    std::thread::sleep(Duration::from_secs(3));
    let t0 = Instant::now();
    let r = s.get("/fn/big/");
    assert_eq!((r.status, r.body.len()), (200, (6 << 20) - 100));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a neighbour waited {:?} behind 12 clients that do not read",
        t0.elapsed()
    );
    drop(unread);

    // Past the budget, answers stream, and a client holds its instance 10 s at most.
    let s = Server::start_with("pin-stream", &["--body-timeout", "60", "--answer-memory", "1"]);
    s.deploy("big", code.path(), &["--runtime", "python3", "--max-scale", "2"]);
    assert_eq!(s.get("/fn/big/").status, 200);
    let unread: Vec<TcpStream> = (0..2).map(|_| unread_call(&s, "127.0.0.2", "/fn/big/")).collect();
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let r = s.get("/fn/big/");
    assert_eq!((r.status, r.body.len()), (200, (6 << 20) - 100));
    assert!(t0.elapsed() < Duration::from_secs(20), "a neighbour waited {:?} behind 2 streaming clients", t0.elapsed());
    assert!(s.logs("big").contains("did not take the answer within 10 s"), "{}", s.logs("big"));
    drop(unread);
}

#[test]
fn the_kernel_queues_little_for_a_client_that_does_not_read() {
    let s = Server::start_with("sndbuf", &["--answer-memory", "1"]);
    let code = TempDir::with("big", &[("handler.py", SIX_MIB)]);
    s.deploy("big", code.path(), &["--runtime", "python3"]);
    let unread: Vec<TcpStream> = (0..3).map(|_| unread_call(&s, "127.0.0.3", "/fn/big/")).collect();
    std::thread::sleep(Duration::from_secs(3));
    let port = s.addr.rsplit_once(':').unwrap().1;
    let out = std::process::Command::new("ss")
        .args(["-Htn", "state", "established", &format!("( sport = :{port} )")])
        .output();
    let out = out.expect("ss (iproute2) is needed to read the send queues");
    let queued: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert!(!queued.is_empty(), "ss showed no connection on port {port}");
    let most = queued.iter().max().copied().unwrap_or(0);
    eprintln!("send queues of unread answers: {queued:?}");
    assert!(most <= 512 << 10, "{most} bytes queued in the kernel for one client that does not read");
    drop(unread);
}
