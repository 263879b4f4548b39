//! Driving a running sandbox from outside, as the platform does with pre-warmed sandboxes:
//! the control channel (`fnbox run --control-fd`: attach, limits, throttle, stop) and the
//! start-up CPU boost (`--cpu-boost`, `--cpu-boost-background`). Every test runs the real
//! `fnbox run`.

mod common;

use common::*;
use std::time::Duration;

/// The control channel (what the platform drives pre-warmed sandboxes with): a mount attached
/// into a running sandbox, a tier change, an exec timestamp, and stop on request or on end of
/// file.
#[test]
fn a_running_sandbox_takes_mounts_limits_and_stop_requests() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::net::UnixStream;
    for kind in ["v1", "v2"] {
        let s = Scope::new("control");
        let code = std::env::temp_dir().join(unique("code"));
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join("hello.txt"), "from code\n").unwrap();
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        // SAFETY: clearing FD_CLOEXEC so the launcher inherits its end.
        unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) };
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into `fds`.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let script = "while [ ! -f /code/hello.txt ]; do sleep 0.01; done; cat /code/hello.txt; cat /proc/meminfo | head -1; sleep 30";
        let mut cmd = s.cmd(
            kind,
            &["--status-fd", &fds[1].to_string(), "--control-fd", &theirs.as_raw_fd().to_string()],
            &["sh", "-c", script],
        );
        cmd.stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(theirs);
        // SAFETY: closing our copy of the write end; the child has its own.
        unsafe { libc::close(fds[1]) };
        // SAFETY: the read end is ours.
        let mut status = BufReader::new(unsafe { std::fs::File::from_raw_fd(fds[0]) });
        let mut line = String::new();
        status.read_line(&mut line).unwrap();
        assert!(line.contains("\"event\":\"started\""), "{line}");
        line.clear();
        status.read_line(&mut line).unwrap();
        assert!(line.contains("\"event\":\"exec\"") && line.contains("mono_ns"), "{line}");
        let mut ask = |req: &str| {
            ours.write_all(format!("{req}\n").as_bytes()).unwrap();
            let mut buf = [0u8; 256];
            let n = ours.read(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        assert!(ask(&format!(r#"{{"v":1,"op":"attach","source":"{}","target":"/code"}}"#, code.display()))
            .contains("\"ok\":true"));
        assert!(ask(r#"{"v":1,"op":"limits","memory_mb":128}"#).contains("\"ok\":true"));
        assert!(ask(r#"{"v":1,"op":"limits","memory_mb":100}"#).contains("not a tier"));
        assert!(ask(r#"{"v":1,"op":"frobnicate"}"#).contains("unknown variant `frobnicate`"));
        // A request from another version of the protocol is refused, naming both versions.
        let old = ask(r#"{"v":0,"op":"kill"}"#);
        assert!(old.contains("version 0") && old.contains("version 1") && old.contains("\"reply\":\"?\""), "{old}");
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 10];
        out.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"from code\n");
        // End of file on the control channel stops the sandbox.
        drop(ours);
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(137), "{kind}");
        let mut rest = String::new();
        status.read_to_string(&mut rest).unwrap();
        assert!(rest.contains("\"ending\":\"stopped\""), "{kind}: {rest}");
        let _ = std::fs::remove_dir_all(&code);
        s.assert_clean();
    }
}

/// `read(directory, file)` for each sandbox cgroup under `parent` in the CPU controller's
/// hierarchy, `file` being `v1_file` on cgroup v1 and `v2_file` on v2; those it reads.
fn cpu_cgroups<T>(
    parent: &str,
    v1_file: &str,
    v2_file: &'static str,
    read: impl Fn(&std::path::Path, &str) -> Option<T>,
) -> Vec<T> {
    let (dir, file) = match std::path::Path::new("/sys/fs/cgroup/cpu").join(v1_file).exists() {
        true => (format!("/sys/fs/cgroup/cpu/{parent}"), v1_file),
        false => (format!("/sys/fs/cgroup/{parent}"), v2_file),
    };
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| read(&e.path(), file))
        .collect()
}

/// The CPU quotas (µs per 100 ms, `None` for none) of the sandbox cgroups under `parent`.
fn quotas_under(parent: &str) -> Vec<Option<u64>> {
    cpu_cgroups(parent, "cpu.cfs_quota_us", "cpu.max", |d, file| {
        let v = std::fs::read_to_string(d.join(file)).ok()?;
        Some(v.split_whitespace().next()?.parse::<u64>().ok())
    })
}

/// `fnbox run --cpu-boost`: the sandbox starts without its CPU quota, which applies at
/// `{"v":1,"op":"throttle"}` (read back before the answer) or when the window ends.
#[test]
fn a_boosted_sandbox_gets_its_quota_at_throttle_or_at_the_end_of_its_window() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    for kind in ["v1", "v2"] {
        let s = Scope::new("boost");
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        // SAFETY: clearing FD_CLOEXEC so the launcher inherits its end.
        unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) };
        let fd = theirs.as_raw_fd().to_string();
        let mut child = s
            .cmd(kind, &["--memory", "128", "--cpu-boost", "30", "--control-fd", &fd], &["sleep", "60"])
            .spawn()
            .unwrap();
        drop(theirs);
        assert!(
            eventually(Duration::from_secs(20), || quotas_under(&s.parent) == [None]),
            "{kind}: {:?}",
            quotas_under(&s.parent)
        );
        ours.write_all(b"{\"v\":1,\"op\":\"throttle\"}\n").unwrap();
        let mut buf = [0u8; 256];
        let n = ours.read(&mut buf).unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.contains("\"reply\":\"throttle\"") && reply.contains("\"ok\":true"), "{kind}: {reply}");
        // Answered: the quota is in force.
        assert_eq!(quotas_under(&s.parent), [Some(7000)], "{kind}");
        drop(ours);
        assert_eq!(child.wait().unwrap().code(), Some(137), "{kind}");

        // Nobody says throttle: the window (1 s) ends it.
        let mut child = s.cmd(kind, &["--memory", "128", "--cpu-boost", "1"], &["sleep", "60"]).spawn().unwrap();
        assert!(
            eventually(Duration::from_secs(20), || quotas_under(&s.parent) == [Some(7000)]),
            "{kind}: {:?}",
            quotas_under(&s.parent)
        );
        // SAFETY: a signal to the launcher we spawned (it passes it on to the program).
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap();
        s.assert_clean();
    }
}

/// What each sandbox cgroup under `parent` holds, from its CPU controller's directory: its
/// CPU weight (`cpu.shares` on v1, `cpu.weight` on v2) and its processes.
fn cpu_cgroups_under(parent: &str) -> Vec<(u64, Vec<i32>)> {
    cpu_cgroups(parent, "cpu.shares", "cpu.weight", |d, file| {
        let weight = std::fs::read_to_string(d.join(file)).ok()?.trim().parse().ok()?;
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).ok()?;
        Some((weight, procs.lines().filter_map(|l| l.parse().ok()).collect()))
    })
}

