//! A `Sandbox::start` that fails after it made the cgroup, the first process or the Sentry
//! leaves nothing: no process (not even a zombie), no cgroup directory, no uid slot held, no
//! mount on the host under the test's directory.
//!
//! Real sandboxes (root). A sandbox is cloned only by a single-threaded launcher, so each case
//! runs in a forked copy of the test process, which reports on a pipe what it found wrong.
//! The cases are container sandboxes (their root a temporary directory): they need no disk
//! layer nor host image, and what `start` makes around them is the same.

use super::FAIL_AT;
use crate::cgroup::{Cgroup, HostCgroupFs, Layout};
use crate::idmap::IdRange;
use crate::paths::Paths;
use crate::spec::{Container, ContainerRoot, Image, Mount, MountKind, SandboxKind, SandboxSpec};
use crate::testutil::{root_or_skip, TempDir};
use crate::Sandbox;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How a case makes the start fail.
#[derive(Clone, Copy)]
enum Failure {
    /// At a step of `start` (its `fail_point`s).
    At(&'static str),
    /// A container mount whose source does not exist: found when the mounts are sent, after
    /// the cgroup, the first process and (v2) the Sentry exist.
    MissingBindSource,
}

const KINDS: [SandboxKind; 2] = [SandboxKind::V1, SandboxKind::V2];

#[test]
fn a_start_failing_right_after_the_clone_leaves_nothing() {
    for kind in KINDS {
        fails_and_leaves_nothing("a_start_failing_right_after_the_clone_leaves_nothing", kind, Failure::At("cloned"));
    }
}

#[test]
fn a_start_failing_once_the_sandbox_owns_its_processes_leaves_nothing() {
    for kind in KINDS {
        let name = "a_start_failing_once_the_sandbox_owns_its_processes_leaves_nothing";
        fails_and_leaves_nothing(name, kind, Failure::At("owned"));
    }
}

#[test]
fn a_container_mount_without_its_source_fails_the_start_and_leaves_nothing() {
    for kind in KINDS {
        let name = "a_container_mount_without_its_source_fails_the_start_and_leaves_nothing";
        fails_and_leaves_nothing(name, kind, Failure::MissingBindSource);
    }
}

fn fails_and_leaves_nothing(name: &str, kind: SandboxKind, failure: Failure) {
    if !root_or_skip(name) {
        return;
    }
    let layout = Layout::detect().expect("a cgroup hierarchy with the memory controller");
    let tmp = TempDir::new("start-fails");
    let paths = tmp.paths();
    let parent = format!("fnbox-unit-start-{}-{}", std::process::id(), crate::sys::random_hex(4));
    let _cleanup = Parent { layout: layout.clone(), name: parent.clone() };
    let spec = container_spec(kind, &tmp, &parent, failure);
    let expected = match failure {
        Failure::At(step) => format!("fail at '{step}'"),
        Failure::MissingBindSource => "does not exist".to_string(),
    };
    let found = in_launcher(|| {
        let mounts_before = mounts_under(tmp.path());
        if let Failure::At(step) = failure {
            FAIL_AT.set(Some(step));
        }
        let e = match Sandbox::start(&spec, &paths) {
            Ok(_) => return Err("the start succeeded".into()),
            Err(e) => e.to_string(),
        };
        if !e.contains(&expected) {
            return Err(format!("the start failed, but not as the test made it: {e}"));
        }
        let left = children();
        if !left.is_empty() {
            return Err(format!("processes left (killed but not reaped, or running): {left:?}"));
        }
        let held = held_slots(&paths);
        if !held.is_empty() {
            return Err(format!("uid slots still held: {held:?}"));
        }
        let mounts = mounts_under(tmp.path());
        if mounts != mounts_before {
            return Err(format!("mounts left under {}: {mounts:?} (before: {mounts_before:?})", tmp.path().display()));
        }
        Ok(())
    });
    if let Err(e) = found {
        panic!("{kind} sandbox: {e}");
    }
    let left = cgroups_under(&layout, &parent);
    assert!(left.is_empty(), "{kind} sandbox: cgroups left: {left:?}");
}

/// A container whose root is an empty temporary directory, with a mount of a missing source
/// for [`Failure::MissingBindSource`].
fn container_spec(kind: SandboxKind, tmp: &TempDir, parent: &str, failure: Failure) -> SandboxSpec {
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).expect("create the container's root");
    let mut c = Container { root: ContainerRoot::Dir(root.clone()), ..Default::default() };
    if let Failure::MissingBindSource = failure {
        let source = tmp.path().join("gone");
        let kind = MountKind::Bind { source, recursive: false, readonly: false, attrs: 0 };
        c.mounts.push(Mount { target: PathBuf::from("/data"), kind });
    }
    let mut spec = SandboxSpec::new(kind, vec!["/bin/true".into()]);
    spec.image = Image::Dir(root);
    spec.cgroup_parent = parent.to_string();
    spec.container = Some(Box::new(c));
    spec
}

