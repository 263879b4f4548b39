//! A small "internet" and a "private network" for the egress tests, each a network namespace
//! routed from the host through a veth pair:
//!
//! * internet `192.88.99.1`: HTTP on 80 ("internet"), a banner on 25 and 465 (mail ports
//!   egress must block). A globally reachable range (RFC 6890; the 6to4 relay anycast prefix
//!   RFC 7526 retired, so no real service is shadowed), routed behind a link net: egress denies
//!   the documentation ranges and the host's directly connected networks.
//! * private `10.77.0.1` (RFC 1918) and `169.254.169.254` (cloud metadata): HTTP on 80
//!   ("private"), and a DNS resolver on 10.77.0.1:53 answering `*.test` with the internet. It
//!   is the resolver sandboxes are given (`FNBOX_RESOLV_CONF`): a private address reachable
//!   on port 53 only, like this machine's own.
//!
//! Made once per test process, under a host-wide lock (the addresses are fixed); what a dead
//! test process left is removed first. The servers and the namespaces go when the test
//! process does.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const INTERNET: &str = "192.88.99.1";
pub const PRIVATE: &str = "10.77.0.1";
pub const PRIVATE_NET: &str = "10.77.0.0/24";
pub const METADATA: &str = "169.254.169.254";

pub struct Net {
    /// A `resolv.conf` naming the private resolver: give it as `FNBOX_RESOLV_CONF`.
    pub resolv_conf: PathBuf,
    /// The servers (they exit with the test process).
    _servers: Vec<std::process::Child>,
    _lock: std::fs::File,
}

const SERVERS: &str = r#"
import http.server, os, socket, struct, sys, threading, time
parent = int(sys.argv[1])
def watchdog():
    while True:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        time.sleep(0.5)
def http_server(ip, port, text):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            body = (text + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    class S(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True
    s = S((ip, int(port)), H)
    return s.serve_forever
def banner(ip, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, int(port)))
    s.listen(64)
    def serve():
        while True:
            c, _ = s.accept()
            c.sendall(b"220 mail banner\r\n")
            c.close()
    return serve
def dns(ip, answer):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((ip, 53))
    def serve():
        while True:
            q, peer = u.recvfrom(512)
            i = 12
            labels = []
            while i < len(q) and q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode("latin-1"))
                i += q[i] + 1
            qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
            question = q[12:i + 5]
            name = ".".join(labels).lower()
            if name.endswith(".test") and qtype == 1:
                r = q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question
                r += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(answer)
            elif name.endswith(".test"):
                r = q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 0, 0, 0) + question
            else:
                r = q[:2] + b"\x81\x83" + struct.pack(">HHHH", 1, 0, 0, 0) + question
            u.sendto(r, peer)
    return serve
runs = []
for spec in sys.argv[2:]:
    kind, *args = spec.split(",")
    runs.append({"http": http_server, "banner": banner, "dns": dns}[kind](*args))
for r in runs:
    threading.Thread(target=r, daemon=True).start()
print("ready", flush=True)
watchdog()
"#;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) is needed");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn alive(pid: &str) -> bool {
    std::path::Path::new("/proc").join(pid).exists()
}