/// `fnbox run --cpu-boost-background`, the start of a pre-warmed sandbox: its processes run at
/// the lowest CPU weight until an `attach` claims the sandbox, which then runs at the normal
/// weight, still without its quota until `throttle`. The launcher's own start-up work is niced
/// (the unit test `a_background_start_is_niced_and_leaves_nothing_niced`), but nothing is left
/// niced once the sandbox is made: not the sandbox's processes (a nice value would outlive the
/// boost), not the launcher (it answers the claim), not its `nft` and disk helper.
// Catches: a sandbox, launcher or helper left niced, a claimed sandbox whose code is mounted
// at the lowest weight (100 ms behind 20 cold starts on two cores), and a claim that applies
// the quota.
#[test]
fn a_background_start_yields_the_cpu_until_it_is_claimed() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    let (idle, normal) = match std::path::Path::new("/sys/fs/cgroup/cpu/cpu.shares").exists() {
        true => (2, 1024),
        false => (1, 100),
    };
    let code = std::env::temp_dir().join(unique("claim"));
    std::fs::create_dir_all(&code).unwrap();
    for kind in ["v1", "v2"] {
        let s = Scope::new("background");
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        // SAFETY: clearing FD_CLOEXEC so the launcher inherits its end.
        unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) };
        let fd = theirs.as_raw_fd().to_string();
        let flags = ["--memory", "128", "--cpu-boost", "30", "--cpu-boost-background", "--control-fd", &fd];
        let mut child =
            s.cmd(kind, &[&flags[..], &["--network", "egress"]].concat(), &["sleep", "60"]).spawn().unwrap();
        drop(theirs);
        let launcher = child.id() as i32;
        // Started: the launcher is back at its own nice value, its sandbox at the lowest weight.
        assert!(
            eventually(Duration::from_secs(20), || nice_of(launcher) == Some(0)
                && cpu_cgroups_under(&s.parent).iter().any(|(_, procs)| procs.len() >= 2)),
            "{kind}: launcher nice {:?}, cgroups {:?}",
            nice_of(launcher),
            cpu_cgroups_under(&s.parent)
        );
        let cgroups = cpu_cgroups_under(&s.parent);
        assert!(matches!(&cgroups[..], [(w, _)] if *w == idle), "{kind}: {cgroups:?}");
        for pid in &cgroups[0].1 {
            assert_eq!(nice_of(*pid), Some(0), "{kind}: the sandbox's process {pid} is niced");
        }
        // Its helpers that live as long as the sandbox (nft, the disk helper) are back at 0 too:
        // the sandbox's teardown waits for its nft.
        let helpers = children_of(launcher);
        assert!(helpers.iter().any(|(_, c)| c == "nft"), "{kind}: no nft under the launcher: {helpers:?}");
        for (pid, comm) in helpers {
            assert_eq!(nice_of(pid), Some(0), "{kind}: the launcher's {comm} {pid}");
        }
        let mut ask = |req: &str| {
            ours.write_all(format!("{req}\n").as_bytes()).unwrap();
            let mut buf = [0u8; 256];
            let n = ours.read(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let attach = format!(r#"{{"v":1,"op":"attach","source":"{}","target":"/code"}}"#, code.display());
        assert!(ask(&attach).contains("\"ok\":true"), "{kind}");
        assert_eq!(cpu_cgroups_under(&s.parent).iter().map(|c| c.0).collect::<Vec<_>>(), [normal], "{kind}");
        assert_eq!(quotas_under(&s.parent), [None], "{kind}: claimed, still boosted");
        assert!(ask(r#"{"v":1,"op":"throttle"}"#).contains("\"ok\":true"), "{kind}");
        assert_eq!(quotas_under(&s.parent), [Some(7000)], "{kind}");
        drop(ours);
        assert_eq!(child.wait().unwrap().code(), Some(137), "{kind}");
        s.assert_clean();
    }
    let _ = std::fs::remove_dir_all(&code);
}
