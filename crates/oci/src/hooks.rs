//! `hooks` of config.json: programs the runtime runs at points of a container's life, each
//! given the container's state on its standard input (see docs/kubernetes.md for which run
//! and where). Every hook runs in the runtime's namespaces, on the host, as root: the bundle's
//! author is trusted as much as with runc.

use crate::config::{Hook, Hooks};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bounds what a hook's standard error may fill in an error message.
const STDERR_MAX: usize = 4096;

/// Hooks fnbox cannot run where the spec says they run (in the container's mount namespace
/// with a path resolved in the runtime's): refused at `create` with this message.
pub fn check(h: &Hooks) -> Result<(), String> {
    for (name, list) in [("createContainer", &h.create_container), ("startContainer", &h.start_container)] {
        if !list.is_empty() {
            return Err(format!(
                "hooks.{name} is not supported by fnbox (it would run inside the sandbox): use createRuntime or prestart, which fnbox runs on the host"
            ));
        }
    }
    Ok(())
}

/// Runs `list` in order with `state` on standard input; the first failure ends the run.
pub fn run(kind: &str, list: &[Hook], state: &serde_json::Value) -> Result<(), String> {
    each(kind, list, state).collect()
}

/// Runs every hook of `list` in order, as `poststart` and `poststop` hooks run: a failure does
/// not stop the rest (the runtime spec's rule for them); returns the failures, for warnings.
pub fn run_all(kind: &str, list: &[Hook], state: &serde_json::Value) -> Vec<String> {
    each(kind, list, state).filter_map(Result::err).collect()
}

/// Each hook's run, lazily, in order; a failure names the hook.
fn each<'a>(
    kind: &'a str,
    list: &'a [Hook],
    state: &serde_json::Value,
) -> impl Iterator<Item = Result<(), String>> + 'a {
    let input = state.to_string();
    list.iter()
        .enumerate()
        .map(move |(i, h)| run_one(h, &input).map_err(|e| format!("hooks.{kind}[{i}] ({}): {e}", h.path)))
}

/// A detached thread, or why none could be made (a pids limit).
fn spawn(f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new().spawn(f).map(drop)
}

fn run_one(h: &Hook, input: &str) -> Result<(), String> {
    let mut cmd = Command::new(&h.path);
    if let Some((arg0, rest)) = h.args.split_first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
        cmd.args(rest);
    }
    cmd.env_clear();
    for e in &h.env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run it: {e}"))?;
    // Its input and its error output on threads of their own: a hook that reads neither, or
    // writes more than a pipe holds, still ends or meets its timeout.
    let stdin = child.stdin.take().map(|mut stdin| {
        let input = input.to_string();
        // A hook that does not read its input is not an error (runc ignores EPIPE too).
        move || drop(stdin.write_all(input.as_bytes()))
    });
    let (tx, stderr) = std::sync::mpsc::channel();
    let reader = child.stderr.take().map(|mut s| {
        move || {
            let mut err = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::Read::take(&mut s, STDERR_MAX as u64), &mut err);
            let _ = tx.send(err);
            // The rest is read and dropped, so the hook never blocks on a full pipe.
            let _ = std::io::copy(&mut s, &mut std::io::sink());
        }
    });
    if let Some(e) = [stdin.map(spawn), reader.map(spawn)].into_iter().flatten().find_map(Result::err) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("cannot start a thread to feed it: {e}"));
    }
    let limit = h.timeout.filter(|t| *t > 0).map(|t| Duration::from_secs(t as u64));
    let until = limit.map(|l| Instant::now() + l);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if until.is_some_and(|u| Instant::now() >= u) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within its timeout of {} s", h.timeout.unwrap_or(0)));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    // What it wrote, unless something it started holds the pipe open past a second.
    let err = stderr.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    Err(format!("{status}: {}", String::from_utf8_lossy(&err).trim()))
}
