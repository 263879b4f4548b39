//! Outbound network ("egress"), end to end, in v1 and v2: `fnbox run --network` and
//! functions. The internet (a namespace routed from the host, see `network_support`) is
//! reachable, by address and by name; the host, a private network, cloud metadata, mail
//! ports, other sandboxes are not; `--network none` reaches nothing; `--allow-net` opens
//! exactly its range; and nothing of a sandbox's network outlives it.

mod common;
mod network_support;
mod platform_support;

use common::*;
use network_support::*;
use platform_support::*;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A service of the host itself, on every address (as a database or an agent might be).
fn host_service() -> (TcpListener, u16) {
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Every target a sandbox must not reach, and the internet it must.
fn request(host_port: u16, gateway_port: u16) -> Value {
    let host = host_address();
    json!({
        "targets": [
            [INTERNET, 80], [INTERNET, 25], [INTERNET, 465], [PRIVATE, 80], [METADATA, 80],
            [host, host_port], [host, gateway_port],
        ],
        "gateway_port": host_port,
    })
}

fn open(v: &Value, target: &str) -> bool {
    v["probes"][target].as_str().unwrap_or_else(|| panic!("no probe of {target}: {v}")).starts_with("open")
}

/// What egress must give and refuse, whoever ran the probe.
fn assert_egress(v: &Value, host_port: u16, gateway_port: u16, allowed_private: bool) {
    let host = host_address();
    assert_eq!(v["probes"][format!("{INTERNET}:80")], "open: internet", "the internet: {v}");
    assert_eq!(v["resolved"], INTERNET, "DNS through the configured (private) resolver: {v}");
    assert_eq!(v["by_name"], "open: internet", "{v}");
    for port in [25, 465] {
        assert!(!open(v, &format!("{INTERNET}:{port}")), "mail port {port} reached: {v}");
    }
    assert_eq!(open(v, &format!("{PRIVATE}:80")), allowed_private, "the private network: {v}");
    assert!(!open(v, &format!("{METADATA}:80")), "cloud metadata reached: {v}");
    assert!(!open(v, &format!("{host}:{host_port}")), "a host service reached: {v}");
    assert!(!open(v, &format!("{host}:{gateway_port}")), "the host's gateway port reached: {v}");
    let me = v["me"].as_str().unwrap_or_else(|| panic!("no address: {v}"));
    let a: Vec<u32> = me.split('.').map(|x| x.parse().unwrap()).collect();
    let gw = format!("{}.{}.{}.{}:{host_port}", a[0], a[1], a[2], a[3] - 1);
    assert!(!open(v, &gw), "the host through the sandbox's own gateway address: {v}");
}

fn run_probe(scope: &Scope, kind: &str, args: &[&str], req: &Value) -> Value {
    let net = net();
    let mut cmd = scope.cmd(kind, args, &["python3", "-c", PROBE, &req.to_string()]);
    cmd.env("FNBOX_RESOLV_CONF", &net.resolv_conf);
    let out = cmd.output().unwrap();
    serde_json::from_str(ok(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn fnbox_run_egress_reaches_the_internet_and_nothing_else() {
    let scope = Scope::new("net-run");
    let (_svc, port) = host_service();
    let (_svc2, other) = host_service();
    for kind in ["v1", "v2"] {
        let v = run_probe(&scope, kind, &["--network", "egress"], &request(port, other));
        assert_egress(&v, port, other, false);
    }
    scope.assert_clean();
}

#[test]
fn fnbox_run_without_network_reaches_nothing_and_allow_net_opens_one_range() {
    let scope = Scope::new("net-none");
    let (_svc, port) = host_service();
    for kind in ["v1", "v2"] {
        let v = run_probe(&scope, kind, &["--network", "none"], &request(port, port));
        assert!(v["me"].is_null(), "{kind}: --network none has an address: {v}");
        let probes = v["probes"].as_object().unwrap();
        assert!(probes.values().all(|p| p.as_str().unwrap().starts_with("blocked")), "{kind}: {v}");
        assert!(v["resolved"].as_str().unwrap().starts_with("failed"), "{kind}: {v}");

        let v = run_probe(&scope, kind, &["--network", "egress", "--allow-net", PRIVATE_NET], &request(port, port));
        assert_egress(&v, port, port, true);
    }
    // The default of `fnbox run` is no network; --allow-net alone is a mistake, said so.
    let v = run_probe(&scope, "v1", &[], &request(port, port));
    assert!(v["me"].is_null(), "{v}");
    let out = scope.run("v1", &["--allow-net", PRIVATE_NET], &["true"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("add --network egress"), "{}", stderr(&out));
    let out = scope.run("v1", &["--network", "egress", "--allow-net", "fd00::/8"], &["true"]);
    assert!(stderr(&out).contains("IPv4 egress only"), "{}", stderr(&out));
    scope.assert_clean();
}

/// The link name (`fnbx<slot>`) of a sandbox address.
fn link_of(addr: &str) -> String {
    let a: Vec<u32> = addr.split('.').map(|x| x.parse().unwrap()).collect();
    format!("fnbx{}", ((a[2] << 8) | a[3]) / 2)
}

fn chain_exists(link: &str) -> bool {
    let out = Command::new("nft").args(["list", "table", "inet", "fnbox"]).output().unwrap();
    let slot = link.trim_start_matches("fnbx");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim().trim_end_matches('{').trim() == format!("chain slot{slot}"))
}

#[test]
fn a_sandboxs_network_is_gone_when_it_ends_even_after_kill_9() {
    let scope = Scope::new("net-gone");
    let net = net();
    let script = "import socket,sys,time\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.connect(('192.88.99.1',9))\nprint(u.getsockname()[0],flush=True)\ntime.sleep(float(sys.argv[1]))";
    // Ends on its own: its link and its rules go with it.
    let mut cmd = scope.cmd("v2", &["--network", "egress"], &["python3", "-c", script, "0"]);
    let out = cmd.env("FNBOX_RESOLV_CONF", &net.resolv_conf).output().unwrap();
    let link = link_of(ok(&out).trim());
    // The kernel removes the pair with the sandbox's network namespace, just after its last
    // process (namespaces are torn down asynchronously).
    assert!(
        eventually(Duration::from_secs(5), || !Path::new("/sys/class/net").join(&link).exists()),
        "{link} outlived its sandbox"
    );
    assert!(eventually(Duration::from_secs(5), || !chain_exists(&link)), "the rules of {link} outlived its sandbox");

    // Its launcher killed with SIGKILL: the link goes with the sandbox; the rules with the
    // stale reaper (`fnbox cleanup` here).
    let mut cmd = scope.cmd("v1", &["--network", "egress"], &["python3", "-c", script, "60"]);
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let link = link_of(line.trim());
    assert!(Path::new("/sys/class/net").join(&link).exists() && chain_exists(&link), "{link} is not set up");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || !Path::new("/sys/class/net").join(&link).exists()),
        "{link} outlived its killed launcher"
    );
    // Its guard table went with the `nft` process its launcher held (the kernel removes it).
    let guard = format!("table inet fnboxg{}\n", link.trim_start_matches("fnbx"));
    let tables =
        || String::from_utf8_lossy(&Command::new("nft").args(["list", "tables"]).output().unwrap().stdout).into_owned();
    assert!(eventually(Duration::from_secs(5), || !tables().contains(&guard)), "{guard} outlived its killed launcher");
    // The next sandbox's launcher reaps the dead one's cgroup, and its rules with it.
    ok(&scope.run("v1", &[], &["true"]));
    assert!(!chain_exists(&link), "the stale reaper left the rules of {link}");
    scope.assert_clean();
}

const HANDLER: &str = r#"
import base64, json, socket, threading
from probe import run

def serve_peers():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 7000))
    s.listen(16)
    while True:
        c, _ = s.accept()
        c.sendall(b"peer\n")
        c.close()

