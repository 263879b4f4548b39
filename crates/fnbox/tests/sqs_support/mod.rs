//! An SQS stand-in for the SQS-trigger tests: moto's server mode (PyPI's `moto[server]`, in
//! a venv at /opt/moto as `.ci/run` installs it, or `$FNBOX_MOTO`), started on a free port;
//! and a minimal client for the test's side (SQS's JSON protocol; moto routes a request by
//! the service its `Authorization` header names and does not check signatures).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub port: u16,
    pub url: String,
    child: Option<Child>,
}

fn binary() -> String {
    std::env::var("FNBOX_MOTO").unwrap_or_else(|_| "/opt/moto/bin/moto_server".into())
}

/// Starts moto on a free port; without it the test fails, saying how to install it.
pub fn start() -> Moto {
    // The probe's listener is closed before moto binds the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    start_on(port)
}

pub fn start_on(port: u16) -> Moto {
    start_with(port, &[])
}

/// Over HTTPS with this certificate and key (PEM files).
pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut m = start_with(port, &["--ssl-cert", cert.to_str().unwrap(), "--ssl-key", key.to_str().unwrap()]);
    m.url = format!("https://127.0.0.1:{port}");
    m
}

fn start_with(port: u16, extra: &[&str]) -> Moto {
    let bin = binary();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "SQS TESTS CANNOT RUN: moto's server ({bin}) cannot be started ({e}): \
                 python3 -m venv /opt/moto && /opt/moto/bin/pip install 'moto[server]' (or set FNBOX_MOTO)"
            )
        });
    let m = Moto { port, url: format!("http://127.0.0.1:{port}"), child: Some(child) };
    // moto imports every AWS service it mocks: slow on a loaded machine.
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        let up = if extra.is_empty() {
            m.try_call("ListQueues", &serde_json::json!({})).is_ok()
        } else {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        };
        if up {
            return m;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto did not answer on port {port} within 60 s");
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Moto {
    fn try_call(&self, action: &str, body: &serde_json::Value) -> std::io::Result<(u16, serde_json::Value)> {
        let body = body.to_string();
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let auth =
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";
        let head = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-amz-json-1.0\r\n\
             X-Amz-Target: AmazonSQS.{action}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body.as_bytes())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        let text = String::from_utf8_lossy(&out);
        let (head, payload) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let v = serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
        Ok((status, v))
    }

    /// An SQS call that must succeed.
    pub fn call(&self, action: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, v) = self.try_call(action, &body).unwrap_or_else(|e| panic!("{action}: {e}"));
        assert_eq!(status, 200, "{action} {body}: {v}");
        v
    }

    /// Makes a queue; returns its URL.
    pub fn create_queue(&self, name: &str) -> String {
        let v = self.call("CreateQueue", serde_json::json!({ "QueueName": name }));
        v["QueueUrl"].as_str().unwrap().to_string()
    }

    /// Sends a message; returns its id.
    pub fn send(&self, queue: &str, body: &str) -> String {
        let v = self.call("SendMessage", serde_json::json!({ "QueueUrl": queue, "MessageBody": body }));
        v["MessageId"].as_str().unwrap().to_string()
    }

    /// Sends messages ten at a time; returns their ids.
    pub fn send_all(&self, queue: &str, bodies: &[String]) -> Vec<String> {
        let mut ids = Vec::new();
        for chunk in bodies.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| serde_json::json!({ "Id": format!("m{i}"), "MessageBody": b }))
                .collect();
            let v = self.call("SendMessageBatch", serde_json::json!({ "QueueUrl": queue, "Entries": entries }));
            assert!(v["Failed"].as_array().is_none_or(|f| f.is_empty()), "{v}");
            ids.extend(
                v["Successful"].as_array().unwrap().iter().map(|s| s["MessageId"].as_str().unwrap().to_string()),
            );
        }
        ids
    }

    /// (visible, in flight) messages of a queue.
    pub fn depth(&self, queue: &str) -> (u64, u64) {
        let names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"];
        let v = self.call("GetQueueAttributes", serde_json::json!({ "QueueUrl": queue, "AttributeNames": names }));
        let n = |k: &str| v["Attributes"][k].as_str().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        (n(names[0]), n(names[1]))
    }

    /// Receives (and deletes) one message within `wait_s`: its body and attributes.
    pub fn take(&self, queue: &str, wait_s: u64) -> Option<(String, serde_json::Value)> {
        let v = self.call(
            "ReceiveMessage",
            serde_json::json!({
                "QueueUrl": queue, "MaxNumberOfMessages": 1, "WaitTimeSeconds": wait_s.min(20),
                "MessageAttributeNames": ["All"],
            }),
        );
        let m = v["Messages"].as_array()?.first()?.clone();
        self.call("DeleteMessage", serde_json::json!({ "QueueUrl": queue, "ReceiptHandle": m["ReceiptHandle"] }));
        Some((m["Body"].as_str().unwrap_or("").to_string(), m["MessageAttributes"].clone()))
    }
}
