//! Pid 1 of the sandbox: starts the program, reaps zombies, forwards signals, and attaches
//! mounts the launcher sends while the sandbox runs (a function's code bound into a
//! pre-warmed sandbox).
//!
//! The init keeps its capabilities inside the sandbox's user namespace (it alone needs to
//! mount) under a strict seccomp allowlist of its own; the program drops to Docker's default
//! capabilities and gets its sandbox's filter before `execve`.

use super::config::ChildConfig;
use super::fail::{exit, setup_failed};
use super::program;
use super::protocol::{self as msg, FromSandbox, ToSandbox};
use crate::rootfs;
use crate::seccomp::{self, Policy};
use crate::spec::Access;
use crate::sys::{self, fdpass, mount, process, signal};
use crate::syscalls::Action;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// What the init itself may do once the program runs.
#[rustfmt::skip]
const INIT_ALLOWLIST: &[&str] = &[
    "read", "write", "close", "poll", "ppoll", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "rt_sigtimedwait", "signalfd4", "wait4", "waitid", "kill", "tgkill", "sendmsg", "recvmsg", "exit",
    "exit_group", "move_mount", "mount_setattr", "mkdirat", "mkdir", "openat", "newfstatat", "statx",
    // Mount points of a running sandbox resolved inside its root (rootfs::running_mountpoint).
    "openat2", "fchdir",
    "fstat", "getpid", "gettid", "brk", "mmap", "munmap", "mremap", "madvise", "futex", "fcntl",
    "sigaltstack", "getrandom", "clock_gettime", "dup3",
    // Copy-on-write binds attached later (rootfs::attach_cow): a scratch tmpfs and an overlay.
    "fsopen", "fsconfig", "fsmount", "umount2",
];

/// `layer`: the writable layer's detached mount, for a copy-on-write bind attached later.
pub fn run(cfg: &ChildConfig, sock: OwnedFd, sentry: Option<OwnedFd>, layer: Option<OwnedFd>) -> ! {
    // SAFETY: the program's listening socket arrives as a number (the launcher's descriptor,
    // inherited at clone: `SandboxSpec::listen_fd`), and nothing else in this process owns it.
    // The only number the init turns into a descriptor; it holds OwnedFds from here on.
    let listen = cfg.listen.map(|fd| unsafe { sys::owned(fd) });
    // Keep only the program's listening socket, if it has one, as fd 3 (`LISTEN_FD`), then the
    // launcher socket (and the Sentry's, then the layer); nothing else of the launcher's
    // reaches the program (CVE-2024-21626), and the layer is close-on-exec.
    let (has_listen, has_sentry) = (listen.is_some(), sentry.is_some());
    let mut kept = sys::keep_only(listen.into_iter().chain(std::iter::once(sock)).chain(sentry).chain(layer).collect())
        .into_iter();
    let listen = if has_listen { kept.next() } else { None };
    let sock = kept.next().expect("keep_only returns every descriptor it is given");
    let sentry = if has_sentry { kept.next() } else { None };
    let layer = kept.next();
    let all = signal::SigSet::full();
    let _ = signal::set_mask(libc::SIG_SETMASK, &all);
    for &s in signal::FORWARDED {
        // A handler (not SIG_DFL) is what lets a pid-namespace init receive signals from the
        // launcher at all.
        let _ = signal::set_handler(s, signal::noop_handler as *const () as libc::sighandler_t);
    }
    // /proc/1 of this process must not be openable by the program (CVE-2019-5736).
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0);
    // A held program waits on this pipe (read end); the init writes to it on START.
    let hold = match cfg.hold.then(sys::fd::pipe).transpose() {
        Ok(hold) => hold,
        Err(e) => setup_failed(sock.as_fd(), &format!("pipe: {e}")),
    };
    let (report, sentry_fd, listen_fd) =
        (sock.as_fd(), sentry.as_ref().map(|s| s.as_fd()), listen.as_ref().map(|l| l.as_fd()));
    let pid = if hold.is_none() && !cfg.program.notify {
        let pid = spawn_shared(cfg, report, listen_fd);
        // A change of euid/fsuid in the program (a container's user) resets the dumpable flag
        // of the memory it shared with the init, per fs.suid_dumpable: set it back.
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0);
        pid
    } else {
        // SAFETY: single-threaded; the child only prepares and calls execve or _exit.
        unsafe { process::fork() }
    };
    let pid = match pid {
        // The program keeps only the read end of the hold pipe.
        Ok(0) => program::run(&cfg.program, report, sentry_fd, listen_fd, hold.map(|(r, _)| r)),
        Ok(pid) => pid,
        Err(e) => setup_failed(report, &format!("cannot start the program: {e}")),
    };
    // The init keeps only the write end of the hold pipe, and closes its copies of the Sentry's
    // socket and of the listening socket: the program alone uses them.
    let hold = hold.map(|(_, w)| w);
    drop((sentry, listen));
    let own = Policy::allowlist(INIT_ALLOWLIST, Action::Errno(libc::EPERM)).compile();
    if let Err(e) = seccomp::install(&own, seccomp::InstallFlags::default()) {
        setup_failed(sock.as_fd(), &format!("cannot install the init's seccomp filter: {e}"));
    }
    serve(pid, sock, &all, hold, layer, cfg.sibling)
}