threading.Thread(target=serve_peers, daemon=True).start()

def handle(event, context):
    body = event.get("body") or "{}"
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return {"statusCode": 200, "body": json.dumps(run(json.loads(body)))}
"#;

/// A binary function: connects to `?t=IP:PORT` and answers what came back.
const BINARY: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void probe(const char *target, char *out, size_t n) {
    char host[64];
    int port = 0;
    if (sscanf(target, "%63[0-9.]:%d", host, &port) != 2) { snprintf(out, n, "bad target"); return; }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {2, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(out, n, "blocked: %s", strerror(errno));
        close(s);
        return;
    }
    const char *req = "GET / HTTP/1.0\r\nHost: t\r\n\r\n";
    if (write(s, req, strlen(req)) < 0) { snprintf(out, n, "write failed"); close(s); return; }
    char buf[4096];
    size_t have = 0;
    ssize_t r;
    while (have < sizeof buf - 1 && (r = read(s, buf + have, sizeof buf - 1 - have)) > 0) have += (size_t)r;
    buf[have] = 0;
    close(s);
    while (have && (buf[have - 1] == '\n' || buf[have - 1] == '\r')) buf[--have] = 0;
    char *last = strrchr(buf, '\n');
    snprintf(out, n, "open: %s", last ? last + 1 : buf);
}

