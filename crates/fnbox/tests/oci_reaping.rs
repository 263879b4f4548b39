//! The container's process as containerd's shim sees it: the pid in `--pid-file` is the
//! container's init, which the process above `create` adopts and reaps, and whose status is
//! the container's, also after an OOM kill or the death of fnbox's supervisor. Run as root.

mod common;
mod oci_support;

use oci_support::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Set in the copy of this test binary that [`the_pid_file_names_the_init_which_its_parent_reaps`]
/// starts as the parent of `create`: what to create, as JSON.
const CREATE_PARENT: &str = "FNBOX_TEST_CREATE_PARENT";

/// As with runc, the pid in `--pid-file` is the one `state` reports: the container's process,
/// pid 1 of its pid namespace, in every namespace of the program, which the process above
/// `create` (a subreaper, as containerd's shim is) adopts and reaps with the program's status,
/// or with the SIGKILL that `kill` sends.
#[test]
fn the_pid_file_names_the_init_which_its_parent_reaps() {
    if let Ok(what) = std::env::var(CREATE_PARENT) {
        return be_the_parent_of_create(&what);
    }
    for v in [2, 0, 1] {
        let rt = if v == 2 { Runtime::runc("reaped") } else { Runtime::new("reaped", v) };
        let b = rt.bundle(&["true"]);
        for (script, killed, want) in [("exit 3", false, "exited 3"), ("exec sleep 1000", true, "signaled 9")] {
            edit_config(&b, |c| c["process"]["args"] = serde_json::json!(["sh", "-c", script]));
            let id = format!("reaped-{}-{}", kind(v), killed);
            let (mut parent, mut said, pid) =
                adopted(&rt, &b, &id, "the_pid_file_names_the_init_which_its_parent_reaps", kind(v));
            assert_eq!(rt.state(&id)["pid"], pid, "{}: state and the pid file differ", kind(v));
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_default().trim().to_string();
            assert!(field("NSpid:").ends_with("\t1"), "{}: {pid} is not pid 1 of its namespace: {status}", kind(v));
            assert_eq!(field("PPid:"), parent.id().to_string(), "{}: {pid} was not adopted", kind(v));
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            if let Some(program) = children.split_whitespace().next() {
                for ns in ["mnt", "pid", "net", "ipc", "uts", "user", "cgroup"] {
                    let link = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).unwrap();
                    assert_eq!(
                        link(&pid.to_string()),
                        link(program),
                        "{}: the init is not in the {ns} namespace",
                        kind(v)
                    );
                }
            }
            rt.ok(&["start", &id]);
            if killed {
                rt.ok(&["kill", &id, "KILL"]);
            }
            assert_eq!(said.next().as_deref(), Some(format!("reaped {want}").as_str()), "{}: {script}", kind(v));
            assert!(parent.wait().unwrap().success());
            rt.wait_status(&id, "stopped");
            rt.ok(&["delete", &id]);
            if v != 2 {
                rt.assert_gone(&id, &[pid]);
            }
        }
    }
}

