//! Processes and tasks: clone3, pidfds (of processes and of single threads: to reach their
//! descriptors, to signal them with a sender's `siginfo`), waiting, reading/writing another
//! process's memory, and the caller's own ids, namespaces, session and capabilities.

use super::abi;
use super::{cvt, cvt_long, owned};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Result of [`clone3_fork`] as seen by each side.
pub enum Forked {
    /// In the parent: the child's pid (in the parent's pid namespace) and its pidfd.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
    /// In the child.
    Child,
}

/// `clone3(2)` with fork semantics (the child runs on a copy of the caller's stack) plus the
/// given namespace flags, returning a pidfd for the child. With `CLONE_PARENT` among the
/// flags the child is the caller's sibling: its parent, told of its end by the signal the
/// caller's own end sends its parent, reaps it; the caller keeps only the pidfd.
///
/// # Safety
/// Same rules as `fork(2)`: the caller must be single-threaded, or the child must restrict
/// itself to async-signal-safe operations until it calls `execve` or `_exit`. The child must
/// never return into code that assumes it is the parent (it should end with `_exit`).
pub unsafe fn clone3_fork(ns_flags: u64, cgroup_fd: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = abi::clone_args {
        flags: ns_flags | abi::CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        // The kernel refuses an exit signal with CLONE_PARENT: the child gets the caller's.
        exit_signal: if ns_flags & libc::CLONE_PARENT as u64 != 0 { 0 } else { libc::SIGCHLD as u64 },
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= abi::CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args whose pidfd pointer outlives the call; with a zero
    // stack the child continues on a copy of this stack, like fork. The caller upholds the
    // fork-safety contract documented above.
    let pid = cvt_long(unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut abi::clone_args, std::mem::size_of::<abi::clone_args>())
    })?;
    if pid == 0 {
        Ok(Forked::Child)
    } else {
        // SAFETY: CLONE_PIDFD stored a new descriptor in `pidfd`.
        let pidfd = unsafe { owned(pidfd) };
        Ok(Forked::Parent { pid: pid as libc::pid_t, pidfd })
    }
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: pidfd_open returned a new descriptor.
    Ok(unsafe { owned(fd as RawFd) })
}

/// `pidfd_send_signal(2)` as `kill(2)` sends it.
pub fn pidfd_signal(pidfd: impl AsFd, sig: libc::c_int) -> io::Result<()> {
    pidfd_send_signal(pidfd.as_fd(), sig, None, 0)
}

/// `pidfd_getfd(2)`: duplicates descriptor `target_fd` of the process behind `pidfd`. The
/// target is a number in that process's table, not a descriptor of the caller's: a plain
/// integer.
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, target_fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: a descriptor and integers.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) })?;
    // SAFETY: pidfd_getfd returned a new descriptor (close-on-exec is set by the kernel).
    Ok(unsafe { owned(fd as RawFd) })
}

/// `fork(2)`: `Ok(0)` in the child, the child's pid in the parent.
///
/// # Safety
/// As for [`clone3_fork`]: the caller is single-threaded, or the child makes only
/// async-signal-safe calls until it calls `execve` or [`exit_now`].
pub unsafe fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the caller's contract above.
    cvt(unsafe { libc::fork() })
}

/// `_exit(2)`: ends the process at once, without running destructors, `atexit` handlers or
/// flushing Rust's buffered streams: how a forked child that must not touch its parent's
/// state ends.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no precondition; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// `execve(2)`: replaces this process with `path`, given `argv` and `env`; returns only if the
/// kernel refused, with its error. Builds the null-terminated pointer arrays the call takes
/// (two small allocations).
pub fn execve(path: &CStr, argv: &[CString], env: &[CString]) -> io::Error {
    let array = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
    };
    let (argv, envp) = (array(argv), array(env));
    // SAFETY: `path` and every string are NUL-terminated and both arrays null-terminated; all
    // outlive the call, which returns only on failure.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// A private anonymous mapping a child made by [`clone_vfork`] runs on, its lowest page a
