//! The channels of a supervised sandbox (`fnbox run --status-fd` and `--control-fd`): status
//! lines out, control requests in, one reply line per request. The messages are the types of
//! [`crate::supervision`]; what each request does is `control.rs`'s.

use crate::supervision::{self as wire, Reply, Request, Status};
use crate::sys;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

/// The channels of a supervised sandbox.
#[derive(Default)]
pub struct Channels {
    pub status: Option<std::fs::File>,
    pub control: Option<OwnedFd>,
    /// Bytes received on the control channel, not yet a full line.
    pending: Vec<u8>,
}

impl Channels {
    pub fn new(status: Option<std::fs::File>, control: Option<OwnedFd>) -> Self {
        Self { status, control, pending: Vec::new() }
    }

    /// Writes one status line.
    pub fn event(&mut self, e: &Status) {
        if let Some(f) = self.status.as_mut() {
            let _ = f.write_all(wire::STATUS.encode_line(e).as_bytes());
        }
    }

    pub(super) fn reply(&self, r: &Reply) {
        if let Some(c) = &self.control {
            let _ = sys::fs::write_all(c.as_fd(), wire::REPLY.encode_line(r).as_bytes());
        }
    }

    /// Reads what is available; returns the complete requests, or `None` at end of file.
    pub fn read_requests(&mut self) -> Option<Vec<std::result::Result<Request, String>>> {
        let fd = self.control.as_ref()?;
        let mut buf = [0u8; 4096];
        match sys::fd::read(fd, &mut buf) {
            Ok(0) => return None,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        let mut out = Vec::new();
        while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=i).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.push(wire::REQUEST.decode(&line).map_err(|e| e.to_string()));
        }
        Some(out)
    }
}
