//! What a hostile function can do to the host through the platform, in v1 and v2: make the
//! gateway (root) connect to a host socket, write into directories bound from the host, kill
//! its instance with a header block the gateway accepted, read host paths in its mountinfo.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Replaces the instance's socket path (`$FNBOX_SOCKET` then, `/run/fnbox/fn.sock`) with a
/// symlink to `?attack=PATH`, then closes its connections to the gateway so that the next
/// request needs a new one.
const PY_ATTACKER: &str = r#"
import os, socket, threading, time

def close_connections():
    time.sleep(0.3)
    for name in os.listdir("/proc/self/fd"):
        try:
            s = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        try:
            if s.family == socket.AF_UNIX and not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

def handle(event, context):
    trap = event["queryStringParameters"].get("attack")
    if not trap:
        return "mine"
    for path in {os.environ.get("FNBOX_SOCKET") or "/run/fnbox/fn.sock", "/run/fnbox/fn.sock"}:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(trap, path)
        except OSError as e:
            print("attack:", path, e)
    threading.Thread(target=close_connections).start()
    return "attacked"
"#;

/// The same attack from a binary function; it serves on `$FNBOX_LISTEN_FD` (or, on a fnbox
/// that had it, binds `$FNBOX_SOCKET`).
const C_ATTACKER: &str = r#"
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void swap(const char *path, const char *trap) {
    mkdir("/run", 0755);
    mkdir("/run/fnbox", 0755);
    unlink(path);
    if (symlink(trap, path)) perror("attack");
}

int main(void) {
    const char *fd = getenv("FNBOX_LISTEN_FD"), *path = getenv("FNBOX_SOCKET");
    int s;
    if (fd) {
        s = atoi(fd);
    } else {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strncpy(a.sun_path, path, sizeof a.sun_path - 1);
        s = socket(AF_UNIX, SOCK_STREAM, 0);
        unlink(path);
        if (bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
    }
    if (listen(s, 64)) { perror("listen"); return 1; }
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        for (;;) {
            char buf[65536];
            size_t have = 0;
            char *end = NULL;
            while (!end && have < sizeof buf - 1) {
                ssize_t n = read(c, buf + have, sizeof buf - 1 - have);
                if (n <= 0) break;
                have += (size_t)n;
                buf[have] = 0;
                end = strstr(buf, "\r\n\r\n");
            }
            if (!end) break;
            char *attack = strstr(buf, "attack=");
            const char *msg = attack ? "attacked" : "mine";
            if (attack) {
                char *trap = attack + 7;
                trap[strcspn(trap, " &")] = 0;
                swap("/run/fnbox/fn.sock", trap);
                if (path) swap(path, trap);
            }
            char out[256];
            int len = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(msg), msg);
            if (write(c, out, (size_t)len) != len || attack) break;
        }
        close(c);
    }
}
"#;

/// A host socket that answers `trapped` and counts who connected.
struct Trap {
    path: String,
    hits: Arc<AtomicUsize>,
    _dir: TempDir,
}

impl Trap {
    fn new() -> Self {
        let dir = TempDir::new("trap");
        let path = dir.path().join("trap.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = c.read(&mut [0u8; 4096]);
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ntrapped");
            }
        });
        Self { path: path.to_str().unwrap().to_string(), hits, _dir: dir }
    }
}

fn compiled(tag: &str, source: &str) -> TempDir {
    let dir = TempDir::with(tag, &[("main.c", source)]);
    let cc = Command::new("cc")
        .args(["-O2", "-o", "main", "main.c"])
        .current_dir(dir.path())
        .output()
        .expect("cc (gcc) is needed");
    ok(&cc);
    dir
}

