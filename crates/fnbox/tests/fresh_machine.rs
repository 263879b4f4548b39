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

/// Every program fnbox's code runs on the host by name (`Command::new("...")`) is in
/// `host-commands.sh`, the table `quickstart.sh` and `install.sh` install from, and both call
/// it: on a fresh machine the README's first command once failed at its first deploy because
/// `nft` (egress, the default network) was not installed, while CI's own package list hid it.
#[test]
fn every_host_command_fnbox_runs_is_installed_by_the_set_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let table = std::fs::read_to_string(root.join("host-commands.sh")).unwrap();
    let listed: Vec<&str> = table
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .filter_map(|l| l.trim_matches('"').split_whitespace().next())
        .collect();
    assert!(listed.contains(&"mkfs.ext4"), "host-commands.sh lists no commands: {listed:?}");
    let mut run = Vec::new();
    let mut stack = vec![root.join("crates")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("tests") && !p.ends_with("target") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.to_string_lossy().contains("/src/")
                && !p.to_string_lossy().ends_with("tests.rs")
            {
                let text = std::fs::read_to_string(&p).unwrap();
                // Code after a `#[cfg(test)]` is the file's unit tests, which may run anything.
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                for call in ["Command::new(\"", "run_script(\""] {
                    for piece in code.split(call).skip(1) {
                        let name = piece.split('"').next().unwrap_or("");
                        run.push((name.to_string(), p.clone()));
                    }
                }
            }
        }
    }
    assert!(!run.is_empty(), "found no Command::new in the sources: the scan is wrong");
    for (name, file) in &run {
        assert!(
            listed.contains(&name.as_str()),
            "{} runs `{name}` on the host, but host-commands.sh does not list it: add it with its Debian package",
            file.display()
        );
    }
    for script in ["quickstart.sh", "install.sh"] {
        let text = std::fs::read_to_string(root.join(script)).unwrap();
        assert!(
            text.contains(". ./host-commands.sh") && text.contains("fnbox_install_host_commands"),
            "{script} must source host-commands.sh and call fnbox_install_host_commands"
        );
    }
}