/// guard against overflow; unmapped when dropped.
pub struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    /// The guard page at the bottom of the mapping.
    const GUARD: usize = 4096;

    /// `len` bytes (a multiple of the page size, above one page) of stack.
    pub fn new(len: usize) -> io::Result<ChildStack> {
        use rustix::mm::{mmap_anonymous, mprotect, MapFlags, MprotectFlags, ProtFlags};
        assert!(len > Self::GUARD && len.is_multiple_of(Self::GUARD), "a child stack of {len} bytes");
        // SAFETY: a new mapping where the kernel chooses: it replaces nothing of ours.
        let base = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::STACK,
            )
        }?;
        // Unmapped by its drop if the guard cannot be set.
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping just made, which nothing refers to yet.
        unsafe { mprotect(base, Self::GUARD, MprotectFlags::empty()) }?;
        Ok(stack)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and no child runs on it any more: only `clone_vfork`
        // hands it to one, and returns once that child has called execve or exited.
        let _ = unsafe { rustix::mm::munmap(self.base, self.len) };
    }
}

/// `clone(2)` with `CLONE_VM | CLONE_VFORK` (as `posix_spawn` does): `child(arg)` runs in a new
/// process that shares the caller's memory, on `stack`, while the caller is suspended until
/// that process has called `execve` or exited. Returns its pid. Nothing is copied, so nothing
/// is torn down at `execve`; what the child allocates stays in the caller's heap.
///
/// # Safety
/// The caller must be single-threaded: another thread would run alongside a child that uses
/// the same memory (the heap and its locks, thread-locals, `arg`). Signal handlers the caller
/// installed may run in the child, on that memory, until it resets them. `child` must not
/// unwind (a panic reaching the entry frame aborts the child).
pub unsafe fn clone_vfork<T>(stack: &mut ChildStack, child: fn(&T) -> !, arg: &T) -> io::Result<libc::pid_t> {
    struct Call<'a, T> {
        child: fn(&T) -> !,
        arg: &'a T,
    }
    extern "C" fn entry<T>(call: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `call` points to the `Call` below, on the stack of the caller, which is
        // suspended (CLONE_VFORK) until this process has called execve or exited.
        let call = unsafe { &*(call as *const Call<'_, T>) };
        (call.child)(call.arg)
    }
    let mut call = Call { child, arg };
    // SAFETY: `entry` starts on the top of a mapping of ours (page-aligned, so 16-byte
    // aligned) that nothing else uses (`&mut`), and never returns (`child` cannot); `call`
    // outlives the child's use of it because this process does not run again until the child
    // has left its memory (CLONE_VFORK). The caller upholds the contract above.
    cvt(unsafe {
        libc::clone(
            entry::<T>,
            stack.base.cast::<u8>().add(stack.len).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut call as *mut Call<'_, T>).cast(),
        )
    })
}

/// `kill(2)`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
}

impl WaitStatus {
    pub fn from_raw(status: libc::c_int) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(Self::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Self::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// The shell convention: the exit code, or 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(c) => c,
            Self::Signaled(s) => 128 + s,
        }
    }
}

/// `waitpid(2)`: returns `None` when `nohang` and nothing has ended.
pub fn waitpid(pid: libc::pid_t, nohang: bool) -> io::Result<Option<(libc::pid_t, WaitStatus)>> {
    let mut status = 0;
    loop {
        let flags = if nohang { libc::WNOHANG } else { 0 };
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if let Some(ws) = WaitStatus::from_raw(status) {
            return Ok(Some((r, ws)));
        }
    }
}

