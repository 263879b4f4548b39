//! What the real-program tests share: a host directory of code bound read-only at `/code`, the
//! programs a test needs on the host image, and the comparison of one program's output across
//! sandbox kinds.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Where the tests put host-side files (code directories, the compiled probe).
pub fn scratch_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fnbox-programs")
}

/// Fails loudly, naming the Debian package, when the host image (this machine's `/usr`) lacks a
/// program the sandbox is asked to run.
pub fn require_program(name: &str, package: &str) {
    let found =
        ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/usr/local/sbin"].iter().any(|d| Path::new(d).join(name).exists());
    assert!(
        found,
        "{name} is not installed on this machine, and the sandbox's host image is this machine's /usr: \
         install it with `apt-get install {package}` (.ci/run does)"
    );
}

/// A host directory of files, bound read-only at `/code` in the sandbox; removed on drop.
pub struct Code {
    pub dir: PathBuf,
}

impl Code {
    pub fn new(files: &[(&str, &str)]) -> Self {
        let dir = scratch_root().join(unique("code"));
        std::fs::create_dir_all(&dir).unwrap();
        let code = Self { dir };
        for (name, text) in files {
            code.write(name, text);
        }
        code
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    /// `fnbox run` options: the code at `/code`, a fresh writable working directory, and a
    /// timeout so that a hang fails the test instead of blocking it.
    pub fn options(&self, memory: &str, timeout_secs: u32) -> Vec<String> {
        vec![
            "--bind".into(),
            format!("{}:/code:ro", self.dir.display()),
            "--workdir".into(),
            "/var/work".into(),
            "--memory".into(),
            memory.into(),
            "--timeout".into(),
            timeout_secs.to_string(),
        ]
    }

    /// Runs `argv` in a sandbox of `kind` with this code and returns its output.
    pub fn run(&self, scope: &Scope, kind: &str, memory: &str, timeout_secs: u32, argv: &[&str]) -> Output {
        let options = self.options(memory, timeout_secs);
        let args: Vec<&str> = options.iter().map(String::as_str).collect();
        scope.run(kind, &args, argv)
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asserts the exact output, showing both in full when they differ.
pub fn assert_output(what: &str, got: &str, want: &str) {
    assert!(got == want, "{what}: output differs\n--- got:\n{got}\n--- want:\n{want}");
}

/// A line of probe output that may legitimately differ between sandbox kinds, and why.
pub struct MayDiffer {
    /// Matches lines whose check (with its ": ") starts with this text, e.g.
    /// `"/tmp/conformance statfs."` (a family) or `"/tmp/conformance statfs.tmp:"` (one check).
    pub prefix: &'static str,
    pub reason: &'static str,
}

/// Runs the same program, with the same options, in every sandbox kind of `kinds`, and asserts
/// that each prints the same lines as the first (v1: Linux as the kernel implements it), except
/// lines listed in `may_differ`. Every run must exit 0 and print `complete_prefix` on its last
/// line (a program that stopped half-way did not complete every check). Returns the first
/// kind's output.
pub fn assert_same_output(
    kinds: &[&str],
    scope: &Scope,
    args: &[&str],
    argv: &[&str],
    complete_prefix: &str,
    may_differ: &[MayDiffer],
) -> String {
    assert!(!kinds.is_empty(), "assert_same_output needs at least one sandbox kind");
    let mut reference: Option<(String, String)> = None;
    for kind in kinds {
        let o = scope.run(kind, args, argv);
        let out = stdout(&o);
        assert!(
            o.status.success(),
            "{argv:?} in sandbox {kind} exited with {:?}\nstdout:\n{out}\nstderr:\n{}",
            o.status,
            stderr(&o)
        );
        let last = out.lines().last().unwrap_or("");
        assert!(
            last.starts_with(complete_prefix),
            "{argv:?} in sandbox {kind} did not complete every check (last line {last:?}, want {complete_prefix:?}...)\n\
             stdout:\n{out}\nstderr:\n{}",
            stderr(&o)
        );
        match &reference {
            None => reference = Some((kind.to_string(), out)),
            Some((ref_kind, ref_out)) => {
                let (diff, notes) = compare_lines(ref_out, &out, may_differ);
                if !notes.is_empty() {
                    eprintln!("sandbox {kind} differs from sandbox {ref_kind} where allowed:\n{}", notes.join("\n"));
                }
                assert!(
                    diff.is_empty(),
                    "{argv:?}: sandbox {kind} disagrees with sandbox {ref_kind} on {} line(s):\n{}",
                    diff.len(),
                    diff.join("\n")
                );
            }
        }
    }
    reference.unwrap().1
}

/// The lines that differ between two outputs, matched by check (the text before the first
/// ": "), as readable "want / got" pairs, leaving out those `may_differ` allows.
pub fn line_differences(want: &str, got: &str, may_differ: &[MayDiffer]) -> Vec<String> {
    compare_lines(want, got, may_differ).0
}

/// (the differences, the allowed differences with their reasons).
fn compare_lines(want: &str, got: &str, may_differ: &[MayDiffer]) -> (Vec<String>, Vec<String>) {
    fn split(line: &str) -> (&str, &str) {
        line.split_once(": ").unwrap_or((line, ""))
    }
    let got_by_check: std::collections::HashMap<&str, &str> = got.lines().map(split).collect();
    let want_checks: std::collections::HashSet<&str> = want.lines().map(|l| split(l).0).collect();
    let allowed = |check: &str| may_differ.iter().find(|m| format!("{check}: ").starts_with(m.prefix));
    let (mut diff, mut notes) = (Vec::new(), Vec::new());
    let mut record = |check: &str, w: &str, g: &str| {
        let text = format!("  {check}\n    want: {w}\n    got:  {g}");
        match allowed(check) {
            Some(m) => notes.push(format!("{text}\n    allowed: {}", m.reason)),
            None => diff.push(text),
        }
    };
    for (check, w) in want.lines().map(split) {
        match got_by_check.get(check) {
            Some(g) if *g == w => {}
            Some(g) => record(check, w, g),
            None => record(check, w, "<no such line>"),
        }
    }
    for (check, g) in got.lines().map(split) {
        if !want_checks.contains(check) {
            record(check, "<no such line>", g);
        }
    }
    (diff, notes)
}
