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

#[test]
fn a_body_over_the_budget_wait_gets_503_and_the_server_stays_up() {
    let s = Server::start_with("budget", &["--body-memory", "6", "--body-timeout", "20"]);
    s.deploy("hello", &examples().join("hello-python"), &["--runtime", "python3"]);
    // One stalled client holds the whole budget...
    let mut hog = TcpStream::connect(&s.addr).unwrap();
    hog.write_all(format!("POST /fn/hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\nab", 6 << 20).as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // ...so the next body waits, then is refused with a reason.
    let r = s.request("POST", "/fn/hello/", &[], b"hi");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("--body-memory"), "{}", r.text());
    drop(hog);
    assert!(eventually(Duration::from_secs(10), || s.request("POST", "/fn/hello/", &[], b"hi").status == 200));
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