/// Reads `buf.len()` bytes at `addr` in process `pid` (one `process_vm_readv`). Returns the
/// number of bytes read, which may be short at the end of a mapping.
pub fn read_mem(pid: libc::pid_t, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: `local` describes `buf`; the remote address is only interpreted by the kernel
    // in the other process, where a bad address yields EFAULT rather than undefined behaviour.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Writes `data` at `addr` in process `pid`; fails unless every byte was written.
pub fn write_mem(pid: libc::pid_t, addr: u64, data: &[u8]) -> io::Result<()> {
    let local = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: as in `read_mem`; the local buffer is only read.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// Sets real, effective and saved user and group ids (group first, as required).
pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments only. The raw syscalls are used on purpose: glibc's wrappers
    // broadcast to all threads with signals, which is wrong in a freshly cloned child.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    // SAFETY: as above.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })?;
    Ok(())
}

/// Number of this process's threads, from `/proc/self/status`; used to assert the
/// single-threaded precondition of [`clone3_fork`].
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse().unwrap_or(1))))
        .unwrap_or(1)
}

/// `pidfd_open(2)` with `PIDFD_THREAD`: a pidfd for the thread `tid` itself (Linux 6.9),
/// through which [`pidfd_getfd`] reaches that thread's descriptor table.
pub fn pidfd_open_thread(tid: libc::pid_t) -> io::Result<OwnedFd> {
    const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
    // SAFETY: integer arguments only.
    let fd = cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) })?;
    // SAFETY: pidfd_open returned a new descriptor.
    Ok(unsafe { owned(fd as RawFd) })
}

/// `pidfd_send_signal(2)` with the sender's `info` (`None`: as if sent by kill(2)) and `flags`.
pub fn pidfd_send_signal(
    pidfd: BorrowedFd<'_>,
    sig: libc::c_int,
    info: Option<&abi::siginfo>,
    flags: libc::c_uint,
) -> io::Result<()> {
    let info = info.map_or(std::ptr::null(), |i| i as *const abi::siginfo);
    // SAFETY: `info` is null or points to a siginfo (the kernel's size) that outlives the call;
    // the kernel only reads it.
    cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, info, flags) }).map(drop)
}

// ---- the caller's own task ------------------------------------------------------------

/// `setns(2)`: moves the caller into the namespace `ns` refers to; `nstype` (`CLONE_NEWUSER`...)
/// checks its kind, 0 accepts any.
pub fn setns(ns: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: a descriptor and an integer; what moves is the caller's own namespaces.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), nstype) }).map(drop)
}

/// `unshare(CLONE_FS)`: gives the calling thread its own working directory, root and umask,
/// so that `fchdir` and [`set_umask`] after it change this thread's only.
pub fn unshare_fs() -> io::Result<()> {
    // SAFETY: an integer flag; CLONE_FS only parts this thread's filesystem context from the
    // other threads' (no memory is shared or released).
    cvt(unsafe { libc::unshare(libc::CLONE_FS) }).map(drop)
}

/// `unshare(2)` of namespaces only (`CLONE_NEWNET`, `CLONE_NEWCGROUP`...): the caller moves
/// into new ones of those kinds.
pub fn unshare_namespaces(flags: libc::c_int) -> io::Result<()> {
    const NAMESPACES: libc::c_int = libc::CLONE_NEWNS
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWTIME;
    assert_eq!(flags & !NAMESPACES, 0, "unshare_namespaces takes CLONE_NEW* flags only");
    // SAFETY: integer flags, namespaces only (checked above): no memory or descriptor table
    // is parted from another task's, only the caller's namespaces change.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `setrlimit(2)` of the caller (`prlimit` on itself): `resource` (`RLIMIT_NOFILE`...) as
/// the kernel numbers it.
pub fn set_rlimit(resource: libc::c_int, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `lim` is a valid rlimit for the call; a null old-limit pointer is allowed; pid 0
    // is the caller.
    cvt(unsafe { libc::prlimit(0, resource as _, &lim, std::ptr::null_mut()) }).map(drop)
}

/// `sethostname(2)` in the caller's UTS namespace.
pub fn sethostname(name: &str) -> io::Result<()> {
    Ok(rustix::system::sethostname(name.as_bytes())?)
}

/// `umask(2)`: sets the file-mode creation mask (the calling thread's after [`unshare_fs`]);
/// returns the previous one.
pub fn set_umask(mask: u32) -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_bits_retain(mask)).bits()
}

