//! Driving a running sandbox from outside: the control channel (`fnbox run --control-fd`)
//! and the status lines (`--status-fd`), the interface the platform supervises instances and
//! pre-warmed sandboxes through.
//!
//! The messages of both channels are the types of [`crate::supervision`] (JSON lines, with
//! a protocol version); each request gets one reply line on the control descriptor:
//!
//! * `attach`: makes a host path visible inside the running sandbox (idmapped, like `--bind`;
//!   `mode` is `ro` (the default), `rw` or `cow`, as `--bind`'s suffix): how a function's code
//!   is bound to a pre-warmed sandbox.
//! * `limits`: moves the sandbox to another memory tier (and its CPU share) and pids limit.
//! * `throttle`: ends the start-up CPU boost (`--cpu-boost`): the CPU quota applies from the
//!   reply on (it is read back before the reply). The supervisor sends it before the
//!   function's own code runs; on an error reply the quota could not be applied and the
//!   sandbox ends.
//! * `kill`: ends the sandbox now (reported as `"ending":"stopped"`).
//!
//! A request that cannot be read gets a reply saying why (`"reply":"?"`), and changes nothing.
//! End of file on the control descriptor also ends the sandbox: a supervisor that dies takes
//! its sandboxes with it.

use super::inbox::Collected;
use super::mounts::{attach_msg, bind_attrs, idmapped};
use super::Sandbox;
use crate::cgroup::Limits;
use crate::error::{Context, Result};
use crate::spec::Tier;
use crate::supervision::{Reply, Request};
use crate::sys::{self, fdpass};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

impl Sandbox {
    /// Serves one request; returns true when the sandbox must end.
    pub(super) fn serve_request(&mut self, req: std::result::Result<Request, String>, state: &mut Collected) -> bool {
        let op = req.as_ref().map_or("?", Request::op);
        let r = match req {
            Err(e) => Err(e),
            Ok(Request::Kill {}) => return true,
            Ok(Request::Attach { source, target, mode }) => {
                self.attach_live(&format!("{source}:{target}:{}", mode.as_str()), state).map_err(|e| e.to_string())
            }
            Ok(Request::Limits { memory_mb, pids }) => self.set_limits(memory_mb, pids).map_err(|e| e.to_string()),
            Ok(Request::Throttle {}) => self.end_boost().map_err(|e| e.to_string()),
        };
        // A sandbox whose CPU quota could not be applied ends here, whatever its supervisor
        // does with the error: it never gets to run a function's code unthrottled.
        let end = op == "throttle" && r.is_err();
        self.channels.reply(&Reply::new(op, r));
        crate::trace::mark(op);
        end
    }

    /// Makes a bind (`SRC:DST:MODE`, as `--bind`) visible inside the running sandbox.
    pub(super) fn attach_live(&mut self, spec: &str, state: &mut Collected) -> Result<()> {
        crate::trace::mark("attach: asked");
        let bind = crate::spec::Bind::parse(spec)?;
        // An attach claims a pre-warmed sandbox: its init mounts the code at the normal weight.
        if let Some(b) = &mut self.boost {
            b.claim(&self.cgroup)?;
        }
        let (source, target) = (&bind.source, &bind.target);
        let userns = sys::openat(None, Path::new(&format!("/proc/{}/ns/user", self.pid)), libc::O_RDONLY, 0)
            .context(|| "cannot open the sandbox's user namespace".into())?;
        let fd = idmapped(&bind.source, &userns, bind_attrs(bind.access), true)?;
        crate::trace::mark("attach: idmapped");
        let m = attach_msg(&bind.target, bind.source.is_dir(), bind.access, false);
        fdpass::sendmsg(self.sock.as_fd(), &m.encode().map_err(crate::Error::Invalid)?, &[fd.as_fd()])
            .context(|| "cannot reach the sandbox's init".into())?;
        state.attached = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while state.attached.is_none() && std::time::Instant::now() < deadline {
            let mut p = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let _ = sys::fd::poll(std::slice::from_mut(&mut p), 50);
            state.drain(&self.sock, &mut self.channels);
            if state.exited.is_some() || p.revents & libc::POLLHUP != 0 {
                break;
            }
        }
        crate::trace::mark("attach: answered");
        match state.attached.take() {
            Some(0) => Ok(()),
            Some(e) => Err(std::io::Error::from_raw_os_error(e))
                .context(|| format!("cannot attach {} at {}", source.display(), target.display())),
            None => Err(crate::Error::Setup("the sandbox did not answer the attach request".into())),
        }
    }

    /// Moves the sandbox to another tier and/or pids limit.
    pub fn set_limits(&mut self, memory_mb: Option<u64>, pids: Option<u64>) -> Result<()> {
        let tier = match memory_mb {
            Some(mb) => Tier::for_mb(mb)?,
            None => self.spec.tier,
        };
        let pids = pids.unwrap_or(self.spec.pids_max);
        let limits = Limits::for_tier(tier, pids);
        let now = match &mut self.boost {
            Some(b) => b.retarget(&limits),
            None => limits,
        };
        self.cgroup.update(&now)?;
        self.spec.tier = tier;
        self.spec.pids_max = pids;
        Ok(())
    }
}
