//! `fnbox deploy --build` (issue 13): dependencies installed on the server in a sandbox with
//! egress on the function's own runtime, from the real registries: a pure-Python package and
//! one with a native wheel from PyPI, a package from npm through `npm ci`. A failed build is a
//! clear error with its last output (escaped) and stores nothing; `--json` prints one JSON
//! document on stdout; the time, memory and disk limits hold, and the build sandbox is
//! filtered like any egress sandbox.
//!
//! These tests need PyPI (`pypi.org`, `files.pythonhosted.org`) and npm (`registry.npmjs.org`)
//! reachable from this machine, as the differential suite's set-up does
//! (`conformance/scaleway-setup.sh`): without them they fail, saying so. Where a registry
//! resolves to an address sandboxes are denied (a proxy on a private or documentation range),
//! the server is started with `--allow-net` for exactly those addresses, as an operator would.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

const REGISTRIES: &[&str] = &["pypi.org", "files.pythonhosted.org", "registry.npmjs.org"];

/// `--allow-net` for each address the registries resolve to; fails loudly if one cannot be
/// resolved or reached from the host.
fn registry_allowances() -> Vec<String> {
    let mut args = Vec::new();
    for host in REGISTRIES {
        let addrs: Vec<SocketAddr> = match (*host, 443).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => panic!(
                "{host} does not resolve on this machine ({e}): the --build tests install packages from PyPI and npm, \
                 so this machine needs to reach them"
            ),
        };
        let reached = addrs.iter().any(|a| TcpStream::connect_timeout(a, Duration::from_secs(10)).is_ok());
        assert!(
            reached,
            "{host} ({addrs:?}) cannot be reached on port 443 from this machine: the --build tests install packages \
             from PyPI and npm, so this machine needs to reach them"
        );
        // A registry on loopback (a local proxy) no sandbox can reach, allowed or not.
        for a in addrs.iter().filter_map(|a| match a {
            SocketAddr::V4(v4) if !v4.ip().is_loopback() => Some(*v4.ip()),
            _ => None,
        }) {
            let cidr = format!("{a}/32");
            if !args.contains(&cidr) {
                args.push("--allow-net".to_string());
                args.push(cidr);
            }
        }
    }
    args
}

fn server(tag: &str, extra: &[&str]) -> Server {
    let mut args = registry_allowances();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_with(tag, &args)
}

/// `fnbox deploy NAME PATH ARGS... --build`.
fn build(s: &Server, name: &str, path: &Path, args: &[&str]) -> std::process::Output {
    let mut a = vec!["deploy", name, path.to_str().unwrap()];
    a.extend_from_slice(args);
    a.push("--build");
    s.cli(&a)
}

/// The code trees the server stores.
fn stored_trees(s: &Server) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.data.join("code/trees"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn staging_is_empty(s: &Server) -> bool {
    std::fs::read_dir(s.data.join("code/staging")).map(|mut d| d.next().is_none()).unwrap_or(true)
}

const PY_HANDLER: &str = r#"
import json, six, markupsafe
from markupsafe import _speedups

def handle(event, context):
    return {"body": json.dumps({
        "six": six.__version__,
        "escaped": str(markupsafe.escape("<b>")),
        "native": _speedups.__file__.endswith(".so"),
        "from": six.__file__,
    })}
"#;

#[test]
fn python_requirements_are_installed_into_package_from_pypi() {
    let s = server("build-py", &[]);
    // six: pure Python; markupsafe: a wheel with a C extension, built for the runtime's CPython.
    let dir =
        TempDir::with("build-py", &[("handler.py", PY_HANDLER), ("requirements.txt", "six==1.17.0\nmarkupsafe\n")]);
    let out = build(&s, "pybuilt", dir.path(), &["--runtime", "python3", "--json"]);
    let (stdout, stderr) = (stdout(&out), stderr(&out));
    assert_eq!(code(&out), 0, "deploy --build failed\nstdout: {stdout}\nstderr: {stderr}");
    // --json: stdout is one JSON document, progress and the build's output are on stderr.
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    assert_eq!(v["name"], "pybuilt");
    assert_eq!(v["build"]["event"], "done", "{v}");
    assert_eq!(v["code"], v["build"]["digest"], "the stored code is the built tree: {v}");
    assert!(stderr.contains("Successfully installed"), "the build's output streams to stderr:\n{stderr}");
    assert!(!stderr.contains('\r'), "no status line when stderr is not a terminal:\n{stderr:?}");
    // Installed into package/ of the stored tree, which is what instances run.
    let tree = s.data.join("code/trees").join(v["code"].as_str().unwrap());
    assert!(tree.join("package/six.py").is_file() && tree.join("package/markupsafe").is_dir());
    assert!(!dir.path().join("package").exists(), "the build never touches the client's directory");
    assert!(staging_is_empty(&s), "the uploaded source is not kept");

    let r = s.get("/fn/pybuilt/");
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["six"], "1.17.0");
    assert_eq!(answer["escaped"], "&lt;b&gt;");
    assert_eq!(answer["native"], true, "markupsafe's C extension loads: the wheel matches the runtime");
    assert!(answer["from"].as_str().unwrap().starts_with("/code/package/"), "{answer}");
}

