//! fnbox sandboxes.
//!
//! * v1, the container sandbox: namespaces, cgroups, a seccomp denylist, the full Linux
//!   syscall interface.
//! * v2, the Sentry sandbox: the same walls plus a user-space kernel that implements a
//!   documented selection of syscalls.

pub mod caps;
pub mod cgroup;
pub mod disk;
pub mod error;
pub mod idmap;
pub mod launch;
pub mod net;
pub mod paths;
pub mod rootfs;
pub mod seccomp;
pub mod sentry;
pub mod spec;
pub mod supervision;
pub mod sys;
pub mod syscalls;
#[cfg(test)]
mod testutil;
pub mod trace;
pub mod wire;

pub use error::{Error, Result};
pub use launch::{Ending, Outcome, Sandbox};
pub use paths::Paths;
pub use spec::{Bind, Image, SandboxKind, SandboxSpec, Tier};
