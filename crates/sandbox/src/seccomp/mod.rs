//! seccomp policies, generated from the syscall table, compiled to BPF and installed.

pub mod bpf;
pub mod profile;

use crate::sys::abi;
use crate::syscalls::{self, Action, Route, TABLE};
use bpf::{Leaf, Segment};
use std::io;
use std::os::fd::OwnedFd;

/// A complete seccomp policy: an action (or rule) per syscall number and a default.
pub struct Policy {
    entries: Vec<(u32, Leaf)>,
    default: Action,
    /// Turn every refusal into a notification so the Sentry can count it (v2 `--report`).
    notify_refusals: bool,
}

impl Policy {
    fn from_table(route: impl Fn(&syscalls::Syscall) -> Route, deny: Action, default: Action) -> Self {
        let entries = TABLE
            .iter()
            .map(|s| {
                let leaf = match route(s) {
                    Route::Allow => Leaf::Simple(Action::Allow),
                    Route::Notify => Leaf::Simple(Action::Notify),
                    Route::Enosys => Leaf::Simple(Action::Errno(libc::ENOSYS)),
                    Route::Deny => Leaf::Simple(deny),
                    Route::Rule(name) => Leaf::Rule(syscalls::rule(name).expect("rule names are checked by tests")),
                };
                (s.nr, leaf)
            })
            .collect();
        Self { entries, default, notify_refusals: false }
    }

    /// Per-syscall leaves, sorted by number; everything else gets `default`.
    pub(crate) fn from_entries(entries: Vec<(u32, Leaf)>, default: Action) -> Self {
        Self { entries, default, notify_refusals: false }
    }

    /// An allowlist of syscall names; everything else gets `default`.
    pub fn allowlist(names: &[&str], default: Action) -> Self {
        let mut entries: Vec<(u32, Leaf)> = names
            .iter()
            .map(|n| {
                let s = syscalls::by_name(n).unwrap_or_else(|| panic!("unknown syscall {n} in allowlist"));
                (s.nr, Leaf::Simple(Action::Allow))
            })
            .collect();
        entries.sort_by_key(|e| e.0);
        entries.dedup_by_key(|e| e.0);
        Self { entries, default, notify_refusals: false }
    }

    fn map(&self, a: Action) -> Action {
        match a {
            Action::Errno(_) if self.notify_refusals => Action::Notify,
            a => a,
        }
    }

    /// What the policy does with a call (before the report mapping): the same answer the
    /// compiled filter gives, computed in Rust.
    pub fn decide(&self, nr: u32, args: &[u64; 6]) -> Action {
        match self.entries.binary_search_by_key(&nr, |e| e.0) {
            Ok(i) => match self.entries[i].1 {
                Leaf::Simple(a) => a,
                Leaf::Rule(r) => r.evaluate(args),
            },
            Err(_) => self.default,
        }
    }

    /// What the compiled filter returns for a call.
    pub fn filter_action(&self, nr: u32, args: &[u64; 6]) -> Action {
        if nr >= abi::X32_SYSCALL_BIT {
            return self.map(self.default);
        }
        self.map(self.decide(nr, args))
    }

    /// Compiles to a BPF program.
    pub fn compile(&self) -> Vec<bpf::Insn> {
        let mut segs: Vec<Segment> = Vec::new();
        let mut push = |lo: u32, hi: u32, leaf: Leaf| match segs.last_mut() {
            Some(last) if last.leaf == leaf && last.hi + 1 == lo => last.hi = hi,
            _ => segs.push(Segment { lo, hi, leaf }),
        };
        let mut next = 0u32;
        for &(nr, leaf) in &self.entries {
            if nr > next {
                push(next, nr - 1, Leaf::Simple(self.default));
            }
            push(nr, nr, leaf);
            next = nr + 1;
        }
        push(next, abi::X32_SYSCALL_BIT - 1, Leaf::Simple(self.default));
        let map = |a| self.map(a);
        bpf::assemble(&segs, &map, self.default)
    }
}

/// v1: Docker's default profile (for the default capability set), with io_uring and
/// TIOCSTI refused as well. Refusals are `EPERM`, as in Docker; a number the table does not
/// know (a newer syscall, or none at all such as -1) is `ENOSYS`, as runc answers for numbers
/// its libseccomp does not know, so libc falls back to an older call.
pub fn policy_v1() -> Policy {
    Policy::from_table(|s| s.docker, Action::Errno(libc::EPERM), Action::Errno(libc::ENOSYS))
}

/// v2: the Sentry's allowlist. `report` routes refusals to the Sentry so it can count them.
pub fn policy_v2(report: bool) -> Policy {
    let mut p = Policy::from_table(|s| s.v2, Action::Errno(libc::EPERM), Action::Errno(libc::ENOSYS));
    p.notify_refusals = report;
    p
}

/// Flags for [`install`].
#[derive(Clone, Copy, Default)]
pub struct InstallFlags {
    /// Return a user-notification listener descriptor.
    pub listener: bool,
    /// Apply to every thread of the process.
    pub all_threads: bool,
    /// Leave `no_new_privs` unset (the caller holds CAP_SYS_ADMIN in its user namespace):
    /// OCI containers that allow setuid programs.
    pub keep_privs: bool,
}

