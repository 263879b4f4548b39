//! fnbox as an OCI runtime under a real containerd (Debian's package): each test starts its
//! own containerd (own root, state and socket; CRI and other unneeded plugins off), imports an
//! image it built itself as an OCI archive (no registry), and runs containers through
//! containerd's `io.containerd.runc.v2` shim with `--runc-binary fnbox-runc-v1|v2`.
//! Run as root. If containerd cannot be found or started, the tests fail; they never skip.

mod common;
mod oci_support;

use oci_support::*;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "fnbox.test/busybox:latest";
const NAMESPACE: &str = "fnbox-test";

struct Containerd {
    dir: TempDir,
    daemon: Child,
    socket: PathBuf,
    /// `--runc-root`: where the runtime keeps its containers' state.
    runc_root: PathBuf,
    runtimes: [PathBuf; 2],
}

impl Containerd {
    fn start(name: &str) -> Self {
        require_root();
        for tool in ["containerd", "ctr"] {
            let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
            assert!(
                found.status.success(),
                "{tool} is not installed: apt-get install containerd (.ci/run installs it)"
            );
        }
        let dir = TempDir::new(name);
        let d = dir.path().to_path_buf();
        let socket = d.join("containerd.sock");
        let config = containerd_config(&d, &socket, &["io.containerd.grpc.v1.cri"]);
        std::fs::write(d.join("config.toml"), config).unwrap();
        let daemon = spawn_containerd(&d);
        let runtimes = runtimes(&d);
        let mut c = Self { runc_root: d.join("runc"), dir, daemon, socket, runtimes };
        let until = Instant::now() + Duration::from_secs(20);
        while !c.ctr().arg("version").output().is_ok_and(|o| o.status.success()) {
            if Instant::now() > until || c.daemon.try_wait().unwrap().is_some() {
                let log = std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default();
                panic!("containerd did not start; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rootfs = d.join("image-rootfs");
        busybox_rootfs(&rootfs);
        let tarball = image_tarball(&rootfs, IMAGE, &d);
        run_ok(c.ctr().args(["image", "import"]).arg(tarball));
        c
    }

    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.socket).args(["-n", NAMESPACE]);
        c.stdin(Stdio::null());
        c
    }

    /// `ctr run` through fnbox-runc-`v` (index 0: v1, 1: v2) with `opts` before the image.
    fn run_cmd(&self, v: usize, opts: &[&str], id: &str, args: &[&str]) -> Command {
        let mut c = self.ctr();
        c.args(["run", "--runtime", "io.containerd.runc.v2", "--runc-binary"]).arg(&self.runtimes[v]);
        c.arg("--runc-root").arg(&self.runc_root);
        c.args(opts).args([IMAGE, id]).args(args);
        c
    }

    fn run(&self, v: usize, opts: &[&str], id: &str, args: &[&str]) -> Output {
        self.run_cmd(v, opts, id, args).output().unwrap()
    }

    /// The task's status and pid as `ctr task ls` shows them.
    fn task(&self, id: &str) -> Option<(String, i32)> {
        let out = run_ok(self.ctr().args(["task", "ls"]));
        text(&out.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| (f[2].to_string(), f[1].parse().unwrap_or(0)))
        })
    }

    fn wait_status(&self, id: &str, want: &str) -> i32 {
        let mut pid = 0;
        let became = common::eventually(Duration::from_secs(20), || match self.task(id) {
            Some((s, p)) if s == want => {
                pid = p;
                true
            }
            _ => false,
        });
        assert!(became, "task {id} never became {want}: {:?}", self.task(id));
        pid
    }

    /// A detached container, running.
    fn start_detached(&self, v: usize, opts: &[&str], id: &str, args: &[&str]) -> i32 {
        let out = self.run(v, &[&["-d"], opts].concat(), id, args);
        assert!(out.status.success(), "ctr run -d {id}: {}", text(&out.stderr));
        self.wait_status(id, "RUNNING")
    }

    /// Kills, waits for and deletes a detached container.
    fn remove(&self, id: &str) {
        let _ = self.ctr().args(["task", "kill", "-s", "SIGKILL", id]).output();
        self.wait_status(id, "STOPPED");
        run_ok(self.ctr().args(["task", "delete", id]));
        run_ok(self.ctr().args(["container", "delete", id]));
    }

    /// Nothing of container `id` is left: no state under --runc-root, no cgroup, no mount,
    /// no process.
    fn assert_gone(&self, id: &str) {
        let state = self.runc_root.join(NAMESPACE).join(id);
        assert!(!state.exists(), "state of {id} left behind in {}", state.display());
        let cgroups = cgroups_at(&format!("{NAMESPACE}/{id}"));
        assert!(cgroups.is_empty(), "cgroups of {id} left behind: {cgroups:?}");
        let mounts = mounts_mentioning(id);
        assert!(mounts.is_empty(), "mounts of {id} left behind: {mounts:?}");
        let procs: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| text(&c).replace('\0', " "))
            .filter(|c| c.contains("fnbox-runc") && c.split_whitespace().any(|w| w == id))
            .collect();
        assert!(procs.is_empty(), "processes of {id} left behind: {procs:?}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers a failed test left: kill them (their shims then exit), then containerd.
        if let Ok(out) = self.ctr().args(["task", "ls", "-q"]).output() {
            for id in text(&out.stdout).lines() {
                let _ = self.ctr().args(["task", "kill", "-s", "SIGKILL", id]).output();
                std::thread::sleep(Duration::from_millis(200));
                let _ = self.ctr().args(["task", "delete", "-f", id]).output();
            }
        }
        if let Ok(out) = self.ctr().args(["container", "ls", "-q"]).output() {
            for id in text(&out.stdout).lines() {
                let _ = self.ctr().args(["container", "delete", id]).output();
            }
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Snapshots containerd mounted under its root.
        unmount_below(self.dir.path());
        // ctr's cgroup parent for the namespace (empty unless another test still runs).
        for d in cgroups_at(NAMESPACE) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn kind(v: usize) -> &'static str {
    ["v1", "v2"][v]
}

#[test]
fn run_prints_the_output_and_returns_the_exit_code() {
    let c = Containerd::start("run");
    for v in 0..2 {
        let id = format!("run-{}", kind(v));
        let env = format!("WHO={id}");
        let out = c.run(v, &["--rm", "--env", &env], &id, &["sh", "-c", "echo hello from $WHO; echo oops >&2; exit 3"]);
        assert_eq!(out.status.code(), Some(3), "{}\n{}", text(&out.stderr), c.log());
        assert_eq!(text(&out.stdout).trim(), format!("hello from {id}"));
        assert!(text(&out.stderr).contains("oops"), "{}", text(&out.stderr));
        c.assert_gone(&id);
    }
}

#[test]
fn kill_ends_the_task_by_signal() {
    let c = Containerd::start("kill");
    for v in 0..2 {
        for (sig, code) in [("SIGTERM", 143), ("SIGKILL", 137)] {
            let id = format!("kill-{}-{}", kind(v), sig.to_lowercase());
            let mut run = c.run_cmd(v, &["--rm"], &id, &["sleep", "1000"]).stdout(Stdio::piped()).spawn().unwrap();
            let pid = c.wait_status(&id, "RUNNING");
            // The task's pid is the container's pid 1, adopted and reaped by the shim, as runc's.
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_default().trim().to_string();
            assert!(field("NSpid:").ends_with("\t1"), "{id}: task pid {pid} is not pid 1 of its namespace: {status}");
            let parent = std::fs::read(format!("/proc/{}/cmdline", field("PPid:"))).unwrap_or_default();
            assert!(text(&parent).contains("containerd-shim"), "{id}: {pid}'s parent is {:?}", text(&parent));
            run_ok(c.ctr().args(["task", "kill", "-s", sig, &id]));
            let status = run.wait().unwrap();
            assert_eq!(status.code(), Some(code), "{id}: {}", c.log());
            c.assert_gone(&id);
        }
    }
}

#[test]
fn exec_runs_a_process_in_a_running_container() {
    let c = Containerd::start("exec");
    for v in 0..2 {
        let id = format!("exec-{}", kind(v));
        c.start_detached(v, &[], &id, &["sh", "-c", "echo made-by-the-program > /tmp/marker; sleep 1000"]);
        let script =
            "for i in $(seq 100); do [ -s /tmp/marker ] && break; sleep 0.05; done; cat /tmp/marker; id -u; exit 4";
        let out = c.ctr().args(["task", "exec", "--exec-id", "e1", &id, "sh", "-c", script]).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{}\n{}", text(&out.stderr), c.log());
        assert_eq!(text(&out.stdout), "made-by-the-program\n0\n");
        c.remove(&id);
        c.assert_gone(&id);
    }
}

#[test]
fn containers_of_a_pod_share_one_network_namespace() {
    let c = Containerd::start("pod");
    for v in 0..2 {
        let server = format!("pod-a-{}", kind(v));
        let pid = c.start_detached(v, &[], &server, &["nc", "-l", "-p", "8080", "-e", "echo", "pong"]);
        let netns = format!("network:/proc/{pid}/ns/net");
        let client = format!("pod-b-{}", kind(v));
        let script = "for i in $(seq 100); do echo | nc 127.0.0.1 8080 && exit 0; sleep 0.05; done; exit 1";
        let out = c.run(v, &["--rm", "--with-ns", &netns], &client, &["sh", "-c", script]);
        assert!(out.status.success(), "{}\n{}", text(&out.stderr), c.log());
        assert_eq!(text(&out.stdout).trim(), "pong");
        // A container with a network of its own does not see the server.
        let alone = format!("pod-c-{}", kind(v));
        let out = c.run(v, &["--rm"], &alone, &["sh", "-c", "echo | nc 127.0.0.1 8080"]);
        assert!(!out.status.success(), "reached the server from another network namespace");
        c.remove(&server);
        for id in [&server, &client, &alone] {
            c.assert_gone(id);
        }
    }
}

#[test]
fn memory_limit_from_the_spec_is_enforced() {
    let c = Containerd::start("memory");
    let limit = ["--rm", "--memory-limit", "33554432"];
    for v in 0..2 {
        let id = format!("mem-{}", kind(v));
        let out = c.run(v, &limit, &id, &["sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1 && echo fits"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "fits");
        // Past the limit the whole sandbox ends (137), not only dd: the shell would exit 0. (It
        // may print before the end reaches it.)
        let out = c.run(v, &limit, &id, &["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived"]);
        assert_eq!(out.status.code(), Some(137), "64 MiB under a 32 MiB limit: {}", text(&out.stderr));
        c.assert_gone(&id);

        // The shim finds the container's cgroup through the pid it knows: metrics show the
        // limit; a paused container can still be killed.
        let id = format!("metrics-{}", kind(v));
        c.start_detached(v, &["--memory-limit", "33554432"], &id, &["sleep", "1000"]);
        let metrics = run_ok(c.ctr().args(["task", "metrics", &id]));
        assert!(text(&metrics.stdout).contains("33554432"), "{}", text(&metrics.stdout));
        run_ok(c.ctr().args(["task", "pause", &id]));
        c.wait_status(&id, "PAUSED");
        c.remove(&id);
        c.assert_gone(&id);
    }
}

/// `ctr run -t`: the shim hands fnbox a console socket and gets the terminal's master side back
/// (`script` gives ctr the terminal it asks for).
#[test]
fn a_terminal_reaches_the_program_through_the_console_socket() {
    let c = Containerd::start("tty");
    for v in 0..2 {
        let id = format!("tty-{}", kind(v));
        let run = c.run_cmd(v, &["--rm", "-t"], &id, &["sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty; exit 2"]);
        let line: Vec<String> = std::iter::once(run.get_program())
            .chain(run.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let out =
            Command::new("script").args(["-qec", &line.join(" "), "/dev/null"]).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}\n{}", text(&out.stderr), c.log());
        let seen = text(&out.stdout);
        assert!(seen.contains("/dev/pts/0") && seen.contains("stdin-is-a-tty"), "{seen:?}");
        c.assert_gone(&id);
    }
}