/// Starts the program in a process that shares the init's memory until its `execve`
/// ([`process::clone_vfork`], as `posix_spawn` does) while the init waits: no page tables to
/// copy, no copy-on-write faults, and nothing to tear down at `execve`. What the program
/// changes before `execve` is per task (credentials, capabilities, seccomp, session, limits,
/// signal mask), except the memory's dumpable flag, which a change of ids may reset (the
/// caller sets it back). The child leaks its few allocations into the init's heap. Only for v1 programs
/// that go straight to `execve`: a held program waits for `START`, which the waiting init
/// could not send, and a v2 program's `execve` waits on the Sentry.
fn spawn_shared(
    cfg: &ChildConfig,
    report: BorrowedFd<'_>,
    listen: Option<BorrowedFd<'_>>,
) -> std::io::Result<libc::pid_t> {
    struct Args<'a> {
        cfg: &'a ChildConfig,
        report: BorrowedFd<'a>,
        listen: Option<BorrowedFd<'a>>,
    }
    fn child(a: &Args<'_>) -> ! {
        // A panic must not unwind out of this frame (into the init's memory, or out of C).
        let _ = std::panic::catch_unwind(|| program::run(&a.cfg.program, a.report, None, a.listen, None));
        exit(125)
    }
    let mut stack = process::ChildStack::new(1 << 20)?;
    // SAFETY: the init is single-threaded; every signal is blocked (the child inherits the
    // mask until the program resets it) and the init's handlers (`noop_handler`) touch no
    // memory anyway; `child` catches any unwinding.
    unsafe { process::clone_vfork(&mut stack, child, &Args { cfg, report, listen }) }
}

