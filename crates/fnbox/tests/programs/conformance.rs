//! Syscall conformance: the C probe (tests/programs/conformance.c), compiled with the host's gcc,
//! exercises the path-taking syscalls in a fresh directory of the writable layer and of /tmp and
//! prints one line per check. v1 leaves every call to the kernel, so its answers are Linux's;
//! they are recorded in tests/programs/conformance.expected, and every other sandbox kind must
//! give the same answers (an emulated call gives the same result as on Linux).

use crate::common::*;
use crate::harness::*;
use crate::SANDBOX_KINDS;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The probe's directories: one in the writable layer, one in /tmp (in memory in v2).
const PROBE_ARGV: &[&str] = &["/conformance/conformance", "/var/conformance", "/tmp/conformance"];

/// Lines whose answer depends on the file system under them, which differs between kinds by
/// design: /tmp is on the disk layer (overlayfs) in v1 and in memory in v2 (docs/architecture.md, "The two sandboxes").
const MAY_DIFFER: &[MayDiffer] = &[
    MayDiffer { prefix: "/var/conformance statfs.tmp:", reason: "/tmp's file system differs between kinds" },
    MayDiffer { prefix: "/tmp/conformance statfs.", reason: "/tmp's file system differs between kinds" },
    MayDiffer { prefix: "/tmp/conformance fstatfs.", reason: "/tmp's file system differs between kinds" },
    MayDiffer {
        prefix: "/tmp/conformance renameat2.whiteout:",
        reason: "overlayfs refuses RENAME_WHITEOUT (EINVAL); tmpfs makes the whiteout (0)",
    },
];

/// The conformance probe (tests/programs/conformance.c), compiled once per test run with the
/// host's gcc into a directory that the tests bind read-only at `/conformance`.
fn conformance_probe() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_program("gcc", "gcc libc6-dev");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/conformance.c");
        let dir = scratch_root().join(format!("conformance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let o = Command::new("gcc")
            .args(["-O2", "-Wall", "-o"])
            .arg(dir.join("conformance"))
            .arg(&source)
            .output()
            .expect("run gcc (install it with `apt-get install gcc libc6-dev`)");
        assert!(o.status.success(), "compiling {} failed:\n{}", source.display(), stderr(&o));
        dir
    })
}

/// `fnbox run` options that bind the conformance probe at `/conformance`.
fn conformance_options() -> Vec<String> {
    vec![
        "--bind".into(),
        format!("{}:/conformance:ro", conformance_probe().display()),
        "--timeout".into(),
        "120".into(),
    ]
}

