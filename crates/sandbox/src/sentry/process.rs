//! The Sentry process: forked by the launcher, it joins the sandbox's cgroup and user
//! namespace, receives the program's notification listener and root, drops to the sandbox's
//! root, locks itself down with its own seccomp allowlist, and serves.

use super::notify::Listener;
use super::{area, proc, report, resolve, Sentry};
use crate::launch::protocol::FromSandbox;
use crate::seccomp::{self, Policy};
use crate::sys::{self, abi, fdpass, mount, mount::FsContext, process};
use crate::syscalls::Action;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What the launcher hands the Sentry.
pub struct Bootstrap {
    /// Receives `[listener, root]` from the program just before its first `execve`, then
    /// `[listener]` for each process started later in the running sandbox (`exec`).
    pub from_program: OwnedFd,
    /// Back to the launcher: the counters when the sandbox ends.
    pub to_launcher: OwnedFd,
    /// Host pid of the sandbox's init (its user namespace is the Sentry's to join).
    pub init_pid: libc::pid_t,
    /// Host uid of the sandbox's root.
    pub owner: u32,
    /// The sandbox's memory cgroup directory.
    pub memory_cgroup: Option<std::path::PathBuf>,
    pub info: proc::Info,
    /// Route refusals here to count them (`--report`).
    pub report: bool,
    /// The tree may hold FIFOs from the start (binds, a custom image).
    pub fifos_possible: bool,
}

/// The syscalls the Sentry itself may make once it serves.
#[rustfmt::skip]
const SENTRY_ALLOWLIST: &[&str] = &[
    // notifications, memory of the program, its descriptors
    "ioctl", "poll", "ppoll", "process_vm_readv", "process_vm_writev", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal",
    // the emulated calls themselves (paths resolved inside the chroot)
    "openat", "openat2", "open", "close", "read", "write", "lseek", "getdents64", "statx", "newfstatat",
    "fstat", "statfs", "fstatfs", "readlinkat", "readlink", "faccessat2", "mkdirat", "mknodat", "unlinkat",
    "renameat2", "linkat", "symlinkat", "fchownat", "fchmodat", "fchmodat2", "chmod", "utimensat", "truncate", "ftruncate",
    "setxattr", "lsetxattr", "getxattr", "lgetxattr", "listxattr", "llistxattr", "removexattr",
    "lremovexattr", "inotify_add_watch", "memfd_create", "sysinfo", "uname", "bind", "connect", "sendto",
    "sendmsg", "recvmsg", "unshare", "fchdir", "umask",
    // acting with a caller's credentials (this thread only; within the sandbox's namespace)
    "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups", "capget", "capset",
    // threads and the Rust runtime
    "clone3", "clone", "futex", "mmap", "munmap", "mprotect", "madvise", "brk", "mremap", "rt_sigprocmask",
    "rt_sigaction", "rt_sigreturn", "sigaltstack", "sched_yield", "sched_getaffinity", "set_robust_list",
    "rseq", "gettid", "getpid", "exit", "exit_group", "clock_gettime", "clock_nanosleep", "nanosleep",
    "getrandom", "fcntl", "prctl",
];

/// Runs the Sentry; never returns.
pub fn run(b: Bootstrap) -> ! {
    let code = match serve(b) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fnbox: sentry: {e}");
            1
        }
    };
    // Without running the launcher's destructors.
    process::exit_now(code)
}

