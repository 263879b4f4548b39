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
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

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
    // Keep only the program's listening socket, if it has one, as fd 3 (`LISTEN_FD`), then the
    // launcher socket (and the Sentry's, then the layer); nothing else of the launcher's
    // reaches the program (CVE-2024-21626), and the layer is close-on-exec.
    // SAFETY: the descriptor was inherited from the launcher at clone and nothing else in this
    // process owns it.
    let listen = cfg.listen.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let first = usize::from(listen.is_some());
    let has_sentry = sentry.is_some();
    let kept: Vec<RawFd> =
        sys::keep_only(listen.into_iter().chain(std::iter::once(sock)).chain(sentry).chain(layer).collect())
            .into_iter()
            .map(IntoRawFd::into_raw_fd)
            .collect();
    let sock_fd = kept[first];
    let sentry_fd = if has_sentry { kept.get(first + 1).copied() } else { None };
    let layer_fd = kept.get(first + 1 + has_sentry as usize).copied();
    let all = signal::SigSet::full();
    let _ = signal::set_mask(libc::SIG_SETMASK, &all);
    for &s in signal::FORWARDED {
        // A handler (not SIG_DFL) is what lets a pid-namespace init receive signals from the
        // launcher at all.
        let _ = signal::set_handler(s, signal::noop_handler as *const () as libc::sighandler_t);
    }
    // /proc/1 of this process must not be openable by the program (CVE-2019-5736).
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0);
    // A held program waits on this pipe; the init writes to it on START.
    let hold = if cfg.hold {
        let mut p = [0; 2];
        // SAFETY: `p` has room for the two descriptors.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
            setup_failed(sock_fd, &format!("pipe: {}", std::io::Error::last_os_error()));
        }
        Some((p[0], p[1]))
    } else {
        None
    };
    let pid = if hold.is_none() && !cfg.program.notify {
        let pid = spawn_shared(cfg, sock_fd);
        // A change of euid/fsuid in the program (a container's user) resets the dumpable flag
        // of the memory it shared with the init, per fs.suid_dumpable: set it back.
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0);
        pid
    } else {
        // SAFETY: single-threaded; the child only prepares and calls execve or _exit.
        unsafe { libc::fork() }
    };
    if pid < 0 {
        setup_failed(sock_fd, &format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        if let Some((_, w)) = hold {
            // SAFETY: the program keeps only the read end.
            unsafe { libc::close(w) };
        }
        program::run(&cfg.program, sock_fd, sentry_fd, hold.map(|(r, _)| r));
    }
    if let Some((r, _)) = hold {
        // SAFETY: the init keeps only the write end.
        unsafe { libc::close(r) };
    }
    if let Some(s) = sentry_fd {
        // SAFETY: closing our copy of the Sentry socket; the program keeps its own.
        unsafe { libc::close(s) };
    }
    if cfg.listen.is_some() {
        // SAFETY: closing our copy of the program's listening socket: only the program serves.
        unsafe { libc::close(crate::spec::LISTEN_FD) };
    }
    let own = Policy::allowlist(INIT_ALLOWLIST, Action::Errno(libc::EPERM)).compile();
    if let Err(e) = seccomp::install(&own, seccomp::InstallFlags::default()) {
        setup_failed(sock_fd, &format!("cannot install the init's seccomp filter: {e}"));
    }
    // SAFETY: keep_only made this descriptor ours alone; the init owns it from here.
    let layer = layer_fd.map(|fd| unsafe { sys::owned(fd) });
    serve(pid, sock_fd, &all, hold.map(|(_, w)| w), layer, cfg.sibling)
}

