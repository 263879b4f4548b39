//! fnbox as an OCI runtime: a runc-compatible command line (`fnbox-runc-v1`,
//! `fnbox-runc-v2`) that containerd's `io.containerd.runc.v2` shim drives, over fnbox's
//! sandboxes.
//!
//! Process model: `create` forks a per-container supervisor and exits once the container's
//! program is held just before `execve`. The supervisor clones the container's init (pid 1
//! of its pid namespace) as its sibling, so `create`'s parent, or the subreaper above it
//! (containerd's shim), adopts and reaps the init, which exits with the program's status; its
//! pid is the one in `--pid-file` and in `state`. Every other verb is a short-lived process
//! that reads the state directory under `--root` and, while the container lives, talks to the
//! supervisor over its control socket.
//!
//! States: `creating` (the supervisor is building the sandbox) → `created` (the program is
//! held) → `running` (after `start`; `paused` while frozen) → `stopped` (the init has ended,
//! or the supervisor has exited or died) → gone after `delete`.

pub mod config;
mod control;
pub mod convert;
mod devices;
pub mod error;
mod exec;
mod hooks;
mod info;
mod lifecycle;
pub mod log;
mod manage;
mod mounts;
mod names;
mod seccomp;
pub mod state;
mod supervisor;

pub use error::{Error, Result};
pub use exec::{exec, ExecArgs, ProcessFrom};
pub use info::{features, write_spec};
pub use lifecycle::{create, delete, kill, parse_signal, run, start, state};
pub use manage::{pause, ps, resume, update};

use fnbox_sandbox::spec::SandboxKind;
use std::path::PathBuf;

/// The OCI runtime spec version fnbox implements.
pub const OCI_VERSION: &str = "1.0.2";

/// Default `--root`.
pub const DEFAULT_ROOT: &str = "/run/fnbox-runc";

/// The global options every verb takes.
#[derive(Clone, Debug)]
pub struct Globals {
    pub root: PathBuf,
    pub log: log::Log,
    /// `--systemd-cgroup`: accepted; systemd is not asked for a scope (see `convert.rs`).
    pub systemd_cgroup: bool,
    /// From the binary's name; `dev.fnbox.sandbox` in a bundle overrides it.
    pub kind: SandboxKind,
}

/// The sandbox a binary named `name` runs: `fnbox-runc-v1` → v1, `fnbox-runc-v2` → v2.
pub fn kind_for_binary(name: &str) -> Option<SandboxKind> {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.ends_with("fnbox-runc-v1") {
        Some(SandboxKind::V1)
    } else if base.ends_with("fnbox-runc-v2") {
        Some(SandboxKind::V2)
    } else {
        None
    }
}
