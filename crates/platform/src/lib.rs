//! fnbox's function platform: `fnbox serve` and the CLI verbs that talk to it.
//!
//! A request walks one way: [`gateway`] → [`instances::pool`] (pick or start an instance) →
//! [`instances::InstanceBackend`] (a sandbox, through `fnbox run`) → the runtime wrapper
//! ([`runtimes`]) → the handler, and back.

pub mod api;
pub mod auth;
pub mod build;
pub mod client;
pub mod codestore;
pub mod console;
pub mod error;
pub mod function;
pub mod gateway;
pub mod history;
pub mod instances;
pub mod logs;
pub mod metrics;
pub mod platform;
pub mod registry;
pub mod retention;
pub mod runtimes;
pub mod seal;
pub mod server;
pub mod triggers;
pub mod urlenc;
pub mod versions;

pub use error::{Error, Result};
