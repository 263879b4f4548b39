//! The last steps of a process about to become a sandbox's program: its terminal, its
//! identity, capabilities and limits, its seccomp filter (or, in v2, the Sentry's), then
//! `execve`. Used for a sandbox's program (forked by its init) and for processes started in a
//! running sandbox (`exec`, see `enter.rs`).
//!
//! Runs in a freshly forked single-threaded child: it may allocate; it ends in `execve` or
//! `_exit`.

use super::fail::{exit, setup_failed};
use super::protocol::FromSandbox;
use crate::seccomp;
use crate::spec::ProcessSettings;
use crate::sys::{self, fdpass, process, signal};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// What a program process runs and how.
pub struct ProgramConfig {
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// `PATH` used to find `argv[0]`.
    pub search_path: String,
    /// Empty: no filter (a v1 container whose spec has no `linux.seccomp`).
    pub filter: Vec<seccomp::bpf::Insn>,
    /// v2 containers: the bundle's own profile, installed before the Sentry's filter; the
    /// kernel applies both, the stricter answer winning (an errno over the Sentry's notice).
    pub extra_filter: Option<Vec<seccomp::bpf::Insn>>,
    /// v2: the filter hands syscalls to the Sentry; its listener is sent on the Sentry socket.
    pub notify: bool,
    /// `None`: fnbox's own programs (root of the sandbox, Docker's capabilities).
    pub settings: Option<ProcessSettings>,
}

/// Becomes the program. `report` carries `SETUP_ERROR`, `EXEC_ERROR`, `CONSOLE`, `READY` and
/// `EXEC` to whoever started the sandbox; `sentry` (v2) receives the listener; `listen`, the
/// listening socket the init kept for the program at `LISTEN_FD`, stays open across `execve`;
/// with `hold`, the process waits for a byte (or end of file) on it before `execve`.
///
/// Also runs in a child sharing the init's memory (`process::clone_vfork`, without `sentry`
/// or `hold`): it must not free what the init owns (it only borrows), and what it allocates
/// stays in the init's heap.
pub fn run(
    cfg: &ProgramConfig,
    report: BorrowedFd<'_>,
    sentry: Option<BorrowedFd<'_>>,
    listen: Option<BorrowedFd<'_>>,
    hold: Option<OwnedFd>,
) -> ! {
    let _ = process::setsid();
    if let Some(l) = listen {
        let _ = sys::fd::set_inheritable(l);
    }
    signal::reset_all();
    let _ = signal::set_mask(libc::SIG_SETMASK, &signal::SigSet::empty());
    let path = match find_program(&cfg.argv[0], &cfg.search_path) {
        Ok(p) => p,
        Err(errno) => exec_failed(report, errno),
    };
    if let Err(e) = prepare(cfg, report, sentry) {
        setup_failed(report, &e);
    }
    if let Some(h) = hold {
        let _ = fdpass::sendmsg(report, &FromSandbox::Ready.encode(), &[]);
        let mut b = [0u8; 1];
        if !matches!(sys::fd::read(&h, &mut b), Ok(1)) {
            exit(125); // the sandbox is being deleted before it started
        }
        drop(h);
    }
    announce_exec(report);
    let e = process::execve(&path, &cfg.argv, &cfg.env);
    exec_failed(report, e.raw_os_error().unwrap_or(libc::ENOEXEC))
}

/// Terminal, identity and filter, in the order that keeps each step possible.
fn prepare(cfg: &ProgramConfig, report: BorrowedFd<'_>, sentry: Option<BorrowedFd<'_>>) -> Result<(), String> {
    let s = cfg.settings.as_ref();
    if s.is_some_and(|s| s.terminal) {
        super::terminal::attach(report, s.map_or(0, |s| s.uid), s.map_or(0, |s| s.gid))?;
    }
    // A program allowed new privileges (setuid binaries) gets its filters while this process
    // may still install them without no_new_privs (that takes CAP_SYS_ADMIN, dropped next).
    let keep_privs = s.is_some_and(|s| !s.no_new_privs);
    if cfg.notify {
        if let Some(f) = &cfg.extra_filter {
            seccomp::install(f, seccomp::InstallFlags { keep_privs, ..Default::default() })
                .map_err(|e| format!("cannot install the bundle's seccomp filter: {e}"))?;
        }
        if keep_privs {
            // The filter first; identity then goes through the Sentry, which sees it change.
            hand_to_sentry(cfg, sentry, true)?;
            apply_settings(s)?;
        } else {
            // v2: identity first (its calls would otherwise wait on the Sentry), then the filter.
            apply_settings(s)?;
            hand_to_sentry(cfg, sentry, false)?;
        }
        return let_sentry_read();
    }
    if keep_privs {
        install(cfg, true)?;
    }
    apply_settings(s)?;
    if !keep_privs {
        install(cfg, false)?;
    }
    Ok(())
}

fn install(cfg: &ProgramConfig, keep_privs: bool) -> Result<(), String> {
    if cfg.filter.is_empty() {
        return Ok(()); // a container without a profile (v1)
    }
    seccomp::install(&cfg.filter, seccomp::InstallFlags { keep_privs, ..Default::default() })
        .map(drop)
        .map_err(|e| format!("cannot install the seccomp filter: {e}"))
}

