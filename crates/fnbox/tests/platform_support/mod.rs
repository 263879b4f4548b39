//! A real `fnbox serve` for the platform's end-to-end tests: on 127.0.0.1 with a free port, a
//! temporary data directory and its own cgroup parent. Requests go over plain TCP.

#![allow(dead_code)]

pub mod console;

use crate::common::{require_root, Scope, FNBOX};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header sent more than once, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub struct Server {
    pub url: String,
    pub addr: String,
    pub data: PathBuf,
    pub scope: Scope,
    child: Option<Child>,
    extra: Vec<String>,
    /// Environment for the server and the CLI (`FNBOX_STATE_DIR`, ...).
    env: Vec<(String, PathBuf)>,
    /// Pass `--data-dir`; without it the server finds its default from `env`.
    data_dir_flag: bool,
    /// The server's open-file limit (soft and hard), if not the test's.
    nofile: Option<u64>,
    /// The address it listens on (clients use 127.0.0.1).
    listen_host: &'static str,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

impl Server {
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, &[])
    }

    /// With more `fnbox serve` options.
    pub fn start_with(tag: &str, extra: &[&str]) -> Self {
        Self::start_limited(tag, extra, None)
    }

    /// With more options, and at most `nofile` open files.
    pub fn start_limited(tag: &str, extra: &[&str], nofile: Option<u64>) -> Self {
        require_root();
        let scope = Scope::new(tag);
        let data = std::env::temp_dir().join(crate::common::unique(&format!("serve-{tag}")));
        let mut s = Self {
            url: String::new(),
            addr: String::new(),
            data,
            scope,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            data_dir_flag: true,
            nofile,
            listen_host: "127.0.0.1",
        };
        s.launch();
        s
    }

    /// A server whose state (sandboxes, images, its data directory) all lives under `state`
    /// and `run`, given only as `FNBOX_STATE_DIR` and `FNBOX_RUN_DIR`: a fresh machine.
    pub fn start_on_state(tag: &str, state: &Path, run: &Path) -> Self {
        require_root();
        let mut s = Self {
            url: String::new(),
            addr: String::new(),
            data: state.join("serve"),
            scope: Scope::new(tag),
            child: None,
            extra: Vec::new(),
            env: vec![("FNBOX_STATE_DIR".into(), state.into()), ("FNBOX_RUN_DIR".into(), run.into())],
            data_dir_flag: false,
            nofile: None,
            listen_host: "127.0.0.1",
        };
        s.launch();
        s
    }

    /// Listening on every address of the host (as a server reachable from a network is), with
    /// more options and environment.
    pub fn start_public(tag: &str, extra: &[&str], env: &[(&str, &Path)]) -> Self {
        Self::start_env(tag, extra, env, "0.0.0.0")
    }

    /// On 127.0.0.1, with more environment (`SSL_CERT_FILE`, ...).
    pub fn start_with_env(tag: &str, env: &[(&str, &Path)]) -> Self {
        Self::start_env(tag, &[], env, "127.0.0.1")
    }

    fn start_env(tag: &str, extra: &[&str], env: &[(&str, &Path)], listen_host: &'static str) -> Self {
        require_root();
        let mut s = Self {
            url: String::new(),
            addr: String::new(),
            data: std::env::temp_dir().join(crate::common::unique(&format!("serve-{tag}"))),
            scope: Scope::new(tag),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_path_buf())).collect(),
            data_dir_flag: true,
            nofile: None,
            listen_host,
        };
        s.launch();
        s
    }

    /// Starts (again) on the same data directory, on a new port.
    pub fn launch(&mut self) {
        let port = free_port();
        self.addr = format!("127.0.0.1:{port}");
        self.url = format!("http://{}", self.addr);
        let mut cmd = Command::new(FNBOX);
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            let rl = libc::rlimit { rlim_cur: n, rlim_max: n };
            // SAFETY: setrlimit is async-signal-safe and reads the struct copied into the closure.
            unsafe {
                cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &rl) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                })
            };
        }
        let listen = format!("{}:{port}", self.listen_host);
        cmd.args(["serve", "--listen", &listen, "--cgroup-parent", &self.scope.parent]);
        if self.data_dir_flag {
            cmd.arg("--data-dir").arg(&self.data);
        }
        let child = cmd
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fnbox serve");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(r) = self.try_request("GET", "/healthz", &[], b"") {
                assert_eq!(r.status, 200);
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("fnbox serve exited at start with {st}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("fnbox serve did not answer on {} within 30 s", self.url);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// The server's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// SIGTERM, and wait for the server to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end {
                if c.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("fnbox serve did not stop within 20 s of SIGTERM");
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The CLI, pointed at this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_env(args, &[])
    }

    /// The CLI with more environment variables (what a user's shell has set).
    pub fn cli_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(FNBOX);
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v))).env("FNBOX_SERVER", &self.url);
        cmd.envs(vars.iter().copied());
        if self.data_dir_flag {
            cmd.env("FNBOX_DATA_DIR", &self.data);
        }
        cmd.stdin(Stdio::null()).output().expect("spawn fnbox")
    }

    /// `fnbox deploy NAME PATH ARGS...`, asserting success.
    pub fn deploy(&self, name: &str, path: &Path, args: &[&str]) {
        let mut a = vec!["deploy", name, path.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = self.cli(&a);
        crate::common::ok(&out);
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token")).unwrap().trim().to_string()
    }

    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        http_request(&self.addr, method, path, headers, body)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.try_request(method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    /// `/metrics`, with the admin token it needs.
    pub fn metrics(&self) -> String {
        let auth = format!("Bearer {}", self.admin_token());
        self.request("GET", "/metrics", &[("Authorization", &auth)], b"").text()
    }

    /// The value of one metric line (`name{labels}`), or 0.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics().lines().find_map(|l| l.strip_prefix(series).and_then(|r| r.trim().parse().ok())).unwrap_or(0.0)
    }

    /// The function's logs as text.
    pub fn logs(&self, name: &str) -> String {
        crate::common::stdout(&self.cli(&["logs", name, "--tail", "5000"]))
    }
}

/// One HTTP/1.1 request to `addr` (`Connection: close`), its answer read to the end.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // A server may answer (413) and close before reading a large body: read the answer anyway.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("").split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = match chunked {
        true => dechunk(&raw[end + 4..])?,
        false => raw[end + 4..].to_vec(),
    };
    Ok(Reply { status, headers, body })
}

/// The body of a chunked answer (a cut one is an error).
fn dechunk(mut raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::other(format!("chunked body: {what}"));
    let mut body = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad("no chunk size"))?;
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let size = size.ok_or_else(|| bad("a chunk size is not hex"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size + 2 {
            return Err(bad("cut short"));
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// A TCP connection to `addr` from the loopback address `src` (any of 127.0.0.0/8: another
/// client as the server counts them), with a receive buffer of `rcvbuf` bytes if given (set
/// before the connection, so the window stays that small).
pub fn connect_from(src: &str, addr: &str, rcvbuf: Option<i32>) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let to = |a: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let local = to(format!("{src}:0").parse().map_err(std::io::Error::other)?);
    let remote = to(addr.parse().map_err(std::io::Error::other)?);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket we own; bind, connect and setsockopt read structs we own for the
    // lengths given; the descriptor is handed to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        if let Some(n) = rcvbuf {
            let p = (&n as *const i32).cast();
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, p, std::mem::size_of::<i32>() as libc::socklen_t);
        }
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let panicking = std::thread::panicking();
            if panicking {
                self.kill9();
            } else {
                self.stop();
            }
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
