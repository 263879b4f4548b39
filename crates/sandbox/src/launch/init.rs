//! Pid 1 of the sandbox: starts the program, reaps zombies, forwards signals, and attaches
//! mounts the launcher sends while the sandbox runs (a function's code bound into a
//! pre-warmed sandbox).
//!
//! The init keeps its capabilities inside the sandbox's user namespace (it alone needs to
//! mount) under a strict seccomp allowlist of its own; the program drops to Docker's default
//! capabilities and gets its sandbox's filter before `execve`.

use super::child::{exit, ChildConfig};
use super::protocol as msg;
use crate::seccomp::{self, Policy};
use crate::sys::{self, fdpass, mount, process, signal};
use crate::syscalls::Action;
use crate::{caps, rootfs};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// What the init itself may do once the program runs.
#[rustfmt::skip]
const INIT_ALLOWLIST: &[&str] = &[
    "read", "write", "close", "poll", "ppoll", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "rt_sigtimedwait", "signalfd4", "wait4", "waitid", "kill", "tgkill", "sendmsg", "recvmsg", "exit",
    "exit_group", "move_mount", "mount_setattr", "mkdirat", "mkdir", "openat", "newfstatat", "statx",
    "fstat", "getpid", "gettid", "brk", "mmap", "munmap", "mremap", "madvise", "futex", "fcntl",
    "sigaltstack", "getrandom", "clock_gettime", "dup3",
];

pub fn run(cfg: &ChildConfig, sock: OwnedFd, sentry: Option<OwnedFd>) -> ! {
    // Keep only the launcher socket, as fd 3 (and the Sentry's, as fd 4); nothing else of the
    // launcher's reaches the program (CVE-2024-21626).
    let (sock_fd, sentry_fd) = keep_only(sock, sentry);
    let all = signal::SigSet::full();
    let _ = signal::set_mask(libc::SIG_SETMASK, &all);
    for &s in signal::FORWARDED {
        // A handler (not SIG_DFL) is what lets a pid-namespace init receive signals from the
        // launcher at all.
        let _ = signal::set_handler(s, signal::noop_handler as *const () as libc::sighandler_t);
    }
    // /proc/1 of this process must not be openable by the program (CVE-2019-5736).
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0);
    // SAFETY: single-threaded; the child only prepares and calls execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        report_setup(sock_fd, &format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        start_program(cfg, sock_fd, sentry_fd);
    }
    if let Some(s) = sentry_fd {
        // SAFETY: closing our copy of the Sentry socket; the program keeps its own.
        unsafe { libc::close(s) };
    }
    let own = Policy::allowlist(INIT_ALLOWLIST, Action::Errno(libc::EPERM)).compile();
    if let Err(e) = seccomp::install(&own, seccomp::InstallFlags::default()) {
        report_setup(sock_fd, &format!("cannot install the init's seccomp filter: {e}"));
    }
    serve(pid, sock_fd, &all)
}