/// Starts the program in a process that shares the init's memory until its `execve`
/// (`CLONE_VM | CLONE_VFORK`, as `posix_spawn` does) while the init waits: no page tables to
/// copy, no copy-on-write faults, and nothing to tear down at `execve`. What the program
/// changes before `execve` is per task (credentials, capabilities, seccomp, session, limits,
/// signal mask), except the memory's dumpable flag, which a change of ids may reset (the
/// caller sets it back). The child leaks its few allocations into the init's heap. Only for v1 programs
/// that go straight to `execve`: a held program waits for `START`, which the waiting init
/// could not send, and a v2 program's `execve` waits on the Sentry.
fn spawn_shared(cfg: &ChildConfig, sock: RawFd) -> libc::pid_t {
    const STACK: usize = 1 << 20;
    const GUARD: usize = 4096;
    struct Args<'a> {
        cfg: &'a ChildConfig,
        sock: RawFd,
    }
    extern "C" fn entry(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` points to the `Args` below, on the stack of the init, which is
        // suspended (CLONE_VFORK) until this process has called execve or exited.
        let a = unsafe { &*(arg as *const Args) };
        // A panic must not unwind out of this frame (into the init's memory, or out of C).
        let _ = std::panic::catch_unwind(|| program::run(&a.cfg.program, a.sock, None, None));
        exit(125)
    }
    // SAFETY: a fresh private anonymous mapping, for the child's stack.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return -1;
    }
    // SAFETY: the lowest page of our own mapping becomes a guard against overflow.
    if unsafe { libc::mprotect(stack, GUARD, libc::PROT_NONE) } != 0 {
        // SAFETY: unmapping the mapping made above, which nothing uses.
        unsafe { libc::munmap(stack, STACK) };
        return -1;
    }
    let mut args = Args { cfg, sock };
    // SAFETY: `entry` runs on the top of the new stack (16-byte aligned: the mapping is
    // page-aligned) and never returns (execve or _exit); `args` outlives it because the init
    // does not run again until the child has left this memory (CLONE_VFORK).
    let pid = unsafe {
        libc::clone(
            entry,
            stack.cast::<u8>().add(STACK).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut Args).cast(),
        )
    };
    // SAFETY: the child has called execve or exited: its stack is no longer in use.
    unsafe { libc::munmap(stack, STACK) };
    pid
}

/// Waits for the program's end, passing signals on, attaching mounts on request and releasing
/// a held program on `START`. The init then exits with the program's status (128+N for
/// signal N: a pid namespace's init cannot die of a signal it raises itself), which is what
/// the parent of a `sibling` init reaps as the container's. A `sibling` init, which has no
/// parent-death signal, also ends (as if killed) when the launcher's socket closes.
fn serve(
    pid: libc::pid_t,
    sock: RawFd,
    all: &signal::SigSet,
    mut hold: Option<RawFd>,
    mut layer: Option<OwnedFd>,
    sibling: bool,
) -> ! {
    let sigfd = match signal::signalfd(all) {
        Ok(fd) => fd,
        Err(e) => setup_failed(sock, &format!("signalfd: {e}")),
    };
    // SAFETY: fd 3 stays open for the init's whole life; this borrow never closes it.
    let sock_owned = std::mem::ManuallyDrop::new(unsafe { sys::owned(sock) });
    let mut listening = true;
    loop {
        let mut fds = [
            libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if listening { sock } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            continue;
        }
        if fds[1].revents != 0 {
            let mut buf = vec![0u8; msg::BUF];
            let got = match fdpass::recv(&*sock_owned, &mut buf) {
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
                    let _ = fdpass::send(sock, &FromSandbox::Attached(r.err().unwrap_or(0)).encode(), &[]);
                }
                Some((Ok(ToSandbox::Start), _)) => {
                    if let Some(w) = hold.take() {
                        // SAFETY: one byte from a local buffer, then closing our own end.
                        unsafe {
                            libc::write(w, b"g".as_ptr().cast(), 1);
                            libc::close(w);
                        }
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
                        let _ = fdpass::send(sock, &FromSandbox::Exited(raw).encode(), &[]);
                        crate::trace::mark("init: program ended");
                        exit(status.code());
                    }
                }
            } else if signal::FORWARDED.contains(&sig) {
                let _ = process::kill(pid, sig);
            }
        }
    }
}

/// Attaches a detached mount (already read-only if it should be) at `target`.
/// Attaches a bind to the running sandbox: the sandbox's programs may rewrite the tree at any
/// moment, so the mount point is resolved once into a descriptor (see
/// [`rootfs::running_mountpoint`]) and the mount moved onto it.
fn attach(fd: &OwnedFd, target: &std::path::Path, dir: bool) -> Result<(), i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
    let (.., at) = rootfs::running_mountpoint(target, dir).map_err(errno)?;
    mount::move_mount_onto(fd, std::os::fd::AsFd::as_fd(&at)).map_err(errno)
}
