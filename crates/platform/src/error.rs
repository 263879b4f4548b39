//! Errors. Each message is a sentence a user can act on: what went wrong, with what, and what
//! to do about it. Each error also knows the HTTP status the API answers with.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user (a deploy option, a name, a request).
    #[error("{0}")]
    Invalid(String),
    /// Code that fnbox refuses to store (zip slip, symlink out of the tree, zip bomb).
    #[error("{0}")]
    RejectedCode(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("function '{0}' does not exist: deploy it first with `fnbox deploy {0} PATH --runtime ...`")]
    NoFunction(String),
    #[error("{0}")]
    NotFound(String),
    /// A function whose registry row cannot be served: the reason and the fix.
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    Unauthorized(String),
    /// The server has no room for this now (builds queued to their limit): retry later.
    #[error("{0}")]
    Busy(String),
    /// The handler could not be loaded in a sandbox at deploy time.
    #[error("{0}")]
    HandlerCheck(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("the registry (SQLite) failed: {0}")]
    Registry(#[from] rusqlite::Error),
    #[error("{0}")]
    Sandbox(#[from] fnbox_sandbox::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid(_) | Error::RejectedCode(_) | Error::HandlerCheck(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::NoFunction(_) | Error::NotFound(_) => 404,
            Error::TooLarge(_) => 413,
            Error::Disabled(_) | Error::Busy(_) => 503,
            _ => 500,
        }
    }
}

/// Adds a description of what was being attempted to an `io::Error`.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { context: what(), source })
    }
}
