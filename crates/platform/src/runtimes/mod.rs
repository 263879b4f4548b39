//! Runtimes: what runs inside an instance's sandbox to serve a function.
//!
//! The Python and Node wrappers are compiled into the binary and written to the data directory
//! at start; instances bind them read-only at [`RUNTIME_DIR`]. A `binary` function is its own
//! server: it listens on `$FNBOX_SOCKET`.

use crate::error::{Context, Result};
use crate::function::Runtime;
use std::path::Path;

/// Where the wrappers appear inside the sandbox.
pub const RUNTIME_DIR: &str = "/opt/fnbox/runtime";
/// Where the instance directory (socket, environment, readiness) appears inside the sandbox.
pub const INSTANCE_DIR: &str = "/run/fnbox";
pub const SOCKET_NAME: &str = "fn.sock";
/// Written by the wrappers once listening: monotonic times of start, import and listen.
pub const READY_NAME: &str = "ready.json";
pub const ENV_NAME: &str = "env";

const PYTHON_WRAPPER: &str = include_str!("wrapper.py");
const NODE_WRAPPER: &str = include_str!("wrapper.mjs");

/// Writes the wrappers into `dir` (replacing those of an older fnbox).
pub fn install(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in [("wrapper.py", PYTHON_WRAPPER), ("wrapper.mjs", NODE_WRAPPER)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, dir.join(name)))
            .context(|| format!("cannot write the runtime wrapper {}", dir.join(name).display()))?;
    }
    Ok(())
}

/// The program an instance runs, inside the sandbox. With `check`, the program only loads the
/// handler and exits 0, or exits 1 saying why it cannot.
pub fn program(runtime: Runtime, handler: &str, check: bool) -> Vec<String> {
    let wrapper = |interp: &str, file: &str| {
        let mut v = vec![interp.to_string(), format!("{RUNTIME_DIR}/{file}")];
        if check {
            v.push("--check".into());
        }
        v.push(handler.to_string());
        v
    };
    match runtime {
        Runtime::Python3 => wrapper("python3", "wrapper.py"),
        Runtime::Node => wrapper("node", "wrapper.mjs"),
        Runtime::Binary if check => vec![
            "sh".into(),
            "-c".into(),
            r#"[ -f "$1" ] && [ -x "$1" ] || { echo "fnbox: $2 is not an executable file in the code directory (build it, then chmod +x)" >&2; exit 1; }"#.into(),
            "check".into(),
            format!("/code/{handler}"),
            handler.to_string(),
        ],
        Runtime::Binary => vec![format!("/code/{handler}")],
    }
}

/// Variables each runtime needs besides the function's own.
pub fn runtime_env(runtime: Runtime) -> &'static [(&'static str, &'static str)] {
    match runtime {
        Runtime::Python3 => &[("PYTHONUNBUFFERED", "1"), ("PYTHONDONTWRITEBYTECODE", "1")],
        Runtime::Node | Runtime::Binary => &[],
    }
}

/// Quotes a value for a POSIX shell.
pub fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        let q = shell_quote("a'b c$X\n");
        let out = std::process::Command::new("sh").arg("-c").arg(format!("printf %s {q}")).output().unwrap();
        assert_eq!(out.stdout, b"a'b c$X\n");
    }

    #[test]
    fn check_programs() {
        assert_eq!(program(Runtime::Python3, "h.handle", true)[2], "--check");
        assert_eq!(program(Runtime::Binary, "bin/s", false), vec!["/code/bin/s"]);
    }
}
