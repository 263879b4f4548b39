//! The Sentry: v2's user-space kernel.
//!
//! One Sentry process per sandbox, outside the sandbox's pid namespace, inside its cgroup and
//! its user namespace (as the sandbox's root), under its own seccomp allowlist. The program's
//! seccomp filter (generated from the syscall table) sends the syscalls the table marks
//! emulated here through a user-notification listener; the Sentry answers each one.
//!
//! Threads: the main thread only watches for the end (the listener hangs up when no task uses
//! the filter any more); workers receive and answer calls. A worker that starts on a call
//! while no other worker is free spawns another first, so a call that blocks (opening a FIFO,
//! connecting a socket) never stalls the rest.

mod area;
mod fs;
mod misc;
mod net;
pub mod notify;
pub mod proc;
pub mod process;
mod procfs;
pub mod report;
mod resolve;

use crate::seccomp::Policy;
use crate::syscalls::Action;
use notify::{Call, Listener, Reply};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Upper bound on worker threads (each blocked call holds one).
const MAX_WORKERS: usize = 64;

pub struct Sentry {
    listener: Listener,
    resolver: resolve::Resolver,
    info: proc::Info,
    area: area::Area,
    policy: Policy,
    counts: Mutex<report::Counts>,
    busy: AtomicUsize,
    workers: AtomicUsize,
}

impl Sentry {
    /// Serves until every task of the sandbox is gone; returns the counters.
    pub fn serve(self: Arc<Self>) -> report::Counts {
        self.spawn_worker();
        // Block until the listener hangs up.
        loop {
            let mut p = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&self.listener.0), events: 0, revents: 0 };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, -1) };
            if r > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                break;
            }
        }
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn spawn_worker(self: &Arc<Self>) {
        if self.workers.fetch_add(1, Ordering::SeqCst) >= MAX_WORKERS {
            self.workers.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("sentry".into()).stack_size(256 << 10).spawn(move || me.work());
        if spawned.is_err() {
            self.workers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn work(self: Arc<Self>) {
        while let Ok(Some(call)) = self.listener.recv() {
            let busy = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
            if busy >= self.workers.load(Ordering::SeqCst) {
                self.spawn_worker();
            }
            let reply = self.handle(&call);
            self.listener.respond(call.id, reply);
            self.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn handle(&self, call: &Call) -> Reply {
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

    /// Records partial behaviour met by a program, for the compatibility report.
    fn note(&self, call: &Call, what: &str) {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).note(call.nr as u32, what);
    }

    fn emulate(&self, call: &Call) -> Reply {
        match call.nr {
            libc::SYS_open | libc::SYS_openat | libc::SYS_openat2 | libc::SYS_creat => self.open(call),
            libc::SYS_stat | libc::SYS_lstat | libc::SYS_newfstatat | libc::SYS_statx => self.stat(call),
            libc::SYS_access | libc::SYS_faccessat | libc::SYS_faccessat2 => self.access(call),
            libc::SYS_readlink | libc::SYS_readlinkat => self.readlink(call),
            libc::SYS_mkdir | libc::SYS_mkdirat => self.mkdir(call),
            libc::SYS_mknod | libc::SYS_mknodat => self.mknod(call),
            libc::SYS_rmdir | libc::SYS_unlink | libc::SYS_unlinkat => self.unlink(call),
            libc::SYS_rename | libc::SYS_renameat | libc::SYS_renameat2 => self.rename(call),
            libc::SYS_link | libc::SYS_linkat => self.link(call),
            libc::SYS_symlink | libc::SYS_symlinkat => self.symlink(call),
            libc::SYS_chmod | libc::SYS_fchmodat | libc::SYS_fchmodat2 => self.chmod(call),
            libc::SYS_chown | libc::SYS_lchown | libc::SYS_fchownat => self.chown(call),
            libc::SYS_utime | libc::SYS_utimes | libc::SYS_futimesat | libc::SYS_utimensat => self.utimes(call),
            libc::SYS_truncate => self.truncate(call),
            libc::SYS_statfs => self.statfs(call),
            libc::SYS_chdir => self.chdir(call),
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
            libc::SYS_bind | libc::SYS_connect | libc::SYS_sendto => self.socket_call(call),
            _ => {
                self.note(call, "no emulation in this Sentry");
                Reply::Error(libc::ENOSYS)
            }
        }
    }
}
