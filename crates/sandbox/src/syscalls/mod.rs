//! The syscall table: every x86-64 syscall number with what each sandbox does with it.
//!
//! `table.tsv` is the single source of truth. `build.rs` turns it into [`TABLE`]; the seccomp
//! filters of both sandboxes ([`crate::seccomp::policy_v1`], [`crate::seccomp::policy_v2`]) and
//! `fnbox syscalls` are all generated from it, so the documentation can never drift from
//! what runs.

mod docs;
mod rules;

pub use docs::{errno_name, render, Format};
pub use rules::{rule, Action, Branch, Cond, Op, Rule, RULES};

/// What v2 does with a syscall, as documented to users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Runs in the host kernel unchanged.
    Native,
    /// Implemented by the Sentry.
    Emulated,
    /// Native or emulated for some arguments, refused for others.
    Partial,
    /// Refused with `ENOSYS`.
    Unsupported,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Emulated => "emulated",
            Self::Partial => "partial",
            Self::Unsupported => "unsupported",
        }
    }
}

/// How a filter routes a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Let the kernel run it.
    Allow,
    /// Hand it to the Sentry (seccomp user notification).
    Notify,
    /// Fail with `ENOSYS`.
    Enosys,
    /// Fail with `EPERM`.
    Deny,
    /// Decided on the arguments by a named rule (see `rules.rs`).
    Rule(&'static str),
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    pub nr: u32,
    pub name: &'static str,
    /// v2's documented class.
    pub class: Class,
    /// v2's filter route.
    pub v2: Route,
    /// v1's route: Docker's default seccomp profile for a container with the default
    /// capabilities, plus io_uring and TIOCSTI blocked.
    pub docker: Route,
    pub note: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/syscall_table.rs"));

/// The row for a syscall number.
pub fn by_nr(nr: u32) -> Option<&'static Syscall> {
    TABLE.binary_search_by_key(&nr, |s| s.nr).ok().map(|i| &TABLE[i])
}

/// The row for a syscall name.
pub fn by_name(name: &str) -> Option<&'static Syscall> {
    TABLE.iter().find(|s| s.name == name)
}

/// Counts per class, for the summary line of `fnbox syscalls`.
pub fn class_counts() -> [(Class, usize); 4] {
    let n = |c| TABLE.iter().filter(|s| s.class == c).count();
    [
        (Class::Native, n(Class::Native)),
        (Class::Emulated, n(Class::Emulated)),
        (Class::Partial, n(Class::Partial)),
        (Class::Unsupported, n(Class::Unsupported)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_covers_every_x86_64_syscall() {
        // 0..=334 and 424..=469 are every number the kernel assigns on x86-64.
        for nr in (0..=334).chain(424..=469) {
            assert!(by_nr(nr).is_some(), "syscall {nr} missing from table.tsv");
        }
        assert_eq!(TABLE.len(), 335 + 46);
        assert_eq!(by_name("openat").unwrap().nr, 257);
        assert_eq!(by_name("io_uring_setup").unwrap().nr, 425);
        assert_eq!(by_name("file_setattr").unwrap().nr, 469);
    }

    #[test]
    fn every_rule_named_in_the_table_exists() {
        for s in TABLE {
            for r in [s.v2, s.docker] {
                if let Route::Rule(name) = r {
                    assert!(rule(name).is_some(), "{}: unknown rule {name}", s.name);
                }
            }
        }
    }

    #[test]
    fn design_must_be_unsupported_list_holds() {
        // docs/architecture.md, "The two sandboxes": these must never run natively in v2.
        for name in [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "open_by_handle_at",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "mount",
            "umount2",
            "pivot_root",
            "fsopen",
            "open_tree",
            "move_mount",
            "fsmount",
            "fsconfig",
            "fspick",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "clock_settime",
            "settimeofday",
            "adjtimex",
            "clock_adjtime",
            "reboot",
        ] {
            let s = by_name(name).unwrap();
            assert_eq!(s.class, Class::Unsupported, "{name}");
            assert_eq!(s.v2, Route::Enosys, "{name}");
        }
        assert!(matches!(by_name("clone").unwrap().v2, Route::Rule("clone-no-ns")));
        assert!(matches!(by_name("socket").unwrap().v2, Route::Rule("socket-v2")));
        assert!(matches!(by_name("ioctl").unwrap().v2, Route::Rule("ioctl-no-tiocsti")));
    }

    #[test]
    fn path_syscalls_are_never_native_in_v2() {
        for name in [
            "open",
            "openat",
            "openat2",
            "creat",
            "stat",
            "lstat",
            "newfstatat",
            "statx",
            "access",
            "faccessat",
            "faccessat2",
            "readlink",
            "readlinkat",
            "mkdir",
            "mkdirat",
            "rmdir",
            "unlink",
            "unlinkat",
            "rename",
            "renameat",
            "renameat2",
            "link",
            "linkat",
            "symlink",
            "symlinkat",
            "chmod",
            "fchmodat",
            "fchmodat2",
            "chown",
            "lchown",
            "fchownat",
            "utime",
            "utimes",
            "futimesat",
            "truncate",
            "chdir",
            "statfs",
            "setxattr",
            "lsetxattr",
            "getxattr",
            "lgetxattr",
            "listxattr",
            "llistxattr",
            "removexattr",
            "lremovexattr",
            "bind",
            "connect",
            "execve",
            "execveat",
            "mknod",
            "mknodat",
            "inotify_add_watch",
        ] {
            assert_eq!(by_name(name).unwrap().class, Class::Emulated, "{name}");
        }
    }

    #[test]
    fn v1_follows_docker() {
        assert_eq!(by_name("read").unwrap().docker, Route::Allow);
        assert_eq!(by_name("mount").unwrap().docker, Route::Deny);
        assert_eq!(by_name("keyctl").unwrap().docker, Route::Deny);
        assert_eq!(by_name("clone3").unwrap().docker, Route::Enosys);
        assert_eq!(by_name("io_uring_setup").unwrap().docker, Route::Deny);
        assert_eq!(by_name("ptrace").unwrap().docker, Route::Allow);
    }
}
