//! Argument rules: the syscalls whose fate depends on their arguments. They are data, so
//! the same rule compiles to BPF for the kernel and is evaluated in Rust by the Sentry (to
//! count what a program tried, for the compatibility report).

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Allow,
    Notify,
    Errno(i32),
    /// Kill the whole process (used for the Sentry's own filter).
    Kill,
}

/// A test on one 64-bit argument.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// The whole argument equals the value.
    Eq(u64),
    /// `arg & mask == value`.
    MaskedEq { mask: u64, value: u64 },
    /// The low 32 bits equal the value (for `unsigned int` arguments such as ioctl requests,
    /// whose upper half the kernel ignores).
    Eq32(u32),
    /// The whole argument differs from the value (OCI profiles' `SCMP_CMP_NE`).
    Ne(u64),
}

#[derive(Clone, Copy, Debug)]
pub struct Cond {
    pub arg: u8,
    pub op: Op,
}

impl Cond {
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        let a = args[self.arg as usize];
        match self.op {
            Op::Eq(v) => a == v,
            Op::MaskedEq { mask, value } => a & mask == value,
            Op::Eq32(v) => a as u32 == v,
            Op::Ne(v) => a != v,
        }
    }
}

/// All conditions true → `action`.
#[derive(Clone, Copy, Debug)]
pub struct Branch {
    pub conds: &'static [Cond],
    pub action: Action,
}

/// Branches tried in order; `default` when none matches.
#[derive(Debug)]
pub struct Rule {
    pub name: &'static str,
    pub branches: &'static [Branch],
    pub default: Action,
}

impl Rule {
    pub fn evaluate(&self, args: &[u64; 6]) -> Action {
        self.branches.iter().find(|b| b.conds.iter().all(|c| c.matches(args))).map_or(self.default, |b| b.action)
    }
}

const fn c(arg: u8, op: Op) -> Cond {
    Cond { arg, op }
}
const fn allow(conds: &'static [Cond]) -> Branch {
    Branch { conds, action: Action::Allow }
}
const fn errno(conds: &'static [Cond], e: i32) -> Branch {
    Branch { conds, action: Action::Errno(e) }
}

/// Namespace-creating clone flags (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER |
/// NEWPID | NEWNET), as in Docker's profile.
pub const CLONE_NS_MASK: u64 = 0x7E02_0000;
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;
const AF_UNIX: u64 = 1;
const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const AF_NETLINK: u64 = 16;
const AF_PACKET: u64 = 17;
const AF_VSOCK: u64 = 40;
const TYPE_MASK: u64 = 0xf;
const MADV_MERGEABLE: u32 = 12;
const MADV_UNMERGEABLE: u32 = 13;
/// A socket type argument (flags masked off) that is SOCK_RAW, or SOCK_PACKET.
const RAW: Op = Op::MaskedEq { mask: TYPE_MASK, value: 3 };
const PACKET: Op = Op::MaskedEq { mask: TYPE_MASK, value: 10 };
/// A flags argument with `AT_EMPTY_PATH` set (whatever its other bits, and the upper half the
/// kernel ignores for an `int`).
const EMPTY_PATH: Op = Op::MaskedEq { mask: libc::AT_EMPTY_PATH as u64, value: libc::AT_EMPTY_PATH as u64 };

