//! Waiting for a sandbox: signals are passed on, the timeout enforced, memory sampled, and the
//! way the sandbox ended reported the way a user needs to read it.

use super::inbox::Collected;
use super::protocol::ToSandbox;
use super::Sandbox;
use crate::cgroup::MemoryUse;
use crate::error::{Context, Result};
use crate::supervision as wire;
use crate::sys::{self, fdpass, process, signal};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
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

/// The wait's state: what it watches besides the sandbox, and what it has seen so far.
#[derive(Default)]
struct Waiting {
    opts: WaitOptions,
    /// When the timeout kills the sandbox.
    deadline: Option<Instant>,
    /// With `forward_signals`.
    signals: Option<Forwarding>,
    /// See [`crate::cgroup::Cgroup::oom_watch`].
    oom_watch: Option<(OwnedFd, i16)>,
    state: Collected,
    peak: MemoryUse,
    /// The sandbox's end of the socket is closed: it stays readable (HUP), so it is no longer
    /// polled.
    sock_closed: bool,
    timed_out: bool,
    /// The OOM killer acted, and the sandbox was ended for it.
    oom_stop: bool,
    /// A sibling init was told its exit status ([`Sandbox::tell_exit`]).
    exit_told: bool,
    /// The supervisor or the watcher ended the sandbox (or its CPU quota could not be applied).
    stopped: bool,
    /// The sandbox's `nft` process (its guard table) ended, and the sandbox with it.
    guard_lost: bool,
}

/// The signals the launcher passes on while it waits: blocked and read from a signalfd, and
/// unblocked again when this is dropped, however the wait ends.
struct Forwarding(OwnedFd);

impl Forwarding {
    fn start() -> Result<Self> {
        let set = signal::SigSet::of(signal::FORWARDED);
        signal::set_mask(libc::SIG_BLOCK, &set).context(|| "cannot block signals".into())?;
        match signal::signalfd(&set) {
            Ok(fd) => Ok(Self(fd)),
            Err(e) => {
                let _ = signal::set_mask(libc::SIG_UNBLOCK, &set);
                Err(e).context(|| "signalfd".into())
            }
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        let _ = signal::set_mask(libc::SIG_UNBLOCK, &signal::SigSet::of(signal::FORWARDED));
    }
}

/// The descriptors one round of the wait polls: the init's pidfd and the sandbox socket first
/// ([`Round::INIT`], [`Round::SOCK`]), then those of the optional watches, wherever they are.
#[derive(Default)]
struct Round {
    fds: Vec<libc::pollfd>,
    signals: Option<usize>,
    oom: Option<usize>,
    control: Option<usize>,
    watcher: Option<usize>,
    guard: Option<usize>,
}

impl Round {
    const INIT: Option<usize> = Some(0);
    const SOCK: Option<usize> = Some(1);

    fn add(&mut self, fd: RawFd, events: i16) -> usize {
        self.fds.push(libc::pollfd { fd, events, revents: 0 });
        self.fds.len() - 1
    }

    /// What the descriptor at `at` (if it was polled) has.
    fn revents(&self, at: Option<usize>) -> i16 {
        at.map_or(0, |i| self.fds[i].revents)
    }

    fn ready(&self, at: Option<usize>) -> bool {
        self.revents(at) != 0
    }

