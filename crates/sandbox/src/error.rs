//! Errors. Each message is a sentence a user can act on: what happened, to what, and what
//! to do about it.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("memory '{0}' is not a size: use a tier such as 128M, 256M or 1G")]
    BadMemory(String),
    #[error("memory {mb} MiB is not a tier: use 128, 256, 512, 1024, 2048, 3072 or 4096 (MiB)")]
    NotATier { mb: u64 },
    #[error("disk size '{0}' is not valid: use a size such as 512M or 2G (16M to 16T)")]
    BadDisk(String),
    #[error("image directory {0} does not exist: give an existing root filesystem directory or 'host'")]
    ImageMissing(PathBuf),
    #[error("bind source {0} does not exist: create it or fix the path")]
    BindSourceMissing(PathBuf),
    #[error("bind '{0}' is not valid: use SRC[:DST][:ro|:rw|:cow] with absolute paths")]
    BadBind(String),
    /// An environment entry; the message names the variable, never its value (it may be a
    /// secret).
    #[error("{0}")]
    BadEnv(String),
    #[error("bind source {0} is the host's /proc, /sys, /dev or /run or lies under them: they show the host's processes, devices and kernel, which a sandbox must not see (it has its own /proc and /dev); bind another path")]
    BindKernelView(PathBuf),
    #[error("bind source {} holds {} (a {fs} mount), and binds take what is mounted below them: a sandbox must not see the host's processes and kernel; bind a directory with no such mount under it", .dir.display(), .at.display())]
    BindHoldsKernelView { dir: PathBuf, at: PathBuf, fs: String },
    #[error("working directory '{0}' must be an absolute path")]
    BadWorkdir(String),
    #[error("no program given: add it after '--', for example: fnbox run -- /bin/echo hi")]
    NoProgram,
    #[error("{0}")]
    Invalid(String),
    #[error("fnbox must run as root to create sandboxes (namespaces, cgroups, mounts): run it with sudo")]
    NotRoot,
    #[error("cgroups are not usable here: {0}")]
    Cgroup(String),
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("sandbox set-up failed: {0}")]
    Setup(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a human description of what was being attempted to an `io::Error`.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys { context: what(), source })
    }
}
