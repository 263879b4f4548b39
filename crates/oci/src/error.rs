//! Errors of the runtime's verbs. Messages follow runc's where containerd matches on them
//! ("does not exist", "not running", "not stopped").

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists: delete it first or choose another id")]
    Exists(String),
    #[error("container not running: {id} is {status}")]
    NotRunning { id: String, status: String },
    #[error("cannot delete container {id} that is not stopped: {status} (use --force)")]
    NotStopped { id: String, status: String },
    #[error("container {id} cannot be started: it is {status}, not created")]
    NotCreated { id: String, status: String },
    #[error("{0}")]
    Bundle(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Sandbox(#[from] fnbox_sandbox::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names what was attempted on an `io::Error`.
pub trait IoContext<T> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn what(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { what: what(), source })
    }
}
