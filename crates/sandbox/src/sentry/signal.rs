//! `pidfd_send_signal` on a `/proc/<pid>` directory descriptor.
//!
//! Linux takes either a pidfd or a descriptor of a `/proc/<pid>` directory. In v2 `/proc` is
//! synthetic, so the directory a program opened is one of the Sentry's (see `area.rs`): the
//! Sentry recognises it, checks what `kill` would check (the caller's ids against the target's,
//! or CAP_KILL) and sends the signal through a pidfd of its own. Any other descriptor is the
//! kernel's business, and the call goes on as the program made it.

use super::notify::{Call, Reply, SysResult};
use super::proc::pids;
use super::{host, Sentry};

/// `PIDFD_SIGNAL_THREAD | PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP`.
const KNOWN_FLAGS: u64 = 0x7;
const CAP_KILL: u32 = 5;

/// What `kill`'s checks need of host task `tid`, from its `status`.
struct Task {
    /// Real, effective and saved uid.
    uids: [u32; 3],
    /// Effective capabilities.
    caps: u64,
    /// The signals it has handlers for (`SigCgt`), bit N-1 for signal N.
    caught: u64,
}

fn task(tid: i32) -> SysResult<Task> {
    let s = host::read_string(&format!("{tid}/status")).map_err(|_| libc::ESRCH)?;
    let field = |key: &str| s.lines().find(|l| l.starts_with(key)).map(|l| l[key.len()..].trim().to_string());
    let hex = |key: &str| field(key).and_then(|v| u64::from_str_radix(&v, 16).ok()).unwrap_or(0);
    let uids: Vec<u32> = field("Uid:").unwrap_or_default().split_whitespace().filter_map(|v| v.parse().ok()).collect();
    match uids[..] {
        [r, e, saved, ..] => Ok(Task { uids: [r, e, saved], caps: hex("CapEff:"), caught: hex("SigCgt:") }),
        _ => Err(libc::ESRCH),
    }
}

impl Sentry {
    pub(super) fn pidfd_send_signal(&self, call: &Call) -> Reply {
        let fd = call.arg_fd(0);
        let Ok(target) = host::read_link(&format!("{}/fd/{fd}", call.tid)) else { return Reply::Error(libc::EBADF) };
        let Some(comps) = target
            .strip_prefix(self.resolver.area_prefix.as_slice())
            .map(|name| name.split(|&b| b == b'/').find(|c| !c.is_empty()).unwrap_or(b""))
            .and_then(|name| self.resolver.area_dirs.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned())
        else {
            return Reply::Continue; // a pidfd, or not one: the kernel answers
        };
        Reply::from(self.signal_proc_dir(call, &comps))
    }

    fn signal_proc_dir(&self, call: &Call, comps: &[Vec<u8>]) -> SysResult<i64> {
        let (sig, info_ptr, flags) = (call.args[1] as i32, call.args[2], call.args[3]);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(libc::EINVAL);
        }
        // Only a process's own directory names it (`/proc/<pid>`, `/proc/self`).
        let (caller_tgid, _, caller_host) = pids::ns_ids(call.tid).ok_or(libc::ESRCH)?;
        let ns = match comps {
            [one] if one == b"self" => caller_tgid,
            [one] => std::str::from_utf8(one).ok().and_then(|s| s.parse().ok()).ok_or(libc::EBADF)?,
            _ => return Err(libc::EBADF),
        };
        let host_pid = if ns == caller_tgid { caller_host } else { pids::host_of(ns).ok_or(libc::ESRCH)? };
        let info = if info_ptr == 0 {
            None
        } else {
            let info: crate::sys::abi::siginfo = call.read_struct(info_ptr)?;
            if info.si_signo != sig {
                return Err(libc::EINVAL);
            }
            // Linux lets a program forge a kernel-looking siginfo only for itself.
            if host_pid != caller_host && (info.si_code >= 0 || info.si_code == libc::SI_TKILL) {
                return Err(libc::EPERM);
            }
            Some(info)
        };
        // kill's permission: CAP_KILL, or the caller's real or effective uid is the target's
        // real or saved one.
        let (caller, them) = (task(call.tid)?, task(host_pid)?);
        let (t_real, t_saved) = (them.uids[0], them.uids[2]);
        if caller.caps & (1 << CAP_KILL) == 0 && !caller.uids[..2].iter().any(|u| *u == t_real || *u == t_saved) {
            return Err(libc::EPERM);
        }
        // The sandbox's init gets from inside its pid namespace only the signals it has a
        // handler for, never SIGKILL or SIGSTOP, and the call succeeds all the same
        // (pid_namespaces(7)). The Sentry signals from the host's namespace, where the kernel
        // would deliver them all: it drops the rest itself.
        if ns == 1 && (1..=64).contains(&sig) && them.caught & (1u64 << (sig - 1)) == 0 {
            return Ok(0);
        }
        let pidfd = crate::sys::process::pidfd_open(host_pid).map_err(|_| libc::ESRCH)?;
        use std::os::fd::AsFd;
        crate::sys::process::pidfd_send_signal(pidfd.as_fd(), sig, info.as_ref(), flags as libc::c_uint)
            .map(|()| 0)
            .map_err(super::notify::errno)
    }
}