fn serve(b: Bootstrap) -> Result<(), String> {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0).map_err(|e| format!("prctl: {e}"))?;
    // While still host root: the private tmpfs for synthetic directories (owned by the
    // sandbox's root, so the Sentry can write it once it is that user).
    let area_fs = FsContext::open("tmpfs").map_err(|e| format!("tmpfs: {e}"))?;
    area_fs.set_string("mode", "0700").map_err(|e| format!("tmpfs mode: {e}"))?;
    area_fs.set_string("uid", &b.owner.to_string()).map_err(|e| format!("tmpfs uid: {e}"))?;
    area_fs.set_string("gid", &b.owner.to_string()).map_err(|e| format!("tmpfs gid: {e}"))?;
    let area_mount = area_fs
        .mount(abi::MOUNT_ATTR_NOSUID | abi::MOUNT_ATTR_NODEV | abi::MOUNT_ATTR_NOEXEC)
        .map_err(|e| format!("tmpfs: {e}"))?;
    // What programs get of the area: a read-only clone (see `area.rs`; none before Linux 6.15).
    let area_view = mount::open_tree_clone(Some(area_mount.as_fd()), Path::new(""), false)
        .and_then(|v| {
            mount::mount_setattr(Some(v.as_fd()), Path::new(""), abi::MOUNT_ATTR_RDONLY, 0, false).map(|()| v)
        })
        .ok();
    let host_proc = sys::openat(None, Path::new("/proc"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| format!("/proc: {e}"))?;
    let cgroup =
        b.memory_cgroup.as_deref().and_then(|d| sys::openat(None, d, libc::O_PATH | libc::O_DIRECTORY, 0).ok());
    super::host::init(host_proc, cgroup);

    // The program sends its listener and root right before its first execve.
    let mut buf = [0u8; 16];
    let (n, mut fds) = fdpass::recv(&b.from_program, &mut buf).map_err(|e| format!("receiving the listener: {e}"))?;
    if n == 0 {
        // The sandbox ended before its program started (set-up failed): nothing to serve.
        return Ok(());
    }
    match FromSandbox::decode(&buf[..n])? {
        FromSandbox::SentryFds => {}
        m => return Err(format!("the program sent {m:?} where its seccomp listener was expected")),
    }
    if fds.len() != 2 {
        return Err("the program sent no seccomp listener".into());
    }
    let root = fds.pop().ok_or("no root")?;
    let listener = Listener(fds.pop().ok_or("no listener")?);

    // Join the sandbox's IPC namespace while still host root (joining takes CAP_SYS_ADMIN over
    // both): the host's /proc then shows the Sentry the sandbox's System V IPC objects and
    // limits (/proc/sysvipc, /proc/sys/kernel/shm*), which it passes on, and no one else's.
    let ipcns = sys::openat(None, Path::new(&format!("/proc/{}/ns/ipc", b.init_pid)), libc::O_RDONLY, 0)
        .map_err(|e| format!("IPC namespace: {e}"))?;
    process::setns(ipcns.as_fd(), libc::CLONE_NEWIPC).map_err(|e| format!("setns IPC: {e}"))?;
    // Become the sandbox's root, in its user namespace: the Sentry acts on the sandbox's files
    // with exactly the sandbox root's rights, and none on the host.
    let userns = sys::openat(None, Path::new(&format!("/proc/{}/ns/user", b.init_pid)), libc::O_RDONLY, 0)
        .map_err(|e| format!("user namespace: {e}"))?;
    // (Joining a user namespace takes a single-threaded process: this one still is.)
    process::setns(userns.as_fd(), libc::CLONE_NEWUSER).map_err(|e| format!("setns: {e}"))?;
    process::set_ids(0, 0).map_err(|e| format!("setresuid: {e}"))?;
    // (The one thread's call is the whole process's: it is single-threaded.)
    process::set_thread_groups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0).map_err(|e| format!("prctl: {e}"))?;
    // Modes are applied exactly as the program's umask says, by the handlers.
    process::set_umask(0);
    // Live in the sandbox's tree: every path the Sentry resolves for the program is then
    // resolved by the kernel inside the root (`..` stops there, absolute symlinks start
    // there), and the tree holds no procfs, hence no magic link out. The host's /proc is
    // reached only through the descriptor opened above.
    sys::fchdir(root.as_fd()).map_err(|e| format!("fchdir: {e}"))?;
    sys::fs::chroot(c".").map_err(|e| format!("chroot: {e}"))?;
    listener.set_sync_wakeup().map_err(|e| format!("SYNC_WAKE_UP: {e}"))?;
    // Every capability of the sandbox's user namespace: what a worker thread takes back after
    // holding a caller's (threads started later may inherit a caller's).
    sys::thread_caps::remember_own();

    let area = area::Area::new(area_mount, area_view).map_err(|e| format!("area: errno {e}"))?;
    let resolver = resolve::Resolver {
        root,
        area_prefix: area.prefix(),
        area_dirs: Mutex::new(Default::default()),
        cwds: Default::default(),
    };
    let sentry = Arc::new(Sentry {
        listener: Arc::new(listener),
        resolver,
        info: b.info,
        area,
        policy: seccomp::policy_v2(b.report),
        counts: Mutex::new(report::Counts::default()),
        profile: Mutex::new(Default::default()),
        me: std::sync::OnceLock::new(),
        creds: Default::default(),
        umasks: Default::default(),
        paths: Default::default(),
        spill: Default::default(),
        fifos: std::sync::atomic::AtomicBool::new(b.fifos_possible),
    });
    let own = Policy::allowlist(SENTRY_ALLOWLIST, Action::Errno(libc::EPERM)).compile();
    seccomp::install(&own, seccomp::InstallFlags { all_threads: true, ..Default::default() })
        .map_err(|e| format!("seccomp: {e}"))?;
    accept_more(&sentry, b.from_program);
    let counts = sentry.serve();
    let json = report::END.encode(&counts);
    sys::fs::write_all(b.to_launcher.as_fd(), json.as_bytes()).map_err(|e| format!("end report: {e}"))?;
    Ok(())
}

/// Serves the listener of every process started later in the sandbox (`fnbox-runc exec`):
/// the launcher sends each over the socket the program's came on.
fn accept_more(sentry: &Arc<Sentry>, from_launcher: OwnedFd) {
    let sentry = Arc::clone(sentry);
    let spawned = std::thread::Builder::new().name("sentry-accept".into()).stack_size(128 << 10).spawn(move || {
        let mut buf = [0u8; 16];
        while let Ok((n, mut fds)) = fdpass::recv(&from_launcher, &mut buf) {
            if n == 0 {
                return;
            }
            match FromSandbox::decode(&buf[..n]) {
                Ok(FromSandbox::SentryFds) => {}
                Ok(m) => {
                    eprintln!("fnbox: sentry: the launcher sent {m:?} where a listener was expected");
                    continue;
                }
                Err(e) => {
                    eprintln!("fnbox: sentry: {e}");
                    continue;
                }
            }
            // The listener comes first (a root may follow: the Sentry already has it).
            if !fds.is_empty() {
                sentry.serve_more(Listener(fds.swap_remove(0)));
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("fnbox: sentry: cannot accept exec'd processes: {e}");
    }
}