/// Runs `case` in a forked copy of this process (single-threaded, as a launcher must be);
/// returns what it found wrong. A case that hangs is killed after a minute.
fn in_launcher(case: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let mut p = [0; 2];
    // SAFETY: `p` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    // SAFETY: both are new descriptors that nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    // SAFETY: the child runs only the case, whose allocations glibc's allocator serves after a
    // fork, and ends in _exit without returning to the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        drop(read);
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case))
            .unwrap_or_else(|_| Err("the case panicked".into()));
        let msg = found.err().unwrap_or_default();
        let _ = crate::sys::fs::write_all(std::os::fd::AsFd::as_fd(&write), msg.as_bytes());
        // SAFETY: ends the forked copy at once, as a launcher's child would.
        unsafe { libc::_exit(i32::from(!msg.is_empty())) };
    }
    drop(write);
    let mut fd = libc::pollfd { fd: read.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut fd, 1, Duration::from_secs(60).as_millis() as i32) } > 0;
    let mut msg = String::new();
    if ready {
        let _ = std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut msg);
    } else {
        let _ = crate::sys::process::kill(pid, libc::SIGKILL);
        msg = "the case did not end within a minute".into();
    }
    let status = crate::sys::process::waitpid(pid, false).ok().flatten().map(|(_, s)| s);
    match (msg.is_empty(), status) {
        (true, Some(crate::sys::process::WaitStatus::Exited(0))) => Ok(()),
        (true, s) => Err(format!("the case ended with {s:?} and said nothing")),
        (false, _) => Err(msg),
    }
}

/// This process's children, zombies included.
fn children() -> Vec<String> {
    let me = std::process::id();
    let list = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
    list.split_whitespace()
        .map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{pid} ({})", comm.trim())
        })
        .collect()
}

/// The mount points in this process's mount namespace (the host's) at or under `dir`: the
/// state directory and the container's root are both there. Only those, since other tests
/// may mount elsewhere meanwhile.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.to_string_lossy();
    let points = info.lines().filter_map(|l| l.split(' ').nth(4));
    points.filter(|p| p.starts_with(dir.as_ref())).map(str::to_string).collect()
}

/// The uid slots of `paths` whose lock someone holds.
fn held_slots(paths: &Paths) -> Vec<u32> {
    let entries = std::fs::read_dir(paths.uid_locks()).into_iter().flatten().flatten();
    let slots = entries.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    slots.filter(|&slot| IdRange::try_take(paths, slot).is_none()).collect()
}

/// The cgroup directories under `parent` in every hierarchy.
fn cgroups_under(layout: &Layout, parent: &str) -> Vec<PathBuf> {
    let roots: Vec<PathBuf> = match layout {
        Layout::V1 { controllers } => controllers.iter().map(|(_, d)| d.join(parent)).collect(),
        Layout::V2 { root } => vec![root.join(parent)],
    };
    let entries = roots.iter().flat_map(|r| std::fs::read_dir(r).into_iter().flatten().flatten());
    entries.map(|e| e.path()).filter(|p| p.is_dir()).collect()
}

/// The test's cgroup parent, removed (with anything left in it) on drop.
struct Parent {
    layout: Layout,
    name: String,
}

impl Drop for Parent {
    fn drop(&mut self) {
        let open = |parent: &str, name: &str| Cgroup::open(&self.layout, Arc::new(HostCgroupFs), parent, name);
        for dir in cgroups_under(&self.layout, &self.name) {
            if let Some(n) = dir.file_name().and_then(|n| n.to_str()) {
                let _ = open(&self.name, n).destroy();
            }
        }
        let _ = open("", &self.name).destroy();
    }
}

/// A process's nice value, from `/proc/PID/stat` (its 19th field).
fn nice_of(pid: libc::pid_t) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
}

/// A background start's `Background`: the launcher's thread at nice 19 from `enter` (and what
/// it starts meanwhile), a sandbox process cloned at the thread's own value, and the helpers
/// and the thread back at that value on `leave`.
// Catches: a sandbox process inheriting the background nice value (it would outlive the
// boost), a launcher or long-lived helper left at 19 (a teardown that waits for its `nft` is
// then slow under load: attack review), and a background start not niced at all.
#[test]
fn a_background_start_is_niced_and_leaves_nothing_niced() {
    use crate::sys::process;
    if !root_or_skip("a_background_start_is_niced_and_leaves_nothing_niced") {
        return;
    }
    // Its own thread: a nice value is a thread's.
    std::thread::spawn(|| {
        let own = process::thread_nice().unwrap();
        let bg = super::Background::enter(true);
        assert_eq!(process::thread_nice().unwrap(), process::BACKGROUND_NICE);
        let mut helper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let helper_pid = helper.id() as libc::pid_t;
        assert_eq!(nice_of(helper_pid), Some(process::BACKGROUND_NICE), "a helper started meanwhile");
        let clone = || {
            // SAFETY: the child only reads its nice value and ends in _exit (async-signal-safe
            // calls, although the test process has other threads).
            unsafe { process::clone3_fork(0, None) }
        };
        match bg.clone_sandbox_process(clone).unwrap() {
            process::Forked::Child => process::exit_now(process::thread_nice().map_or(1, |n| 100 + n)),
            process::Forked::Parent { pid, .. } => {
                let status = process::waitpid(pid, false).unwrap().map(|(_, s)| s);
                assert!(matches!(status, Some(process::WaitStatus::Exited(c)) if c == 100 + own), "{status:?}");
            }
        }
        assert_eq!(process::thread_nice().unwrap(), process::BACKGROUND_NICE, "back to 19 after the clone");
        bg.leave([helper_pid].into_iter());
        assert_eq!(process::thread_nice().unwrap(), own);
        assert_eq!(nice_of(helper_pid), Some(own), "the helper after leave");
        let _ = helper.kill();
        let _ = helper.wait();
    })
    .join()
    .unwrap();
}