#[test]
fn a_function_cannot_point_the_gateway_at_a_host_socket() {
    let s = Server::start("symlink");
    let trap = Trap::new();
    let py = TempDir::with("attacker-py", &[("handler.py", PY_ATTACKER)]);
    let bin = compiled("attacker-c", C_ATTACKER);
    let cases = [
        ("v1", "python3", py.path()),
        ("v2", "python3", py.path()),
        ("v1", "binary", bin.path()),
        ("v2", "binary", bin.path()),
    ];
    for (sandbox, runtime, code) in cases {
        let name = format!("attack-{sandbox}-{}", &runtime[..3]);
        s.deploy(&name, code, &["--runtime", runtime, "--sandbox", sandbox, "--max-scale", "1"]);
        assert_eq!(s.get(&format!("/fn/{name}/")).text(), "mine", "{name}");
        let r = s.get(&format!("/fn/{name}/?attack={}", trap.path));
        assert_eq!((r.status, r.text().as_str()), (200, "attacked"), "{name}");
        // The instance closed its connections: the gateway connects again for what follows.
        std::thread::sleep(Duration::from_secs(1));
        for _ in 0..3 {
            let r = s.get(&format!("/fn/{name}/"));
            assert_eq!((r.status, r.text().as_str()), (200, "mine"), "{name}: a request after the attack");
        }
        assert_eq!(trap.hits.load(Ordering::SeqCst), 0, "{name}: the gateway connected to the host socket");
    }
}

/// Tries to create a file at every mount point but the root (the capped writable layer) and
/// those in memory or of the kernel, that is at everything bound from the host, and at
/// /run/fnbox; answers `{mount point: "written" | errno name}`.
const WRITER: &str = r#"
import errno, json, os

NOT_HOST = {"proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "mqueue", "cgroup", "cgroup2"}

def handle(event, context):
    points = {}
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        fstype = f[f.index("-") + 1]
        if fstype not in NOT_HOST and f[4] != "/":
            points[f[4]] = fstype
    points.setdefault("/run/fnbox", "?")
    out = {}
    for p in points:
        try:
            with open(os.path.join(p, ".fnbox-probe"), "w") as w:
                w.write("x")
            out[p] = "written"
        except OSError as e:
            out[p] = errno.errorcode.get(e.errno, str(e.errno))
    return {"points": points, "writes": out}
"#;

#[test]
fn no_directory_bound_from_the_host_is_writable() {
    let s = Server::start("hostdirs");
    let code = TempDir::with("writer", &[("handler.py", WRITER)]);
    for sandbox in ["v1", "v2"] {
        let name = format!("writer-{sandbox}");
        s.deploy(&name, code.path(), &["--runtime", "python3", "--sandbox", sandbox]);
        let r = s.get(&format!("/fn/{name}/"));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let points = v["points"].as_object().unwrap();
        assert!(points.contains_key("/code"), "{name}: /code is bound from the host: {v}");
        assert!(points.get("/run/fnbox").is_none_or(|t| t == "?"), "{name}: /run/fnbox is bound from the host: {v}");
        for (p, got) in v["writes"].as_object().unwrap() {
            let got = got.as_str().unwrap();
            if p == "/run/fnbox" {
                // Not a mount: the writable layer's own directory (or none), capped by --disk.
                continue;
            }
            if p == "/code" {
                // Copy-on-write: writable, into the instance's capped layer; the stored code
                // is checked below.
                assert_eq!(got, "written", "{name}: /code must be writable (copy-on-write): {v}");
                continue;
            }
            assert!(["EROFS", "EACCES", "EPERM"].contains(&got), "{name}: writing in {p} gave {got}: {v}");
        }
    }
    for c in std::fs::read_dir(s.data.join("code")).unwrap().flatten() {
        assert!(!c.path().join(".fnbox-probe").exists(), "a probe landed in {}", c.path().display());
    }
}

const ECHO_PY: &str = r#"
import os
def handle(event, context):
    return {"instance": os.environ["FNBOX_INSTANCE_ID"], "big": len(event["headers"].get("x-big", ""))}
"#;

const ECHO_NODE: &str = r#"
exports.handle = async (event) => ({ instance: process.env.FNBOX_INSTANCE_ID, big: (event.headers["x-big"] || "").length });
"#;

#[test]
fn a_header_block_over_the_limit_gets_431_and_the_instance_lives_on() {
    let s = Server::start("headers");
    let py = TempDir::with("echo-py", &[("handler.py", ECHO_PY)]);
    let node = TempDir::with("echo-node", &[("handler.js", ECHO_NODE)]);
    for (name, runtime, code) in [("hpy", "python3", py.path()), ("hnode", "node", node.path())] {
        s.deploy(name, code, &["--runtime", runtime, "--max-scale", "1"]);
        let path = format!("/fn/{name}/");
        let first = s.get(&path);
        assert_eq!(first.status, 200, "{name}: {}", first.text());
        let instance = first.json()["instance"].clone();
        // Just under 64 KiB with the rest of the block: the instance gets it whole.
        let near = "a".repeat(63 << 10);
        let r = s.request("GET", &path, &[("X-Big", &near)], b"");
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.json()["big"], near.len(), "{name}");
        // Over the limit, and well under what the gateway's HTTP parser reads (~400 KiB).
        for size in [65 << 10, 200 << 10, 390 << 10] {
            let big = "a".repeat(size);
            let r = s.request("GET", &path, &[("X-Big", &big)], b"");
            assert_eq!(r.status, 431, "{name}, {size} bytes: {}", r.text());
            // Past what the gateway buffers for a header block at all, hyper answers the 431
            // itself, without a body.
            if size < 80 << 10 {
                assert!(r.text().contains("64 KiB"), "{}", r.text());
            }
        }
        let after = s.get(&path);
        assert_eq!(after.status, 200, "{name}: {}", after.text());
        assert_eq!(after.json()["instance"], instance, "{name}: the instance was replaced");
        let crashes = s.metric(&format!("fnbox_instance_crashes_total{{function=\"{name}\"}}"));
        assert_eq!(crashes, 0.0, "{name}");
    }
}

