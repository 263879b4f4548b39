//! The runc-compatible verbs of `fnbox-runc-v1`/`fnbox-runc-v2` used directly on a bundle, as
//! a person or a shim would, without containerd; and bundles that are wrong, refused with
//! errors that say what and how to fix it. Run as root.

mod common;
mod oci_support;

use oci_support::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn each_verb_acts_on_a_container_whose_state_outlives_the_verb() {
    for v in 0..2 {
        let rt = Runtime::new("verbs", v);
        let id = format!("verbs-{}", kind(v));
        let script = "echo started; trap 'echo got TERM; exit 7' TERM; while true; do sleep 0.05; done";
        let b = rt.bundle(&["sh", "-c", script]);
        let init = rt.create(&b, &id);
        let supervisor = rt.supervisor(&id);
        let s = rt.state(&id);
        assert_eq!(s["status"], "created", "{s}");
        assert_eq!((s["id"].as_str(), s["ociVersion"].as_str()), (Some(id.as_str()), Some("1.0.2")));
        assert_eq!(s["bundle"].as_str().map(PathBuf::from), Some(b.canonicalize().unwrap()));
        let pid = s["pid"].as_i64().unwrap() as i32;
        assert!(pid == init && Path::new(&format!("/proc/{supervisor}")).exists(), "state {pid}, pid file {init}");
        assert_eq!(rt.output_of(&id), "", "the program ran before start");

        // Starting twice is refused.
        rt.ok(&["start", &id]);
        let again = rt.out(&["start", &id]);
        assert!(!again.status.success() && text(&again.stderr).contains("not created"), "{}", text(&again.stderr));
        assert_eq!(rt.state(&id)["status"], "running");

        let ps: Vec<i32> = serde_json::from_slice(&rt.ok(&["ps", "--format", "json", &id]).stdout).unwrap();
        assert!(ps.contains(&pid), "ps {ps:?} lacks the container's init {pid}");

        rt.ok(&["pause", &id]);
        assert_eq!(rt.state(&id)["status"], "paused");
        rt.ok(&["resume", &id]);
        assert_eq!(rt.state(&id)["status"], "running");

        let res = rt.dir.path().join("resources.json");
        std::fs::write(&res, r#"{"memory":{"limit":67108864},"pids":{"limit":77}}"#).unwrap();
        rt.ok(&["update", "--resources", res.to_str().unwrap(), &id]);
        let dirs = cgroups_at(&format!("fnbox/{id}"));
        let read =
            |f: &str| dirs.iter().find_map(|d| std::fs::read_to_string(d.join(f)).ok()).map(|s| s.trim().to_string());
        assert_eq!(read("memory.limit_in_bytes").or_else(|| read("memory.max")).as_deref(), Some("67108864"));
        assert_eq!(read("pids.max").as_deref(), Some("77"));

        let proc_json = rt.dir.path().join("process.json");
        let p = serde_json::json!({"args": ["sh", "-c", "echo exec saw $GREETING in $(pwd); exit 9"], "cwd": "/tmp",
            "env": ["PATH=/bin", "GREETING=hi"]});
        std::fs::write(&proc_json, p.to_string()).unwrap();
        let out = rt.out(&["exec", "--process", proc_json.to_str().unwrap(), &id]);
        assert_eq!(out.status.code(), Some(9), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "exec saw hi in /tmp\n");
        // runc's other form: the command on the line, no process file.
        let inline = rt.out(&["exec", &id, "sh", "-c", "echo inline in $(pwd); exit 4"]);
        assert_eq!(inline.status.code(), Some(4), "{}", text(&inline.stderr));
        assert_eq!(text(&inline.stdout), "inline in /\n");

        rt.ok(&["kill", &id, "TERM"]);
        rt.wait_status(&id, "stopped");
        assert_eq!(rt.state(&id)["pid"], 0);
        assert_eq!(rt.output_of(&id), "started\ngot TERM\n");
        let late = rt.out(&["kill", &id, "KILL"]);
        assert!(text(&late.stderr).contains("not running"), "{}", text(&late.stderr));
        rt.ok(&["delete", &id]);
        rt.assert_gone(&id, &[init, supervisor]);
    }
}

#[test]
fn run_in_the_foreground_returns_the_status_and_removes_the_container() {
    for v in 0..2 {
        let rt = Runtime::new("run", v);
        let b = rt.bundle(&["sh", "-c", "echo out; cat /etc/hostname 2>/dev/null; hostname; exit 3"]);
        let id = format!("run-{}", kind(v));
        let out = rt.out(&["run", "--bundle", b.to_str().unwrap(), &id]);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        // `fnbox-runc spec` names the host fnbox.
        assert_eq!(text(&out.stdout), "out\nfnbox\n");
        rt.assert_gone(&id, &[]);
    }
}

#[test]
fn delete_force_ends_a_running_container_and_plain_delete_refuses() {
    for v in 0..2 {
        let rt = Runtime::new("force", v);
        let b = rt.bundle(&["sleep", "1000"]);
        let id = format!("force-{}", kind(v));
        let init = rt.create(&b, &id);
        let supervisor = rt.supervisor(&id);
        rt.ok(&["start", &id]);
        let out = rt.out(&["delete", &id]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("not stopped") && text(&out.stderr).contains("--force"));
        rt.ok(&["delete", "--force", &id]);
        rt.assert_gone(&id, &[init, supervisor]);
        // A created, never started container goes too.
        let init = rt.create(&b, &id);
        let supervisor = rt.supervisor(&id);
        rt.ok(&["delete", "--force", &id]);
        rt.assert_gone(&id, &[init, supervisor]);
    }
}

#[test]
fn run_detached_exec_detached_and_kill_all() {
    for v in 0..2 {
        let rt = Runtime::new("detach", v);
        let b = rt.bundle(&["sleep", "1000"]);
        let id = format!("detach-{}", kind(v));
        let init = rt.with_pid_file(&["run", "--detach", "--bundle", b.to_str().unwrap()], &id);
        let supervisor = rt.supervisor(&id);
        assert_eq!(rt.state(&id)["status"], "running");
        assert_eq!(rt.state(&id)["pid"], init);

        let proc_json = rt.dir.path().join("process.json");
        std::fs::write(&proc_json, r#"{"args":["sleep","999"],"cwd":"/","env":["PATH=/bin"]}"#).unwrap();
        let exec_pid = rt.with_pid_file(&["exec", "--detach", "--process", proc_json.to_str().unwrap()], &id);
        let cmdline = std::fs::read(format!("/proc/{exec_pid}/cmdline")).unwrap();
        assert_eq!(text(&cmdline), "sleep\0999\0");
        let ps: Vec<i32> = serde_json::from_slice(&rt.ok(&["ps", "--format", "json", &id]).stdout).unwrap();
        assert!(ps.contains(&exec_pid), "ps {ps:?} lacks the exec'd process {exec_pid}");

        rt.ok(&["kill", "--all", &id, "SIGTERM"]);
        rt.wait_status(&id, "stopped");
        let stat = std::fs::read_to_string(format!("/proc/{exec_pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z "), "the exec'd process survived kill --all: {stat}");
        rt.ok(&["delete", &id]);
        rt.assert_gone(&id, &[init, supervisor]);
    }
}

#[test]
fn the_sandbox_annotation_overrides_the_binary_name() {
    // v2's program runs under the Sentry's seccomp filter; a v1 container whose spec has no
    // linux.seccomp (as `spec` writes it) runs under none, as the OCI spec says. The
    // annotation raises v1 to v2 and cannot lower v2 to v1.
    let probe = "grep -q 'Seccomp:.0' /proc/self/status && echo v1 || echo v2";
    for (v, annotation) in [(0, "v2"), (1, "v1")] {
        let rt = Runtime::new("annotation", v);
        let b = rt.bundle(&["sh", "-c", probe]);
        let id = format!("ann-{}", kind(v));
        let out = rt.out(&["run", "--bundle", b.to_str().unwrap(), &id]);
        assert_eq!(text(&out.stdout).trim(), kind(v), "{}", text(&out.stderr));
        edit_config(&b, |c| c["annotations"] = serde_json::json!({"dev.fnbox.sandbox": annotation}));
        let out = rt.out(&["run", "--bundle", b.to_str().unwrap(), &id]);
        if annotation == "v2" {
            assert_eq!(text(&out.stdout).trim(), annotation, "{}", text(&out.stderr));
        } else {
            // Only ever stronger: v1 under fnbox-runc-v2 is refused, nothing runs.
            assert!(text(&out.stderr).contains("weaker sandbox"), "{}", text(&out.stderr));
            assert!(text(&out.stdout).is_empty() && !out.status.success());
        }
        edit_config(&b, |c| c["annotations"] = serde_json::json!({"dev.fnbox.sandbox": "v3"}));
        let out = rt.out(&["run", "--bundle", b.to_str().unwrap(), &id]);
        assert!(text(&out.stderr).contains("dev.fnbox.sandbox=v3") && text(&out.stderr).contains("use v1 or v2"));
    }
}

#[test]
fn features_spec_and_global_flags() {
    let rt = Runtime::new("features", 1);
    let f: serde_json::Value = serde_json::from_slice(&rt.ok(&["features"]).stdout).unwrap();
    assert_eq!(f["ociVersionMax"], "1.0.2");
    assert!(f["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n == "network"));
    let b = rt.dir.path().join("fresh");
    std::fs::create_dir_all(&b).unwrap();
    rt.ok(&["spec", "--bundle", b.to_str().unwrap()]);
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert_eq!(c["root"]["path"], "rootfs");
    let out = rt.out(&["spec", "--bundle", b.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("exists already"), "{}", text(&out.stderr));

    // The shim's way: global flags first, errors as JSON lines in --log.
    let log = rt.dir.path().join("log.json");
    let out = rt.out(&["--log", log.to_str().unwrap(), "--log-format", "json", "--systemd-cgroup", "state", "nope"]);
    assert!(!out.status.success());
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container nope does not exist");
}

/// Runs `create` on a bundle that is wrong; returns its error (and checks nothing was left).
fn refused(rt: &Runtime, b: &Path, id: &str) -> String {
    // Standard error to a file: a container created by mistake would hold a pipe open.
    let err_file = rt.dir.path().join(format!("{id}.err"));
    let mut c = rt.cmd(&["create", "--bundle", b.to_str().unwrap(), id]);
    let status = c.stdout(Stdio::null()).stderr(std::fs::File::create(&err_file).unwrap()).status().unwrap();
    if status.success() {
        rt.ok(&["delete", "--force", id]);
        panic!("create {id} succeeded");
    }
    assert!(!rt.root.join(id).exists(), "a refused container left its state");
    assert!(cgroups_at(&format!("fnbox/{id}")).is_empty(), "a refused container left its cgroup");
    std::fs::read_to_string(err_file).unwrap()
}

#[test]
fn bad_bundles_are_refused_with_clear_errors() {
    let rt = Runtime::new("bad", 0);
    let b = rt.bundle(&["true"]);
    let config = b.join("config.json");
    let good = std::fs::read(&config).unwrap();

    std::fs::remove_file(&config).unwrap();
    let e = refused(&rt, &b, "no-config");
    assert!(e.contains("config.json") && e.contains("No such file"), "{e}");

    std::fs::write(&config, b"{\"ociVersion\": \"1.0.2\", \"process\": ").unwrap();
    let e = refused(&rt, &b, "bad-json");
    assert!(e.contains("is not a valid OCI config") && e.contains("line 1"), "{e}");

    std::fs::write(&config, &good).unwrap();
    edit_config(&b, |c| c["linux"]["namespaces"].as_array_mut().unwrap().push(serde_json::json!({"type": "time2"})));
    let e = refused(&rt, &b, "bad-ns");
    assert!(e.contains("unknown namespace type 'time2'") && e.contains("use pid, network"), "{e}");

    std::fs::write(&config, &good).unwrap();
    edit_config(&b, |c| c["root"]["path"] = "no-such-rootfs".into());
    let e = refused(&rt, &b, "bad-root");
    assert!(e.contains("no-such-rootfs") && e.contains("does not exist"), "{e}");

    std::fs::write(&config, &good).unwrap();
    edit_config(&b, |c| c["process"]["args"] = serde_json::json!(["/bin/not-here"]));
    let e = refused(&rt, &b, "bad-args");
    assert!(e.contains("cannot run '/bin/not-here'"), "{e}");
    // Present but not an executable file: refused at create too, not only at start.
    edit_config(&b, |c| c["process"]["args"] = serde_json::json!(["/bin"]));
    let e = refused(&rt, &b, "not-exec");
    assert!(e.contains("cannot run '/bin'") && e.contains("ermission denied"), "{e}");

    let e = refused(&rt, &rt.dir.path().join("no-bundle"), "no-bundle");
    assert!(e.contains("no-bundle") && e.contains("config.json"), "{e}");
}

#[test]
fn the_root_devices_sysctl_oom_score_and_hooks_of_config_json_are_honoured() {
    for v in 0..2 {
        let rt = Runtime::new("honoured", v);
        let script = "echo written > /written; stat -c '%A %u %t,%T' /dev/fnbox-null; \
                      cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj";
        let b = rt.bundle(&["sh", "-c", script]);
        let hooks = rt.dir.path().join("hooks.log");
        let hook = |word: &str| {
            let cmd = format!("echo {word} $(grep -o '\"status\":\"[a-z]*\"') >> {}", hooks.display());
            serde_json::json!([{"path": "/bin/sh", "args": ["sh", "-c", cmd]}])
        };
        edit_config(&b, |c| {
            c["root"]["readonly"] = false.into();
            c["linux"]["devices"] = serde_json::json!([{"path": "/dev/fnbox-null", "type": "c", "major": 1,
                "minor": 3, "fileMode": 0o620, "uid": 0, "gid": 0}]);
            c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
            c["process"]["oomScoreAdj"] = 321.into();
            // A failing poststart or poststop hook is a warning, and the next one still runs.
            let failing = serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]});
            // A hook may write more to its standard error than a pipe holds.
            let noisy = serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "head -c 300000 /dev/zero >&2"], "timeout": 10});
            c["hooks"] = serde_json::json!({"prestart": [noisy, hook("prestart")[0]],
                "poststart": [failing, hook("poststart")[0]], "poststop": [failing, hook("poststop")[0]]});
        });
        let id = format!("honoured-{}", kind(v));
        let init = rt.create(&b, &id);
        let supervisor = rt.supervisor(&id);
        rt.ok(&["start", &id]);
        rt.wait_status(&id, "stopped");
        // v2's /proc (the Sentry's) has no /proc/sys/net yet (docs/kubernetes.md): the sysctl
        // is set in the namespace, but v2's program cannot read it back.
        let sysctl = if v == 0 { "1\n" } else { "" };
        assert_eq!(rt.output_of(&id), format!("crw--w---- 0 1,3\n{sysctl}321\n"), "{}", kind(v));
        // The container wrote to the bundle's rootfs itself, as runc's would.
        let written = std::fs::read_to_string(b.join("rootfs/written")).unwrap_or_default();
        assert_eq!(written, "written\n", "{}: the write did not reach root.path", kind(v));
        rt.ok(&["delete", &id]);
        rt.assert_gone(&id, &[init, supervisor]);
        let log = std::fs::read_to_string(&hooks).unwrap_or_default();
        assert_eq!(
            log,
            "prestart \"status\":\"created\"\npoststart \"status\":\"running\"\npoststop \"status\":\"stopped\"\n",
            "{}",
            kind(v)
        );

        // A failing prestart hook fails create and leaves nothing.
        edit_config(&b, |c| {
            c["hooks"] =
                serde_json::json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no >&2; exit 3"]}]})
        });
        let out = rt.out(&["create", "--bundle", b.to_str().unwrap(), &id]);
        assert!(!out.status.success() && text(&out.stderr).contains("hooks.prestart[0]"), "{}", text(&out.stderr));
        assert!(!rt.root.join(&id).exists(), "{}: a container whose prestart failed is left", kind(v));
        // A sysctl the container's namespaces do not own is refused by name.
        edit_config(&b, |c| {
            c["hooks"] = serde_json::Value::Null;
            c["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "10"});
        });
        let out = rt.out(&["create", "--bundle", b.to_str().unwrap(), &id]);
        assert!(!out.status.success() && text(&out.stderr).contains("vm.swappiness"), "{}", text(&out.stderr));
    }
}

