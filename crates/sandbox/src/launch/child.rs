//! The sandbox's first process: finishes the namespaces, builds the root, drops privileges,
//! then becomes the tiny init that starts the program, reaps zombies and forwards signals.
//!
//! This code runs in a child created by `clone3` from the single-threaded launcher, so it may
//! allocate; it never returns (it ends in `_exit`).

use super::protocol as msg;
use crate::rootfs::{self, Attach};
use crate::sys::{self, fdpass, process, signal};
use crate::{caps, seccomp};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Everything the child needs, prepared by the launcher before `clone3`.
pub struct ChildConfig {
    pub layout: rootfs::Layout,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// `PATH` used to find `argv[0]` inside the sandbox.
    pub search_path: String,
    pub workdir: PathBuf,
    pub hostname: String,
    pub filter: Vec<seccomp::bpf::Insn>,
    /// v2: the program's filter hands syscalls to the Sentry; its listener is sent back.
    pub notify: bool,
}

/// Runs the child; never returns. `sentry` (v2) is the socket the program sends its seccomp
/// listener and root on.
pub fn run(cfg: &ChildConfig, sock: OwnedFd, sentry: Option<OwnedFd>) -> ! {
    let fd = sock.as_raw_fd();
    match setup(cfg, &sock) {
        Ok(()) => init(cfg, sock, sentry),
        Err(e) => {
            let mut m = vec![msg::SETUP_ERROR];
            m.extend_from_slice(e.as_bytes());
            let _ = fdpass::send(fd, &m, &[]);
            exit(125)
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

fn setup(cfg: &ChildConfig, sock: &OwnedFd) -> Result<(), String> {
    // If the launcher dies, so does the sandbox.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0).map_err(|e| format!("prctl: {e}"))?;
    // While the host's procfs is still visible (v2 sandboxes have none of their own).
    rename_init();
    let mut got = receive(sock, msg::STAGE)?;
    crate::trace::mark("child: image received");
    // Become root of the user namespace (the launcher has written the id maps by now) with no
    // supplementary groups from the host.
    process::set_ids(0, 0).map_err(|e| format!("cannot become root in the user namespace: {e}"))?;
    // SAFETY: setgroups with size 0 ignores the pointer.
    sys::cvt(unsafe { libc::setgroups(0, std::ptr::null()) }).map_err(|e| format!("setgroups: {e}"))?;
    // The cgroup namespace is created now that the launcher has moved us into the sandbox's
    // cgroup, so that cgroup is the namespace's root.
    // SAFETY: unshare takes integer flags.
    sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) })
        .map_err(|e| format!("cannot create the cgroup namespace: {e}"))?;
    let lower = got.lower.take().ok_or("no image was sent")?;
    let staged = rootfs::stage(&cfg.layout, lower, std::mem::take(&mut got.attach)).map_err(|e| e.to_string())?;
    crate::trace::mark("child: staged");
    let mut got = receive(sock, msg::GO)?;
    let disk = got.disk.take().ok_or("no writable layer was sent")?;
    rootfs::finish(staged, disk).map_err(|e| e.to_string())?;
    crate::trace::mark("child: root built");
    set_hostname(&cfg.hostname)?;
    loopback_up()?;
    if std::env::set_current_dir(&cfg.workdir).is_err() {
        std::fs::create_dir_all(&cfg.workdir)
            .and_then(|()| std::env::set_current_dir(&cfg.workdir))
            .map_err(|e| format!("cannot use working directory {}: {e}", cfg.workdir.display()))?;
    }
    caps::restrict_to(caps::mask(&caps::DOCKER_DEFAULT)).map_err(|e| format!("cannot drop capabilities: {e}"))?;
    // Changing ids and dropping capabilities cleared the parent-death signal: set it again.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0).map_err(|e| format!("prctl: {e}"))?;
    crate::trace::mark("child: ready");
    Ok(())
}

/// Shows pid 1 as `fnbox-init` rather than the launcher's command line (which names the
/// launcher's path on the host).
fn rename_init() {
    let _ = sys::prctl(libc::PR_SET_NAME, c"fnbox-init".as_ptr() as libc::c_ulong, 0);
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name (which may contain spaces) start at the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    // arg_start and arg_end are fields 48 and 49 of the stat line; `rest` starts at field 3.
    let (Some(Ok(start)), Some(Ok(end))) =
        (f.get(45).map(|v| v.parse::<usize>()), f.get(46).map(|v| v.parse::<usize>()))
    else {
        return;
    };
    if end <= start || end - start > 1 << 20 {
        return;
    }
    let name = b"fnbox-init";
    // SAFETY: [start, end) is this process's own argument area, mapped writable in its stack
    // region by the kernel at exec time; nothing in this process reads it any more (the
    // sandbox's init never calls std::env::args).
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, end - start);
        std::ptr::copy_nonoverlapping(name.as_ptr(), p, name.len().min(end - start - 1));
    }
}

/// What the launcher sent so far.
#[derive(Default)]
struct Received {
    lower: Option<OwnedFd>,
    disk: Option<OwnedFd>,
    attach: Vec<Attach>,
}

