//! Seccomp profiles given as data (an OCI `config.json`'s `linux.seccomp`), compiled with the
//! same compiler as fnbox's own policies.

use super::Policy;
use crate::syscalls::{self, Action, Branch, Cond, Op, Rule};
use serde::{Deserialize, Serialize};

/// A profile: a default action and, per syscall, conditional actions tried in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub default: ProfileAction,
    pub syscalls: Vec<SyscallRule>,
}

/// What a rule does; `Errno` carries its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProfileAction {
    Allow,
    Errno(i32),
    Kill,
}

impl ProfileAction {
    fn action(self) -> Action {
        match self {
            Self::Allow => Action::Allow,
            Self::Errno(e) => Action::Errno(e),
            Self::Kill => Action::Kill,
        }
    }

    /// libseccomp's precedence when several rules match one call: the strictest wins.
    fn precedence(self) -> u8 {
        match self {
            Self::Kill => 0,
            Self::Errno(_) => 1,
            Self::Allow => 2,
        }
    }
}

/// One entry: the named syscall, when every condition holds, gets `action`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallRule {
    pub name: String,
    pub action: ProfileAction,
    /// (argument index, test); all must hold.
    pub args: Vec<(u8, ArgTest)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArgTest {
    Eq(u64),
    Ne(u64),
    MaskedEq { mask: u64, value: u64 },
}

impl Profile {
    /// The policy the profile describes. Syscalls this machine's table does not know (other
    /// architectures' names, newer calls) are skipped, as runc does.
    pub fn policy(&self) -> Policy {
        let mut by_nr: std::collections::BTreeMap<u32, Vec<&SyscallRule>> = Default::default();
        for r in &self.syscalls {
            if let Some(s) = syscalls::by_name(&r.name) {
                by_nr.entry(s.nr).or_default().push(r);
            }
        }
        let entries = by_nr
            .into_iter()
            .map(|(nr, mut rules)| {
                rules.sort_by_key(|r| r.action.precedence());
                let branches: Vec<Branch> = rules
                    .iter()
                    .map(|r| Branch {
                        conds: leak(r.args.iter().map(|(i, t)| Cond { arg: *i, op: t.op() }).collect()),
                        action: r.action.action(),
                    })
                    .collect();
                let rule = Rule { name: "profile", branches: leak(branches), default: self.default.action() };
                (nr, super::bpf::Leaf::Rule(Box::leak(Box::new(rule))))
            })
            .collect();
        Policy::from_entries(entries, self.default.action())
    }
}

impl ArgTest {
    fn op(self) -> Op {
        match self {
            Self::Eq(v) => Op::Eq(v),
            Self::Ne(v) => Op::Ne(v),
            Self::MaskedEq { mask, value } => Op::MaskedEq { mask, value },
        }
    }
}

/// The compiler works on `'static` rules (fnbox's own live in the binary); a profile's rules
/// are made once per process and live as long as the filter compiled from them.
fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::abi;

    fn nr(n: &str) -> u32 {
        syscalls::by_name(n).unwrap().nr
    }

    #[test]
    fn profile_compiles_to_what_it_says() {
        let p = Profile {
            default: ProfileAction::Errno(libc::EPERM),
            syscalls: vec![
                SyscallRule { name: "read".into(), action: ProfileAction::Allow, args: vec![] },
                SyscallRule {
                    name: "personality".into(),
                    action: ProfileAction::Allow,
                    args: vec![(0, ArgTest::Eq(8))],
                },
                SyscallRule {
                    name: "socket".into(),
                    action: ProfileAction::Allow,
                    args: vec![(0, ArgTest::Ne(40)), (1, ArgTest::MaskedEq { mask: 0xf, value: 1 })],
                },
                SyscallRule { name: "no_such_call".into(), action: ProfileAction::Allow, args: vec![] },
            ],
        };
        let policy = p.policy();
        let prog = policy.compile();
        let run = |n: u32, args: [u64; 6]| {
            let d = abi::seccomp_data { nr: n as i32, arch: abi::AUDIT_ARCH_X86_64, instruction_pointer: 0, args };
            super::super::bpf::interpret(&prog, &d)
        };
        let allow = abi::SECCOMP_RET_ALLOW;
        let eperm = abi::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        assert_eq!(run(nr("read"), [0; 6]), allow);
        assert_eq!(run(nr("write"), [0; 6]), eperm);
        assert_eq!(run(nr("personality"), [8, 0, 0, 0, 0, 0]), allow);
        assert_eq!(run(nr("personality"), [9, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(run(nr("socket"), [2, 0x801, 0, 0, 0, 0]), allow);
        assert_eq!(run(nr("socket"), [40, 1, 0, 0, 0, 0]), eperm);
        assert_eq!(run(nr("socket"), [40 | 1 << 32, 1, 0, 0, 0, 0]), allow);
        assert_eq!(run(nr("socket"), [2, 2, 0, 0, 0, 0]), eperm);
        for n in 0..480 {
            for a in [[0u64; 6], [8, 1, 0, 0, 0, 0], [40, 1, 0, 0, 0, 0]] {
                assert_eq!(run(n, a), super::super::bpf::ret_value(policy.filter_action(n, &a)), "nr {n}");
            }
        }
    }
}
