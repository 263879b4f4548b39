//! The Sentry: v2's user-space kernel.
//!
//! One Sentry process per sandbox, outside the sandbox's pid namespace, inside its cgroup and
//! its user namespace (as the sandbox's root), under its own seccomp allowlist. The program's
//! seccomp filter (generated from the syscall table) sends the syscalls the table marks
//! emulated here through a user-notification listener; the Sentry answers each one.
//!
//! Threads: the main thread only watches for the end (the listener hangs up when no task uses
//! the filter any more); one worker receives and answers the calls, and calls in helpers when
//! calls queue up (`workers.rs`). No worker ever blocks on the program:
//! the few calls whose emulation may wait for the program itself (opening a FIFO, connecting
//! or sending on a Unix socket) are finished by a short-lived thread that answers on its own
//! (`Reply::Deferred`).

mod area;
mod cache;
mod creds;
mod fs;
mod fsops;
mod host;
mod misc;
mod net;
pub mod notify;
pub mod proc;
pub mod process;
mod procfs;
pub mod report;
mod resolve;
#[cfg(test)]
mod resolve_tests;
mod signal;
mod tree;
mod workers;

use crate::seccomp::Policy;
use crate::syscalls::Action;
use notify::{Call, Listener, Reply};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// `FNBOX_SENTRY_PROFILE=1`: time every handler and print a table to stderr at the end.
static PROFILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub struct Sentry {
    /// The program's listener: the sandbox lives as long as it has a task.
    listener: Arc<Listener>,
    resolver: resolve::Resolver,
    info: proc::Info,
    area: area::Area,
    policy: Policy,
    counts: Mutex<report::Counts>,
    /// Per syscall: (calls, ns handling, ns answering), when profiling.
    profile: Mutex<std::collections::BTreeMap<u32, (u64, u64, u64)>>,
    /// The sandbox may hold FIFOs (it has binds or a custom image, or made one): opens check
    /// for them.
    fifos: std::sync::atomic::AtomicBool,
    me: OnceLock<Weak<Sentry>>,
    /// Cached credentials per thread (see `creds.rs`).
    creds: cache::PerThread<creds::Creds>,
    /// Threads whose `umask` was answered and may not have run, with the mask they set
    /// (see `creds.rs`).
    umasks: Mutex<std::collections::HashMap<i32, u32>>,
    /// Taken to read by every emulated call, and to write by those that may change a
    /// directory's path (`moving_paths`).
    paths: std::sync::RwLock<()>,
    /// Where the worker's helpers park (see `workers.rs`).
    spill: workers::Spill,
}

