//! What the sandbox's processes report to the launcher on the sandbox socket (set-up and
//! `execve` errors, the program's end, a held program ready, its terminal, answers to attach
//! requests), as the launcher reads it while it makes, holds, waits for or drives a sandbox.
//! A leaf of the launcher's modules (docs/architecture.md, "The launcher").

use super::channels::Channels;
use super::protocol::{self as msg, FromSandbox};
use crate::sys::{fdpass, process};

/// What the sandbox reported over the socket.
#[derive(Default)]
pub(super) struct Collected {
    pub(super) setup_error: Option<String>,
    pub(super) exec_error: Option<i32>,
    /// A held program is ready to `execve`.
    pub(super) ready: bool,
    /// The program's terminal (master side), for the console socket.
    pub(super) console: Option<std::os::fd::OwnedFd>,
    pub(super) exited: Option<process::WaitStatus>,
    /// The answer to an attach request (errno, 0 for done).
    pub(super) attached: Option<i32>,
}

impl Collected {
    pub(super) fn drain(&mut self, sock: &std::os::fd::OwnedFd, channels: &mut Channels) {
        let mut buf = vec![0u8; msg::BUF];
        while let Ok((n, mut fds)) = fdpass::recv(sock, &mut buf) {
            if n == 0 {
                break;
            }
            match FromSandbox::decode(&buf[..n]) {
                Ok(FromSandbox::SetupError(m)) => self.setup_error = Some(m),
                Ok(FromSandbox::ExecError(e)) => self.exec_error = Some(e),
                Ok(FromSandbox::Exited(s)) => self.exited = process::WaitStatus::from_raw(s),
                Ok(FromSandbox::Attached(e)) => self.attached = Some(e),
                Ok(FromSandbox::Ready) => self.ready = true,
                Ok(FromSandbox::Console) => self.console = fds.pop(),
                Ok(FromSandbox::Exec(ns)) => channels.event(&crate::supervision::Status::Exec { mono_ns: ns }),
                Ok(m @ (FromSandbox::SentryFds | FromSandbox::Pid(_))) => {
                    eprintln!("fnbox: the sandbox's init sent a message meant for another process: {m:?}")
                }
                Err(e) => eprintln!("fnbox: {e}"),
            }
        }
    }
}
