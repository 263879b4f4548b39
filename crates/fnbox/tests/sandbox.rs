//! What a program sees from inside a sandbox, and what the host sees around it: isolation,
//! limits, exit statuses, signals, cleanup and bad input. Every test runs the real `fnbox run`.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Defines each test once per sandbox kind.
macro_rules! sandbox_tests {
    ($($(#[$m:meta])* fn $name:ident($kind:ident) $body:block)*) => {
        mod v1 {
            use super::*;
            $( $(#[$m])* #[test] fn $name() { let $kind = "v1"; $body } )*
        }
        mod v2 {
            use super::*;
            $( $(#[$m])* #[test] fn $name() { let $kind = "v2"; $body } )*
        }
    };
}

sandbox_tests! {
    fn python_and_node_run_with_no_setup(kind) {
        let s = Scope::new("hello");
        assert_eq!(ok(&s.run(kind, &[], &["python3", "-c", "print(1)"])), "1\n");
        assert_eq!(ok(&s.run(kind, &[], &["node", "-e", "console.log(1)"])), "1\n");
        s.assert_clean();
    }

    fn host_processes_are_invisible(kind) {
        let s = Scope::new("pids");
        let script = "import os; print(os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))";
        let out = ok(&s.run(kind, &[], &["python3", "-c", script]));
        assert_eq!(out, "2 [1, 2]\n", "the program sees only itself and the sandbox's init");
    }

    fn host_files_are_invisible(kind) {
        let s = Scope::new("files");
        let out = ok(&s.sh(kind, &[], "ls -A /; echo ---; ls -A /root /home /var; echo ---; cat /etc/shadow 2>&1; cat /proc/1/cmdline | tr '\\0' ' '"));
        let mut parts = out.split("---\n");
        let top: Vec<&str> = parts.next().unwrap().lines().collect();
        for d in top.iter() {
            assert!(
                ["bin", "code", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "mnt", "opt", "proc", "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var"].contains(d),
                "unexpected top-level entry /{d}"
            );
        }
        let inner = parts.next().unwrap();
        assert_eq!(inner.lines().filter(|l| !l.ends_with(':') && !l.is_empty()).collect::<Vec<_>>(), vec!["tmp"], "{inner}");
        let rest = parts.next().unwrap();
        assert!(rest.contains("No such file"), "/etc/shadow must not exist: {rest}");
        assert!(!rest.contains(FNBOX), "the sandbox must not see the launcher's path: {rest}");
    }

    fn only_loopback_networking(kind) {
        let s = Scope::new("net");
        let script = r#"
import socket
print(sorted(n for _, n in socket.if_nameindex()))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept(); c.send(b"ok"); print(a.recv(2).decode())
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2); print("reached the internet")
except OSError as e:
    print("unreachable", e.errno)
"#;
        let out = ok(&s.run(kind, &[], &["python3", "-c", script]));
        assert!(out.starts_with("['lo']\nok\nunreachable"), "{out}");
    }

    fn hostname_is_fnbox(kind) {
        let s = Scope::new("uts");
        assert_eq!(ok(&s.run(kind, &[], &["cat", "/proc/sys/kernel/hostname"])), "fnbox\n");
    }

    fn root_inside_maps_to_a_private_unprivileged_range(kind) {
        let s = Scope::new("ids");
        let marker = unique("uid");
        let mut a = s.cmd(kind, &[], &["sh", "-c", &format!("id -u; cat /proc/self/uid_map; sleep 30 # {marker}")]).stdout(std::process::Stdio::piped()).spawn().unwrap();
        // `; :` keeps b's shell (dash would exec a lone `sleep` in its place).
        let mut b = s.cmd(kind, &[], &["sh", "-c", &format!("sleep 30; : # {marker}")]).spawn().unwrap();
        // The programs (`sh`, whose command line carries the marker) as host uids.
        let sh_uids = || -> Vec<u32> {
            pids_with(&marker)
                .iter()
                .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
                .filter(|st| st.contains("Name:\tsh"))
                .filter_map(|st| st.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|u| u.parse().ok()))
                .collect()
        };
        // Distinct uids: a's shell forks for `id` and `cat`, and a fork still named `sh` is
        // the same sandbox's uid.
        let distinct = || {
            let mut u = sh_uids();
            u.sort();
            u.dedup();
            u
        };
        assert!(eventually(Duration::from_secs(10), || distinct().len() >= 2), "sandboxes did not start (or share a uid): {:?}", sh_uids());
        let uids = distinct();
        a.kill().unwrap();
        b.kill().unwrap();
        let _ = a.wait();
        let _ = b.wait();
        assert_eq!(uids.len(), 2, "two sandboxes must run as two different host uids: {uids:?}");
        assert!(uids.iter().all(|u| *u >= 0x4000_0000), "host uids must be unprivileged: {uids:?}");
    }

    fn memory_limit_is_enforced_and_reported(kind) {
        let s = Scope::new("oom");
        let o = s.run(kind, &["--memory", "128M"], &["python3", "-c", "x = bytearray(300 << 20); print('survived')"]);
        assert_eq!(code(&o), 137, "{}", stderr(&o));
        assert!(stderr(&o).contains("fnbox: killed: out of memory (limit 128 MiB)"), "{}", stderr(&o));
        assert!(!stdout(&o).contains("survived"));
        s.assert_clean();
    }

    fn pids_limit_contains_a_fork_bomb(kind) {
        let s = Scope::new("forkbomb");
        let script = r#"
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(5); os._exit(0)
        n += 1
except OSError as e:
    print("stopped after", n, "errno", e.errno)
"#;
        let o = s.run(kind, &["--pids", "64", "--timeout", "20"], &["python3", "-c", script]);
        let out = ok(&o);
        let n: usize = out.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(n < 64 && out.contains("errno 11"), "{out}");
        // The host is fine: it can still start processes.
        assert!(std::process::Command::new("true").status().unwrap().success());
        s.assert_clean();
    }

    fn tmp_is_on_disk_not_memory_in_v1(kind) {
        if kind == "v2" {
            return; // v2's /tmp is in memory: see the memory-semantics tests.
        }
        let s = Scope::new("tmp");
        // 200 MiB in /tmp under a 128 MiB memory limit: fine, it is the disk layer.
        let o = s.sh(kind, &["--memory", "128M"], "dd if=/dev/zero of=/tmp/f bs=1M count=200 status=none && ls -s /tmp/f");
        assert!(ok(&o).starts_with("20"), "{}", stdout(&o));
    }

    fn dev_is_capped_at_64_mib(kind) {
        if kind == "v2" {
            return; // v2's /dev has no cap of its own: see the memory-semantics tests.
        }
        let s = Scope::new("devcap");
        let o = s.sh(kind, &[], "dd if=/dev/zero of=/dev/shm/x bs=1M count=70 2>&1; df -k /dev | tail -1");
        let out = stdout(&o);
        assert!(out.contains("No space left on device"), "{out}");
        assert!(out.contains("65536"), "/dev must be a 65536 KiB tmpfs: {out}");
    }

    fn writable_layer_is_capped(kind) {
        let s = Scope::new("disk");
        let o = s.sh(kind, &["--disk", "64M"], "dd if=/dev/zero of=/var/big bs=1M count=100 2>&1");
        assert!(stdout(&o).contains("No space left on device"), "{}", stdout(&o));
        let o = s.sh(kind, &[], "df -k / | tail -1");
        let total: u64 = stdout(&o).split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!((900_000..=1_048_576).contains(&total), "default cap is 1024 MiB, df says {total} KiB");
    }

    fn exit_codes_and_signals(kind) {
        let s = Scope::new("exit");
        assert_eq!(code(&s.sh(kind, &[], "exit 3")), 3);
        assert_eq!(code(&s.sh(kind, &[], "exit 0")), 0);
        assert_eq!(code(&s.sh(kind, &[], "kill -TERM $$")), 143);
        assert_eq!(code(&s.sh(kind, &[], "kill -KILL $$")), 137);
        assert_eq!(code(&s.sh(kind, &[], "kill -SEGV $$")), 139);
        s.assert_clean();
    }

    fn timeout_kills_the_whole_sandbox(kind) {
        let s = Scope::new("timeout");
        let marker = unique("timeout");
        let t = Instant::now();
        let o = s.sh(kind, &["--timeout", "1"], &format!("sleep 60 & sleep 60 # {marker}"));
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_eq!(code(&o), 137);
        assert!(stderr(&o).contains("fnbox: killed: timeout after 1 s"), "{}", stderr(&o));
        assert!(eventually(Duration::from_secs(5), || pids_with(&marker).is_empty()), "processes left behind");
        s.assert_clean();
    }

    fn signals_to_fnbox_reach_the_program(kind) {
        for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
            let s = Scope::new("signal");
            let marker = unique("sig");
            let script = format!("trap 'echo got {name}; exit 42' {name}; echo ready; while true; do sleep 0.1; done # {marker}");
            let mut child = s.cmd(kind, &[], &["sh", "-c", &script]).stdout(std::process::Stdio::piped()).spawn().unwrap();
            let mut out = child.stdout.take().unwrap();
            let mut buf = [0u8; 6];
            std::io::Read::read_exact(&mut out, &mut buf).unwrap();
            assert_eq!(&buf, b"ready\n");
            let launcher = pids_with(&marker).into_iter().min().unwrap();
            // SAFETY: kill with a valid pid and signal.
            unsafe { libc::kill(launcher, sig) };
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
            assert_eq!(rest, format!("got {name}\n"));
            assert_eq!(child.wait().unwrap().code(), Some(42));
            assert!(eventually(Duration::from_secs(5), || pids_with(&marker).is_empty()));
            assert!(eventually(Duration::from_secs(5), || s.leftover_cgroups().is_empty()), "{:?}", s.leftover_cgroups());
        }
    }

    fn a_killed_launcher_leaves_nothing_behind(kind) {
        let s = Scope::new("sigkill");
        let marker = unique("kill9");
        let loops = attached_loops();
        let mut child = s.cmd(kind, &[], &["sh", "-c", &format!("sleep 60 # {marker}")]).spawn().unwrap();
        assert!(eventually(Duration::from_secs(10), || pids_with(&marker).len() >= 2));
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        let _ = child.wait();
        assert!(eventually(Duration::from_secs(5), || pids_with(&marker).is_empty()), "the sandbox must die with its launcher");
        assert!(eventually(Duration::from_secs(5), || attached_loops() <= loops), "loop device left attached");
        // The next sandbox in the same scope reaps the dead one's cgroup.
        ok(&s.run(kind, &[], &["true"]));
        assert!(eventually(Duration::from_secs(5), || s.leftover_cgroups().is_empty()), "{:?}", s.leftover_cgroups());
    }

    fn denylisted_syscalls_get_eperm(kind) {
        let s = Scope::new("seccomp");
        let script = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, nr, args in [("unshare", 272, (0x10000000,)), ("keyctl", 250, (0, 0)), ("mount", 165, (0, 0, 0, 0, 0)), ("io_uring_setup", 425, (1, 0)), ("bpf", 321, (0, 0, 0))]:
    r = libc.syscall(nr, *args)
    print(name, r, os.strerror(ctypes.get_errno()))
"#;
        let out = ok(&s.run(kind, &[], &["python3", "-c", script]));
        // v1 answers as Docker does (EPERM); v2 does not implement them (ENOSYS).
        let want = if kind == "v1" { "Operation not permitted" } else { "Function not implemented" };
        for name in ["unshare", "keyctl", "mount", "io_uring_setup", "bpf"] {
            assert!(out.contains(&format!("{name} -1 {want}")), "{out}");
        }
    }

    /// As in a container: every signal starts at its default action (fnbox itself ignores
    /// SIGPIPE, which `execve` would pass on), a syscall number nobody knows is ENOSYS, and
    /// Debian's base users and groups exist.
    fn programs_start_as_in_a_container(kind) {
        let s = Scope::new("start-state");
        let script = r#"
import ctypes, grp, os, pwd
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
r = libc.syscall(ctypes.c_long(-1))
print("nr-1", r, os.strerror(ctypes.get_errno()))
print("ids", grp.getgrnam("daemon").gr_gid, grp.getgrnam("users").gr_gid, pwd.getpwnam("daemon").pw_uid)
"#;
        let out = ok(&s.run(kind, &[], &["python3", "-c", script]));
        assert!(out.contains("nr-1 -1 Function not implemented\n"), "{out}");
        assert!(out.contains("ids 1 100 1\n"), "{out}");
        // Python sets SIGPIPE to ignored itself; a shell keeps what it inherited.
        let status = s.sh(kind, &[], "kill -PIPE $$; echo survived").status.code();
        assert_eq!(status, Some(128 + 13), "SIGPIPE kills at its default action");
    }

    fn privileges_are_dropped(kind) {
        let s = Scope::new("caps");
        let out = ok(&s.sh(kind, &[], "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"));
        assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
        assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
        assert!(out.contains("NoNewPrivs:\t1"), "{out}");
        assert!(out.contains("Seccomp:\t2"), "{out}");
    }

    fn proc_is_masked_and_sys_read_only(kind) {
        let s = Scope::new("procmask");
        if kind == "v2" {
            // v2's /proc is synthetic: none of the host's sensitive files exist (sysrq-trigger
            // is there, inert, as OCI's readonlyPaths expect), nothing is writable, and there
            // is no /sys.
            let out = ok(&s.sh(kind, &[], "ls /proc/kcore /proc/keys /proc/timer_list 2>&1 | grep -c 'No such'; echo x > /proc/sys/kernel/hostname 2>&1 || echo ro-proc; echo b > /proc/sysrq-trigger 2>&1 || echo ro-sysrq; ls /sys | wc -l"));
            assert_eq!(out, "3\nro-proc\nro-sysrq\n0\n", "{out}");
            return;
        }
        let out = ok(&s.sh(kind, &[], "cat /proc/kcore 2>/dev/null | wc -c; cat /proc/keys | wc -c; echo 1 > /proc/sys/kernel/hostname 2>&1 || echo ro-proc; touch /sys/x 2>&1 || echo ro-sys"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..2], &["0", "0"], "{out}");
        assert!(out.contains("ro-proc") && out.contains("ro-sys"), "{out}");
    }

    fn no_launcher_descriptor_leaks_in(kind) {
        let s = Scope::new("fds");
        // An inheritable descriptor in the launcher must not reach the program.
        let f = std::fs::File::open("/etc/hostname").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        let out = ok(&s.sh(kind, &[], "ls /proc/self/fd | sort -n | tr '\\n' ' '"));
        assert_eq!(out, "0 1 2 3 ", "only stdio (and ls's own directory) may be open");
        drop(f);
    }

    fn the_launcher_binary_cannot_be_overwritten(kind) {
        let s = Scope::new("exe");
        let before = std::fs::read(FNBOX).unwrap();
        let out = stdout(&s.sh(kind, &[], "echo x >> /proc/1/exe 2>&1; cat /proc/1/exe > /dev/null 2>&1 || echo denied; ls -l /proc/1/exe 2>&1"));
        assert!(out.contains("denied"), "{out}");
        assert_eq!(std::fs::read(FNBOX).unwrap(), before);
    }

    fn binds_and_env_and_workdir(kind) {
        let s = Scope::new("bind");
        let dir = std::env::temp_dir().join(unique("bind"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("in.txt"), "from host").unwrap();
        let ro = format!("{}:/data:ro", dir.display());
        let o = s.sh(kind, &["--bind", &ro, "--env", "GREETING=hi", "--workdir", "/data"], "cat in.txt; echo \" $GREETING $(pwd)\"; touch x 2>&1 || echo read-only");
        let out = ok(&o);
        assert!(out.starts_with("from host hi /data\n") && out.contains("read-only"), "{out}");
        let rw = format!("{}:/data", dir.display());
        ok(&s.sh(kind, &["--bind", &rw], "echo written > /data/out.txt"));
        assert_eq!(std::fs::read_to_string(dir.join("out.txt")).unwrap(), "written\n");
        // Copy-on-write: the sandbox writes, changes and removes files; the host sees nothing.
        let cow = format!("{}:/data:cow", dir.display());
        let o = s.sh(kind, &["--bind", &cow, "--workdir", "/data"], "echo changed > in.txt; echo new > new.txt; rm out.txt; mkdir d; cat in.txt new.txt; ls");
        assert_eq!(ok(&o), "changed\nnew\nd\nin.txt\nnew.txt\n");
        assert_eq!(std::fs::read_to_string(dir.join("in.txt")).unwrap(), "from host");
        assert_eq!(std::fs::read_to_string(dir.join("out.txt")).unwrap(), "written\n");
        assert!(!dir.join("new.txt").exists() && !dir.join("d").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Bad input gets one clear line and a non-zero status, never a panic; a value outside a
/// closed set (`--sandbox`, `--network`) is a usage error (status 2) listing the choices.
#[test]
fn bad_input_is_one_clear_line() {
    let s = Scope::new("badinput");
    let cases: &[(&[&str], &[&str], i32, &str)] = &[
        (&[], &["no-such-program"], 127, "cannot run 'no-such-program': No such file or directory"),
        (&["--image", "/does/not/exist"], &["true"], 125, "image directory /does/not/exist does not exist"),
        (&["--memory", "12Q"], &["true"], 125, "memory '12Q' is not a size"),
        (&["--memory", "100M"], &["true"], 125, "not a tier: use 128, 256"),
        (&["--bind", "/does/not/exist:/x"], &["true"], 125, "bind source /does/not/exist does not exist"),
        (&["--timeout=0"], &["true"], 125, "timeout 0 is not valid"),
    ];
    for (args, argv, want_code, want_msg) in cases {
        let mut c = std::process::Command::new(FNBOX);
        c.args(["run", "--cgroup-parent", &s.parent]).args(*args).arg("--").args(*argv);
        let o = c.output().unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), *want_code, "{args:?}: {err}");
        assert!(err.contains(want_msg), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line expected: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    for (flag, bad, choices) in
        [("--sandbox", "v9", "[possible values: v1, v2]"), ("--network", "all", "[possible values: none, egress]")]
    {
        let o = std::process::Command::new(FNBOX).args(["run", flag, bad, "--", "true"]).output().unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{flag} {bad}: {err}");
        assert!(err.contains(&format!("invalid value '{bad}' for '{flag}")) && err.contains(choices), "{err}");
    }
    s.assert_clean();
}

#[test]
fn env_files_keep_values_off_the_command_line() {
    let s = Scope::new("envfile");
    let f = std::env::temp_dir().join(unique("env"));
    std::fs::write(&f, "# secrets\nTOKEN=s3cr3t value\n\nOTHER=x\n").unwrap();
    let out = ok(&s.sh("v2", &["--env-file", f.to_str().unwrap()], "echo \"$TOKEN/$OTHER\""));
    assert_eq!(out, "s3cr3t value/x\n");
    let _ = std::fs::remove_file(&f);
}

/// The spare writable layers (`crates/sandbox/src/disk/spare.rs`), with a layer size no other
/// test uses: a sandbox leaves one spare attached for the next, the next takes it (and the
/// device goes when that sandbox ends), a spare whose device is gone is thrown away, and the
/// layer a sandbox gets is always fresh.
#[test]
fn spare_layers_are_made_used_once_and_cleaned() {
    let s = Scope::new("spares");
    let dir = &state_dir().join("disk-spares");
    let spares = || -> Vec<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let ino = e.metadata().ok()?.ino();
                        (name.starts_with("ext4-40M-") && name.ends_with(".img")).then_some((name, ino))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // A spare's device: attached, no autoclear, bound to that very file.
    let device_of = |name: &str| -> String {
        let n = name.rsplit_once(".loop").unwrap().1.trim_end_matches(".img").to_string();
        format!("/sys/block/loop{n}/loop")
    };
    // Removes a spare's device, the way the README tells an administrator to.
    let remove = |name: &str| {
        let n = name.rsplit_once(".loop").unwrap().1.trim_end_matches(".img").to_string();
        let detached = std::process::Command::new("losetup").arg("-d").arg(format!("/dev/loop{n}")).status().unwrap();
        assert!(detached.success());
    };
    // Start from none (an earlier run of this test leaves one).
    for (name, _) in spares() {
        remove(&name);
        std::fs::remove_file(dir.join(&name)).unwrap();
    }
    let layer = ["--disk", "40M"];
    let write = "echo secret > /var/mark; cat /var/mark";
    assert_eq!(ok(&s.sh("v1", &layer, write)), "secret\n");
    assert!(eventually(Duration::from_secs(10), || spares().len() == 1), "no spare made: {:?}", spares());
    let (first, ino) = spares().remove(0);
    let dev = device_of(&first);
    assert_eq!(std::fs::read_to_string(format!("{dev}/autoclear")).unwrap().trim(), "0");
    assert!(std::fs::read_to_string(format!("{dev}/backing_file")).unwrap().contains("/disk-spares/"));

    // The next sandbox takes it: a fresh filesystem (nothing of the last sandbox's), and once
    // it has ended, its device is gone and a new spare waits.
    assert_eq!(
        ok(&s.sh("v1", &layer, "ls /var/mark 2>&1 | grep -c 'No such'; df -k / | tail -1 | awk '{print $2 < 41000}'")),
        "1\n1\n"
    );
    assert!(
        eventually(Duration::from_secs(10), || spares().len() == 1 && spares()[0].1 != ino),
        "the spare was not replaced: {:?}",
        spares()
    );
    // The used spare's device was detached (or now holds another, live spare).
    let left = || std::fs::read_to_string(format!("{dev}/backing_file")).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(10), || !left().contains("(deleted)") && !left().contains(".claimed-")),
        "the used spare's device stayed attached: {}",
        left()
    );

    // A spare whose device went away (a reboot, `losetup -D`) is thrown away, not used.
    let (current, _) = spares().remove(0);
    let held = dir.join(format!("{current}.held"));
    std::fs::rename(dir.join(&current), &held).unwrap();
    let stale = dir.join("ext4-40M-v2.loop99999.img");
    std::fs::write(&stale, b"").unwrap();
    assert_eq!(ok(&s.sh("v1", &layer, "echo ok")), "ok\n");
    assert!(!stale.exists(), "a stale spare must be deleted when found");
    remove(&current);
    std::fs::remove_file(&held).unwrap();
    s.assert_clean();
}
