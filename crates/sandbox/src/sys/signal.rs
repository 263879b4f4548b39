//! Signal masks, handlers and `signalfd`, and the one table of signal names.

use super::{cvt, owned};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// A `sigset_t`.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    pub fn empty() -> Self {
        // SAFETY: sigemptyset initialises the set it is given.
        unsafe {
            let mut s = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            Self(s)
        }
    }

    pub fn full() -> Self {
        // SAFETY: sigfillset initialises the set it is given.
        unsafe {
            let mut s = std::mem::zeroed();
            libc::sigfillset(&mut s);
            Self(s)
        }
    }

    pub fn of(sigs: &[libc::c_int]) -> Self {
        let mut s = Self::empty();
        for &sig in sigs {
            // SAFETY: `s.0` is an initialised set.
            unsafe { libc::sigaddset(&mut s.0, sig) };
        }
        s
    }

    pub fn raw(&self) -> &libc::sigset_t {
        &self.0
    }
}

/// Replaces the calling thread's signal mask; returns the old one.
pub fn set_mask(how: libc::c_int, set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: both sets are valid sigset_t values.
    let r = unsafe { libc::pthread_sigmask(how, &set.0, &mut old.0) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(old)
}

/// Installs `handler` (or SIG_DFL/SIG_IGN) for `sig`, with SA_RESTART.
pub fn set_handler(sig: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: sigaction is plain data; the handler is SIG_DFL, SIG_IGN or an
    // `extern "C" fn(c_int)` supplied by the caller.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        cvt(libc::sigaction(sig, &sa, std::ptr::null_mut())).map(drop)
    }
}

/// Every signal back to its default action. `execve` keeps ignored signals ignored, and Rust
/// programs (fnbox among them) start with SIGPIPE ignored: without this the program would
/// inherit that and never die of a broken pipe or a `kill -PIPE`.
pub fn reset_all() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            let _ = set_handler(sig, libc::SIG_DFL); // glibc's reserved signals answer EINVAL
        }
    }
}

/// A handler that does nothing: installing it makes a pid-namespace init receive signals
/// from its parent namespace, which the kernel drops for SIG_DFL.
pub extern "C" fn noop_handler(_: libc::c_int) {}

/// A `signalfd` for `set` (the signals must also be blocked).
pub fn signalfd(set: &SigSet) -> io::Result<OwnedFd> {
    // SAFETY: `set` is a valid sigset_t.
    let fd = cvt(unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: signalfd returned a new descriptor.
    Ok(unsafe { owned(fd) })
}

/// Reads one pending signal number from a signalfd, if any.
pub fn read_signalfd(fd: &OwnedFd) -> io::Result<Option<libc::c_int>> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is a writable buffer of exactly `size` bytes.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(info.ssi_signo as libc::c_int))
}

/// The signals `fnbox run` and the in-sandbox init pass on to the program.
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
];

/// Signal names as `kill -l` spells them without `SIG`, in number order (x86-64). `IOT` is
/// `ABRT`'s other name. The one table for parsing (`fnbox-runc kill`) and for naming a signal
/// in messages ("killed by signal 9 (SIGKILL)").
const NAMES: [(&str, libc::c_int); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
];

/// A signal's name without `SIG` (`KILL` for 9), or `None` for a real-time or unknown number.
pub fn name(sig: libc::c_int) -> Option<&'static str> {
    NAMES.iter().find(|(_, n)| *n == sig).map(|(name, _)| *name)
}

/// A signal from its number (`9`, 1 to 64) or its name, in any case, with or without `SIG`.
pub fn parse(s: &str) -> Option<libc::c_int> {
    if let Ok(n) = s.parse::<libc::c_int>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES.iter().find(|(name, _)| *name == bare).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        assert_eq!(parse("9"), Some(libc::SIGKILL));
        assert_eq!(parse("kill"), Some(libc::SIGKILL));
        assert_eq!(parse("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(parse("iot"), Some(libc::SIGABRT));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("65"), None);
        assert_eq!(parse("SIGFOO"), None);
        assert_eq!(name(libc::SIGSEGV), Some("SEGV"));
        assert_eq!(name(libc::SIGABRT), Some("ABRT"));
        assert_eq!(name(40), None);
        for (n, sig) in NAMES {
            assert_eq!(parse(n), Some(sig));
        }
    }
}