    /// Polls for at most `ms` milliseconds (-1: no limit). False when a signal interrupted it.
    fn poll(&mut self, ms: i32) -> Result<bool> {
        match sys::fd::poll(&mut self.fds, ms) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e).context(|| "poll".into()),
        }
    }
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
        let mut w = Waiting {
            opts,
            deadline: self.spec.timeout.map(|t| started + t),
            signals: if opts.forward_signals { Some(Forwarding::start()?) } else { None },
            ..Default::default()
        };
        let _ = sys::fd::set_status_flags(&self.sock, libc::O_NONBLOCK);
        // An OOM kill ends the whole sandbox (as memory.oom.group does on cgroup v2): v2's
        // /tmp and /dev live in memory, and killing one process would not free them.
        w.oom_watch = self.cgroup.oom_watch();
        loop {
            let mut round = self.round(&w, watcher.as_deref());
            if !round.poll(self.poll_ms(&w))? {
                continue;
            }
            if opts.sample_memory {
                w.peak = max_use(w.peak, self.cgroup.memory_now());
            }
            self.serve(&round, &mut w, watcher.as_deref_mut());
            if round.ready(Round::INIT) {
                break;
            }
            self.keep_time(&mut w);
        }
        crate::trace::mark("sandbox ended");
        // A sibling init that reported no status was killed: nothing else ends it.
        let init_status = super::wait_end(self.pid, Some(&self.pidfd))
            .or_else(|| self.sibling_init().then_some(process::WaitStatus::Signaled(libc::SIGKILL)));
        self.reaped = true;
        w.state.drain(&self.sock, &mut self.channels);
        w.signals = None;
        self.collect_sentry_report();
        Ok(self.outcome(w, init_status, started))
    }

    /// What the next round polls.
    fn round(&self, w: &Waiting, watcher: Option<&dyn Watcher>) -> Round {
        let mut r = Round::default();
        r.add(self.pidfd.as_raw_fd(), libc::POLLIN);
        r.add(if w.sock_closed { -1 } else { self.sock.as_raw_fd() }, libc::POLLIN);
        r.signals = w.signals.as_ref().map(|s| r.add(s.0.as_raw_fd(), libc::POLLIN));
        r.oom = w.oom_watch.as_ref().map(|(fd, events)| r.add(fd.as_raw_fd(), *events));
        r.control = self.channels.control.as_ref().map(|c| r.add(c.as_raw_fd(), libc::POLLIN));
        r.watcher = watcher.map(|x| r.add(x.fd(), libc::POLLIN));
        if !w.guard_lost {
            r.guard = self.net.as_ref().and_then(crate::net::Link::watch_fd).map(|fd| r.add(fd, libc::POLLIN));
        }
        r
    }

    /// How long a round may wait: until the timeout or the boost window's end, and at most
    /// [`SAMPLE_EVERY`] while memory is sampled; -1 for no limit.
    fn poll_ms(&self, w: &Waiting) -> i32 {
        let wake = match self.boost.as_ref().and_then(|b| b.deadline()) {
            Some(b) => Some(w.deadline.map_or(b, |d| d.min(b))),
            None => w.deadline,
        };
        let mut wait = wake.map(|d| d.saturating_duration_since(Instant::now()));
        if w.opts.sample_memory {
            wait = Some(wait.map_or(SAMPLE_EVERY, |w| w.min(SAMPLE_EVERY)));
        }
        wait.map_or(-1, |w| w.as_millis().min(i32::MAX as u128) as i32 + i32::from(w.subsec_micros() % 1000 != 0))
    }

    /// Acts on what a round found, in this order: the sandbox's messages, an OOM kill, the
    /// supervisor's requests, the watcher, the network guard's end, forwarded signals.
    fn serve(&mut self, round: &Round, w: &mut Waiting, watcher: Option<&mut (dyn Watcher + '_)>) {
        let sock = round.revents(Round::SOCK);
        if sock != 0 {
            crate::trace::mark("message from the sandbox");
            w.state.drain(&self.sock, &mut self.channels);
            if sock & (libc::POLLHUP | libc::POLLERR) != 0 {
                w.sock_closed = true;
            }
        }
        // Every round: the init's `Exited` may have been read by another reader of the socket.
        self.tell_exit(w);
        if round.ready(round.oom) {
            self.on_oom(w);
        }
        if round.ready(round.control) && !w.stopped {
            self.on_requests(w);
        }
        if let Some(x) = watcher {
            if round.ready(round.watcher) && !w.stopped && x.ready(self) {
                w.stopped = true;
                self.boost = None;
                self.kill();
            }
        }
        if round.ready(round.guard) && !w.guard_lost {
            // Its guard table went with it: the sandbox never runs without one.
            w.guard_lost = true;
            eprintln!(
                "fnbox: the sandbox's network filter process (nft) ended, taking the sandbox's own rule table with it: the sandbox is stopped so that it never runs without it"
            );
            self.boost = None;
            self.kill();
        }
        if let Some(s) = w.signals.as_ref().filter(|_| round.ready(round.signals)) {
            while let Ok(Some(sig)) = signal::read_signalfd(&s.0) {
                self.signal(sig);
            }
        }
    }

    /// The OOM watch fired: drains it, and ends the sandbox if the OOM killer acted.
    fn on_oom(&mut self, w: &mut Waiting) {
        if let Some((fd, _)) = &w.oom_watch {
            let mut b = [0u8; 8];
            // Draining an eventfd (or a cgroup file).
            let _ = sys::fs::pread(fd.as_fd(), &mut b, 0);
        }
        if self.cgroup.oom_kills() > 0 && !w.oom_stop {
            w.oom_stop = true;
            self.kill();
        }
    }

    /// A sibling init waits, once its program has ended, for the status to exit with, which
    /// its parent reaps as the container's: the program's, unless the OOM killer acted in the
    /// sandbox, which ends the whole sandbox (137) even when the program exited before the OOM
    /// watch fired (a shell whose `dd` was killed). See `init::answered_exit`.
    fn tell_exit(&mut self, w: &mut Waiting) {
        let Some(status) = w.state.exited.filter(|_| self.sibling_init() && !w.exit_told) else {
            return;
        };
        w.exit_told = true;
        let oom = w.oom_watch.is_some() && self.cgroup.oom_kills() > 0;
        let code = u8::try_from(if oom { 128 + libc::SIGKILL } else { status.code() }).unwrap_or(u8::MAX);
        // The socket is non-blocking, and the init reads nothing else now.
        let sent = fdpass::sendmsg(self.sock.as_fd(), &ToSandbox::Exit(code).encode().unwrap_or_default(), &[]);
        if oom && !w.oom_stop {
            // The OOM kill ends the whole sandbox now, as `on_oom` would: its other processes
            // go at once, and if the answer could not be sent, the init dies of the kill
            // rather than exit with the program's status after its wait.
            w.oom_stop = true;
            self.kill();
        } else if sent.is_err() {
            eprintln!("fnbox: cannot tell the container's init its exit status; it exits with the program's");
        }
    }

    /// Serves the supervisor's requests (`control.rs`).
    fn on_requests(&mut self, w: &mut Waiting) {
        match self.channels.read_requests() {
            // The supervisor is gone: so is its sandbox.
            None => w.stopped = true,
            Some(reqs) => {
                for r in reqs {
                    w.stopped |= self.serve_request(r, &mut w.state);
                }
            }
        }
        if w.stopped {
            self.kill();
        }
    }

    /// The clock's part: the end of the boost window, then the timeout.
    fn keep_time(&mut self, w: &mut Waiting) {
        // The boost window is over: the quota applies, whatever the sandbox said. A quota
        // that cannot be written ends the sandbox rather than leave it unthrottled.
        if let Some(b) = &mut self.boost {
            if let Err(e) = b.expire(&self.cgroup, Instant::now()) {
                eprintln!("fnbox: cannot apply the CPU quota after the start-up boost, stopping the sandbox: {e}");
                w.stopped = true;
                self.boost = None;
                self.kill();
            }
        }
        if w.deadline.is_some_and(|d| Instant::now() >= d) && !w.timed_out {
            w.timed_out = true;
            self.kill();
        }
    }

    /// What the wait reports once the init is reaped: the ending, memory peaks and OOM kills.
    fn outcome(&mut self, w: Waiting, init_status: Option<process::WaitStatus>, started: Instant) -> Outcome {
        let oom_kills = self.cgroup.oom_kills();
        let mut peak = w.peak;
        // The peak is reported on the status channel and by `--stats`; nobody else reads it.
        if w.opts.sample_memory || self.channels.status.is_some() {
            peak = max_use(peak, self.cgroup.memory_now());
            if let Some(p) = self.cgroup.memory_peak() {
                peak.total = peak.total.max(p);
            }
        }
        let ending = ending(w, init_status, oom_kills, self.spec.timeout.unwrap_or_default());
        Outcome {
            code: ending.exit_code(),
            ending,
            oom_kills,
            memory_limit: super::container::limits(&self.spec).memory_bytes,
            peak,
            duration: started.elapsed(),
        }
    }
}

