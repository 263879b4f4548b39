//! One OCI runtime under test (fnbox-runc-v1, fnbox-runc-v2, or runc as the reference) with
//! its own `--root`, and the verbs the tests drive it with.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// One runtime (by its entry point) with its own `--root`.
pub struct Runtime {
    pub dir: TempDir,
    pub bin: PathBuf,
    pub root: PathBuf,
}

impl Runtime {
    pub fn new(name: &str, v: usize) -> Self {
        require_root();
        let dir = TempDir::new(name);
        let bin = runtimes(dir.path())[v].clone();
        let root = dir.path().join("state");
        Self { dir, bin, root }
    }

    /// runc itself, the reference the fnbox runtimes are held to.
    pub fn runc(name: &str) -> Self {
        require_root();
        let dir = TempDir::new(name);
        let bin = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("runc"))
            .find(|p| p.is_file())
            .expect("runc is missing: apt-get install runc (the reference these tests compare with)");
        let root = dir.path().join("state");
        Self { dir, bin, root }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args).stdin(Stdio::null());
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        run_ok(&mut self.cmd(args))
    }

    pub fn bundle(&self, args: &[&str]) -> PathBuf {
        bundle(&self.dir.path().join("bundle"), &self.bin, args)
    }

    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_slice(&self.ok(&["state", id]).stdout).unwrap()
    }

    pub fn wait_status(&self, id: &str, want: &str) {
        let became = crate::common::eventually(Duration::from_secs(20), || self.state(id)["status"] == want);
        assert!(became, "{id} never became {want}: {}", self.state(id));
    }

    /// `create` with a pid file; returns the pid in it (the container's init, which the shim
    /// reaps). Its standard streams go to files in the runtime's directory (see `output_of`).
    pub fn create(&self, bundle: &Path, id: &str) -> i32 {
        self.with_pid_file(&["create", "--bundle", bundle.to_str().unwrap()], id)
    }

    /// Runs `args --pid-file FILE id`, which must succeed; returns the pid in FILE. Standard
    /// streams go to `<id>.out`/`<id>.err` for `create`, `<id>.<verb>.out`/`.err` otherwise.
    pub fn with_pid_file(&self, args: &[&str], id: &str) -> i32 {
        let stem = if args[0] == "create" { id.to_string() } else { format!("{id}.{}", args[0]) };
        let file = |ext: &str| self.dir.path().join(format!("{stem}.{ext}"));
        let log = |ext: &str| std::fs::File::create(file(ext)).unwrap();
        let status =
            self.cmd(args).arg("--pid-file").arg(file("pid")).arg(id).stdout(log("out")).stderr(log("err")).status();
        let err = std::fs::read_to_string(file("err")).unwrap_or_default();
        assert!(status.unwrap().success(), "{} {id}: {err}", args[0]);
        std::fs::read_to_string(file("pid")).unwrap().trim().parse().unwrap()
    }

    /// The pid of the container's supervisor (fnbox's, beside the init), from its state.
    pub fn supervisor(&self, id: &str) -> i32 {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.root.join(id).join("state.json")).unwrap()).unwrap();
        state["supervisor"].as_i64().unwrap() as i32
    }

    pub fn output_of(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{id}.out"))).unwrap_or_default()
    }

    /// Nothing of `id` is left: its state, its cgroup, its processes (`pids`: its init, its
    /// supervisor).
    pub fn assert_gone(&self, id: &str, pids: &[i32]) {
        assert!(!self.root.join(id).exists(), "state of {id} left behind");
        let cgroups = cgroups_at(&format!("fnbox/{id}"));
        assert!(cgroups.is_empty(), "cgroups of {id} left behind: {cgroups:?}");
        for pid in pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(!stat.contains("fnbox") || stat.contains(") Z "), "process {pid} of {id} still runs: {stat}");
        }
        let out = self.out(&["state", id]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(&format!("container {id} does not exist")), "{}", text(&out.stderr));
    }
}

pub fn kind(v: usize) -> &'static str {
    ["v1", "v2", "runc"][v]
}
