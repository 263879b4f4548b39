//! A machine that has never run fnbox: no state directory, no run directory. The first
//! `fnbox run` and the first `fnbox serve` must build everything they need, with the right
//! owner and mode, from nothing (the README's first command failed exactly there once).

mod common;
mod platform_support;

use common::*;
use platform_support::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A state and a run directory that do not exist yet, below a fresh temporary directory.
struct Fresh {
    top: PathBuf,
}

impl Fresh {
    fn new(tag: &str) -> Self {
        require_root();
        let top = std::env::temp_dir().join(unique(&format!("fresh-{tag}")));
        std::fs::create_dir(&top).unwrap();
        Self { top }
    }
    fn state(&self) -> PathBuf {
        self.top.join("var/lib/fnbox")
    }
    fn run(&self) -> PathBuf {
        self.top.join("run/fnbox")
    }

    /// Loop devices whose backing file is in this state directory.
    fn loops(&self) -> Vec<String> {
        loops_under(&self.top)
    }

    /// `fnbox cleanup` on this state: afterwards no loop device of it is left. Sandboxes'
    /// disk helpers make spares after their sandbox has ended, so it is repeated until none
    /// is making one.
    fn cleanup(&self, parent: &str) -> Vec<String> {
        let mut left = Vec::new();
        eventually(std::time::Duration::from_secs(20), || {
            let out = std::process::Command::new(FNBOX)
                .args(["cleanup", "--cgroup-parent", parent])
                .env("FNBOX_STATE_DIR", self.state())
                .env("FNBOX_RUN_DIR", self.run())
                .output()
                .unwrap();
            ok(&out);
            std::thread::sleep(std::time::Duration::from_millis(200));
            left = self.loops();
            left.is_empty()
        });
        left
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.cleanup("fnbox-test-none");
        }
        let _ = std::fs::remove_dir_all(&self.top);
    }
}

fn mode(p: &Path) -> u32 {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(m.uid(), 0, "{} must belong to root", p.display());
    m.mode() & 0o7777
}

fn assert_state_made(f: &Fresh) {
    let s = f.state();
    for (dir, want) in [
        (s.clone(), 0o755),
        (s.join("sandboxes"), 0o700),
        (s.join("images"), 0o755),
        (s.join("disk-templates"), 0o700),
        (s.join("disk-spares"), 0o700),
        // Slot locks are host-wide, whatever the run directory (see docs/architecture.md).
        (std::env::var_os("FNBOX_SLOTS_DIR").map_or("/run/fnbox-slots".into(), std::path::PathBuf::from), 0o700),
        (f.run().join("stage"), 0o700),
    ] {
        assert_eq!(mode(&dir), want, "mode of {}", dir.display());
    }
}

#[test]
fn first_run_builds_its_state_from_nothing_in_both_sandboxes() {
    let f = Fresh::new("run");
    assert!(!f.state().exists() && !f.run().exists());
    let scope = Scope::new("fresh-run");
    for kind in ["v2", "v1"] {
        let out = scope
            .cmd(kind, &[], &["sh", "-c", "echo written > /tmp/f && cat /tmp/f && echo layer > /x && cat /x"])
            .env("FNBOX_STATE_DIR", f.state())
            .env("FNBOX_RUN_DIR", f.run())
            .output()
            .unwrap();
        assert_eq!(ok(&out), "written\nlayer\n", "{kind}");
    }
    assert_state_made(&f);
    assert!(!f.loops().is_empty(), "the first sandbox's disk helper made a spare layer for the next");
    assert_eq!(f.cleanup(&scope.parent), Vec::<String>::new(), "fnbox cleanup left loop devices");
    scope.assert_clean();
}

#[test]
fn first_serve_builds_its_state_and_data_dir_from_nothing() {
    let f = Fresh::new("serve");
    let s = Server::start_on_state("fresh-serve", &f.state(), &f.run());
    // No --data-dir and no FNBOX_DATA_DIR: the data directory follows FNBOX_STATE_DIR, and the
    // CLI finds the admin token there the same way.
    assert_eq!(mode(&f.state().join("serve")), 0o700);
    s.deploy("hello", &examples().join("hello-python"), &["--runtime", "python3"]);
    let r = s.get("/fn/hello/?name=fresh");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("hello, fresh"), "{}", r.text());
    assert_state_made(&f);
    let parent = s.scope.parent.clone();
    drop(s);
    assert_eq!(f.cleanup(&parent), Vec::<String>::new(), "fnbox cleanup left loop devices");
}
