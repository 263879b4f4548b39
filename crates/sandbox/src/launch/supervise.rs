//! Waiting for a sandbox: signals are passed on, the timeout enforced, memory sampled, and the
//! way the sandbox ended reported the way a user needs to read it.

use super::protocol::{self as msg, FromSandbox};
use super::Sandbox;
use crate::cgroup::MemoryUse;
use crate::error::{Context, Result};
use crate::supervision as wire;
use crate::sys::{fdpass, process, signal};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How the sandbox ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by this signal.
    Signaled(i32),
    /// The kernel's OOM killer ended the program (memory limit reached).
    OutOfMemory,
    /// The timeout elapsed and the sandbox was killed.
    TimedOut(Duration),
    /// The supervisor asked for the sandbox to end (or went away).
    Stopped,
    /// The program could not be started (errno from execve or the PATH lookup).
    ExecFailed(i32),
    /// The sandbox could not be built.
    SetupFailed(String),
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub ending: Ending,
    /// `fnbox run`'s exit status: the program's, 128+N for signal N, 137 for OOM and timeout,
    /// 127/126 when the program cannot be found/run, 125 when the sandbox cannot be built.
    pub code: i32,
    pub oom_kills: u64,
    pub memory_limit: u64,
    /// Peaks over the sandbox's life (sampled; the total also from the kernel's counter).
    pub peak: MemoryUse,
    pub duration: Duration,
}

impl Outcome {
    /// The line `fnbox run` prints on stderr for endings the program did not choose itself.
    pub fn message(&self, argv0: &str) -> Option<String> {
        let mib = self.memory_limit >> 20;
        match &self.ending {
            Ending::OutOfMemory => Some(format!("fnbox: killed: out of memory (limit {mib} MiB)")),
            Ending::TimedOut(d) => Some(format!("fnbox: killed: timeout after {} s", d.as_secs_f64())),
            Ending::ExecFailed(e) => Some(format!(
                "fnbox: cannot run '{argv0}': {}{}",
                crate::sys::strerror(*e),
                if *e == libc::ENOENT && !argv0.contains('/') { " (not found in PATH inside the sandbox)" } else { "" }
            )),
            Ending::SetupFailed(m) => Some(format!("fnbox: sandbox set-up failed: {m}")),
            Ending::Signaled(_) | Ending::Exited(_) if self.oom_kills > 0 => Some(format!(
                "fnbox: note: the OOM killer ended {} process(es) in the sandbox (limit {mib} MiB)",
                self.oom_kills
            )),
            _ => None,
        }
    }
}

impl Outcome {
    /// The `ended` status line (see [`super::run`]).
    pub fn report(&self, argv0: &str) -> wire::Ended {
        let ending = match &self.ending {
            Ending::Exited(_) => wire::Ending::Exited,
            Ending::Signaled(_) => wire::Ending::Signaled,
            Ending::OutOfMemory => wire::Ending::Oom,
            Ending::TimedOut(_) => wire::Ending::Timeout,
            Ending::Stopped => wire::Ending::Stopped,
            Ending::ExecFailed(_) => wire::Ending::ExecFailed,
            Ending::SetupFailed(_) => wire::Ending::SetupFailed,
        };
        let signal = match self.ending {
            Ending::Signaled(s) => Some(s),
            _ => None,
        };
        wire::Ended {
            ending,
            code: self.code,
            signal,
            message: self.message(argv0),
            oom_kills: self.oom_kills,
            memory_limit: self.memory_limit,
            peak: self.peak,
            duration_ms: self.duration.as_secs_f64() * 1000.0,
        }
    }
}

/// What `wait` does besides waiting.
#[derive(Clone, Copy, Debug, Default)]
pub struct WaitOptions {
    /// Pass SIGINT, SIGTERM, SIGHUP, ... received by this process to the program.
    pub forward_signals: bool,
    /// Sample memory use (for `--stats`).
    pub sample_memory: bool,
}

const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Something more the waiting launcher watches: an OCI runtime's control socket, whose
/// requests (start, signals, exec'd processes' listeners) act on the running sandbox.
pub trait Watcher {
    fn fd(&self) -> std::os::fd::RawFd;
    /// `fd` is readable. Returns true when the sandbox must end now.
    fn ready(&mut self, sb: &mut Sandbox) -> bool;
}

