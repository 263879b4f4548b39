//! A real NATS server with JetStream for the queue-trigger tests (Debian's `nats-server`,
//! started with `-js` on a free port and a temporary store), and a minimal client for the
//! test's side: publish, subscribe, JetStream API requests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nats {
    pub port: u16,
    pub url: String,
    store: PathBuf,
    child: Option<Child>,
}

/// Starts `nats-server -js`; without it the test fails, saying how to install it.
pub fn start(tag: &str) -> Nats {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    start_on(tag, port)
}

pub fn start_on(tag: &str, port: u16) -> Nats {
    let store = std::env::temp_dir().join(crate::common::unique(&format!("nats-{tag}")));
    let mut n = Nats { port, url: format!("nats://127.0.0.1:{port}"), store, child: None };
    n.launch();
    n
}

impl Nats {
    pub fn launch(&mut self) {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("NATS TESTS CANNOT RUN: nats-server cannot be started ({e}): apt-get install nats-server")
            });
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if Client::connect(self.port).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not answer on port {} within 10 s", self.port);
    }
}

impl Nats {
    /// Stops the server (its store stays, for `launch` again).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

pub struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(port: u16) -> std::io::Result<Self> {
        let w = TcpStream::connect(("127.0.0.1", port))?;
        w.set_read_timeout(Some(Duration::from_secs(10)))?;
        let r = BufReader::new(w.try_clone()?);
        let mut c = Self { w, r };
        let mut line = String::new();
        c.r.read_line(&mut line)?;
        c.w.write_all(b"CONNECT {\"verbose\":false,\"headers\":true}\r\n")?;
        c.ping()?;
        Ok(c)
    }

    fn ping(&mut self) -> std::io::Result<()> {
        self.w.write_all(b"PING\r\n")?;
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("closed"));
            }
            if line.trim() == "PONG" {
                return Ok(());
            }
        }
    }

    pub fn publish(&mut self, subject: &str, body: &[u8]) {
        self.w.write_all(format!("PUB {subject} {}\r\n", body.len()).as_bytes()).unwrap();
        self.w.write_all(body).unwrap();
        self.w.write_all(b"\r\n").unwrap();
    }

    /// Waits until the server has everything published so far.
    pub fn flush(&mut self) {
        self.ping().unwrap();
    }

    pub fn subscribe(&mut self, subject: &str, sid: u32) {
        self.w.write_all(format!("SUB {subject} {sid}\r\n").as_bytes()).unwrap();
        self.flush();
    }

    /// The next message (subject, headers block, payload), within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<(String, String, Vec<u8>)> {
        self.r.get_ref().set_read_timeout(Some(timeout)).unwrap();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let w: Vec<&str> = line.split_whitespace().collect();
            let (subject, hlen, total) = match w.as_slice() {
                ["MSG", s, _, n] | ["MSG", s, _, _, n] => (s.to_string(), 0, n.parse::<usize>().ok()?),
                ["HMSG", s, _, h, n] | ["HMSG", s, _, _, h, n] => (s.to_string(), h.parse().ok()?, n.parse().ok()?),
                ["PING"] => {
                    self.w.write_all(b"PONG\r\n").ok()?;
                    continue;
                }
                _ => continue,
            };
            let mut buf = vec![0; total + 2];
            self.r.read_exact(&mut buf).ok()?;
            let head = String::from_utf8_lossy(&buf[..hlen]).into_owned();
            return Some((subject, head, buf[hlen..total].to_vec()));
        }
    }

    /// A JetStream API call (`$JS.API.` + `api`).
    pub fn js(&mut self, api: &str) -> serde_json::Value {
        let inbox = format!("_INBOX.test{}", std::process::id());
        self.w.write_all(format!("SUB {inbox} 99\r\nPUB $JS.API.{api} {inbox} 0\r\n\r\n").as_bytes()).unwrap();
        let (_, _, body) = self.next(Duration::from_secs(5)).expect("a JetStream answer");
        self.w.write_all(b"UNSUB 99\r\n").unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}