/// Every kind answers the path syscalls as Linux does: v1's answers are the recorded ones, and
/// every other kind's are v1's.
#[test]
fn path_syscalls_answer_as_linux_does() {
    let s = Scope::new("conformance");
    let options = conformance_options();
    let args: Vec<&str> = options.iter().map(String::as_str).collect();
    assert_eq!(SANDBOX_KINDS[0], "v1", "the reference run must be v1 (the kernel's own answers)");
    let v1 = assert_same_output(SANDBOX_KINDS, &s, &args, PROBE_ARGV, "conformance: complete, ", MAY_DIFFER);
    let expected_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/conformance.expected");
    if std::env::var_os("FNBOX_CONFORMANCE_BLESS").is_some() {
        std::fs::write(&expected_path, &v1).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    let diff = line_differences(&expected, &v1, &[]);
    assert!(
        diff.is_empty(),
        "v1 no longer gives the recorded Linux answers on {} check(s):\n{}\n\
         If the kernel changed (rather than the sandbox), record the new answers with \
         FNBOX_CONFORMANCE_BLESS=1 and review the diff of {}",
        diff.len(),
        diff.join("\n"),
        expected_path.display()
    );
    s.assert_clean();
}

/// What each kind answers for the calls a sandbox must refuse. v1 is Docker's profile (EPERM for
/// what it denies; ptrace and raw/packet sockets in the sandbox's own network namespace are
/// allowed there, as in Docker). v2 follows crates/sandbox/src/syscalls/table.tsv: ENOSYS for
/// unsupported calls, EPERM where an argument rule refuses (namespace flags, raw/packet sockets).
fn forbidden_expectations(kind: &str) -> Vec<(&'static str, &'static str)> {
    const CALLS: &[(&str, &str, &str)] = &[
        // (call, v1, v2)
        ("io_uring_setup", "-1 EPERM", "-1 ENOSYS"),
        ("ptrace_attach", "-1 EPERM", "-1 ENOSYS"),
        ("ptrace_traceme", "0", "-1 ENOSYS"),
        ("bpf", "-1 EPERM", "-1 ENOSYS"),
        ("perf_event_open", "-1 EPERM", "-1 ENOSYS"),
        ("userfaultfd", "-1 EPERM", "-1 ENOSYS"),
        ("keyctl", "-1 EPERM", "-1 ENOSYS"),
        ("add_key", "-1 EPERM", "-1 ENOSYS"),
        ("mount", "-1 EPERM", "-1 ENOSYS"),
        ("umount2", "-1 EPERM", "-1 ENOSYS"),
        ("pivot_root", "-1 EPERM", "-1 ENOSYS"),
        ("fsopen", "-1 EPERM", "-1 ENOSYS"),
        ("open_tree", "-1 EPERM", "-1 ENOSYS"),
        ("unshare_newuser", "-1 EPERM", "-1 ENOSYS"),
        ("unshare_newns", "-1 EPERM", "-1 ENOSYS"),
        ("clone_newuser", "-1 EPERM", "-1 EPERM"),
        ("setns", "-1 EPERM", "-1 ENOSYS"),
        ("reboot", "-1 EPERM", "-1 ENOSYS"),
        ("clock_settime", "-1 EPERM", "-1 ENOSYS"),
        ("settimeofday", "-1 EPERM", "-1 ENOSYS"),
        ("init_module", "-1 EPERM", "-1 ENOSYS"),
        ("finit_module", "-1 EPERM", "-1 ENOSYS"),
        ("delete_module", "-1 EPERM", "-1 ENOSYS"),
        ("kexec_load", "-1 EPERM", "-1 ENOSYS"),
        ("kexec_file_load", "-1 EPERM", "-1 ENOSYS"),
        ("open_by_handle_at", "-1 EPERM", "-1 ENOSYS"),
        ("process_vm_readv_init", "-1 EPERM", "-1 ENOSYS"),
        ("socket_packet", "ok", "-1 EPERM"),
        ("socket_raw_inet", "ok", "-1 EPERM"),
        ("swapon", "-1 EPERM", "-1 ENOSYS"),
        ("acct", "-1 EPERM", "-1 ENOSYS"),
    ];
    let column = match kind {
        "v1" => |c: &(&'static str, &'static str, &'static str)| (c.0, c.1),
        "v2" => |c: &(&'static str, &'static str, &'static str)| (c.0, c.2),
        other => panic!("no expectations recorded for sandbox {other}: add a column to forbidden_expectations"),
    };
    CALLS.iter().map(column).collect()
}

sandbox_tests! {
    fn forbidden_syscalls_are_refused(kind) {
        let s = Scope::new("forbidden");
        let options = conformance_options();
        let args: Vec<&str> = options.iter().map(String::as_str).collect();
        let out = ok(&s.run(kind, &args, &["/conformance/conformance", "--forbidden"]));
        let mut want: String =
            forbidden_expectations(kind).iter().map(|(call, result)| format!("forbidden {call}: {result}\n")).collect();
        want.push_str(&format!("conformance: complete, {} checks\n", forbidden_expectations(kind).len()));
        let diff = line_differences(&want, &out, &[]);
        assert!(diff.is_empty(), "sandbox {kind}: {} call(s) answered otherwise:\n{}\nfull output:\n{out}", diff.len(), diff.join("\n"));
        s.assert_clean();
    }
}
