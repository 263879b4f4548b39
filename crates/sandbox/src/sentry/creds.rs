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
//! through the Sentry for that reason).

use super::notify::{Call, Reply};
use super::{host, Sentry};

/// What the Sentry needs to know of a caller.
#[derive(Clone, Debug, Default)]
pub struct Creds {
    pub ruid: u32,
    pub rgid: u32,
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
    /// Its effective capabilities (`CapEff`): a root that dropped some holds only those.
    pub cap_eff: u64,
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
        let (uid, gid) = (ids("Uid:"), ids("Gid:"));
        let umask =
            status.lines().find(|l| l.starts_with("Umask:")).and_then(|l| u32::from_str_radix(l[6..].trim(), 8).ok());
        Some(Self {
            ruid: *uid.first()?,
            rgid: *gid.first()?,
            fsuid: *uid.get(3)?,
            fsgid: *gid.get(3)?,
            groups: ids("Groups:"),
            umask: umask.unwrap_or(0o022),
            // Unreadable: no capability (fails closed).
            cap_eff: status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .unwrap_or(0),
        })
    }

    fn is_root(&self) -> bool {
        self.fsuid == 0 && self.fsgid == 0 && self.ruid == 0 && self.rgid == 0
    }

    /// Runs `op` on this thread with these filesystem ids and groups, then takes the
    /// Sentry's back. For root, the ids are the Sentry's own, and its capabilities are lowered
    /// to the caller's: a root that dropped CAP_CHOWN, CAP_FOWNER or CAP_DAC_OVERRIDE (an OCI
    /// container's `capabilities: []`) must not chown, chmod or read others' files through the
    /// Sentry. (For other ids, the kernel drops the filesystem capabilities itself.)
    pub fn act<T>(&self, op: impl FnOnce() -> T) -> T {
        if self.is_root() {
            return crate::sys::process::with_effective_caps(self.cap_eff, op);
        }
        use crate::sys::task::{set_thread_fsgid, set_thread_fsuid, set_thread_groups};
        let _ = set_thread_groups(&self.groups);
        set_thread_fsgid(self.fsgid);
        set_thread_fsuid(self.fsuid);
        let r = op();
        set_thread_fsuid(0);
        set_thread_fsgid(0);
        let _ = set_thread_groups(&[]);
        r
    }
}

impl Sentry {
    /// The caller's credentials (cached per thread).
    pub(super) fn creds_of(&self, call: &Call) -> Creds {
        if let Some(c) = self.creds.get(call.tid) {
            return c;
        }
        let c =
            host::read_string(&format!("{}/status", call.tid)).ok().and_then(|s| Creds::parse(&s)).unwrap_or_default();
        self.creds.put(call.tid, c.clone());
        c
    }

    pub(super) fn umask_of(&self, call: &Call) -> u32 {
        self.creds_of(call).umask
    }

    /// The program changed its ids, groups, capabilities or umask: forget what was cached,
    /// then let the kernel run the call.
    pub(super) fn creds_changed(&self) -> Reply {
        self.creds.clear();
        Reply::Continue
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
        use crate::sys::task::{set_thread_groups, set_thread_rgid, set_thread_ruid};
        let _ = set_thread_groups(&c.groups);
        set_thread_rgid(c.rgid);
        set_thread_ruid(c.ruid);
        let r = op();
        set_thread_ruid(0);
        set_thread_rgid(0);
        let _ = set_thread_groups(&[]);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let s = "Name:\tsh\nUmask:\t0027\nUid:\t1000\t0\t0\t0\nGid:\t100\t0\t0\t5\nGroups:\t5 6 \n";
        let c = Creds::parse(s).unwrap();
        assert_eq!((c.ruid, c.fsuid, c.rgid, c.fsgid, c.umask), (1000, 0, 100, 5, 0o027));
        assert_eq!(c.groups, vec![5, 6]);
        assert!(!c.is_root());
        assert_eq!(c.cap_eff, 0, "no CapEff line: no capability");
        let root = Creds::parse("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nCapEff:\t00000000a80425fb\n").unwrap();
        assert!(root.is_root());
        assert_eq!(root.cap_eff, 0xa80425fb);
    }
}