int main(void) {
    int l = atoi(getenv("FNBOX_LISTEN_FD"));
    listen(l, 16);
    for (;;) {
        int c = accept(l, 0, 0);
        if (c < 0) continue;
        char buf[8192];
        size_t have = 0;
        while (have < sizeof buf && !memmem(buf, have, "\r\n\r\n", 4)) {
            ssize_t r = read(c, buf + have, sizeof buf - have);
            if (r <= 0) break;
            have += (size_t)r;
        }
        char out[512] = "no target", target[80] = "";
        char *t = memmem(buf, have, "t=", 2);
        if (t && sscanf(t + 2, "%79[0-9.:]", target) == 1) probe(target, out, sizeof out);
        char resp[1024];
        int len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(out), out);
        if (write(c, resp, (size_t)len) < 0) {}
        close(c);
    }
}
"#;

fn probe_function(s: &Server, name: &str, req: &Value) -> Value {
    let r =
        s.request("POST", &format!("/fn/{name}/"), &[("Content-Type", "application/json")], req.to_string().as_bytes());
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    r.json()
}

#[test]
fn functions_have_egress_by_default_and_cannot_reach_each_other() {
    let net = net();
    let s = Server::start_public("net-fn", &[], &[("FNBOX_RESOLV_CONF", &net.resolv_conf)]);
    let gateway_port: u16 = s.addr.rsplit(':').next().unwrap().parse().unwrap();
    let (_svc, port) = host_service();
    let code = TempDir::with("net-fn", &[("handler.py", HANDLER), ("probe.py", PROBE)]);
    for kind in ["v1", "v2"] {
        for name in [format!("a-{kind}"), format!("b-{kind}")] {
            s.deploy(&name, code.path(), &["--runtime", "python3", "--sandbox", kind]);
        }
        let a = probe_function(&s, &format!("a-{kind}"), &request(port, gateway_port));
        assert_egress(&a, port, gateway_port, false);
        // b reaches its own peer server but not a's.
        let a_me = a["me"].as_str().unwrap();
        let b = probe_function(&s, &format!("b-{kind}"), &json!({"targets": [[a_me, 7000], ["127.0.0.1", 7000]]}));
        assert_eq!(b["probes"]["127.0.0.1:7000"], "open: peer", "{kind}: {b}");
        assert!(!open(&b, &format!("{a_me}:7000")), "{kind}: one function reached another: {b}");
    }
    // Deployed with --network none: no address, nothing reached.
    s.deploy("offline", code.path(), &["--runtime", "python3", "--network", "none"]);
    let v = probe_function(&s, "offline", &request(port, gateway_port));
    assert!(v["me"].is_null() && !open(&v, &format!("{INTERNET}:80")), "{v}");
    let ls: Value = serde_json::from_str(&ok(&s.cli(&["ls", "--json"]))).unwrap();
    let offline = ls.as_array().unwrap().iter().find(|f| f["name"] == "offline").unwrap();
    assert_eq!((&offline["network"], &ls[0]["network"]), (&json!("none"), &json!("egress")), "{ls}");
}

#[test]
fn a_binary_function_has_egress_too() {
    let net = net();
    let s = Server::start_public("net-bin", &[], &[("FNBOX_RESOLV_CONF", &net.resolv_conf)]);
    let bin = TempDir::with("net-bin", &[("main.c", BINARY)]);
    let cc = Command::new("cc").args(["-O2", "-o", "main", "main.c"]).current_dir(bin.path()).output();
    ok(&cc.expect("cc (gcc) is needed"));
    let (_svc, port) = host_service();
    let host = host_address();
    for kind in ["v1", "v2"] {
        let name = format!("bin-{kind}");
        s.deploy(&name, bin.path(), &["--runtime", "binary", "--sandbox", kind]);
        let get = |t: &str| s.get(&format!("/fn/{name}/?t={t}")).text();
        assert_eq!(get(&format!("{INTERNET}:80")), "open: internet", "{kind}");
        for t in [format!("{PRIVATE}:80"), format!("{METADATA}:80"), format!("{INTERNET}:25"), format!("{host}:{port}")]
        {
            assert!(get(&t).starts_with("blocked"), "{kind}: {t} reached: {}", get(&t));
        }
    }
}

