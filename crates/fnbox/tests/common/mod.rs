//! Shared helpers for the end-to-end tests: they run the real `fnbox` binary, as root, and
//! create real namespaces, cgroups and mounts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const FNBOX: &str = env!("CARGO_BIN_EXE_fnbox");

/// Fails loudly (never skips) when the machine cannot run the tests.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests create namespaces, cgroups and mounts and must run as root (run them with sudo, as .ci/run does)"
    );
}

/// A unique cgroup parent for one test, so it can check that nothing of its own is left
/// behind while other tests run in parallel. Removed (if empty) on drop.
pub struct Scope {
    pub parent: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Scope {
    pub fn new(name: &str) -> Self {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Self { parent: format!("fnbox-test-{}-{}-{n}", name, std::process::id()) }
    }

    /// `fnbox run --sandbox KIND --cgroup-parent <scope> ARGS -- CMD`.
    pub fn cmd(&self, kind: &str, args: &[&str], argv: &[&str]) -> Command {
        let mut c = Command::new(FNBOX);
        c.args(["run", "--sandbox", kind, "--cgroup-parent", &self.parent]);
        c.args(args);
        c.arg("--");
        c.args(argv);
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, kind: &str, args: &[&str], argv: &[&str]) -> Output {
        self.cmd(kind, args, argv).output().expect("spawn fnbox")
    }

    /// Runs `sh -c SCRIPT`.
    pub fn sh(&self, kind: &str, args: &[&str], script: &str) -> Output {
        self.run(kind, args, &["sh", "-c", script])
    }

    /// The sandbox cgroups still present under this scope (in every controller).
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in cgroup_roots() {
            if let Ok(rd) = std::fs::read_dir(root.join(&self.parent)) {
                out.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()));
            }
        }
        out
    }

    pub fn assert_clean(&self) {
        let left = self.leftover_cgroups();
        assert!(left.is_empty(), "cgroups left behind: {left:?}");
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // Tests that SIGKILL a launcher leave its cgroup for the next run to reap; do it here.
        for _ in 0..200 {
            let left = self.leftover_cgroups();
            if left.is_empty() {
                break;
            }
            for cg in &left {
                for pid in std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default().lines() {
                    // SAFETY: kill with a pid read from the cgroup.
                    unsafe { libc::kill(pid.trim().parse().unwrap_or(0), libc::SIGKILL) };
                }
                let _ = std::fs::remove_dir(cg);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for root in cgroup_roots() {
            let _ = std::fs::remove_dir(root.join(&self.parent));
        }
    }
}

/// Where sandbox cgroups live on this host (each v1 controller, or the v2 root).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let v1: Vec<PathBuf> = ["memory", "cpu", "pids", "cpuacct"]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if v1.is_empty() {
        vec![PathBuf::from("/sys/fs/cgroup")]
    } else {
        v1
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status, stdout(o), stderr(o));
    stdout(o)
}

/// Host pids whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(marker) && pid != std::process::id() as i32 {
                v.push(pid);
            }
        }
    }
    v
}

/// A host process's command name (`comm`) and the fields of its `/proc/PID/stat` after it,
/// from the 3rd (state) on.
fn stat_of(pid: i32) -> Option<(String, Vec<String>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, the last ')' ends it.
    let (head, rest) = stat.rsplit_once(')')?;
    Some((head.split_once('(')?.1.to_string(), rest.split_whitespace().map(str::to_string).collect()))
}

/// The host's processes whose parent is `parent`, with their command name (`comm`).
pub fn children_of(parent: i32) -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let (comm, fields) = stat_of(pid)?;
            (fields.get(1)?.parse::<i32>().ok()? == parent).then_some((pid, comm))
        })
        .collect()
}

/// A host process's nice value (the 19th field of its `/proc/PID/stat`).
pub fn nice_of(pid: i32) -> Option<i32> {
    stat_of(pid)?.1.get(16)?.parse().ok()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Loop devices whose backing file lies under `top` (spares of a state directory there).
pub fn loops_under(top: &Path) -> Vec<String> {
    let top = top.to_string_lossy().into_owned();
    std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("loop/backing_file")).is_ok_and(|f| f.starts_with(&top))
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// fnbox's state directory as the tests' fnbox sees it: `FNBOX_STATE_DIR` (CI points it at a
/// fresh directory) or the default.
pub fn state_dir() -> PathBuf {
    std::env::var_os("FNBOX_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| "/var/lib/fnbox".into())
}

/// fnbox's run directory: `FNBOX_RUN_DIR` or the default.
pub fn run_dir() -> PathBuf {
    std::env::var_os("FNBOX_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| "/run/fnbox".into())
}

/// Loop devices currently attached (`/sys/block/loop*/loop/backing_file` exists), not counting
/// fnbox's published spare writable layers (kept attached on purpose, without autoclear, for
/// the next sandbox: see `crates/sandbox/src/disk/spare.rs`).
pub fn attached_loops() -> usize {
    let spares = format!("{}/disk-spares/", state_dir().display());
    let spare = |dir: &Path| {
        let read = |f: &str| std::fs::read_to_string(dir.join("loop").join(f)).unwrap_or_default();
        let backing = read("backing_file");
        let published = backing
            .trim_end()
            .strip_prefix(spares.as_str())
            .is_some_and(|name| !name.starts_with('.') && name.ends_with(".img"));
        read("autoclear").trim() == "0" && published
    };
    std::fs::read_dir("/sys/block")
        .map(|rd| rd.flatten().filter(|e| e.path().join("loop/backing_file").exists() && !spare(&e.path())).count())
        .unwrap_or(0)
}

pub fn unique(tag: &str) -> String {
    format!("fnbox-marker-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// Writes files (path, content) and returns the directory.
    pub fn with(tag: &str, files: &[(&str, &str)]) -> Self {
        let d = Self::new(tag);
        for (name, text) in files {
            let p = d.0.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