pub static RULES: &[Rule] = &[
    Rule {
        name: "clone-no-ns",
        branches: &[allow(&[c(0, Op::MaskedEq { mask: CLONE_NS_MASK, value: 0 })])],
        default: Action::Errno(libc::EPERM),
    },
    Rule {
        name: "personality-safe",
        branches: &[
            allow(&[c(0, Op::Eq(0))]),
            allow(&[c(0, Op::Eq(0x8))]),
            allow(&[c(0, Op::Eq(0x20000))]),
            allow(&[c(0, Op::Eq(0x20008))]),
            allow(&[c(0, Op::Eq(0xffff_ffff))]),
        ],
        default: Action::Errno(libc::EPERM),
    },
    Rule {
        name: "socket-no-vsock",
        branches: &[errno(&[c(0, Op::Eq(AF_VSOCK))], libc::EPERM)],
        default: Action::Allow,
    },
    Rule {
        name: "ioctl-no-tiocsti",
        branches: &[errno(&[c(1, Op::Eq32(TIOCSTI))], libc::EPERM), errno(&[c(1, Op::Eq32(TIOCLINUX))], libc::EPERM)],
        default: Action::Allow,
    },
    Rule {
        name: "socket-v2",
        branches: &[
            // Raw and packet sockets are refused; a raw socket without a protocol is an error
            // Linux reports before any permission check.
            errno(&[c(0, Op::Eq(AF_INET)), c(1, RAW), c(2, Op::Eq(0))], libc::EPROTONOSUPPORT),
            errno(&[c(0, Op::Eq(AF_INET6)), c(1, RAW), c(2, Op::Eq(0))], libc::EPROTONOSUPPORT),
            errno(&[c(0, Op::Eq(AF_INET)), c(1, RAW)], libc::EPERM),
            errno(&[c(0, Op::Eq(AF_INET6)), c(1, RAW)], libc::EPERM),
            // SOCK_PACKET on AF_INET is a packet socket (Linux redirects it).
            errno(&[c(0, Op::Eq(AF_INET)), c(1, PACKET)], libc::EPERM),
            errno(&[c(0, Op::Eq(AF_INET6)), c(1, PACKET)], libc::EPERM),
            errno(&[c(0, Op::Eq(AF_PACKET))], libc::EPERM),
            allow(&[c(0, Op::Eq(AF_UNIX))]),
            // Any other type: the kernel answers (stream, datagram, SCTP, or EINVAL).
            allow(&[c(0, Op::Eq(AF_INET))]),
            allow(&[c(0, Op::Eq(AF_INET6))]),
            allow(&[c(0, Op::Eq(AF_NETLINK)), c(2, Op::Eq(0))]),
        ],
        default: Action::Errno(libc::EAFNOSUPPORT),
    },
    Rule {
        name: "socketpair-v2",
        branches: &[
            allow(&[c(0, Op::Eq(AF_UNIX))]),
            // Linux has no IP socket pairs: it answers EOPNOTSUPP (EINVAL for a bad type)
            // once both sockets exist, so raw and packet ones are refused first.
            errno(&[c(1, RAW), c(2, Op::Eq(0))], libc::EPROTONOSUPPORT),
            errno(&[c(1, RAW)], libc::EPERM),
            errno(&[c(1, PACKET)], libc::EPERM),
            allow(&[c(0, Op::Eq(AF_INET))]),
            allow(&[c(0, Op::Eq(AF_INET6))]),
        ],
        default: Action::Errno(libc::EAFNOSUPPORT),
    },
    Rule {
        // Kernel samepage merging shares identical pages between processes, so the time a
        // write takes tells whether another sandbox holds the same bytes: v2 answers as a
        // kernel without KSM does.
        name: "madvise-no-ksm",
        branches: &[
            errno(&[c(2, Op::Eq32(MADV_MERGEABLE))], libc::EINVAL),
            errno(&[c(2, Op::Eq32(MADV_UNMERGEABLE))], libc::EINVAL),
        ],
        default: Action::Allow,
    },
    Rule { name: "sendto-path", branches: &[allow(&[c(4, Op::Eq(0))])], default: Action::Notify },
    Rule { name: "utimensat-path", branches: &[allow(&[c(1, Op::Eq(0))])], default: Action::Notify },
    // fstat, as glibc, musl, Rust's std and libuv make it: `newfstatat(fd, "", AT_EMPTY_PATH)`
    // or `statx(fd, "", AT_EMPTY_PATH, ...)`. With the flag the kernel runs the call: the
    // Sentry has no better answer for a descriptor, and a non-empty path is resolved in the
    // sandbox's mount namespace with the caller's credentials, as a continued call is
    // (docs/architecture.md, "Continued calls"). Without it the path is the Sentry's.
    Rule { name: "newfstatat-fd", branches: &[allow(&[c(3, EMPTY_PATH)])], default: Action::Notify },
    Rule { name: "statx-fd", branches: &[allow(&[c(2, EMPTY_PATH)])], default: Action::Notify },
];

pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a0: u64, a1: u64, a2: u64) -> [u64; 6] {
        [a0, a1, a2, 0, 0, 0]
    }

    #[test]
    fn clone_rule() {
        let r = rule("clone-no-ns").unwrap();
        assert_eq!(r.evaluate(&args(0x3d0f00, 0, 0)), Action::Allow); // pthread_create
        assert_eq!(r.evaluate(&args(0x1200011, 0, 0)), Action::Allow); // fork
        assert_eq!(r.evaluate(&args(0x1000_0000, 0, 0)), Action::Errno(libc::EPERM));
    }

    #[test]
    fn socket_rule() {
        let r = rule("socket-v2").unwrap();
        assert_eq!(r.evaluate(&args(2, 1 | 0x80000, 0)), Action::Allow); // TCP, SOCK_CLOEXEC
        assert_eq!(r.evaluate(&args(10, 2, 17)), Action::Allow); // UDP6
        assert_eq!(r.evaluate(&args(2, 3, 1)), Action::Errno(libc::EPERM)); // raw ICMP
        assert_eq!(r.evaluate(&args(17, 3, 0x300)), Action::Errno(libc::EPERM)); // packet
        assert_eq!(r.evaluate(&args(16, 3, 9)), Action::Errno(libc::EAFNOSUPPORT)); // netlink audit
        assert_eq!(r.evaluate(&args(16, 3, 0)), Action::Allow); // netlink route
        assert_eq!(r.evaluate(&args(2, 75, 0)), Action::Allow); // a bad type: the kernel's EINVAL
        assert_eq!(r.evaluate(&args(2, 3 | 0x800, 0)), Action::Errno(libc::EPROTONOSUPPORT));
        assert_eq!(r.evaluate(&args(2, 10, 0x300)), Action::Errno(libc::EPERM)); // SOCK_PACKET
        let p = rule("socketpair-v2").unwrap();
        assert_eq!(p.evaluate(&args(2, 1, 0)), Action::Allow); // the kernel's EOPNOTSUPP
        assert_eq!(p.evaluate(&args(10, 3, 1)), Action::Errno(libc::EPERM));
        assert_eq!(p.evaluate(&args(17, 2, 0)), Action::Errno(libc::EAFNOSUPPORT));
    }

    #[test]
    fn madvise_rule() {
        let r = rule("madvise-no-ksm").unwrap();
        assert_eq!(r.evaluate(&[0, 4096, 12, 0, 0, 0]), Action::Errno(libc::EINVAL));
        assert_eq!(r.evaluate(&[0, 4096, 13, 0, 0, 0]), Action::Errno(libc::EINVAL));
        assert_eq!(r.evaluate(&[0, 4096, 4, 0, 0, 0]), Action::Allow); // MADV_DONTNEED
    }

    #[test]
    fn ioctl_rule_ignores_upper_bits() {
        let r = rule("ioctl-no-tiocsti").unwrap();
        assert_eq!(r.evaluate(&args(0, 0xffff_ffff_0000_5412, 0)), Action::Errno(libc::EPERM));
        assert_eq!(r.evaluate(&args(0, 0x5401, 0)), Action::Allow);
    }
}
