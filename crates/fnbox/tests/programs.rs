//! Real programs work unchanged in a sandbox: Python's and Node's standard libraries, busybox sh,
//! git, gcc and the sqlite3 CLI each do real work and their output is checked; a C probe compares
//! the path-taking syscalls with Linux's answers, and checks that the calls a sandbox must refuse
//! are refused. Every test runs the real `fnbox run`, once per sandbox kind.
//!
//! `FNBOX_CONFORMANCE_BLESS=1 cargo test --release -p fnbox --test programs conformance` rewrites
//! tests/programs/conformance.expected from a v1 run (review the diff before committing it).

mod common;

/// The sandbox kinds every test here runs in. **When a kind lands, add it here**: `[v1 v2]`
/// runs each test once per kind (as `MODULE::v2::TEST`) and makes the conformance probe compare
/// v2's answers with v1's.
macro_rules! with_sandbox_kinds {
    ($then:ident $($args:tt)*) => {
        $then!([v1 v2] $($args)*);
    };
}

macro_rules! sandbox_kinds_const {
    ([$($kind:ident)*]) => {
        /// The kinds listed in `with_sandbox_kinds!`, as `fnbox run --sandbox` names.
        pub const SANDBOX_KINDS: &[&str] = &[$(stringify!($kind)),*];
    };
}
with_sandbox_kinds!(sandbox_kinds_const);

/// Defines each test once, as `fn NAME(kind: &str)`, and a `#[test]` calling it for every kind
/// of `with_sandbox_kinds!`, in a module named after the kind.
macro_rules! sandbox_tests {
    ($($(#[$m:meta])* fn $name:ident($kind:ident) $body:block)*) => {
        $( $(#[$m])* fn $name($kind: &str) $body )*
        with_sandbox_kinds!(sandbox_test_modules [$($name)*]);
    };
}

macro_rules! sandbox_test_modules {
    ([$($kind:ident)*] $names:tt) => {
        $( sandbox_test_module!($kind $names); )*
    };
}

macro_rules! sandbox_test_module {
    ($kind:ident [$($name:ident)*]) => {
        mod $kind {
            $( #[test] fn $name() { super::$name(stringify!($kind)) } )*
        }
    };
}

#[path = "programs/harness.rs"]
mod harness;

#[path = "programs/python.rs"]
mod python;

#[path = "programs/node.rs"]
mod node;

#[path = "programs/tools.rs"]
mod tools;

#[path = "programs/conformance.rs"]
mod conformance;
