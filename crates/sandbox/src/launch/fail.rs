//! How the sandbox's own processes (its first process, its init, a program before `execve`,
//! `exec`'s helper) end when they cannot go on: `_exit` with fnbox's code, after telling the
//! launcher why. A leaf: the modules of those processes all use it and it uses none of them
//! (docs/architecture.md, "The launcher").

use super::protocol::FromSandbox;
use crate::sys::fdpass;
use std::os::fd::BorrowedFd;

/// Ends this process now, without unwinding or running destructors (it is a forked copy of
/// the launcher: nothing it holds is its own to clean up).
pub(super) fn exit(code: i32) -> ! {
    crate::sys::process::exit_now(code)
}

/// Sends `SETUP_ERROR` with `m` on `sock` and exits with 125 (the sandbox could not be built).
pub(super) fn setup_failed(sock: BorrowedFd<'_>, m: &str) -> ! {
    let _ = fdpass::sendmsg(sock, &FromSandbox::SetupError(m.to_string()).encode(), &[]);
    exit(125)
}