/// Limits, umask, groups, ids and capabilities (Docker's default set for fnbox's programs).
fn apply_settings(s: Option<&ProcessSettings>) -> Result<(), String> {
    let Some(s) = s else {
        return crate::caps::restrict_to(crate::caps::mask(&crate::caps::DOCKER_DEFAULT))
            .map_err(|e| format!("cannot drop capabilities: {e}"));
    };
    for r in &s.rlimits {
        process::set_rlimit(r.resource as libc::c_int, r.soft, r.hard)
            .map_err(|e| format!("cannot set rlimit {}: {e}", r.resource))?;
    }
    if let Some(m) = s.umask {
        process::set_umask(m);
    }
    let caps = s.caps.unwrap_or_else(|| {
        let m = crate::caps::mask(&crate::caps::DOCKER_DEFAULT);
        crate::spec::CapSets { bounding: m, effective: m, permitted: m, inheritable: 0, ambient: 0 }
    });
    crate::caps::drop_bounding(caps.bounding).map_err(|e| format!("cannot limit capabilities: {e}"))?;
    let groups: Vec<libc::gid_t> = s.additional_gids.clone();
    process::set_thread_groups(&groups).map_err(|e| format!("cannot set supplementary groups {groups:?}: {e}"))?;
    // Keep the permitted set across the change of uid; the sets are written right after.
    sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0).map_err(|e| format!("prctl: {e}"))?;
    process::set_ids(s.uid, s.gid).map_err(|e| format!("cannot run as uid {} gid {}: {e}", s.uid, s.gid))?;
    crate::caps::set(&caps).map_err(|e| format!("cannot set capabilities: {e}"))?;
    if s.no_new_privs {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(|e| format!("prctl: {e}"))?;
    }
    Ok(())
}

/// Tells the launcher the program is about to start (CLOCK_MONOTONIC, ns), for cold-start
/// phase timing.
fn announce_exec(sock: BorrowedFd<'_>) {
    let ns = sys::monotonic().as_nanos() as u64;
    let _ = fdpass::sendmsg(sock, &FromSandbox::Exec(ns).encode(), &[]);
}

fn exec_failed(sock: BorrowedFd<'_>, errno: i32) -> ! {
    let _ = fdpass::sendmsg(sock, &FromSandbox::ExecError(errno).encode(), &[]);
    exit(if errno == libc::ENOENT { 127 } else { 126 })
}

/// v2: installs the program's filter (from the syscall table) and sends its listener and the
/// sandbox root to the Sentry. From here on every emulated call waits for the Sentry.
fn hand_to_sentry(cfg: &ProgramConfig, sentry: Option<BorrowedFd<'_>>, keep_privs: bool) -> Result<(), String> {
    let sentry = sentry.ok_or("no Sentry socket")?;
    // Every call the Sentry sees from here on may need our memory read.
    let_sentry_read()?;
    let root = sys::openat(None, std::path::Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| format!("open /: {e}"))?;
    let listener =
        seccomp::install(&cfg.filter, seccomp::InstallFlags { listener: true, keep_privs, ..Default::default() })
            .map_err(|e| format!("cannot install the seccomp filter: {e}"))?
            .ok_or("no listener")?;
    fdpass::sendmsg(sentry, &FromSandbox::SentryFds.encode(), &[listener.as_fd(), root.as_fd()])
        .map_err(|e| format!("cannot reach the Sentry: {e}"))?;
    Ok(())
}

/// v2: lets the Sentry read this process's memory (paths, `execve`'s arguments). The init
/// made itself non-dumpable, and this process still runs the init's image (whose memory
/// belongs to the host's user namespace), so the Sentry, root of the sandbox's user namespace
/// only, could not read it. Changing the effective uid (a `process.user` that is not root)
/// clears the flag again, so it is set once more after the identity, right before `execve`,
/// which then sets it for the program's own image.
fn let_sentry_read() -> Result<(), String> {
    sys::prctl(libc::PR_SET_DUMPABLE, 1, 0).map(drop).map_err(|e| format!("prctl: {e}"))
}

/// `execvp`'s lookup: names with a slash are used as they are; others are searched in
/// `PATH`. Checked now, not only by `execve`: a container's missing program is an error of
/// `create`, before the program is held (as in runc). Returns the errno a shell would report.
fn find_program(argv0: &CString, path: &str) -> Result<CString, i32> {
    let name = argv0.to_bytes();
    if name.contains(&b'/') {
        return executable(argv0).map(|()| argv0.clone());
    }
    let mut err = libc::ENOENT;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let mut full = dir.as_bytes().to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        let Ok(c) = CString::new(full) else { continue };
        match executable(&c) {
            Ok(()) => return Ok(c),
            // Like execvp: a match that cannot be run is remembered, the search goes on.
            Err(libc::EACCES) => err = libc::EACCES,
            Err(_) => {}
        }
    }
    Err(err)
}

/// Whether `path` is a regular file this process may execute; else the errno `execve` gives.
fn executable(path: &CStr) -> Result<(), i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::ENOENT);
    let st = sys::fs::statx(None, path, 0, libc::STATX_TYPE).map_err(errno)?;
    if st.stx_mode as u32 & libc::S_IFMT != libc::S_IFREG {
        return Err(libc::EACCES);
    }
    sys::fs::faccessat2(None, path, libc::X_OK, 0).map_err(errno)
}