/// Waits for the program's end, passing signals on, attaching mounts on request and releasing
/// a held program on `START`. The init then exits with the program's status (128+N for
/// signal N: a pid namespace's init cannot die of a signal it raises itself), which is what
/// the parent of a `sibling` init reaps as the container's. A `sibling` init, which has no
/// parent-death signal, also ends (as if killed) when the launcher's socket closes.
fn serve(
    pid: libc::pid_t,
    sock: OwnedFd,
    all: &signal::SigSet,
    mut hold: Option<OwnedFd>,
    mut layer: Option<OwnedFd>,
    sibling: bool,
) -> ! {
    let sigfd = match signal::signalfd(all) {
        Ok(fd) => fd,
        Err(e) => setup_failed(sock.as_fd(), &format!("signalfd: {e}")),
    };
    let mut listening = true;
    loop {
        let mut fds = [
            libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if listening { sock.as_raw_fd() } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        if sys::fd::poll(&mut fds, -1).is_err() {
            continue;
        }
        if fds[1].revents != 0 {
            let mut buf = vec![0u8; msg::BUF];
            let got = match fdpass::recv(&sock, &mut buf) {
                Ok((0, _)) | Err(_) => None,
                Ok((n, fds)) => Some((ToSandbox::decode(&buf[..n]), fds)),
            };
            match got {
                Some((Ok(ToSandbox::Attach(a)), mut fds)) => {
                    let target = a.target;
                    let r = match (fds.pop(), a.access) {
                        (Some(fd), Access::CopyOnWrite) => match layer.take() {
                            Some(l) => {
                                rootfs::attach_cow(&fd, l, &target).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
                            }
                            // One copy-on-write bind per sandbox: the layer's copy is used up.
                            None => Err(libc::EBUSY),
                        },
                        (Some(fd), _) => attach(&fd, &target, a.dir),
                        (None, _) => Err(libc::EBADF),
                    };
                    let _ = fdpass::sendmsg(sock.as_fd(), &FromSandbox::Attached(r.err().unwrap_or(0)).encode(), &[]);
                }
                Some((Ok(ToSandbox::Start), _)) => {
                    // One byte, then the end closes.
                    if let Some(w) = hold.take() {
                        let _ = sys::fs::write_all(w.as_fd(), b"g");
                    }
                }
                None if sibling => exit(128 + libc::SIGKILL),
                None => listening = false,
                // Nothing else is sent to a running sandbox, and the launcher, the only sender,
                // encodes with the same module: another message can only be a bug, with no
                // one to tell but the launcher, which is not waiting for an answer.
                Some(_) => {}
            }
        }
        if fds[0].revents == 0 {
            continue;
        }
        while let Ok(Some(sig)) = signal::read_signalfd(&sigfd) {
            if sig == libc::SIGCHLD {
                while let Ok(Some((p, status))) = process::waitpid(-1, true) {
                    if p == pid {
                        let raw = match status {
                            process::WaitStatus::Exited(c) => c << 8,
                            process::WaitStatus::Signaled(s) => s,
                        };
                        let _ = fdpass::sendmsg(sock.as_fd(), &FromSandbox::Exited(raw).encode(), &[]);
                        crate::trace::mark("init: program ended");
                        // A sibling init's status is the container's: the launcher says what
                        // it is (see `answered_exit`).
                        let told = if sibling { answered_exit(&sock) } else { None };
                        exit(told.map_or(status.code(), i32::from));
                    }
                }
            } else if signal::FORWARDED.contains(&sig) {
                let _ = process::kill(pid, sig);
            }
        }
    }
}

/// How long a sibling init waits for the launcher's [`ToSandbox::Exit`].
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The launcher's answer to a sibling init's `Exited`: the status the init exits with, which
/// its parent (containerd's shim) reaps as the container's. The program may exit normally just
/// after the OOM killer ended another of the sandbox's processes, before the launcher has seen
/// the kill and ended the whole sandbox; only the launcher reads the cgroup, so it decides.
/// `None` (the program's own status stands) when the launcher is gone, sends something else,
/// or does not answer within [`ANSWER_WAIT`].
fn answered_exit(sock: &OwnedFd) -> Option<u8> {
    let deadline = std::time::Instant::now() + ANSWER_WAIT;
    let mut buf = vec![0u8; msg::BUF];
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        let mut fds = [libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // Every signal is blocked (read from the signalfd): no EINTR.
        if sys::fd::poll(&mut fds, left.as_millis() as i32 + 1).ok()? == 0 {
            return None;
        }
        match fdpass::recv(sock, &mut buf) {
            Ok((0, _)) | Err(_) => return None,
            Ok((n, _)) => {
                // An attach sent as the program ended gets no answer: the sandbox is ending.
                if let Ok(ToSandbox::Exit(code)) = ToSandbox::decode(&buf[..n]) {
                    return Some(code);
                }
            }
        }
    }
}

/// Attaches a bind to the running sandbox: the sandbox's programs may rewrite the tree at any
/// moment, so the mount point is resolved once into a descriptor (see
/// [`rootfs::running_mountpoint`]) and the mount moved onto it.
fn attach(fd: &OwnedFd, target: &std::path::Path, dir: bool) -> Result<(), i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let (.., at) = rootfs::running_mountpoint(target, dir).map_err(errno)?;
    mount::move_mount_onto(fd, std::os::fd::AsFd::as_fd(&at)).map_err(errno)
}
