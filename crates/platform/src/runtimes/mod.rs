//! Runtimes: what runs inside an instance's sandbox to serve a function.
//!
//! The Python and Node wrappers are compiled into the binary and written to the data directory
//! at start; sandboxes bind them read-only at [`RUNTIME_DIR`]. Both start as zygotes (see
//! `instances/zygote/`): the interpreter runs and the wrapper is imported before the function
//! is known. A `binary` function is its own server: it listens on the socket it inherits as
//! descriptor `$FNBOX_LISTEN_FD`.

use crate::error::{Context, Result};
use crate::function::Runtime;
use std::path::Path;

/// Where the wrappers appear inside the sandbox.
pub const RUNTIME_DIR: &str = "/opt/fnbox/runtime";
/// An instance's socket, in its directory on the host. The program gets it as a descriptor
/// (`$FNBOX_LISTEN_FD`): no socket path exists inside a sandbox.
pub const SOCKET_NAME: &str = "fn.sock";

const PYTHON_WRAPPER: &str = include_str!("wrapper.py");
const NODE_WRAPPER: &str = include_str!("wrapper.mjs");
/// Handlers the zygotes load and call once before any function is bound.
const PYTHON_WARMUP: &str = include_str!("warmup.py");
const NODE_WARMUP: &str = include_str!("warmup.cjs");
/// The build step of `fnbox deploy --build` (see `build.rs`).
const BUILD: &str = include_str!("build.py");

/// Writes the wrappers into `dir` (replacing those of an older fnbox).
pub fn install(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        ("wrapper.py", PYTHON_WRAPPER),
        ("wrapper.mjs", NODE_WRAPPER),
        ("warmup.py", PYTHON_WARMUP),
        ("warmup.cjs", NODE_WARMUP),
        ("build.py", BUILD),
    ];
    for (name, text) in files {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, dir.join(name)))
            .context(|| format!("cannot write the runtime wrapper {}", dir.join(name).display()))?;
    }
    Ok(())
}

/// The zygote of an interpreted runtime: the interpreter with its wrapper imported, waiting
/// for a function on its stdin. `None` for `binary`. With `warm_up`, it first runs its
/// request path once (worth it ahead of need, in a pre-warmed sandbox; a cost on the way of a
/// cold start otherwise).
pub fn zygote_program(runtime: Runtime, warm_up: bool) -> Option<Vec<String>> {
    let zygote = |interp: &str, file: &str| {
        let mut v = vec![interp.to_string(), format!("{RUNTIME_DIR}/{file}"), "--zygote".to_string()];
        if warm_up {
            v.push("--warm-up".to_string());
        }
        Some(v)
    };
    match runtime {
        Runtime::Python3 => zygote("python3", "wrapper.py"),
        Runtime::Node => zygote("node", "wrapper.mjs"),
        Runtime::Binary => None,
    }
}

/// A `binary` function's program. With `check`, a program that exits 0 if the handler is an
/// executable file, or 1 saying why not.
pub fn binary_program(handler: &str, check: bool) -> Vec<String> {
    if !check {
        return vec![format!("/code/{handler}")];
    }
    vec![
        "sh".into(),
        "-c".into(),
        r#"[ -f "$1" ] && [ -x "$1" ] || { echo "fnbox: $2 is not an executable file in the code directory (build it, then chmod +x)" >&2; exit 1; }"#.into(),
        "check".into(),
        format!("/code/{handler}"),
        handler.to_string(),
    ]
}

/// Variables each runtime needs besides the function's own.
pub fn runtime_env(runtime: Runtime) -> &'static [(&'static str, &'static str)] {
    match runtime {
        Runtime::Python3 => &[("PYTHONUNBUFFERED", "1"), ("PYTHONDONTWRITEBYTECODE", "1")],
        Runtime::Node | Runtime::Binary => &[],
    }
}

/// Whether a variable changes how an interpreter starts, so that setting it in a running
/// interpreter is too late: such a function's instances start their own interpreter with it,
/// and without the start-up CPU boost, since that start may run the function's own code.
/// Module search paths and options (`PYTHON*`, `NODE_*`, `UV_*`), which program `python3` or
/// `node` is (`PATH`), Python's user site-packages and Node's `~/.node_modules` (`HOME`), the
/// dynamic loader and the C library's loadable pieces (`LD_*`, `GCONV_PATH`, `LOCPATH`,
/// `NLSPATH`, `GLIBC_TUNABLES`, `MALLOC_*`), OpenSSL's configuration and providers, which
/// Node loads at start (`OPENSSL_*`, `SSL_*`), locale and time zone.
pub fn shapes_interpreter_start(key: &str) -> bool {
    const PREFIXES: [&str; 8] = ["PYTHON", "NODE_", "UV_", "LD_", "LC_", "MALLOC_", "OPENSSL_", "SSL_"];
    const NAMES: [&str; 8] = ["LANG", "TZ", "PATH", "HOME", "GCONV_PATH", "LOCPATH", "NLSPATH", "GLIBC_TUNABLES"];
    PREFIXES.iter().any(|p| key.starts_with(p)) || NAMES.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs() {
        assert_eq!(zygote_program(Runtime::Python3, false).unwrap()[2..], ["--zygote"]);
        assert_eq!(zygote_program(Runtime::Node, true).unwrap()[2..], ["--zygote", "--warm-up"]);
        assert!(zygote_program(Runtime::Binary, true).is_none());
        assert_eq!(binary_program("bin/s", false), vec!["/code/bin/s"]);
    }

    /// A function whose env could run its own code as the interpreter starts (an attack
    /// review ran a `python3` of its own through `PATH`, and a usercustomize.py through
    /// `HOME`, with no CPU quota) gets neither the zygote nor the start-up boost.
    #[test]
    fn variables_that_can_run_code_at_interpreter_start_are_caught() {
        for k in
            ["PATH", "HOME", "PYTHONPATH", "NODE_OPTIONS", "LD_PRELOAD", "OPENSSL_CONF", "GCONV_PATH", "SSL_CERT_FILE"]
        {
            assert!(shapes_interpreter_start(k), "{k}");
        }
        for k in ["DATABASE_URL", "API_KEY", "PATHS", "HOMEPAGE", "MY_PATH"] {
            assert!(!shapes_interpreter_start(k), "{k}");
        }
    }

    #[test]
    fn the_wrappers_take_the_header_blocks_the_gateway_forwards() {
        let limit = format!("MAX_HEAD = {} << 10", crate::function::HEADER_MAX >> 10);
        assert_eq!(crate::function::HEADER_MAX % 1024, 0);
        assert!(PYTHON_WRAPPER.contains(&limit), "wrapper.py: {limit}");
        assert!(NODE_WRAPPER.contains(&limit), "wrapper.mjs: {limit}");
    }
}