/// Starts the process that stands for containerd's shim (`be_the_parent_of_create`, in this
/// test binary's `test`, which must hand over to it when [`CREATE_PARENT`] is set), which
/// creates `id`. Returns it, what it says, and the pid in the pid file.
fn adopted(
    rt: &Runtime,
    b: &Path,
    id: &str,
    test: &str,
    who: &str,
) -> (std::process::Child, impl Iterator<Item = String>, i32) {
    let pid_file = rt.dir.path().join(format!("{id}.pid"));
    let what = serde_json::json!({"bin": rt.bin, "root": rt.root, "bundle": b, "id": id, "pid_file": pid_file});
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(CREATE_PARENT, what.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufRead::lines(std::io::BufReader::new(parent.stdout.take().unwrap()))
        .map_while(Result::ok)
        .filter_map(|l| l.strip_prefix("parent: ").map(str::to_string));
    assert_eq!(said.next().as_deref(), Some("created"), "{who}: create failed");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    (parent, said, pid)
}

/// An OOM kill ends the whole container (137), as it ends a function's sandbox, even when the
/// program exits on its own before fnbox's supervisor has seen the kill: here the supervisor
/// is stopped while a shell's `dd` is killed and the shell exits 0. The init waits for the
/// supervisor's word before it exits with the status its parent (the shim) reaps.
#[test]
fn an_oom_kill_ends_the_container_even_when_its_program_exits_first() {
    const TEST: &str = "an_oom_kill_ends_the_container_even_when_its_program_exits_first";
    if let Ok(what) = std::env::var(CREATE_PARENT) {
        return be_the_parent_of_create(&what);
    }
    for v in 0..2 {
        let rt = Runtime::new("oom-first", v);
        let b = rt.bundle(&["sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; exit 0"]);
        edit_config(&b, |c| c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 32 << 20}));
        let id = format!("oom-first-{}", kind(v));
        let (mut parent, mut said, _) = adopted(&rt, &b, &id, TEST, kind(v));
        let supervisor = rt.supervisor(&id).to_string();
        rt.ok(&["start", &id]);
        run_ok(Command::new("kill").args(["-STOP", &supervisor]));
        // The shell sleeps 1 s, dd is killed at once and the shell exits: all while the
        // supervisor cannot act.
        std::thread::sleep(Duration::from_millis(2500));
        run_ok(Command::new("kill").args(["-CONT", &supervisor]));
        let reaped = said.next();
        assert!(
            matches!(reaped.as_deref(), Some("reaped exited 137" | "reaped signaled 9")),
            "{}: the container's init ended with {reaped:?}, not of the OOM kill",
            kind(v)
        );
        assert!(parent.wait().unwrap().success());
        rt.wait_status(&id, "stopped");
        rt.ok(&["delete", &id]);
    }
}

/// What stands for containerd's shim in the tests above: a subreaper that runs
/// `create`, then reaps the pid in the pid file and says how it ended, then reaps the rest
/// (fnbox's supervisor, adopted too).
fn be_the_parent_of_create(what: &str) {
    let w: serde_json::Value = serde_json::from_str(what).unwrap();
    let arg = |k: &str| w[k].as_str().unwrap().to_string();
    // SAFETY: prctl with integer arguments.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }, 0);
    let status = Command::new(arg("bin"))
        .args([
            "--root",
            &arg("root"),
            "create",
            "--bundle",
            &arg("bundle"),
            "--pid-file",
            &arg("pid_file"),
            &arg("id"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    println!("parent: created");
    let pid: i32 = std::fs::read_to_string(arg("pid_file")).unwrap().trim().parse().unwrap();
    let mut raw = 0;
    // SAFETY: waitpid with a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut raw, 0) }, pid, "{pid} is not this process's child");
    if libc::WIFEXITED(raw) {
        println!("parent: reaped exited {}", libc::WEXITSTATUS(raw));
    } else {
        println!("parent: reaped signaled {}", libc::WTERMSIG(raw));
    }
    // SAFETY: as above; the status is not needed.
    while unsafe { libc::waitpid(-1, &mut raw, 0) } > 0 {}
}

/// The supervisor killed outright (the node's OOM killer, an operator): the container's init
/// ends with it, the container reads as stopped and `delete` still removes everything.
#[test]
fn a_container_whose_supervisor_was_killed_is_stopped_and_deletable() {
    for v in 0..2 {
        let rt = Runtime::new("sigkill", v);
        let b = rt.bundle(&["sleep", "1000"]);
        let id = format!("sigkill-{}", kind(v));
        let init = rt.create(&b, &id);
        let supervisor = rt.supervisor(&id);
        rt.ok(&["start", &id]);
        run_ok(Command::new("kill").args(["-KILL", &supervisor.to_string()]));
        rt.wait_status(&id, "stopped");
        let init_ended = common::eventually(Duration::from_secs(10), || {
            let stat = std::fs::read_to_string(format!("/proc/{init}/stat")).unwrap_or_default();
            !stat.contains("fnbox") || stat.contains(") Z ")
        });
        assert!(init_ended, "{}: the init {init} outlived its supervisor", kind(v));
        rt.ok(&["delete", &id]);
        rt.assert_gone(&id, &[init, supervisor]);
    }
}
