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
