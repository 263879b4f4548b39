//! `bind`, `connect` and `sendto` with an address.
//!
//! A sockaddr is copied out of the caller once. Non-Unix addresses (IP, netlink) are used by
//! the Sentry on a duplicate of the caller's socket: the socket belongs to the sandbox's
//! network namespace, so the Sentry's own namespace plays no part.
//!
//! A Unix socket path must be resolved inside the sandbox, and Linux records the path string
//! exactly as given (what `getsockname` returns later). So the call is made, with the
//! caller's own string, by a short-lived thread with a private filesystem context standing in
//! the caller's working directory: the Sentry is chrooted into the sandbox root, so the
//! kernel resolves the path there exactly as it would for the caller, confined to the root.

use super::notify::{errno, Call, Reply, SysResult};
use super::Sentry;
use crate::sys;
use std::os::fd::{AsFd, OwnedFd};

enum Op {
    Bind,
    Connect,
    SendTo { data: Vec<u8>, flags: i32 },
}

fn perform(sock: &OwnedFd, op: &Op, addr: &[u8]) -> SysResult<i64> {
    let s = sock.as_fd();
    match op {
        Op::Bind => sys::net::bind_bytes(s, addr).map(|()| 0),
        Op::Connect => sys::net::connect_bytes(s, addr).map(|()| 0),
        Op::SendTo { data, flags } => sys::net::sendto_bytes(s, data, *flags, addr).map(|n| n as i64),
    }
    .map_err(errno)
}

impl Sentry {
    pub(super) fn socket_call(&self, call: &Call) -> Reply {
        let r = (|| -> SysResult<Outcome> {
            let (addr_ptr, addr_len, op) = match call.nr {
                libc::SYS_bind => (call.args[1], call.args[2] as usize, Op::Bind),
                libc::SYS_connect => (call.args[1], call.args[2] as usize, Op::Connect),
                _ => {
                    let len = (call.args[2] as usize).min(1 << 20);
                    let data = call.read_bytes(call.args[1], len)?;
                    (
                        call.args[4],
                        call.args[5] as usize,
                        Op::SendTo { data, flags: call.args[3] as i32 | libc::MSG_NOSIGNAL },
                    )
                }
            };
            if addr_len > std::mem::size_of::<libc::sockaddr_storage>() {
                return Err(libc::EINVAL);
            }
            let addr = call.read_bytes(addr_ptr, addr_len)?;
            if !call.listener.valid(call.id) {
                return Err(libc::ESRCH);
            }
            let sock = call.fetch_fd(call.arg_fd(0))?;
            let family = addr.get(..2).map(|f| u16::from_ne_bytes([f[0], f[1]])).unwrap_or(0);
            let unix_path = family == libc::AF_UNIX as u16 && addr.len() > 2 && addr[2] != 0;
            if !unix_path {
                if matches!(op, Op::Bind) && privileged_port(family, &addr) && !self.may_bind_privileged(call) {
                    return Err(libc::EACCES);
                }
                return match op {
                    // A send that would wait for buffer space finishes on its own thread.
                    Op::SendTo { data, flags } => {
                        match perform(
                            &sock,
                            &Op::SendTo { data: data.clone(), flags: flags | libc::MSG_DONTWAIT },
                            &addr,
                        ) {
                            Err(libc::EAGAIN) if !nonblocking(&sock) && flags & libc::MSG_DONTWAIT == 0 => {
                                Ok(Wait(Box::new(move || perform(&sock, &Op::SendTo { data, flags }, &addr))))
                            }
                            r => r.map(Done),
                        }
                    }
                    // A blocking connect waits for the peer's answer (over egress, up to the
                    // kernel's SYN retries when a filter drops it): on its own thread too.
                    Op::Connect if !nonblocking(&sock) => {
                        Ok(Wait(Box::new(move || perform(&sock, &Op::Connect, &addr))))
                    }
                    op => perform(&sock, &op, &addr).map(Done),
                };
            }
            let cwd = sys::openat(
                Some(super::host::proc_fd()?),
                std::path::Path::new(&format!("{}/cwd", call.tid)),
                libc::O_PATH,
                0,
            )
            .map_err(errno)?;
            let creds = self.creds_of(call);
            let umask = creds.umask;
            // A Unix path: resolved from the caller's working directory by a thread of its
            // own, which may also wait (a full listen backlog) without holding the worker. It
            // acts with the caller's filesystem ids: the socket file is the caller's, and the
            // search and write permissions checked are the caller's.
            Ok(Wait(Box::new(move || {
                // Its own cwd and umask (its root stays the sandbox's): fchdir and umask then
                // change only this thread's.
                sys::process::unshare_fs().and_then(|()| sys::fchdir(cwd.as_fd())).map_err(errno)?;
                sys::process::set_umask(umask);
                creds.act(|| perform(&sock, &op, &addr))
            })))
        })();
        match r {
            Ok(Done(v)) => Reply::Value(v),
            Ok(Wait(job)) => self.defer(call, move |_| Reply::from(job())),
            Err(e) => Reply::Error(e),
        }
    }
}

impl Sentry {
    /// Whether the caller holds CAP_NET_BIND_SERVICE (the Sentry binds with its own
    /// capabilities, so it checks the caller's as Linux would).
    fn may_bind_privileged(&self, call: &Call) -> bool {
        const CAP_NET_BIND_SERVICE: u32 = 10;
        let status = super::host::read_string(&format!("{}/status", call.tid)).unwrap_or_default();
        let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).map(str::trim).unwrap_or("0");
        u64::from_str_radix(eff, 16).is_ok_and(|caps| caps & (1 << CAP_NET_BIND_SERVICE) != 0)
    }
}

/// An IPv4 or IPv6 address with a port below 1024 (Linux's default
/// `ip_unprivileged_port_start`, which a sandbox cannot change).
fn privileged_port(family: u16, addr: &[u8]) -> bool {
    if family != libc::AF_INET as u16 && family != libc::AF_INET6 as u16 {
        return false;
    }
    let port = addr.get(2..4).map_or(0, |p| u16::from_be_bytes([p[0], p[1]]));
    port != 0 && port < 1024
}

use Outcome::{Done, Wait};

/// Finished now, or to finish on a thread of its own.
enum Outcome {
    Done(i64),
    Wait(Box<dyn FnOnce() -> SysResult<i64> + Send>),
}

fn nonblocking(sock: &OwnedFd) -> bool {
    // An error (-1 from fcntl) counts as non-blocking, as it always has.
    crate::sys::fd::status_flags(sock).map_or(true, |f| f & libc::O_NONBLOCK != 0)
}