impl Sandbox {
    /// Waits until the sandbox ends; then its processes are gone (its cgroup and state are
    /// removed by `cleanup`/`Drop`).
    pub fn wait(&mut self, opts: WaitOptions) -> Result<Outcome> {
        self.wait_with(opts, None)
    }

    /// [`Sandbox::wait`], serving `watcher` meanwhile.
    pub fn wait_with(&mut self, opts: WaitOptions, mut watcher: Option<&mut dyn Watcher>) -> Result<Outcome> {
        let started = Instant::now();
        let deadline = self.spec.timeout.map(|t| started + t);
        let mut sigfd = if opts.forward_signals {
            let set = signal::SigSet::of(signal::FORWARDED);
            signal::set_mask(libc::SIG_BLOCK, &set).context(|| "cannot block signals".into())?;
            Some(signal::signalfd(&set).context(|| "signalfd".into())?)
        } else {
            None
        };
        // SAFETY: fcntl on our own socket.
        unsafe { libc::fcntl(self.sock.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut state = Collected::default();
        let mut timed_out = false;
        let mut peak = MemoryUse::default();
        let mut sock_open = true;
        // An OOM kill ends the whole sandbox (as memory.oom.group does on cgroup v2): v2's
        // /tmp and /dev live in memory, and killing one process would not free them.
        let oom_watch = self.cgroup.oom_watch();
        let mut oom_stop = false;
        let mut stopped = false;
        loop {
            let mut fds = vec![
                libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                // Once the sandbox's end of the socket is closed it stays readable (HUP); stop
                // watching it then.
                libc::pollfd {
                    fd: if sock_open { self.sock.as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let sig_at = fds.len();
            if let Some(s) = &sigfd {
                fds.push(libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
            let oom_at = fds.len();
            if let Some((fd, events)) = &oom_watch {
                fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: *events, revents: 0 });
            }
            let control_at = fds.len();
            if let Some(c) = &self.channels.control {
                fds.push(libc::pollfd { fd: c.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
            let watch_at = fds.len();
            if let Some(w) = &watcher {
                fds.push(libc::pollfd { fd: w.fd(), events: libc::POLLIN, revents: 0 });
            }
            let now = Instant::now();
            let wake = match self.boost.as_ref().and_then(|b| b.deadline()) {
                Some(b) => Some(deadline.map_or(b, |d| d.min(b))),
                None => deadline,
            };
            let mut wait = wake.map(|d| d.saturating_duration_since(now));
            if opts.sample_memory {
                wait = Some(wait.map_or(SAMPLE_EVERY, |w| w.min(SAMPLE_EVERY)));
            }
            let ms = wait
                .map_or(-1, |w| w.as_millis().min(i32::MAX as u128) as i32 + i32::from(w.subsec_micros() % 1000 != 0));
            // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context(|| "poll".into());
            }
            if opts.sample_memory {
                peak = max_use(peak, self.cgroup.memory_now());
            }
            if fds[1].revents != 0 {
                crate::trace::mark("message from the sandbox");
                state.drain(&self.sock, &mut self.channels);
                if fds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                    sock_open = false;
                }
            }
            if let Some((fd, _)) = &oom_watch {
                if fds[oom_at].revents != 0 {
                    let mut b = [0u8; 8];
                    // SAFETY: draining an eventfd (or a cgroup file) into a local buffer.
                    unsafe { libc::pread(fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len(), 0) };
                    if self.cgroup.oom_kills() > 0 && !oom_stop {
                        oom_stop = true;
                        self.kill();
                    }
                }
            }
            if self.channels.control.is_some() && fds[control_at].revents != 0 && !stopped {
                match self.channels.read_requests() {
                    // The supervisor is gone: so is its sandbox.
                    None => stopped = true,
                    Some(reqs) => {
                        for r in reqs {
                            stopped |= self.serve_request(r, &mut state);
                        }
                    }
                }
                if stopped {
                    self.kill();
                }
            }
            if let Some(w) = watcher.as_deref_mut() {
                if fds[watch_at].revents != 0 && !stopped && w.ready(self) {
                    stopped = true;
                    self.boost = None;
                    self.kill();
                }
            }
            if let Some(s) = &sigfd {
                if fds[sig_at].revents != 0 {
                    while let Ok(Some(sig)) = signal::read_signalfd(s) {
                        self.signal(sig);
                    }
                }
            }
            if fds[0].revents != 0 {
                break;
            }
            // The boost window is over: the quota applies, whatever the sandbox said. A quota
            // that cannot be written ends the sandbox rather than leave it unthrottled.
            if let Some(b) = &mut self.boost {
                if let Err(e) = b.expire(&self.cgroup, Instant::now()) {
                    eprintln!("fnbox: cannot apply the CPU quota after the start-up boost, stopping the sandbox: {e}");
                    stopped = true;
                    self.boost = None;
                    self.kill();
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) && !timed_out {
                timed_out = true;
                self.kill();
            }
        }
        crate::trace::mark("sandbox ended");
        let init_status = process::waitpid(self.pid, false).ok().flatten().map(|(_, s)| s);
        self.reaped = true;
        state.drain(&self.sock, &mut self.channels);
        if sigfd.take().is_some() {
            let _ = signal::set_mask(libc::SIG_UNBLOCK, &signal::SigSet::of(signal::FORWARDED));
        }
        self.collect_sentry_report();
        let oom_kills = self.cgroup.oom_kills();
        // The peak is reported on the status channel and by `--stats`; nobody else reads it.
        if opts.sample_memory || self.channels.status.is_some() {
            peak = max_use(peak, self.cgroup.memory_now());
            if let Some(p) = self.cgroup.memory_peak() {
                peak.total = peak.total.max(p);
            }
        }
        let status = state.exited.or(init_status);
        let ending = if let Some(m) = state.setup_error {
            Ending::SetupFailed(m)
        } else if let Some(e) = state.exec_error {
            Ending::ExecFailed(e)
        } else if timed_out {
            Ending::TimedOut(self.spec.timeout.unwrap_or_default())
        } else if stopped && !oom_stop {
            Ending::Stopped
        } else {
            match status {
                _ if oom_stop => Ending::OutOfMemory,
                Some(process::WaitStatus::Signaled(libc::SIGKILL)) if oom_kills > 0 => Ending::OutOfMemory,
                Some(process::WaitStatus::Signaled(s)) => Ending::Signaled(s),
                Some(process::WaitStatus::Exited(c)) => Ending::Exited(c),
                None => Ending::SetupFailed("the sandbox vanished without a status".into()),
            }
        };
        let code = match &ending {
            Ending::Exited(c) => *c,
            Ending::Signaled(s) => 128 + s,
            Ending::OutOfMemory | Ending::TimedOut(_) | Ending::Stopped => 128 + libc::SIGKILL,
            Ending::ExecFailed(e) if *e == libc::ENOENT => 127,
            Ending::ExecFailed(_) => 126,
            Ending::SetupFailed(_) => 125,
        };
        Ok(Outcome {
            ending,
            code,
            oom_kills,
            memory_limit: super::container::limits(&self.spec).memory_bytes,
            peak,
            duration: started.elapsed(),
        })
    }
}

impl Sandbox {
    /// v2: waits (briefly) for the Sentry's end report and writes the compatibility report if
    /// one was asked for. A report that cannot be read is said so, never read as empty.
    fn collect_sentry_report(&mut self) {
        use crate::sentry::report;
        let Some((_, sock)) = &self.sentry else { return };
        let mut p = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 2000) };
        let mut buf = vec![0u8; 1 << 20];
        let counts = match fdpass::recv(sock, &mut buf) {
            Ok((n, _)) if n > 0 => report::END.decode::<report::Counts>(&buf[..n]).map_err(|e| e.to_string()),
            Ok(_) => Err("the Sentry ended without its end report (killed, or failed: see its message above)".into()),
            Err(e) => Err(format!("the Sentry's end report could not be received: {e}")),
        };
        let counts = match counts {
            Ok(c) => c,
            Err(e) => {
                if let Some(path) = &self.spec.report {
                    eprintln!("fnbox: no compatibility report written to {}: {e}", path.display());
                }
                return;
            }
        };
        if let Some(path) = &self.spec.report {
            let json = path.extension().is_some_and(|e| e == "json");
            let text = crate::sentry::report::render(&counts, &self.spec.argv, json);
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("fnbox: cannot write the report to {}: {e}", path.display());
            }
        }
    }
}

fn max_use(a: MemoryUse, b: MemoryUse) -> MemoryUse {
    MemoryUse {
        total: a.total.max(b.total),
        in_memory_files: a.in_memory_files.max(b.in_memory_files),
        anon: a.anon.max(b.anon),
    }
}

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
    pub(super) fn drain(&mut self, sock: &std::os::fd::OwnedFd, channels: &mut super::Channels) {
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
