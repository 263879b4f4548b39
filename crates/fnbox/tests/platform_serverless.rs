//! `fnbox deploy -f serverless.yml` end to end, on Scaleway's own example projects deployed as
//! a user would (the CLI, the project as published), against a real `fnbox serve`: each
//! function answers, and its runtime, env, secrets, memory, scaling and `schedule` events
//! (CRON triggers) are what the file says; a second run changes nothing.
//!
//! The projects are never in this repository:
//! - serverless-scaleway-functions' examples (the Serverless Framework plugin's npm package,
//!   0.3.2: python3, nodejs, nodejs-schedule, secrets, multiple), which
//!   `conformance/scaleway-setup.sh DIR` puts in `DIR/sls-plugin/package/examples`; the test
//!   takes `FNBOX_SCALEWAY_REF=DIR` (default /opt/scaleway-ref) and fails loudly without them;
//! - scaleway/serverless-examples (GitHub, not in a package registry) with
//!   `FNBOX_SLS_EXAMPLES=CHECKOUT`: cors-python and cors-node; without it that part says loudly
//!   that it did not run.

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::path::{Path, PathBuf};

fn plugin_examples() -> PathBuf {
    let base = std::env::var_os("FNBOX_SCALEWAY_REF").map(PathBuf::from).unwrap_or("/opt/scaleway-ref".into());
    let dir = base.join("sls-plugin/package/examples");
    assert!(
        dir.join("python3/serverless.yml").is_file(),
        "SERVERLESS DEPLOY TESTS CANNOT RUN: Scaleway's example projects are not in {}: \
         run conformance/scaleway-setup.sh {} (it unpacks serverless-scaleway-functions 0.3.2 from npm)",
        dir.display(),
        base.display()
    );
    dir
}

/// `fnbox deploy -f FILE` with the user's environment `vars`: (stdout, stderr).
fn deploy_f(s: &Server, file: &Path, vars: &[(&str, &str)]) -> (String, String) {
    let out = s.cli_env(&["deploy", "-f", file.to_str().unwrap()], vars);
    assert_eq!(code(&out), 0, "deploy -f {}: {}{}", file.display(), stdout(&out), stderr(&out));
    (stdout(&out), stderr(&out))
}

fn function(s: &Server, name: &str) -> serde_json::Value {
    let auth = format!("Bearer {}", s.admin_token());
    let r = s.request("GET", &format!("/api/v1/functions/{name}"), &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    r.json()
}

fn triggers(s: &Server, name: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&s.cli(&["trigger", "ls", name, "--json"]))).unwrap()
}

/// What the function was deployed with, as the API shows it.
fn config(v: &serde_json::Value) -> (String, u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} missing: {v}"));
    (v["runtime"].as_str().unwrap().to_string(), n("memory_mb"), n("min_scale"), n("max_scale"))
}