/// The mountinfo, and the address of the instance's socket (which fnbox bound on the host).
const MOUNTS: &str = r#"
import os, socket
def handle(event, context):
    sock = socket.socket(fileno=os.dup(int(os.environ["FNBOX_LISTEN_FD"])))
    return open("/proc/self/mountinfo").read() + "socket: " + str(sock.getsockname()) + "\n"
"#;

/// Host paths a sandbox must not learn: fnbox's state and run directories, the data directory.
fn host_paths_in(text: &str, data: &Path) -> Vec<String> {
    let data = data.to_str().unwrap().to_string();
    let (state, run) = (state_dir().display().to_string(), run_dir().display().to_string());
    ["/var/lib/fnbox".to_string(), "/run/fnbox".to_string(), state, run, data]
        .into_iter()
        .filter(|p| text.contains(p.as_str()))
        .collect()
}

#[test]
fn mountinfo_and_the_socket_address_in_a_sandbox_name_no_host_path() {
    let s = Server::start("mountinfo");
    let code = TempDir::with("mounts", &[("handler.py", MOUNTS)]);
    for sandbox in ["v1", "v2"] {
        let name = format!("mounts-{sandbox}");
        s.deploy(&name, code.path(), &["--runtime", "python3", "--sandbox", sandbox]);
        let r = s.get(&format!("/fn/{name}/"));
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text();
        assert!(text.contains(" /code "), "{name}: {text}");
        assert!(text.contains("socket: /proc/self/fd/"), "{name}: {text}");
        let leaked = host_paths_in(&text, &s.data);
        assert!(leaked.is_empty(), "{name}: {leaked:?} in:\n{text}");
        // No mount names the sandbox's host ids (a tmpfs mounted in the sandbox's user
        // namespace shows `uid=`/`gid=`), nor the host's devtmpfs (its size is the host's RAM):
        // `/dev`, its nodes and the egress `resolv.conf` are made by the launcher.
        for line in text.lines() {
            let opts = line.split(" - ").nth(1).unwrap_or("");
            assert!(
                !opts.split([',', ' ']).any(|o| o.starts_with("uid=") || o.starts_with("gid=")),
                "{name}: a host id shows: {line}\n{text}"
            );
            assert!(!line.contains("devtmpfs"), "{name}: the host's devtmpfs shows: {line}\n{text}");
        }
        assert!(text.contains(" /dev ") && text.contains(" /dev/pts "), "{name}: {text}");
    }
}