/// How the sandbox ended: a set-up or `execve` error its processes reported first, then the
/// launcher's reasons (the timeout, a stop that was not for an OOM kill), then the program's
/// status (the one its init reported, else the init's own).
fn ending(w: Waiting, init_status: Option<process::WaitStatus>, oom_kills: u64, timeout: Duration) -> Ending {
    if let Some(m) = w.state.setup_error {
        return Ending::SetupFailed(m);
    }
    if let Some(e) = w.state.exec_error {
        return Ending::ExecFailed(e);
    }
    if w.timed_out {
        return Ending::TimedOut(timeout);
    }
    if w.stopped && !w.oom_stop {
        return Ending::Stopped;
    }
    match w.state.exited.or(init_status) {
        _ if w.oom_stop => Ending::OutOfMemory,
        Some(process::WaitStatus::Signaled(libc::SIGKILL)) if oom_kills > 0 => Ending::OutOfMemory,
        // Where the OOM watch is armed, an OOM kill ends the whole sandbox: a program that
        // exited before the watch fired (its shell outlived the killed process) ended of it.
        Some(_) if oom_kills > 0 && w.oom_watch.is_some() => Ending::OutOfMemory,
        Some(process::WaitStatus::Signaled(s)) => Ending::Signaled(s),
        Some(process::WaitStatus::Exited(c)) => Ending::Exited(c),
        None => Ending::SetupFailed("the sandbox vanished without a status".into()),
    }
}

