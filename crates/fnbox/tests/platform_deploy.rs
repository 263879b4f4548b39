//! Deploying: every input the platform refuses (with a message naming the fix and nothing
//! written outside the code store), secrets that are never shown again, private functions and
//! their tokens, the admin API's token, redeploys that keep requests in flight, removal.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::io::Write;
use std::path::Path;

const HELLO: &str = "def handle(event, context):\n    return 'hello'\n";

/// Deploys and expects a refusal whose message contains `want`.
fn refused(s: &Server, name: &str, path: &Path, args: &[&str], want: &str) {
    refused_with(1, s, name, path, args, want)
}

/// Deploys and expects a refusal with status `status` (2: a usage error, from clap) whose
/// message contains `want`.
fn refused_with(status: i32, s: &Server, name: &str, path: &Path, args: &[&str], want: &str) {
    let mut a = vec!["deploy", name, path.to_str().unwrap()];
    a.extend_from_slice(args);
    let out = s.cli(&a);
    assert_eq!(
        code(&out),
        status,
        "deploy {name} {args:?} must fail\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains(want), "deploy {name} {args:?}: expected '{want}' in:\n{err}");
}

fn zip_with(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    // Python's zipfile writes what a hostile zip holds: '..' names, symlink entries.
    let dir = TempDir::new("zip");
    let spec: Vec<serde_json::Value> = entries
        .iter()
        .map(|(n, link, data)| serde_json::json!({"name": n, "link": link, "data": String::from_utf8_lossy(data)}))
        .collect();
    std::fs::write(dir.path().join("spec.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    let script = r#"
import json, sys, zipfile, stat
spec = json.load(open(sys.argv[1]))
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
    for e in spec:
        info = zipfile.ZipInfo(e["name"])
        if e["link"] is not None:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, e["link"])
        else:
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            z.writestr(info, e["data"])
"#;
    let zip = dir.path().join("code.zip");
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir.path().join("spec.json"))
        .arg(&zip)
        .output()
        .expect("python3");
    ok(&out);
    std::fs::read(zip).unwrap()
}

#[test]
fn bad_deploy_inputs_are_refused_with_the_fix() {
    let s = Server::start("refusals");
    let good = TempDir::with("good", &[("handler.py", HELLO)]);
    let g = good.path();
    let py = ["--runtime", "python3"];
    for bad in ["Hello", "a_b", "x.y", &"a".repeat(35)] {
        refused(&s, bad, g, &py, "use 1 to 34 characters among a-z, 0-9 and '-'");
    }
    // Closed sets are clap's to refuse, listing the choices.
    refused_with(2, &s, "f", g, &["--runtime", "ruby"], "[possible values: python3, node, binary]");
    refused_with(2, &s, "f", g, &["--runtime", "python3", "--sandbox", "v9"], "[possible values: v1, v2]");
    refused_with(2, &s, "f", g, &["--runtime", "python3", "--network", "all"], "[possible values: none, egress]");
    refused(&s, "f", g, &["--runtime", "python3", "--memory", "100"], "memory 100 MiB is not a tier: use 128, 256");
    refused(&s, "f", g, &["--runtime", "python3", "--memory", "lots"], "is not a size");
    refused(&s, "f", g, &["--runtime", "python3", "--timeout", "5"], "timeout 5 s is out of range: use 10 to 3600");
    refused(&s, "f", g, &["--runtime", "python3", "--timeout", "3601"], "use 10 to 3600 seconds");
    refused(&s, "f", g, &["--runtime", "python3", "--max-scale", "51"], "max-scale 51 is out of range: use 1 to 50");
    refused(&s, "f", g, &["--runtime", "python3", "--min-scale", "3", "--max-scale", "2"], "above max-scale");
    refused(&s, "f", g, &["--runtime", "python3", "--env", "FNBOX_X=1"], "reserved");
    refused(&s, "f", g, &["--runtime", "python3", "--handler", "../up.handle"], "use MODULE.FUNCTION");

    // The handler must load, in a sandbox, at deploy time.
    refused(&s, "f", g, &["--runtime", "python3", "--handler", "missing.handle"], "missing.py does not exist");
    refused(&s, "f", g, &["--runtime", "python3", "--handler", "handler.nope"], "has no function 'nope'");
    let broken = TempDir::with("broken", &[("handler.py", "def handle(event, context)\n    return 1\n")]);
    refused(&s, "f", broken.path(), &py, "SyntaxError");
    let imports =
        TempDir::with("imports", &[("handler.py", "import not_a_module_anywhere\ndef handle(e, c):\n    return 1\n")]);
    refused(&s, "f", imports.path(), &py, "No module named 'not_a_module_anywhere'");
    let node = TempDir::with("node", &[("handler.js", "exports.other = () => 1;\n")]);
    refused(&s, "f", node.path(), &["--runtime", "node"], "exports no function 'handle'");
    let bin = TempDir::with("bin", &[("main", "not executable")]);
    refused(&s, "f", bin.path(), &["--runtime", "binary"], "main is not an executable file");

    // Hostile code: nothing lands outside the store.
    let zips = TempDir::new("zips");
    let write = |name: &str, bytes: Vec<u8>| {
        let p = zips.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let slip = write(
        "slip.zip",
        zip_with(&[("handler.py", None, HELLO.as_bytes()), ("../../../../tmp/fnbox-zip-slip-evil", None, b"x")]),
    );
    refused(&s, "f", &slip, &py, "points outside the code directory (zip slip)");
    assert!(!Path::new("/tmp/fnbox-zip-slip-evil").exists());
    let abs = write("abs.zip", zip_with(&[("/tmp/fnbox-zip-abs-evil", None, b"x")]));
    refused(&s, "f", &abs, &py, "zip slip");
    let link = write(
        "link.zip",
        zip_with(&[("handler.py", None, HELLO.as_bytes()), ("passwd", Some("../../../etc/passwd"), b"")]),
    );
    refused(&s, "f", &link, &py, "symlink 'passwd' points to '../../../etc/passwd', outside the code directory");
    let linkdir = TempDir::with("linkdir", &[("handler.py", HELLO)]);
    std::os::unix::fs::symlink("/etc", linkdir.path().join("etc")).unwrap();
    refused(&s, "f", linkdir.path(), &py, "symlink 'etc' points to '/etc', outside the code directory");
    let notzip = write("not.zip", b"PK but not really".to_vec());
    refused(&s, "f", &notzip, &py, "not a valid zip archive");

    // A zip bomb: 600 MiB of zeros in well under a megabyte.
    let bomb = zips.path().join("bomb.zip");
    let script = "import zipfile,sys\nwith zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED) as z:\n  with z.open('zeros','w',force_zip64=True) as f:\n    b=bytes(1<<20)\n    for _ in range(600): f.write(b)\n  z.writestr('handler.py', 'def handle(e,c): return 1')\n";
    ok(&std::process::Command::new("python3").args(["-c", script]).arg(&bomb).output().unwrap());
    assert!(std::fs::metadata(&bomb).unwrap().len() < 2 << 20);
    refused(&s, "f", &bomb, &py, "unpacks to more than 500 MiB");
    let big = zips.path().join("big.zip");
    let mut f = std::fs::File::create(&big).unwrap();
    f.write_all(&vec![0u8; (100 << 20) + 1]).unwrap();
    refused(&s, "f", &big, &py, "over the 100 MiB limit");

    assert_eq!(ok(&s.cli(&["ls", "--json"])).trim(), "[]", "nothing was deployed");
    let staging: Vec<_> = std::fs::read_dir(s.data.join("code/staging")).unwrap().collect();
    assert!(staging.is_empty(), "refused uploads leave nothing behind");
    // And the good one deploys.
    s.deploy("f", g, &py);
    assert_eq!(s.get("/fn/f/").text(), "hello");
}

#[test]
fn secrets_reach_the_function_and_are_never_shown_again() {
    let s = Server::start("secrets");
    let secret = unique("s3cret-value");
    let code = TempDir::with(
        "secrets",
        &[("handler.py", "import os\ndef handle(event, context):\n    return {'key': os.environ['API_KEY'], 'plain': os.environ['PLAIN']}\n")],
    );
    let arg = format!("API_KEY={secret}");
    s.deploy("vault", code.path(), &["--runtime", "python3", "--secret", &arg, "--env", "PLAIN=visible"]);
    let r = s.get("/fn/vault/").json();
    assert_eq!((r["key"].as_str(), r["plain"].as_str()), (Some(secret.as_str()), Some("visible")));
    // Running instances do not carry it on a command line either.
    assert!(pids_with(&secret).is_empty(), "the secret is on a command line: {:?}", pids_with(&secret));
    let token = s.admin_token();
    let auth = format!("Bearer {token}");
    let seen = [
        ok(&s.cli(&["ls", "--json"])),
        ok(&s.cli(&["ls"])),
        s.logs("vault"),
        s.request("GET", "/api/v1/functions/vault", &[("Authorization", &auth)], b"").text(),
        s.request("GET", "/api/v1/functions", &[("Authorization", &auth)], b"").text(),
        s.metrics(),
    ];
    for text in &seen {
        assert!(!text.contains(&secret), "the secret is shown: {text}");
    }
    let v = s.request("GET", "/api/v1/functions/vault", &[("Authorization", &auth)], b"").json();
    assert_eq!(v["secrets"], serde_json::json!({"API_KEY": "********"}), "secrets are listed by name");
    assert_eq!(v["env"]["PLAIN"], "visible");
    // A malformed secret is refused without echoing it.
    let out = s.cli(&[
        "deploy",
        "x",
        code.path().to_str().unwrap(),
        "--runtime",
        "python3",
        "--secret",
        &format!("{secret}-no-equals"),
    ]);
    assert_eq!(common::code(&out), 1);
    assert!(!stderr(&out).contains(&secret), "{}", stderr(&out));
}

#[test]
fn private_functions_need_a_token_and_the_admin_api_the_admin_token() {
    let s = Server::start("private");
    let code = TempDir::with("private", &[("handler.py", HELLO)]);
    s.deploy("closed", code.path(), &["--runtime", "python3", "--private"]);
    s.deploy("open", code.path(), &["--runtime", "python3"]);
    assert_eq!(s.get("/fn/open/").status, 200);
    let r = s.get("/fn/closed/");
    assert_eq!(r.status, 401);
    assert!(r.text().contains("fnbox token create closed"), "{}", r.text());
    assert_eq!(s.request("GET", "/fn/closed/", &[("X-Auth-Token", "guess")], b"").status, 403);

    let out = s.cli(&["token", "create", "closed"]);
    let token = ok(&out).trim().to_string();
    assert!(!token.is_empty());
    let r = s.request("GET", "/fn/closed/", &[("X-Auth-Token", &token)], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    s.deploy("other", code.path(), &["--runtime", "python3", "--private"]);
    assert_eq!(
        s.request("GET", "/fn/other/", &[("X-Auth-Token", &token)], b"").status,
        403,
        "a token opens its function only"
    );
    assert_eq!(ok(&s.cli(&["invoke", "closed"])), "hello", "the CLI uses the admin token");

    let listed: serde_json::Value = serde_json::from_str(&ok(&s.cli(&["token", "ls", "closed", "--json"]))).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert!(!listed.to_string().contains(&token), "token values are never listed");
    ok(&s.cli(&["token", "rm", "closed", &id]));
    assert_eq!(s.request("GET", "/fn/closed/", &[("X-Auth-Token", &token)], b"").status, 403, "revoked");

    // The admin API.
    assert_eq!(s.get("/api/v1/functions").status, 401);
    assert_eq!(s.request("GET", "/api/v1/functions", &[("Authorization", "Bearer wrong")], b"").status, 401);
    let other_dir = TempDir::new("no-token");
    let out = std::process::Command::new(FNBOX)
        .args(["ls", "--server", &s.url, "--data-dir"])
        .arg(other_dir.path())
        .output()
        .unwrap();
    assert_eq!(common::code(&out), 1);
    assert!(stderr(&out).contains("cannot read the admin token"), "{}", stderr(&out));
}

#[test]
fn redeploy_keeps_requests_in_flight_and_rm_removes() {
    let s = Server::start("redeploy");
    let v1 = TempDir::with(
        "v1",
        &[("handler.py", "import time\ndef handle(event, context):\n    time.sleep(6)\n    return 'v1'\n")],
    );
    let v2 = TempDir::with("v2", &[("handler.py", "def handle(event, context):\n    return 'v2'\n")]);
    s.deploy("roll", v1.path(), &["--runtime", "python3"]);
    std::thread::scope(|t| {
        let inflight = t.spawn(|| s.get("/fn/roll/"));
        assert!(eventually(std::time::Duration::from_secs(10), || s
            .metric("fnbox_instances{function=\"roll\",state=\"busy\"}")
            == 1.0));
        s.deploy("roll", v2.path(), &["--runtime", "python3"]);
        assert_eq!(s.get("/fn/roll/").text(), "v2", "new requests see the new code at once");
        let r = inflight.join().unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "v1"), "the request in flight finished on the old code");
    });
    let v: serde_json::Value = serde_json::from_str(&ok(&s.cli(&["ls", "--json"]))).unwrap();
    assert_eq!(v[0]["version"], 2);
    assert!(
        eventually(std::time::Duration::from_secs(10), || s
            .metric("fnbox_instances{function=\"roll\",state=\"idle\"}")
            == 1.0),
        "the old instance stops once done"
    );
    assert_eq!(ok(&s.cli(&["rm", "roll"])), "removed roll\n");
    let r = s.get("/fn/roll/");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("does not exist"), "{}", r.text());
    let out = s.cli(&["rm", "roll"]);
    assert!(stderr(&out).contains("function 'roll' does not exist"), "{}", stderr(&out));
    assert!(eventually(std::time::Duration::from_secs(10), || s.scope.leftover_cgroups().is_empty()));
}