/// One namespace `fnbxt-<tag>-<pid>` with `addrs` on its end of a veth pair whose host end
/// (`fxt<tag initial><pid>`) has `host_addr`, and `servers` running in it.
fn namespace(
    tag: &str,
    host_addr: &str,
    gateway: &str,
    addrs: &[&str],
    routes: &[&str],
    servers: &[String],
) -> std::process::Child {
    let pid = std::process::id();
    let ns = format!("fnbxt-{tag}-{pid}");
    let link = format!("fxt{}{pid}", &tag[..1]);
    ip(&["netns", "add", &ns]);
    ip(&["link", "add", &link, "type", "veth", "peer", "name", "veth0", "netns", &ns]);
    ip(&["addr", "add", host_addr, "dev", &link]);
    ip(&["link", "set", &link, "up"]);
    for r in routes {
        ip(&["route", "replace", r, "dev", &link]);
    }
    for a in addrs {
        ip(&["-n", &ns, "addr", "add", a, "dev", "veth0"]);
    }
    ip(&["-n", &ns, "link", "set", "veth0", "up"]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    ip(&["-n", &ns, "route", "add", "default", "via", gateway]);
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", SERVERS, &pid.to_string()])
        .args(servers)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the {tag} servers did not start");
    child
}

/// The shared networks, made on first use.
pub fn net() -> &'static Net {
    static NET: OnceLock<Net> = OnceLock::new();
    NET.get_or_init(|| {
        crate::common::require_root();
        let lock = std::fs::File::create("/run/fnbox-test-network.lock").unwrap();
        // SAFETY: flock on our own descriptor.
        assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) }, 0);
        // What a dead test process left: its namespaces (their veths and routes go with them).
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        for l in String::from_utf8_lossy(&list.stdout).lines() {
            let name = l.split_whitespace().next().unwrap_or("");
            if let Some(pid) = name.strip_prefix("fnbxt-").and_then(|r| r.rsplit('-').next()) {
                if !alive(pid) || pid == std::process::id().to_string() {
                    ip(&["netns", "del", name]);
                }
            }
        }
        let inet = namespace(
            "inet",
            "10.78.0.254/24",
            "10.78.0.254",
            &["10.78.0.1/24", "192.88.99.1/32"],
            &["192.88.99.0/24"],
            &[
                format!("http,{INTERNET},80,internet"),
                format!("banner,{INTERNET},25"),
                format!("banner,{INTERNET},465"),
            ],
        );
        let lan = namespace(
            "lan",
            "10.77.0.254/24",
            "10.77.0.254",
            &["10.77.0.1/24", "169.254.169.254/32"],
            &["169.254.169.254/32"],
            &["http,0.0.0.0,80,private".to_string(), format!("dns,{PRIVATE},{INTERNET}")],
        );
        // The namespaces (their veths and routes with them) go when this process does.
        let pid = std::process::id();
        let reaper = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; ip netns del fnbxt-inet-{pid}; ip netns del fnbxt-lan-{pid}"
        );
        let reaper = Command::new("setsid")
            .args(["sh", "-c", &reaper])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("setsid (util-linux) is needed");
        let resolv_conf = std::env::temp_dir().join(format!("fnbox-test-resolv-{}.conf", std::process::id()));
        std::fs::write(&resolv_conf, format!("nameserver {PRIVATE}\n")).unwrap();
        Net { resolv_conf, _servers: vec![inet, lan, reaper], _lock: lock }
    })
}

/// The probe: connects to each target (at once, 2 s each), says what answered, and resolves
/// `internet.test`. `run(request)` returns a dict; as a script, the request is argv[1].
pub const PROBE: &str = r#"
import json, socket, sys, threading

def probe(host, port):
    try:
        s = socket.create_connection((host, port), timeout=2)
    except OSError as e:
        return "blocked: " + (e.strerror or type(e).__name__)
    data = b""
    try:
        s.sendall(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
        while len(data) < 4096:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    lines = data.decode("latin-1").strip().splitlines()
    return "open: " + (lines[-1] if lines else "")

def me():
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect(("192.88.99.1", 9))
        return u.getsockname()[0]
    except OSError:
        return None

def run(req):
    out = {"me": me()}
    try:
        out["resolved"] = socket.gethostbyname(req.get("resolve", "internet.test"))
        out["by_name"] = probe(req.get("resolve", "internet.test"), 80)
    except OSError as e:
        out["resolved"] = "failed: %s" % e
    targets = [tuple(t) for t in req["targets"]]
    if out["me"] and req.get("gateway_port"):
        a = [int(x) for x in out["me"].split(".")]
        targets.append(("%d.%d.%d.%d" % (a[0], a[1], a[2], a[3] - 1), req["gateway_port"]))
    res = {}
    def one(h, p):
        res["%s:%d" % (h, p)] = probe(h, p)
    ts = [threading.Thread(target=one, args=t) for t in targets]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out["probes"] = res
    return out

if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
"#;

/// The host's own address on its default route's interface (eth0's, here).
pub fn host_address() -> String {
    let out = Command::new("ip").args(["-4", "route", "get", "198.18.0.1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src" {
            return words.next().unwrap_or("").to_string();
        }
    }
    panic!("no source address in `ip route get`: {text}");
}