impl Sentry {
    /// Serves until every task of the sandbox is gone; returns the counters.
    pub fn serve(self: Arc<Self>) -> report::Counts {
        PROFILE.store(std::env::var_os("FNBOX_SENTRY_PROFILE").is_some(), Ordering::Relaxed);
        let _ = self.me.set(Arc::downgrade(&self));
        self.start_helpers(workers::helpers());
        let me = Arc::clone(&self);
        let main = Arc::clone(&self.listener);
        std::thread::Builder::new()
            .name("sentry".into())
            .stack_size(256 << 10)
            .spawn(move || me.work(main, true))
            .unwrap_or_else(|e| panic!("cannot start the Sentry's worker: {e}"));
        // Block until the listener hangs up.
        loop {
            let mut p = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&self.listener.0), events: 0, revents: 0 };
            let r = crate::sys::fd::poll(std::slice::from_mut(&mut p), -1).unwrap_or(0);
            if r > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                break;
            }
        }
        if PROFILE.load(Ordering::Relaxed) {
            let p = self.profile.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("fnbox sentry profile: {:<18} {:>9} {:>12} {:>12}", "syscall", "calls", "handle us", "answer us");
            for (nr, (n, h, a)) in p.iter() {
                let name = crate::syscalls::by_nr(*nr).map_or("?", |s| s.name);
                eprintln!(
                    "fnbox sentry profile: {name:<18} {n:>9} {:>12.2} {:>12.2}",
                    *h as f64 / *n as f64 / 1e3,
                    *a as f64 / *n as f64 / 1e3
                );
            }
        }
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Finishes a call on a thread of its own, which answers it: for emulations that may wait
    /// for the program (the worker must never do that).
    fn defer(&self, call: &Call, job: impl FnOnce(&Sentry) -> Reply + Send + 'static) -> Reply {
        let Some(me) = self.me.get().and_then(Weak::upgrade) else { return Reply::Error(libc::EAGAIN) };
        let (listener, id) = (Arc::clone(&call.listener), call.id);
        let spawned = std::thread::Builder::new().stack_size(256 << 10).spawn(move || {
            let reply = job(&me);
            listener.respond(id, reply);
        });
        match spawned {
            Ok(_) => Reply::Deferred,
            Err(_) => Reply::Error(libc::EAGAIN),
        }
    }

    /// Serves one more listener (a process started in the running sandbox by `exec`) on a
    /// worker of its own, until every task using it is gone.
    pub fn serve_more(self: &Arc<Self>, listener: Listener) {
        let _ = listener.set_sync_wakeup();
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("sentry-exec".into())
            .stack_size(256 << 10)
            .spawn(move || me.work(Arc::new(listener), false));
        if let Err(e) = spawned {
            eprintln!("fnbox: sentry: cannot serve an exec'd process: {e}");
        }
    }

    fn handle(&self, call: &Call) -> Reply {
        self.resolver.settled(call.tid);
        self.umask_settled(call.tid);
        let nr = call.nr as u32;
        match self.policy.decide(nr, &call.args) {
            Action::Errno(e) => {
                self.counts.lock().unwrap_or_else(|p| p.into_inner()).refuse(nr, e);
                Reply::Error(e)
            }
            Action::Allow => Reply::Continue,
            Action::Kill => Reply::Error(libc::ENOSYS),
            Action::Notify => self.emulate(call),
        }
    }

    /// Runs `op` (which may change a directory's path) alone: no other call of the program is
    /// in the Sentry meanwhile, and every cached working directory is dropped after it (see
    /// `cache.rs`). A call resolving a relative path from a working directory's path, which
    /// it read before, never runs across the change (docs/architecture.md, "The Sentry's
    /// workers").
    fn moving_paths(&self, op: impl FnOnce() -> Reply) -> Reply {
        let _alone = self.paths.write().unwrap_or_else(|e| e.into_inner());
        let r = op();
        self.resolver.cwds.clear();
        r
    }

    /// Records partial behaviour met by a program, for the compatibility report.
    fn note(&self, call: &Call, what: &str) {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).note(call.nr as u32, what);
    }

    fn emulate(&self, call: &Call) -> Reply {
        self.hold_caps_for(call);
        match call.nr {
            // A working directory's path may change with these.
            libc::SYS_rmdir | libc::SYS_unlink | libc::SYS_unlinkat => return self.moving_paths(|| self.unlink(call)),
            libc::SYS_rename | libc::SYS_renameat | libc::SYS_renameat2 => {
                return self.moving_paths(|| self.rename(call))
            }
            _ => {}
        }
        let _paths = self.paths.read().unwrap_or_else(|e| e.into_inner());
        match call.nr {
            libc::SYS_open | libc::SYS_openat | libc::SYS_openat2 | libc::SYS_creat => self.open(call),
            libc::SYS_stat | libc::SYS_lstat | libc::SYS_newfstatat | libc::SYS_statx => self.stat(call),
            libc::SYS_access | libc::SYS_faccessat | libc::SYS_faccessat2 => self.access(call),
            libc::SYS_readlink | libc::SYS_readlinkat => self.readlink(call),
            libc::SYS_mkdir | libc::SYS_mkdirat => self.mkdir(call),
            libc::SYS_mknod | libc::SYS_mknodat => self.mknod(call),
            libc::SYS_link | libc::SYS_linkat => self.link(call),
            libc::SYS_symlink | libc::SYS_symlinkat => self.symlink(call),
            libc::SYS_chmod | libc::SYS_fchmodat | libc::SYS_fchmodat2 => self.chmod(call),
            libc::SYS_chown | libc::SYS_lchown | libc::SYS_fchownat => self.chown(call),
            libc::SYS_utime | libc::SYS_utimes | libc::SYS_futimesat | libc::SYS_utimensat => self.utimes(call),
            libc::SYS_truncate => self.truncate(call),
            libc::SYS_statfs => self.statfs(call),
            libc::SYS_chdir | libc::SYS_fchdir => self.chdir(call),
            libc::SYS_execve | libc::SYS_execveat => self.exec(call),
            libc::SYS_setxattr
            | libc::SYS_lsetxattr
            | libc::SYS_getxattr
            | libc::SYS_lgetxattr
            | libc::SYS_listxattr
            | libc::SYS_llistxattr
            | libc::SYS_removexattr
            | libc::SYS_lremovexattr => self.xattr(call),
            libc::SYS_inotify_add_watch => self.inotify_add_watch(call),
            libc::SYS_sysinfo => self.sysinfo(call),
            libc::SYS_umask => self.umask_changes(call),
            libc::SYS_setuid
            | libc::SYS_setgid
            | libc::SYS_setreuid
            | libc::SYS_setregid
            | libc::SYS_setresuid
            | libc::SYS_setresgid
            | libc::SYS_setfsuid
            | libc::SYS_setfsgid
            | libc::SYS_setgroups
            | libc::SYS_capset => self.creds_changed(),
            libc::SYS_bind | libc::SYS_connect | libc::SYS_sendto => self.socket_call(call),
            libc::SYS_pidfd_send_signal => self.pidfd_send_signal(call),
            _ => {
                self.note(call, "no emulation in this Sentry");
                Reply::Error(libc::ENOSYS)
            }
        }
    }
}