#[test]
fn scaleway_plugin_examples_deploy_unchanged() {
    let ex = plugin_examples();
    let s = Server::start("sls-plugin");
    // Python: provider env and the function's own, keys fnbox has no use for said.
    let (out, err) = deploy_f(&s, &ex.join("python3/serverless.yml"), &[]);
    assert!(out.contains("first: deployed"), "{out}");
    for key in ["service:", "plugins:", "provider.scwToken:", "provider.scwRegion:", "package:"] {
        assert!(err.contains(&format!("fnbox: ignored: {key}")), "{key} not said: {err}");
    }
    let r = s.get("/fn/first/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["message"], "Hello From Python3 runtime on Serverless Framework and Scaleway Functions");
    let v = function(&s, "first");
    // No memoryLimit, minScale, maxScale in the file: Scaleway's defaults (256 MB, 0 to 20).
    assert_eq!(config(&v), ("python3".into(), 256, 0, 20), "{v}");
    assert_eq!(v["env"], serde_json::json!({"test": "test", "local": "local"}), "{v}");
    let version = v["version"].clone();
    let (out, _) = deploy_f(&s, &ex.join("python3/serverless.yml"), &[]);
    assert!(out.contains("first: unchanged"), "a second run redeployed: {out}");
    assert_eq!(function(&s, "first")["version"], version);

    // Node, then the same with a schedule: the CRON event is a trigger with its input as
    // typed JSON; a second run keeps it.
    let (out, _) = deploy_f(&s, &ex.join("nodejs/serverless.yml"), &[]);
    assert!(out.contains("first: deployed"), "{out}");
    let r = s.get("/fn/first/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["message"], "Hello from Serverless Framework and Scaleway Functions :D");
    assert_eq!(config(&function(&s, "first")).0, "node");
    deploy_f(&s, &ex.join("nodejs-schedule/serverless.yml"), &[]);
    let t = triggers(&s, "first");
    assert_eq!(t.as_array().unwrap().len(), 1, "{t}");
    assert_eq!((t[0]["name"].as_str(), t[0]["schedule"].as_str()), (Some("sls-schedule-0"), Some("1 * * * *")));
    assert_eq!(t[0]["data"], serde_json::json!({"myInput": "myValue", "mySecondInput": 1}));
    assert_eq!(t[0]["next_runs"].as_array().map(Vec::len), Some(3), "{t}");
    let (out, _) = deploy_f(&s, &ex.join("nodejs-schedule/serverless.yml"), &[]);
    assert!(out.contains("first: unchanged") && !out.contains("changed,"), "{out}");
    assert_eq!(triggers(&s, "first")[0]["id"], t[0]["id"], "the schedule was replaced");

    // Secrets: plain ones and ${NAME} read from the deployer's environment; the function sees
    // them all as environment variables (it lists the names starting with "env").
    let vars = [("ENV_SECRETC", "from the shell"), ("ENV_SECRET3", "three")];
    deploy_f(&s, &ex.join("secrets/serverless.yml"), &vars);
    let r = s.get("/fn/first/");
    assert_eq!(r.status, 200, "{}", r.text());
    let names = [
        "env_notSecret1",
        "env_notSecretA",
        "env_secret1",
        "env_secret2",
        "env_secret3",
        "env_secretA",
        "env_secretB",
        "env_secretC",
    ];
    assert_eq!(r.json()["env_vars"], serde_json::json!(names));
    let v = function(&s, "first");
    let secrets: Vec<&String> = v["secrets"].as_object().unwrap().keys().collect();
    assert_eq!(secrets.len(), 6, "{v}");
    assert!(!v.to_string().contains("three") && !v.to_string().contains("valueA"), "a secret value shown: {v}");
    assert_eq!(triggers(&s, "first"), serde_json::json!([]), "the schedule outlived the file that had it");
    // ENV_SECRET3 not set: said, and that secret is not created (as the plugin does).
    let (_, err) = deploy_f(&s, &ex.join("secrets/serverless.yml"), &vars[..1]);
    assert!(err.contains("functions.first.secret.env_secret3: ${ENV_SECRET3} is not set"), "{err}");
    let got = s.get("/fn/first/").json();
    assert!(!got["env_vars"].as_array().unwrap().iter().any(|n| n == "env_secret3"), "{got}");

    // Two functions, two runtimes, from one project.
    let (out, _) = deploy_f(&s, &ex.join("multiple/serverless.yml"), &[]);
    assert!(out.contains("nodefunc: deployed") && out.contains("pythonfunc: deployed"), "{out}");
    assert_eq!(config(&function(&s, "nodefunc")).0, "node");
    assert_eq!(config(&function(&s, "pythonfunc")).0, "python3");
    assert_eq!(s.get("/fn/nodefunc/").json()["message"], "Hello from Serverless Framework and Scaleway Functions :D");
    assert_eq!(
        s.get("/fn/pythonfunc/").json()["message"],
        "Hello From Python3 runtime on Serverless Framework and Scaleway Functions"
    );
}

#[test]
fn scaleway_serverless_examples_deploy_unchanged() {
    let Some(dir) = std::env::var_os("FNBOX_SLS_EXAMPLES").map(PathBuf::from) else {
        eprintln!(
            "SKIPPED LOUDLY: set FNBOX_SLS_EXAMPLES to a checkout of scaleway/serverless-examples \
             (not in a package registry, so CI does not have it) to deploy cors-python and cors-node"
        );
        return;
    };
    let s = Server::start("sls-examples");
    let (out, _) = deploy_f(&s, &dir.join("functions/cors-python/serverless.yml"), &[]);
    assert!(out.contains("first: deployed"), "{out}");
    let r = s.get("/fn/first/");
    assert_eq!((r.status, r.text().as_str()), (200, "This is checking CORS"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let v = function(&s, "first");
    assert_eq!(config(&v), ("python3".into(), 256, 0, 20), "{v}");
    assert_eq!(v["env"], serde_json::json!({"test": "test"}), "{v}");

    let (out, _) = deploy_f(&s, &dir.join("functions/cors-node/serverless.yml"), &[]);
    assert!(out.contains("cors-permissive: deployed") && out.contains("cors-very-permissive: deployed"), "{out}");
    let r = s.get("/fn/cors-permissive/");
    assert_eq!((r.status, r.text().as_str()), (200, "This is allowing most CORS requests"));
    assert_eq!(r.header("access-control-expose-headers"), Some("*"));
    let r = s.request("GET", "/fn/cors-very-permissive/", &[("Origin", "https://app.example")], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "This is allowing all CORS requests"));
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(config(&function(&s, "cors-permissive")).0, "node");
}