impl Ending {
    /// `fnbox run`'s exit status for it (see [`Outcome::code`]).
    fn exit_code(&self) -> i32 {
        match self {
            Ending::Exited(c) => *c,
            Ending::Signaled(s) => 128 + s,
            Ending::OutOfMemory | Ending::TimedOut(_) | Ending::Stopped => 128 + libc::SIGKILL,
            Ending::ExecFailed(e) if *e == libc::ENOENT => 127,
            Ending::ExecFailed(_) => 126,
            Ending::SetupFailed(_) => 125,
        }
    }
}

impl Sandbox {
    /// v2: waits (briefly) for the Sentry's end report and writes the compatibility report if
    /// one was asked for. A report that cannot be read is said so, never read as empty.
    fn collect_sentry_report(&mut self) {
        use crate::sentry::report;
        let Some((_, sock)) = &self.sentry else { return };
        let mut p = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let _ = sys::fd::poll(std::slice::from_mut(&mut p), 2000);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(f: impl FnOnce(&mut Waiting)) -> Waiting {
        let mut w = Waiting::default();
        f(&mut w);
        w
    }

    const T: Duration = Duration::from_secs(3);

    #[test]
    fn what_the_sandbox_reported_comes_before_the_launchers_reasons() {
        let exited = Some(process::WaitStatus::Exited(0));
        let w = seen(|w| {
            w.state.setup_error = Some("no image".into());
            w.timed_out = true;
        });
        assert_eq!(ending(w, exited, 0, T), Ending::SetupFailed("no image".into()));
        let w = seen(|w| {
            w.state.exec_error = Some(libc::ENOENT);
            w.stopped = true;
        });
        assert_eq!(ending(w, exited, 0, T), Ending::ExecFailed(libc::ENOENT));
        assert_eq!(ending(seen(|w| w.timed_out = true), exited, 0, T), Ending::TimedOut(T));
        assert_eq!(ending(seen(|w| w.stopped = true), exited, 0, T), Ending::Stopped);
    }

    #[test]
    fn an_oom_kill_is_told_from_a_stop_and_from_a_plain_sigkill() {
        let killed = Some(process::WaitStatus::Signaled(libc::SIGKILL));
        let w = seen(|w| {
            w.stopped = true;
            w.oom_stop = true;
        });
        assert_eq!(ending(w, killed, 1, T), Ending::OutOfMemory);
        assert_eq!(ending(seen(|_| {}), killed, 1, T), Ending::OutOfMemory);
        assert_eq!(ending(seen(|_| {}), killed, 0, T), Ending::Signaled(libc::SIGKILL));
    }

    #[test]
    fn a_program_that_outlived_an_oom_kill_in_its_sandbox_ended_of_it_where_the_watch_is_armed() {
        let armed = || {
            seen(|w| {
                w.oom_watch = Some((sys::fd::eventfd_nonblocking().unwrap(), libc::POLLIN));
                w.state.exited = Some(process::WaitStatus::Exited(0));
            })
        };
        assert_eq!(ending(armed(), Some(process::WaitStatus::Exited(0)), 1, T), Ending::OutOfMemory);
        assert_eq!(ending(armed(), Some(process::WaitStatus::Exited(0)), 0, T), Ending::Exited(0));
        // Without a watch, nothing enforces the rule: the program's status stands (with a note).
        let unwatched = seen(|w| w.state.exited = Some(process::WaitStatus::Exited(3)));
        assert_eq!(ending(unwatched, None, 1, T), Ending::Exited(3));
    }

    #[test]
    fn the_status_the_init_reported_wins_over_the_inits_own() {
        let w = seen(|w| w.state.exited = Some(process::WaitStatus::Exited(3)));
        assert_eq!(ending(w, Some(process::WaitStatus::Exited(0)), 0, T), Ending::Exited(3));
        assert_eq!(ending(seen(|_| {}), Some(process::WaitStatus::Exited(0)), 0, T), Ending::Exited(0));
        assert!(matches!(ending(seen(|_| {}), None, 0, T), Ending::SetupFailed(_)));
    }

    #[test]
    fn exit_codes_follow_the_shells() {
        for (e, code) in [
            (Ending::Exited(7), 7),
            (Ending::Signaled(libc::SIGTERM), 143),
            (Ending::OutOfMemory, 137),
            (Ending::TimedOut(T), 137),
            (Ending::Stopped, 137),
            (Ending::ExecFailed(libc::ENOENT), 127),
            (Ending::ExecFailed(libc::EACCES), 126),
            (Ending::SetupFailed(String::new()), 125),
        ] {
            assert_eq!(e.exit_code(), code, "{e:?}");
        }
    }
}