/// package-lock.json for left-pad 1.3.0, as `npm install --package-lock-only` writes it.
const LOCK: &str = r#"{
  "name": "nodebuilt", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {
    "": {"name": "nodebuilt", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}},
    "node_modules/left-pad": {
      "version": "1.3.0",
      "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz",
      "integrity": "sha512-XI5MPzVNApjAyhQzphX8BkmKsKUxD4LdyK24iZeQGinBN9yTQT3bFlCBy/aVx2HrNcqQGsdot8ghrjyrvMCoEA==",
      "license": "WTFPL"
    }
  }
}
"#;

#[test]
fn node_dependencies_are_installed_with_npm_ci_and_a_lock_is_required() {
    let s = server("build-node", &[]);
    let package = r#"{"name": "nodebuilt", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}}"#;
    let handler =
        "const leftPad = require('left-pad');\nexports.handle = async () => ({ body: leftPad('7', 3, '0') });\n";
    // Without a lock file npm ci cannot run: refused before any sandbox, saying how to make one.
    let unlocked = TempDir::with("build-node-nolock", &[("handler.js", handler), ("package.json", package)]);
    let before = stored_trees(&s);
    let out = build(&s, "nodebuilt", unlocked.path(), &["--runtime", "node"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("npm install --package-lock-only"), "{}", stderr(&out));
    assert_eq!(stored_trees(&s), before);

    let dir =
        TempDir::with("build-node", &[("handler.js", handler), ("package.json", package), ("package-lock.json", LOCK)]);
    let out = build(&s, "nodebuilt", dir.path(), &["--runtime", "node"]);
    assert_eq!(code(&out), 0, "deploy --build failed\nstdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with("deployed nodebuilt (version 1"), "{}", stdout(&out));
    assert!(stderr(&out).contains("$ npm ci"), "{}", stderr(&out));
    let r = s.get("/fn/nodebuilt/");
    assert_eq!((r.status, r.text().as_str()), (200, "007"));

    // On a terminal: the status line (packing, upload bytes of total, the build, the handler
    // check), redrawn in place and cleared before the result.
    let cmdline = format!("{FNBOX} deploy nodebuilt {} --runtime node --build", dir.path().display());
    let out = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("FNBOX_SERVER", &s.url)
        .env("FNBOX_DATA_DIR", &s.data)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs the CLI on a terminal");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(code(&out), 0, "{screen}");
    for shown in [
        "\r\x1b[Kuploading the code: ",
        " of ",
        "\r\x1b[Kchecking the handler",
        "$ npm ci",
        "\r\x1b[Kdeployed nodebuilt (version ",
    ] {
        assert!(screen.contains(shown), "{shown:?} not on the terminal:\n{screen:?}");
    }
}

#[test]
fn a_failed_build_says_why_escaped_and_stores_nothing() {
    let s = server("build-fail", &[]);
    let handler = "def handle(event, context):\n    return 'never'\n";
    let dir = TempDir::with(
        "build-fail",
        &[("handler.py", handler), ("requirements.txt", "fnbox-no-such-package-4f2a9c==1.0\n")],
    );
    let before = stored_trees(&s);
    let out = build(&s, "failing", dir.path(), &["--runtime", "python3", "--json"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "stdout: {}\nstderr: {err}", stdout(&out));
    assert!(stdout(&out).is_empty(), "nothing on stdout for a failed deploy: {}", stdout(&out));
    assert!(err.contains("fnbox: the build failed: pip install exited with code 1; its last output:"), "{err}");
    assert!(err.contains("No matching distribution found for fnbox-no-such-package-4f2a9c"), "{err}");
    assert_eq!(stored_trees(&s), before, "a failed build stores no code");
    assert!(staging_is_empty(&s));
    assert_eq!(s.get("/fn/failing/").status, 404, "and no function");

    // What a build prints is hostile: a lifecycle script that drives the terminal.
    let evil = r#"{"name": "evil", "version": "1.0.0", "scripts": {"preinstall": "node -e \"process.stdout.write('title \\x1b]0;pwned\\x07 clear \\x1b[2J\\n'); process.exit(3)\""}}"#;
    let lock = r#"{"name": "evil", "version": "1.0.0", "lockfileVersion": 3, "requires": true, "packages": {"": {"name": "evil", "version": "1.0.0"}}}"#;
    let dir = TempDir::with(
        "build-evil",
        &[("handler.js", "exports.handle = () => 1;\n"), ("package.json", evil), ("package-lock.json", lock)],
    );
    let out = build(&s, "evil", dir.path(), &["--runtime", "node"]);
    let err = out.stderr.clone();
    assert_eq!(code(&out), 1);
    assert!(!err.contains(&0x1b) && !err.contains(&0x07), "raw control characters reached stderr:\n{}", stderr(&out));
    assert!(stderr(&out).contains(r"title \x1b]0;pwned\x07 clear \x1b[2J"), "{}", stderr(&out));
    assert!(stderr(&out).contains("npm ci exited with code 3"), "{}", stderr(&out));
    assert_eq!(stored_trees(&s), before);
}

#[test]
fn the_build_has_a_time_limit_and_cannot_reach_the_host() {
    let s = server("build-limit", &["--build-timeout", "10"]);
    // An index on the host itself (its own address, the fnbox server's port): the build
    // sandbox's packets to it are dropped as any egress sandbox's are, so pip waits (it tries
    // 15 s, five times) until the time limit ends the build. Nothing leaves the machine.
    let host = host_address();
    let port = s.addr.rsplit(':').next().unwrap();
    let requirements = format!("--index-url http://{host}:{port}/simple\n--trusted-host {host}\nsix\n");
    let dir = TempDir::with(
        "build-limit",
        &[("handler.py", "def handle(e, c):\n    return 1\n"), ("requirements.txt", &requirements)],
    );
    let t0 = std::time::Instant::now();
    let out = build(&s, "slow", dir.path(), &["--runtime", "python3"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("did not finish within 10 s (fnbox serve --build-timeout)"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(60), "the limit ended it: {:?}", t0.elapsed());
    assert!(staging_is_empty(&s));
}

/// The host's address on its way out (a UDP "connection" sends nothing).
fn host_address() -> std::net::Ipv4Addr {
    let to = ("pypi.org", 443).to_socket_addrs().ok().and_then(|mut a| a.find(|a| a.is_ipv4()));
    let to = to.expect("pypi.org resolves to an IPv4 address");
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.connect(to).unwrap();
    match sock.local_addr().unwrap().ip() {
        std::net::IpAddr::V4(a) => a,
        other => panic!("the host's address is not IPv4: {other}"),
    }
}

/// A node project whose install step runs `script` in the build sandbox (no dependencies).
fn node_script(tag: &str, script: &str) -> TempDir {
    let package = serde_json::json!({"name": tag, "version": "1.0.0", "scripts": {"preinstall": script}}).to_string();
    let lock = serde_json::json!({"name": tag, "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": {"": {"name": tag, "version": "1.0.0"}}})
    .to_string();
    TempDir::with(
        tag,
        &[("handler.js", "exports.handle = () => 1;\n"), ("package.json", &package), ("package-lock.json", &lock)],
    )
}

#[test]
fn the_build_is_held_to_its_memory_and_disk() {
    let s = server("build-held", &[]);
    let before = stored_trees(&s);
    // Past the 2048 MiB tier: the sandbox is killed, and the error says so.
    let greedy = node_script("greedy", "node -e \"const a = []; for (;;) a.push(Buffer.alloc(64 << 20, 1))\"");
    // Past the 1024 MiB writable layer: ENOSPC, nothing spills onto the host.
    let filler = node_script(
        "filler",
        "node -e \"const fs = require('fs'); const b = Buffer.alloc(1 << 20, 1); const fd = fs.openSync('fill', 'w'); for (;;) fs.writeSync(fd, b)\"",
    );
    let (memory, disk) = std::thread::scope(|t| {
        let m = t.spawn(|| build(&s, "greedy", greedy.path(), &["--runtime", "node"]));
        let d = t.spawn(|| build(&s, "filler", filler.path(), &["--runtime", "node"]));
        (m.join().unwrap(), d.join().unwrap())
    });
    assert_eq!(code(&memory), 1, "{}", stderr(&memory));
    assert!(stderr(&memory).contains("the build failed: it ran out of memory (limit 2048 MiB)"), "{}", stderr(&memory));
    assert_eq!(code(&disk), 1, "{}", stderr(&disk));
    assert!(stderr(&disk).contains("ENOSPC"), "{}", stderr(&disk));
    assert!(stderr(&disk).contains("the build failed: npm ci exited with code"), "{}", stderr(&disk));
    assert_eq!(stored_trees(&s), before);
    assert!(staging_is_empty(&s));
}