/// `setfsuid(2)` on the calling thread only (the raw call: glibc's would reach every thread).
/// Returns nothing: the call reports no error, only the previous id.
pub fn set_thread_fsuid(uid: u32) {
    // SAFETY: an integer argument; the raw call acts on this thread only.
    unsafe { libc::syscall(libc::SYS_setfsuid, uid) };
}

/// `setfsgid(2)` on the calling thread only, as [`set_thread_fsuid`].
pub fn set_thread_fsgid(gid: u32) {
    // SAFETY: an integer argument; the raw call acts on this thread only.
    unsafe { libc::syscall(libc::SYS_setfsgid, gid) };
}

/// `setresuid(uid, -1, -1)` on the calling thread only: its real user id (the effective and
/// saved ones unchanged); errors are not reported, as for [`set_thread_fsuid`].
pub fn set_thread_ruid(uid: u32) {
    // SAFETY: integer arguments; the raw call acts on this thread only.
    unsafe { libc::syscall(libc::SYS_setresuid, uid, -1, -1) };
}

/// `setresgid(gid, -1, -1)` on the calling thread only, as [`set_thread_ruid`].
pub fn set_thread_rgid(gid: u32) {
    // SAFETY: integer arguments; the raw call acts on this thread only.
    unsafe { libc::syscall(libc::SYS_setresgid, gid, -1, -1) };
}

/// `setgroups(2)` on the calling thread only (the raw call, as [`set_thread_fsuid`]).
pub fn set_thread_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length describe `groups` (zero entries: the pointer is not read).
    cvt_long(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) }).map(drop)
}

/// `setsid(2)`: a new session (and process group) led by the caller.
pub fn setsid() -> io::Result<()> {
    rustix::process::setsid()?;
    Ok(())
}

/// `capset(2)` on the calling thread: its effective, permitted and inheritable sets (bit
/// masks of capability numbers).
pub fn set_capabilities(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    use rustix::thread::{set_capabilities, CapabilitySet, CapabilitySets};
    let set = CapabilitySet::from_bits_retain;
    Ok(set_capabilities(
        None,
        CapabilitySets { effective: set(effective), permitted: set(permitted), inheritable: set(inheritable) },
    )?)
}

/// The nice value of fnbox's own background work: a pre-warmed sandbox's start (its launcher
/// and the `ip` and `nft` it runs) and the making of a spare disk layer. It then takes little
/// of the CPU that instances and cold starts want (docs/architecture.md, "Background
/// starts"). Not `SCHED_IDLE`: background work takes kernel locks (mounts, netlink) that a
/// request's own start may wait for, and an idle thread holding one could be starved for long.
pub const BACKGROUND_NICE: i32 = 19;

/// The calling thread's nice value (on Linux a nice value is a thread's; the threads and
/// processes it makes inherit it).
pub fn thread_nice() -> io::Result<i32> {
    Ok(rustix::process::getpriority_process(None)?)
}

/// Sets the calling thread's nice value. Lowering it takes CAP_SYS_NICE.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    Ok(rustix::process::setpriority_process(None, nice)?)
}

/// Sets the nice value of the process `pid` (its main thread: enough for a single-threaded
/// child such as `nft` or the disk helper). Lowering it takes CAP_SYS_NICE.
pub fn set_nice_of(pid: libc::pid_t, nice: i32) -> io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(rustix::process::setpriority_process(Some(pid), nice)?)
}

/// Whether this thread may lower its nice value again once it has raised it (CAP_SYS_NICE).
pub fn may_lower_nice() -> bool {
    use rustix::thread::{capabilities, CapabilitySet};
    capabilities(None).is_ok_and(|c| c.effective.contains(CapabilitySet::SYS_NICE))
}