/// A stand-in host: a network namespace of this test's own (`nft flush ruleset` there flushes
/// no one else's rules) with a public-looking address and a service on every address.
struct StandIn {
    ns: String,
}

impl StandIn {
    fn new() -> Self {
        let ns = format!("fnbxt-host-{}", std::process::id());
        let sh = |s: &str| assert!(Command::new("sh").args(["-c", s]).status().unwrap().success(), "{s}");
        sh(&format!("ip netns del {ns} 2>/dev/null; ip netns add {ns}"));
        sh(&format!(
            "ip -n {ns} link set lo up && ip -n {ns} link add h0 type veth peer name h1 && \
             ip -n {ns} addr add 192.88.98.2/24 dev h0 && ip -n {ns} link set h0 up && ip -n {ns} link set h1 up"
        ));
        Self { ns }
    }

    /// `cmd` run in the stand-in's network namespace.
    fn enter(&self, cmd: &Command) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns)).arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c
    }

    fn nft(&self, args: &str) -> String {
        let out = Command::new("sh").args(["-c", &format!("ip netns exec {} nft {args}", self.ns)]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn a_firewall_reload_leaves_running_sandboxes_filtered() {
    let scope = Scope::new("net-reload");
    let host = StandIn::new();
    let dir = std::env::temp_dir().join(format!("fnbox-net-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let go = dir.join("go");
    // The host's service on every address, in the stand-in.
    let srv = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',18431))\ns.listen(8)\nwhile True:\n  c,_=s.accept(); c.sendall(b'host'); c.close()";
    let mut service = Command::new("ip").args(["netns", "exec", &host.ns, "python3", "-c", srv]).spawn().unwrap();
    // The sandbox waits for the reload, then tries the host's address.
    let probe = "import os,socket,time\nwhile not os.path.exists('/w/go'): time.sleep(0.05)\ntry:\n  s=socket.create_connection(('192.88.98.2',18431),timeout=2); print('open', s.recv(10))\nexcept OSError as e: print('blocked', e)";
    for kind in ["v1", "v2"] {
        let _ = std::fs::remove_file(&go);
        let bind = format!("{}:/w", dir.display());
        let cmd = scope.cmd(kind, &["--network", "egress", "--bind", &bind], &["python3", "-c", probe]);
        let child = host.enter(&cmd).stdout(std::process::Stdio::piped()).spawn().unwrap();
        assert!(
            eventually(Duration::from_secs(10), || host.nft("list tables").contains("table inet fnbox")),
            "no rules"
        );
        // What `systemctl reload nftables` does first.
        host.nft("flush ruleset");
        assert!(!host.nft("list tables").contains("table inet fnbox\n"), "the flush left the shared table");
        std::fs::write(&go, "").unwrap();
        let out = child.wait_with_output().unwrap();
        let said = stdout(&out);
        assert!(said.starts_with("blocked"), "{kind}: the host's service after a firewall reload: {said}");
    }
    let _ = service.kill();
    let _ = service.wait();
    let _ = std::fs::remove_dir_all(&dir);
    scope.assert_clean();
}

// Catches: a sandbox that keeps running once its `nft` process is gone (an OOM kill, a crash,
// an admin's kill): the kernel takes its guard table with the process, and the next firewall
// reload would leave the sandbox with no filter at all.
#[test]
fn a_sandbox_whose_guard_process_dies_is_stopped() {
    let scope = Scope::new("net-guard-lost");
    for kind in ["v1", "v2"] {
        let mut cmd = scope.cmd(kind, &["--network", "egress"], &["sleep", "60"]);
        let child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let launcher = child.id();
        let mut nft = Vec::new();
        assert!(
            eventually(Duration::from_secs(10), || {
                nft = children_of(launcher as i32)
                    .into_iter()
                    .filter(|(_, comm)| comm == "nft")
                    .map(|(p, _)| p)
                    .collect();
                !nft.is_empty()
            }),
            "{kind}: no nft process under the launcher"
        );
        // Let the sandbox get going (its program runs once the rules are in).
        std::thread::sleep(Duration::from_millis(500));
        for pid in &nft {
            // SAFETY: kill(2) on a pid read just now; at worst it names a process that has gone.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let started = std::time::Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "{kind}: the sandbox ran on for {:?}", started.elapsed());
        assert_eq!(out.status.code(), Some(137), "{kind}: {}", stderr(&out));
        assert!(stderr(&out).contains("network filter process (nft) ended"), "{kind}: {}", stderr(&out));
    }
    scope.assert_clean();
}