/// Waits for the program's end, passing signals on and attaching mounts on request.
fn serve(pid: libc::pid_t, sock: RawFd, all: &signal::SigSet) -> ! {
    let sigfd = match signal::signalfd(all) {
        Ok(fd) => fd,
        Err(e) => report_setup(sock, &format!("signalfd: {e}")),
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
            let mut buf = vec![0u8; 4096];
            match fdpass::recv(&*sock_owned, &mut buf) {
                Ok((n, mut fds)) if n >= 3 && buf[0] == msg::ATTACH => {
                    let target = PathBuf::from(String::from_utf8_lossy(&buf[3..n]).into_owned());
                    let r = match fds.pop() {
                        Some(fd) => attach(&fd, &target, buf[1] == 1),
                        None => Err(libc::EBADF),
                    };
                    let mut reply = vec![msg::ATTACHED];
                    reply.extend_from_slice(&r.err().unwrap_or(0).to_le_bytes());
                    let _ = fdpass::send(sock, &reply, &[]);
                }
                Ok((0, _)) | Err(_) => listening = false,
                Ok(_) => {}
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
                        let mut m = vec![msg::EXITED];
                        m.extend_from_slice(&raw.to_le_bytes());
                        let _ = fdpass::send(sock, &m, &[]);
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
fn attach(fd: &OwnedFd, target: &std::path::Path, dir: bool) -> Result<(), i32> {
    rootfs::make_mountpoint(target, dir).map_err(|_| libc::EACCES)?;
    mount::move_mount_to(fd, target).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

pub(super) fn report_setup(sock: RawFd, m: &str) -> ! {
    let mut b = vec![msg::SETUP_ERROR];
    b.extend_from_slice(m.as_bytes());
    let _ = fdpass::send(sock, &b, &[]);
    exit(125)
}

/// Moves `sock` to fd 3 (and `sentry` to fd 4) and closes every other descriptor above 2.
fn keep_only(sock: OwnedFd, sentry: Option<OwnedFd>) -> (RawFd, Option<RawFd>) {
    // Move both out of the way first so the dup3s below cannot clobber either.
    // SAFETY: F_DUPFD_CLOEXEC returns new descriptors numbered 100 or more.
    let a = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) };
    let b = sentry.as_ref().map(|s| {
        // SAFETY: as above.
        unsafe { libc::fcntl(s.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) }
    });
    drop(sock);
    drop(sentry);
    // SAFETY: dup3 onto 3 and 4 (close-on-exec); everything above 4 is closed next.
    unsafe { libc::dup3(a, 3, libc::O_CLOEXEC) };
    if let Some(b) = b {
        // SAFETY: as above.
        unsafe { libc::dup3(b, 4, libc::O_CLOEXEC) };
    }
    let _ = sys::close_from(if b.is_some() { 5 } else { 4 }, false);
    (3, b.map(|_| 4))
}

/// In the program's process: Docker's capabilities, a new session, default signal state, the
/// sandbox's seccomp filter, then execve.
fn start_program(cfg: &ChildConfig, sock: RawFd, sentry: Option<RawFd>) -> ! {
    if let Err(e) = caps::restrict_to(caps::mask(&caps::DOCKER_DEFAULT)) {
        report_setup(sock, &format!("cannot drop capabilities: {e}"));
    }
    // SAFETY: setsid has no arguments.
    unsafe { libc::setsid() };
    let _ = signal::set_mask(libc::SIG_SETMASK, &signal::SigSet::empty());
    let errno = match find_program(&cfg.argv[0], &cfg.search_path) {
        Ok(path) => {
            let filtered = if cfg.notify {
                hand_to_sentry(cfg, sentry)
            } else {
                seccomp::install(&cfg.filter, seccomp::InstallFlags::default())
                    .map(drop)
                    .map_err(|e| format!("cannot install the seccomp filter: {e}"))
            };
            if let Err(e) = filtered {
                report_setup(sock, &e);
            }
            announce_exec(sock);
            exec(cfg, &path)
        }
        Err(e) => e,
    };
    let mut m = vec![msg::EXEC_ERROR];
    m.extend_from_slice(&errno.to_le_bytes());
    let _ = fdpass::send(sock, &m, &[]);
    exit(if errno == libc::ENOENT { 127 } else { 126 })
}

/// Tells the launcher the program is about to start (CLOCK_MONOTONIC, ns), for cold-start
/// phase timing.
fn announce_exec(sock: RawFd) {
    // SAFETY: timespec is plain data and clock_gettime fills it.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    let ns = t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64;
    let mut m = vec![msg::EXEC];
    m.extend_from_slice(&ns.to_le_bytes());
    let _ = fdpass::send(sock, &m, &[]);
}

/// v2: installs the program's filter (from the syscall table) and sends its listener and the
/// sandbox root to the Sentry. From here on every emulated call waits for the Sentry.
fn hand_to_sentry(cfg: &ChildConfig, sentry: Option<RawFd>) -> Result<(), String> {
    let sentry = sentry.ok_or("no Sentry socket")?;
    // The init made itself non-dumpable, and this process still runs the init's image (whose
    // memory belongs to the host's user namespace): the Sentry could not read our execve
    // arguments. execve, next, resets the flag for the program's own image.
    sys::prctl(libc::PR_SET_DUMPABLE, 1, 0).map_err(|e| format!("prctl: {e}"))?;
    let root = sys::openat(None, std::path::Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| format!("open /: {e}"))?;
    let listener = seccomp::install(&cfg.filter, seccomp::InstallFlags { listener: true, all_threads: false })
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))?
        .ok_or("no listener")?;
    fdpass::send(sentry, &[msg::SENTRY_FDS], &[listener.as_raw_fd(), root.as_raw_fd()])
        .map_err(|e| format!("cannot reach the Sentry: {e}"))?;
    Ok(())
}

/// `execve`; returns the errno if it fails.
fn exec(cfg: &ChildConfig, path: &CString) -> i32 {
    let argv: Vec<*const libc::c_char> =
        cfg.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        cfg.env.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // SAFETY: path, argv and envp are NUL-terminated and the arrays null-terminated.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOEXEC)
}

/// `execvp`'s lookup: names with a slash are used as they are; others are searched in
/// `PATH`. Returns the errno a shell would report.
fn find_program(argv0: &CString, path: &str) -> Result<CString, i32> {
    let name = argv0.to_bytes();
    if name.contains(&b'/') {
        return Ok(argv0.clone());
    }
    let mut err = libc::ENOENT;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let mut full = dir.as_bytes().to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        let Ok(c) = CString::new(full) else { continue };
        // SAFETY: `st` is a valid out-buffer and `c` NUL-terminated.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::stat(c.as_ptr(), &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            continue;
        }
        // SAFETY: `c` is NUL-terminated.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            return Ok(c);
        }
        err = libc::EACCES;
    }
    Err(err)
}
