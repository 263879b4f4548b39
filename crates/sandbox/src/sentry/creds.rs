//! Acting with the caller's credentials.
//!
//! The Sentry runs as the sandbox's root. When the calling thread is not root (a program that
//! dropped to another user), the worker thread takes the caller's filesystem ids and groups
//! for the duration of the call, so the kernel's permission checks are the ones the caller
//! would get; `access` without `AT_EACCESS` takes the caller's real ids, as Linux does.
//! Credentials are per thread in Linux, and the raw syscalls used here change only the
//! calling thread (glibc's wrappers would change every thread).
//!
//! The ids are read from the host's `/proc/<tid>/status` and cached per thread (`cache.rs`); the
//! cache is dropped whenever a program changes ids, groups or its umask (those calls pass
//! through the Sentry for that reason). The umask is shared by a process's threads, so after a
//! `umask` nothing is cached until the kernel shows it ran (`Sentry::umasks_settled`).

use super::notify::{Call, Reply};
use super::{host, Sentry};
use crate::sys::process::{set_thread_fsgid, set_thread_fsuid, set_thread_groups, set_thread_rgid, set_thread_ruid};
use crate::sys::thread_caps;

/// What the Sentry needs to know of a caller.
#[derive(Clone, Debug, Default)]
pub struct Creds {
    /// Its process (host tgid; 0 when unreadable, which is no process).
    pub tgid: i32,
    pub ruid: u32,
    pub rgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
    /// Its effective capabilities (`CapEff`): a root that dropped some holds only those.
    pub cap_eff: u64,
    /// Its permitted capabilities (`CapPrm`).
    pub cap_prm: u64,
}

