//! The effective capabilities a thread holds while it acts for another process (the Sentry's
//! worker acting for a root caller: docs/architecture.md, "Acting for a root caller").
//!
//! A thread keeps the set it was last given instead of raising it back after each call: the
//! next call from a caller with the same capabilities (every call, in a sandbox whose
//! processes are all root) then costs no `capset`. What the thread holds is known without
//! asking the kernel because every change goes through here; a change the kernel makes on its
//! own (it raises the filesystem capabilities when the filesystem uid goes back to 0) is read
//! back with `capget` ([`resync`]). Acts on the calling thread only (capset's raw call).

use rustix::thread::{capabilities, set_capabilities, CapabilitySet, CapabilitySets};
use std::cell::Cell;
use std::sync::OnceLock;

/// The process's own sets, read once before it starts its threads ([`remember_own`]): a thread
/// started while another held a caller's set inherits that set, so its own sets are not its
/// own to read.
static OWN: OnceLock<CapabilitySets> = OnceLock::new();

thread_local! {
    /// The effective set this thread holds, when known (unknown at its start).
    static HELD: Cell<Option<CapabilitySet>> = const { Cell::new(None) };
    /// Whether an operation acting for a caller runs: nothing raises the set meanwhile.
    static ACTING: Cell<bool> = const { Cell::new(false) };
}

/// Records the process's own capability sets; call it before starting threads that act.
pub fn remember_own() {
    own();
}

fn own() -> CapabilitySets {
    *OWN.get_or_init(|| capabilities(None).expect("capget on this thread"))
}

/// Makes this thread hold the effective set `own & allowed` (`allowed` a `CapEff` bit mask),
/// the permitted set kept; no syscall when it holds it already. A thread that cannot set it
/// panics: going on with more than `allowed` would grant what the caller does not hold.
pub fn hold(allowed: u64) {
    let own = own();
    let want = own.effective & CapabilitySet::from_bits_retain(allowed);
    HELD.with(|held| {
        if held.get() != Some(want) {
            held.set(None);
            let sets = CapabilitySets { effective: want, permitted: own.permitted, inheritable: own.inheritable };
            set_capabilities(None, sets).expect("set this thread's effective capabilities");
            held.set(Some(want));
        }
    });
}

/// Makes this thread hold the process's own effective set.
pub fn hold_own() {
    hold(u64::MAX);
}

/// What this thread holds, as a bit mask for [`hold`] (the process's own set when unknown).
pub fn held() -> u64 {
    HELD.with(Cell::get).map_or(u64::MAX, |s| s.bits())
}

/// Reads back what this thread holds after a change the kernel makes to it (setting the
/// filesystem uid back to 0 raises the filesystem capabilities from the permitted set).
pub fn resync() {
    let now = capabilities(None).expect("capget on this thread");
    HELD.with(|held| held.set(Some(now.effective)));
}

/// Runs `op` as an operation acting for a caller: [`raise_for_self`] refuses meanwhile.
pub fn acting<T>(op: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            ACTING.with(|a| a.set(self.0));
        }
    }
    let _reset = Reset(ACTING.with(|a| a.replace(true)));
    op()
}

/// Runs `op` holding `own & allowed` (see [`hold`]), as an operation acting for a caller.
/// The thread keeps that set afterwards.
pub fn with_effective_caps<T>(allowed: u64, op: impl FnOnce() -> T) -> T {
    hold(allowed);
    acting(op)
}

/// [`with_effective_caps`] for one operation only: the thread holds what it held before again
/// afterwards (the process's own set when that was unknown).
pub fn with_effective_caps_once<T>(allowed: u64, op: impl FnOnce() -> T) -> T {
    let before = held();
    let r = with_effective_caps(allowed, op);
    hold(before);
    r
}

/// For an operation the thread makes for itself (reading a caller's memory, say) that the
/// kernel refused while the thread held a caller's set: takes the process's own set back and
/// says whether it did (then the operation is worth trying again). Never within [`acting`].
pub fn raise_for_self() -> bool {
    if ACTING.with(Cell::get) {
        return false;
    }
    let own = own().effective;
    if HELD.with(Cell::get) == Some(own) {
        return false;
    }
    hold_own();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effective() -> CapabilitySet {
        capabilities(None).unwrap().effective
    }

    /// Run on threads of their own: they change their thread's capabilities.
    #[test]
    fn a_thread_keeps_a_lowered_set_and_says_so_truly() {
        std::thread::spawn(|| {
            let own = own().effective;
            assert!(own.contains(CapabilitySet::CHOWN), "the tests run as root");
            let no_chown = own.bits() & !CapabilitySet::CHOWN.bits();
            with_effective_caps(no_chown, || {
                assert_eq!(effective().bits(), no_chown);
                assert!(!raise_for_self(), "never raised while acting for a caller");
            });
            assert_eq!(effective().bits(), no_chown, "kept after the call");
            hold(no_chown);
            assert_eq!(HELD.with(Cell::get).map(|s| s.bits()), Some(no_chown));
            assert!(raise_for_self(), "raised for the thread's own operation");
            assert_eq!(effective(), own);
            assert!(!raise_for_self(), "nothing left to raise");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn what_the_kernel_raises_on_its_own_is_read_back() {
        std::thread::spawn(|| {
            // CAP_SETUID: setfsuid needs it (without it the calls fail and nothing changes).
            hold(CapabilitySet::SETUID.bits());
            // SAFETY: setfsuid takes an integer and changes this thread only.
            unsafe {
                libc::syscall(libc::SYS_setfsuid, 1000);
                libc::syscall(libc::SYS_setfsuid, 0);
            }
            assert!(effective().contains(CapabilitySet::DAC_OVERRIDE), "the filesystem capabilities are back");
            resync();
            assert_eq!(HELD.with(Cell::get), Some(effective()));
            hold(0);
            assert!(effective().is_empty(), "a stale record would have skipped this capset");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn once_gives_back_what_the_thread_held() {
        std::thread::spawn(|| {
            let setuid = CapabilitySet::SETUID.bits();
            hold(setuid);
            with_effective_caps_once(0, || assert!(effective().is_empty()));
            assert_eq!(effective().bits(), setuid);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_started_by_a_lowered_one_still_knows_the_own_set() {
        remember_own();
        std::thread::spawn(|| {
            hold(0);
            std::thread::spawn(|| {
                assert!(effective().is_empty(), "inherited the lowered set");
                hold_own();
                assert_eq!(effective(), own().effective);
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }
}