/// A `process.user` that is not root, with ambient capabilities and new privileges allowed
/// (runtime-tools' process_user): the program, and a command `exec` runs, have that user, its
/// groups, umask and capabilities, as under runc. (v2 once failed at `execve` with EPERM: the
/// change of uid made the process's memory unreadable to the Sentry.) Its capabilities act:
/// with CAP_DAC_OVERRIDE it makes and removes a file in root's `/` (v2 once ran the removal
/// without them, as runtime-tools' runtimetest found: EACCES).
#[test]
fn a_user_that_is_not_root_with_ambient_capabilities_runs_and_execs_as_under_runc() {
    let show = "id; grep -E '^(Cap(Inh|Prm|Eff|Amb)|NoNewPrivs)' /proc/self/status; \
                touch /by-10 && mkdir /dir-by-10 && rm /by-10 && rmdir /dir-by-10 && echo made-and-removed";
    let caps: String = ["Inh", "Prm", "Eff", "Amb"].iter().map(|s| format!("Cap{s}:\t00000000200004a2\n")).collect();
    let shown = format!("uid=10 gid=10 groups=5\n{caps}NoNewPrivs:\t0\nmade-and-removed\n");
    for v in [2, 0, 1] {
        let rt = if v == 2 { Runtime::runc("user") } else { Runtime::new("user", v) };
        let b = rt.bundle(&["sh", "-c", &format!("{show}; umask; exec sleep 1000")]);
        edit_config(&b, |c| {
            c["process"]["user"] = serde_json::json!({"uid": 10, "gid": 10, "additionalGids": [5], "umask": 2});
            c["process"]["noNewPrivileges"] = false.into();
            c["root"]["readonly"] = false.into();
            let caps = serde_json::json!([
                "CAP_DAC_OVERRIDE",
                "CAP_KILL",
                "CAP_SETUID",
                "CAP_NET_BIND_SERVICE",
                "CAP_AUDIT_WRITE"
            ]);
            c["process"]["capabilities"] = serde_json::json!({"bounding": caps, "effective": caps,
                "permitted": caps, "inheritable": caps, "ambient": caps});
        });
        let id = format!("user-{}", kind(v));
        rt.create(&b, &id);
        rt.ok(&["start", &id]);
        let want = format!("{shown}0002\n");
        let ran = common::eventually(Duration::from_secs(20), || rt.output_of(&id) == want);
        assert!(ran, "{}: the program showed {:?}, not {want:?}", kind(v), rt.output_of(&id));
        // runc's line form: the container's own process (its user, capabilities) running it.
        let out = rt.out(&["exec", &id, "sh", "-c", show]);
        assert!(out.status.success(), "{}: exec failed: {}", kind(v), text(&out.stderr));
        assert_eq!(text(&out.stdout), shown, "{}: exec", kind(v));
        rt.ok(&["delete", "--force", &id]);
    }
}