impl Creds {
    fn parse(status: &str) -> Option<Self> {
        let ids = |key: &str| -> Vec<u32> {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .map(|l| l.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect())
                .unwrap_or_default()
        };
        let caps = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0)
        };
        let (uid, gid) = (ids("Uid:"), ids("Gid:"));
        Some(Self {
            tgid: super::proc::pids::tgid_field(status).unwrap_or(0),
            ruid: *uid.first()?,
            rgid: *gid.first()?,
            fsuid: *uid.get(3)?,
            fsgid: *gid.get(3)?,
            groups: ids("Groups:"),
            umask: Self::umask(status).unwrap_or(0o022),
            // Unreadable: no capability (fails closed).
            cap_eff: caps("CapEff:"),
            cap_prm: caps("CapPrm:"),
        })
    }

    fn umask(status: &str) -> Option<u32> {
        status.lines().find_map(|l| l.strip_prefix("Umask:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
    }

    fn is_root(&self) -> bool {
        self.fsuid == 0 && self.fsgid == 0 && self.ruid == 0 && self.rgid == 0
    }

    /// Whether the Sentry's worker holds this caller's effective capabilities for its whole
    /// call (see [`Sentry::hold_caps_for`]): a root caller's that are not below its permitted
    /// ones. (The kernel lets a process look at another, as the Sentry looks at its caller,
    /// only with effective capabilities that cover the other's permitted ones.)
    fn held_for_the_call(&self) -> bool {
        self.is_root() && self.cap_eff & self.cap_prm == self.cap_prm
    }

    /// Runs `op` on this thread with these filesystem ids and groups, then takes the
    /// Sentry's back. For root, the ids are the Sentry's own, and its capabilities are lowered
    /// to the caller's: a root that dropped CAP_CHOWN, CAP_FOWNER or CAP_DAC_OVERRIDE (an OCI
    /// container's `capabilities: []`) must not chown, chmod or read others' files through the
    /// Sentry; the thread keeps them after `op` when it holds them for the whole call
    /// (`sys::thread_caps`). For other ids, `op` runs with the caller's ids and exactly the
    /// caller's effective capabilities too: a user that is not root may hold some
    /// (CAP_DAC_OVERRIDE among an OCI process's ambient ones) and act with them, as under Linux;
    /// one that holds none acts with none.
    pub fn act<T>(&self, op: impl FnOnce() -> T) -> T {
        if self.held_for_the_call() {
            // Held since the call began (no syscall): and kept after.
            return thread_caps::with_effective_caps(self.cap_eff, op);
        }
        if self.is_root() {
            return thread_caps::with_effective_caps_once(self.cap_eff, op);
        }
        // The Sentry's own set, CAP_SETUID among them: without it (a root caller's set may
        // lack it) setfsuid would fail, and the operation run with root's ids.
        thread_caps::hold_own();
        let _ = set_thread_groups(&self.groups);
        set_thread_fsgid(self.fsgid);
        set_thread_fsuid(self.fsuid);
        // The kernel dropped the filesystem capabilities: what the thread holds is read back,
        // and held again after `op` (CAP_SETUID and CAP_SETGID restore the ids and groups).
        thread_caps::resync();
        let held = thread_caps::held();
        let r = thread_caps::with_effective_caps(self.cap_eff, op);
        thread_caps::hold(held);
        set_thread_fsuid(0);
        set_thread_fsgid(0);
        let _ = set_thread_groups(&[]);
        // The filesystem uid back at 0 raised the filesystem capabilities: what the thread
        // holds is read back, never assumed.
        thread_caps::resync();
        r
    }
}

impl Sentry {
    /// The caller's credentials (cached per thread).
    pub(super) fn creds_of(&self, call: &Call) -> Creds {
        if let Some(c) = self.creds.get(call.tid) {
            return c;
        }
        let ticket = self.creds.ticket();
        let c =
            host::read_string(&format!("{}/status", call.tid)).ok().and_then(|s| Creds::parse(&s)).unwrap_or_default();
        if self.umasks_settled() {
            self.creds.put_since(call.tid, c.clone(), ticket);
        }
        c
    }

    pub(super) fn umask_of(&self, call: &Call) -> u32 {
        self.creds_of(call).umask
    }

    /// Whether every `umask` answered has run: a process's threads share the umask, so one
    /// read for a sibling between a `umask`'s answer and its run (another worker answering the
    /// sibling) would be kept after `umask()` returned (a directory meant 0700 made 0755:
    /// docs/architecture.md, "Per-thread caches"). A pending `umask` has run once its thread's
    /// status shows the mask, or the thread is gone, or it made another call
    /// ([`Sentry::umask_settled`]); the cache is then cleared, so that a value read before is
    /// not kept either.
    fn umasks_settled(&self) -> bool {
        let mut pending = self.umasks.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            return true;
        }
        let before = pending.len();
        pending.retain(|tid, mask| {
            host::read_string(&format!("{tid}/status")).ok().and_then(|s| Creds::umask(&s)).is_some_and(|m| m != *mask)
        });
        if pending.len() < before {
            self.creds.clear();
        }
        false
    }

    /// Thread `tid` made a new call: a `umask` of its own has run.
    pub(super) fn umask_settled(&self, tid: i32) {
        let mut pending = self.umasks.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.is_empty() && pending.remove(&tid).is_some() {
            self.creds.clear();
        }
    }

    /// The program changes its umask: the kernel runs the call after the answer.
    pub(super) fn umask_changes(&self, call: &Call) -> Reply {
        self.umasks.lock().unwrap_or_else(|e| e.into_inner()).insert(call.tid, call.args[0] as u32 & 0o777);
        self.creds_changed()
    }

    /// The program changed its ids, groups or capabilities: forget what was cached, then let
    /// the kernel run the call. (They are the calling thread's own, which no other call reads
    /// before the kernel ran this one; the umask, shared, also takes `umask_changes`.)
    pub(super) fn creds_changed(&self) -> Reply {
        self.creds.clear();
        Reply::Continue
    }

    /// Makes this worker thread hold, for the whole call, the capabilities it acts with:
    /// a root caller's own effective ones (so a run of calls from the sandbox's root costs no
    /// `capset`, and whatever the Sentry does for the call it does with no more than the
    /// caller holds); the Sentry's own for another caller, whose ids `act` takes only around
    /// the operation. What the thread does for itself and the kernel refuses it with the
    /// caller's set (reading the memory of a caller that is not dumpable) is tried again with
    /// the Sentry's own (`notify.rs`).
    pub(super) fn hold_caps_for(&self, call: &Call) {
        let c = self.creds_of(call);
        if c.held_for_the_call() {
            thread_caps::hold(c.cap_eff);
        } else {
            thread_caps::hold_own();
        }
    }

    /// Runs `op` with the caller's filesystem ids and groups (nothing to switch for root).
    pub(super) fn as_caller<T>(&self, call: &Call, op: impl FnOnce() -> T) -> T {
        self.creds_of(call).act(op)
    }

    /// Runs `op` with the caller's real ids (what `access` checks against).
    pub(super) fn as_caller_real<T>(&self, call: &Call, op: impl FnOnce() -> T) -> T {
        let c = self.creds_of(call);
        if c.ruid == 0 && c.rgid == 0 {
            return op();
        }
        thread_caps::hold_own(); // CAP_SETUID, as in `act`
        let _ = set_thread_groups(&c.groups);
        set_thread_rgid(c.rgid);
        set_thread_ruid(c.ruid);
        let r = thread_caps::acting(op);
        set_thread_ruid(0);
        set_thread_rgid(0);
        let _ = set_thread_groups(&[]);
        thread_caps::resync();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let s = "Name:\tsh\nUmask:\t0027\nTgid:\t42\nUid:\t1000\t0\t0\t0\nGid:\t100\t0\t0\t5\nGroups:\t5 6 \n";
        let c = Creds::parse(s).unwrap();
        assert_eq!((c.ruid, c.fsuid, c.rgid, c.fsgid, c.umask), (1000, 0, 100, 5, 0o027));
        assert_eq!(c.groups, vec![5, 6]);
        assert_eq!(c.tgid, 42);
        assert!(!c.is_root());
        assert_eq!(c.cap_eff, 0, "no CapEff line: no capability");
        let root = Creds::parse("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t00000000a80425fb\n").unwrap();
        assert!(root.is_root());
        assert_eq!(root.cap_eff, 0xa80425fb);
        assert!(root.held_for_the_call());
        let lowered =
            Creds::parse("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t0000000000000001\nCapPrm:\t00000000a80425fb\n");
        assert!(!lowered.unwrap().held_for_the_call(), "effective below permitted: held only around the operation");
        let user = Creds::parse("Uid:\t1000\t1000\t1000\t1000\nGid:\t0\t0\t0\t0\nCapEff:\t0\nCapPrm:\t0\n");
        assert!(!user.unwrap().held_for_the_call(), "another user: the Sentry's own set");
    }
}