/// Receives messages from the launcher until `until`.
fn receive(sock: &OwnedFd, until: u8) -> Result<Received, String> {
    let mut got = Received::default();
    let mut buf = vec![0u8; 8192];
    loop {
        let (n, mut fds) = fdpass::recv(sock, &mut buf).map_err(|e| format!("receiving mounts: {e}"))?;
        if n == 0 {
            exit(125); // the launcher is gone
        }
        match buf[0] {
            msg::LOWER => got.lower = fds.pop(),
            msg::DISK => got.disk = fds.pop(),
            msg::ATTACH if n >= 3 => {
                let target = PathBuf::from(String::from_utf8_lossy(&buf[3..n]).into_owned());
                let fd = fds.pop().ok_or("attach message without a descriptor")?;
                got.attach.push(Attach { fd, target, dir: buf[1] == 1, readonly: buf[2] == 1 });
            }
            m if m == until => return Ok(got),
            m => return Err(format!("unexpected message {m} from the launcher")),
        }
    }
}

fn set_hostname(name: &str) -> Result<(), String> {
    // SAFETY: pointer and length describe `name`.
    sys::cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
        .map(drop)
        .map_err(|e| format!("cannot set the hostname: {e}"))
}

/// The new network namespace has only `lo`, and it is down.
fn loopback_up() -> Result<(), String> {
    // SAFETY: plain socket creation.
    let s = sys::cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
        .map_err(|e| format!("socket: {e}"))?;
    // SAFETY: socket returned a new descriptor.
    let s = unsafe { sys::owned(s) };
    // SAFETY: ifreq is plain data.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: `ifr` is a valid ifreq for SIOCGIFFLAGS/SIOCSIFFLAGS.
    unsafe {
        sys::cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))
            .map_err(|e| format!("SIOCGIFFLAGS lo: {e}"))?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        sys::cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))
            .map_err(|e| format!("cannot bring lo up: {e}"))?;
    }
    Ok(())
}

/// Pid 1 of the sandbox: starts the program, then reaps and forwards until it ends.
fn init(cfg: &ChildConfig, sock: OwnedFd, sentry: Option<OwnedFd>) -> ! {
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
    if !cfg.notify {
        if let Err(e) = seccomp::install(&cfg.filter, seccomp::InstallFlags::default()) {
            report_setup(sock_fd, &format!("cannot install the seccomp filter: {e}"));
        }
    }
    // SAFETY: single-threaded; the child only prepares and calls execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        report_setup(sock_fd, &format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        start_program(cfg, sock_fd, sentry_fd);
    }
    if cfg.notify {
        // v2: the program has its own filter (and the Sentry); the init, which never calls
        // execve, gets Docker's profile once the program is started.
        if let Some(s) = sentry_fd {
            // SAFETY: closing our copy of the Sentry socket; the program keeps its own.
            unsafe { libc::close(s) };
        }
        let v1 = seccomp::policy_v1().compile();
        if let Err(e) = seccomp::install(&v1, seccomp::InstallFlags::default()) {
            report_setup(sock_fd, &format!("cannot install the seccomp filter: {e}"));
        }
    }
    loop {
        let mut info: libc::siginfo_t =
            // SAFETY: siginfo_t is plain data.
            unsafe { std::mem::zeroed() };
        // SAFETY: `all` is a valid set and `info` a writable siginfo_t.
        let sig = unsafe { libc::sigwaitinfo(all.raw(), &mut info) };
        if sig == libc::SIGCHLD {
            while let Ok(Some((p, status))) = process::waitpid(-1, true) {
                if p == pid {
                    let raw = match status {
                        process::WaitStatus::Exited(c) => c << 8,
                        process::WaitStatus::Signaled(s) => s,
                    };
                    let mut m = vec![msg::EXITED];
                    m.extend_from_slice(&raw.to_le_bytes());
                    let _ = fdpass::send(sock_fd, &m, &[]);
                    crate::trace::mark("init: program ended");
                    exit(status.code());
                }
            }
        } else if sig > 0 && signal::FORWARDED.contains(&sig) {
            let _ = process::kill(pid, sig);
        }
    }
}

fn report_setup(sock: RawFd, m: &str) -> ! {
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

/// In the program's process: new session, default signal state, find the program, exec.
fn start_program(cfg: &ChildConfig, sock: RawFd, sentry: Option<RawFd>) -> ! {
    // SAFETY: setsid has no arguments.
    unsafe { libc::setsid() };
    let _ = signal::set_mask(libc::SIG_SETMASK, &signal::SigSet::empty());
    let errno = match find_program(&cfg.argv[0], &cfg.search_path) {
        Ok(path) if cfg.notify => match hand_to_sentry(cfg, sentry) {
            Ok(()) => exec(cfg, &path),
            Err(e) => report_setup(sock, &e),
        },
        Ok(path) => exec(cfg, &path),
        Err(e) => e,
    };
    let mut m = vec![msg::EXEC_ERROR];
    m.extend_from_slice(&errno.to_le_bytes());
    let _ = fdpass::send(sock, &m, &[]);
    exit(if errno == libc::ENOENT { 127 } else { 126 })
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