/// Installs a compiled filter on the calling thread (after setting `no_new_privs`). Returns
/// the notification listener when asked for one.
pub fn install(prog: &[bpf::Insn], flags: InstallFlags) -> io::Result<Option<OwnedFd>> {
    if !flags.keep_privs {
        crate::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)?;
    }
    let mut f = 0;
    if flags.listener {
        // Once the Sentry has received a notification, only a fatal signal may interrupt the
        // waiting thread: a signal arriving mid-emulation must not make the kernel restart a
        // call whose side effects (a created file, say) already happened.
        f |= abi::SECCOMP_FILTER_FLAG_NEW_LISTENER | abi::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }
    if flags.all_threads {
        f |= abi::SECCOMP_FILTER_FLAG_TSYNC;
    }
    crate::sys::seccomp::set_filter(prog, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(prog: &[bpf::Insn], nr: u32, args: [u64; 6]) -> u32 {
        let d = abi::seccomp_data { nr: nr as i32, arch: abi::AUDIT_ARCH_X86_64, instruction_pointer: 0, args };
        bpf::interpret(prog, &d)
    }

    /// Arguments that exercise every rule's branches.
    fn probe_args() -> Vec<[u64; 6]> {
        let mut v = vec![[0; 6]];
        for a in [
            1u64,
            2,
            3,
            8,
            10,
            16,
            17,
            40,
            0x20000,
            0x20008,
            0xffff_ffff,
            0x5412,
            0x541C,
            0x1000_0000,
            0x3d0f00,
            0x8000_0000_0000_5412,
        ] {
            for i in 0..5 {
                let mut x = [0u64; 6];
                x[i] = a;
                v.push(x);
                let mut y = [2u64, a, 0, 0, 0, 0];
                y[0] = [1, 2, 10, 16, 17][i];
                v.push(y);
            }
        }
        // fstat's rules: a descriptor or AT_FDCWD (either width), AT_EMPTY_PATH in either half
        // of the flags (newfstatat's fourth argument, statx's third).
        for dirfd in [3u64, 0xffff_ff9c, 0xffff_ffff_ffff_ff9c, 0x1_0000_0003] {
            for flags in [0x1000u64, 0x1100, 0x1000_0000_0000, 0xffff_ffff_0000_1000, 0x100] {
                v.push([dirfd, 0, 0, flags, 0, 0]);
                v.push([dirfd, 0, flags, 0, 0, 0]);
            }
        }
        v
    }

    /// The compiled BPF agrees with the policy for every syscall number and a spread of
    /// arguments: the table, the docs and the kernel filter cannot disagree.
    #[test]
    fn compiled_filters_match_their_policies() {
        for p in [policy_v1(), policy_v2(false), policy_v2(true)] {
            let prog = p.compile();
            assert!(prog.len() < 4096, "filter too long: {}", prog.len());
            for nr in (0..480).chain([1000, 0x3fff_ffff, 0x4000_0000, 0x4000_0001]) {
                for args in probe_args() {
                    let want = bpf::ret_value(p.filter_action(nr, &args));
                    assert_eq!(run(&prog, nr, args), want, "nr {nr} args {args:x?}");
                }
            }
        }
    }

    #[test]
    fn wrong_architecture_is_killed() {
        let prog = policy_v1().compile();
        let d = abi::seccomp_data { nr: 0, arch: 0x4000_0003, instruction_pointer: 0, args: [0; 6] };
        assert_eq!(bpf::interpret(&prog, &d), abi::SECCOMP_RET_KILL_PROCESS);
    }

    /// As runc: a call Docker refuses is EPERM, a number nobody knows (syscall(-1), a call newer
    /// than the table) is ENOSYS.
    #[test]
    fn v1_routes() {
        let p = policy_v1();
        let nr = |n| syscalls::by_name(n).unwrap().nr;
        assert_eq!(p.filter_action(nr("mount"), &[0; 6]), Action::Errno(libc::EPERM));
        assert_eq!(p.filter_action(nr("read"), &[0; 6]), Action::Allow);
        assert_eq!(p.filter_action(999, &[0; 6]), Action::Errno(libc::ENOSYS));
        assert_eq!(p.filter_action(u32::MAX, &[0; 6]), Action::Errno(libc::ENOSYS));
    }

    #[test]
    fn v2_routes() {
        let p = policy_v2(false);
        let nr = |n| syscalls::by_name(n).unwrap().nr;
        assert_eq!(p.filter_action(nr("read"), &[0; 6]), Action::Allow);
        assert_eq!(p.filter_action(nr("openat"), &[0; 6]), Action::Notify);
        assert_eq!(p.filter_action(nr("io_uring_setup"), &[0; 6]), Action::Errno(libc::ENOSYS));
        assert_eq!(p.filter_action(999, &[0; 6]), Action::Errno(libc::ENOSYS));
        // fstat (AT_EMPTY_PATH on a descriptor) is native; from the working directory or
        // without the flag in the half the kernel reads, the path is the Sentry's.
        let fdcwd = libc::AT_FDCWD as u64;
        for (nr, flags) in [(nr("newfstatat"), 3), (nr("statx"), 2)] {
            let with = |dirfd: u64, f: u64| {
                let mut a = [dirfd, 0, 0, 0, 0, 0];
                a[flags] = f;
                p.filter_action(nr, &a)
            };
            assert_eq!(with(3, 0x1000), Action::Allow);
            assert_eq!(with(3, 0xffff_ffff_0000_1100), Action::Allow);
            assert_eq!(with(3, 0), Action::Notify);
            assert_eq!(with(3, 0x1000 << 32), Action::Notify);
            assert_eq!(with(fdcwd, 0x1000), Action::Notify);
            assert_eq!(with(fdcwd & 0xffff_ffff, 0x1000), Action::Notify);
        }
        let r = policy_v2(true);
        assert_eq!(r.filter_action(nr("io_uring_setup"), &[0; 6]), Action::Notify);
        assert_eq!(r.decide(nr("io_uring_setup"), &[0; 6]), Action::Errno(libc::ENOSYS));
    }
}
