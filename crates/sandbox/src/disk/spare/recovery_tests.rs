//! Spare layers for real: loop devices attached to files in a temporary state directory (root
//! only; each test says loudly when it is skipped). What is covered: recovery from a maker or
//! claimer that died half-way, concurrent claims of one spare, the age limit, and a spare whose
//! device now serves another file. Each test says which bug it catches.

use super::super::attach_loop;
use super::*;
use crate::testutil::{root_or_skip, TempDir};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Barrier};

/// A state directory with a template, whose loop devices are all let go on drop, whatever
/// the test left (found by inode, so no other device is touched).
struct Host {
    tmp: TempDir,
    paths: Paths,
}

impl Host {
    /// `None` (and a loud skip) unless the test can attach loop devices.
    fn new(test: &str) -> Option<Self> {
        if !root_or_skip(test) {
            return None;
        }
        if !enabled() {
            eprintln!("SKIPPED {test}: FNBOX_DISK_SPARES=0 turns spares off; unset it to run this test");
            return None;
        }
        let tmp = TempDir::new("spares");
        let paths = tmp.paths();
        Some(Self { tmp, paths })
    }

    /// A template of `mb` MiB (the content does not matter here: nothing mounts it).
    fn template(&self, mb: u64) -> PathBuf {
        let dir = self.tmp.path().join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("ext4-{mb}M-v2.img"));
        let f = File::create(&path).unwrap();
        f.set_len(mb << 20).unwrap();
        f.write_all_at(b"template", 4096).unwrap();
        path
    }

    fn spares(&self) -> PathBuf {
        self.paths.disk_spares()
    }

    /// Names in the spares directory, locks left out.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.spares())
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.retain(|n| !n.ends_with("-lock"));
        v.sort();
        v
    }

    /// A file in the spares directory, attached to a loop device without autoclear, as a maker
    /// leaves it, and named `name(its loop number)`: its loop number and its mark (see
    /// [`mark`]).
    fn attached(&self, name: impl Fn(u32) -> String) -> (u32, Mark) {
        std::fs::create_dir_all(self.spares()).unwrap();
        let p = self.spares().join(".test-attaching.img");
        let fd = sys::openat(None, &p, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o600).unwrap();
        File::from(fd.try_clone().unwrap()).set_len(1 << 20).unwrap();
        let m = mark(&p);
        let (n, _, _dev) = attach_loop(&fd, false).expect("attach a loop device");
        std::fs::rename(&p, self.spares().join(name(n))).unwrap();
        (n, m)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.spares()).into_iter().flatten().flatten() {
            if let Ok(Some(n)) = device_of(&e.path()) {
                if let Ok(fd) = sys::openat(None, Path::new(&format!("/dev/loop{n}")), libc::O_RDWR, 0) {
                    clear(&fd);
                }
            }
        }
    }
}

/// A file's device and inode: what a loop device reports of its backing file. Only while no
/// file is created: a new file may get a deleted one's inode number (see [`Mark`]).
type Identity = (u64, u64);

/// Random bytes written at the start of a file, to know it through any loop device later
/// (inode numbers are reused as files come and go).
type Mark = [u8; 16];

fn mark(p: &Path) -> Mark {
    let mut m = [0u8; 16];
    sys::random_bytes(&mut m).unwrap();
    File::options().write(true).open(p).unwrap().write_all_at(&m, 0).unwrap();
    m
}

/// Whether loop `n` serves the file marked `m`.
fn serves(n: u32, m: &Mark) -> bool {
    let Ok(fd) = sys::openat(None, Path::new(&format!("/dev/loop{n}")), libc::O_RDONLY, 0) else {
        return false;
    };
    let mut got = [0u8; 16];
    File::from(fd).read_exact_at(&mut got, 0).is_ok() && got == *m
}

/// Whether loop `n` stops serving the file marked `m` within two seconds.
fn let_go(n: u32, m: &Mark) -> bool {
    eventually(|| !serves(n, m))
}

/// What loop `n` is doing, for a failed `let_go`: its binding (backing file, flags: AUTOCLEAR
/// set by a clear means the detach waits for another holder's close), the processes holding
/// it open, and the spares directory's names.
fn diagnose(h: &Host, n: u32) -> String {
    let dev = format!("/dev/loop{n}");
    let binding = match sys::openat(None, Path::new(&dev), libc::O_RDONLY, 0).map(|fd| status(&fd)) {
        Ok(Ok(i)) => {
            let name = i.lo_file_name.iter().take_while(|&&b| b != 0).map(|&b| b as char).collect::<String>();
            format!("bound to {name} (device {}, inode {}, flags {:#x})", i.lo_device, i.lo_inode, i.lo_flags)
        }
        Ok(Err(e)) | Err(e) => format!("no binding ({e})"),
    };
    let holders: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| {
            let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
            let holds = fds.flatten().any(|f| std::fs::read_link(f.path()).is_ok_and(|t| t == Path::new(&dev)));
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            holds.then(|| format!("{} ({})", p.file_name().to_string_lossy(), comm.trim()))
        })
        .collect();
    format!("{dev}: {binding}; held open by {holders:?}; spares: {:?}", h.names())
}

fn eventually(f: impl Fn() -> bool) -> bool {
    (0..200).any(|_| {
        let done = f();
        if !done {
            std::thread::sleep(Duration::from_millis(10));
        }
        done
    })
}

fn identity(p: &Path) -> Identity {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.dev(), m.ino())
}

/// Whether loop `n` is bound to the file `id`.
fn bound(n: u32, id: Identity) -> bool {
    let Ok(fd) = sys::openat(None, Path::new(&format!("/dev/loop{n}")), libc::O_RDONLY, 0) else {
        return false;
    };
    status(&fd).is_ok_and(|i| (i.lo_device, i.lo_inode) == id)
}

/// Whether loop `n` lets go of `id` within two seconds (detaching is done at the last close).
fn released(n: u32, id: Identity) -> bool {
    eventually(|| !bound(n, id))
}

/// The published spares of `template`: (loop number, identity).
fn published(h: &Host, template: &Path) -> Vec<(u32, Identity)> {
    let prefix = prefix(template).unwrap();
    h.names().iter().filter_map(|name| Some((loop_number(name, &prefix)?, identity(&h.spares().join(name))))).collect()
}

/// A process id that is not running any more.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().expect("run true");
    let pid = c.id();
    c.wait().unwrap();
    pid
}

// Catches: more than SPARES kept per template (each holds a loop device), a claimed spare
// whose name stays published (handed out twice), a device left attached after its sandbox
// (no autoclear: loop devices and disk space leak with every sandbox).
#[test]
fn spares_are_made_up_to_the_limit_claimed_once_and_detached_after_use() {
    let Some(h) = Host::new("spares_are_made_up_to_the_limit_claimed_once_and_detached_after_use") else {
        return;
    };
    let t = h.template(4);
    for _ in 0..SPARES + 1 {
        replenish(&h.paths, &t).unwrap();
    }
    let made = published(&h, &t);
    assert_eq!(made.len(), SPARES, "{:?}", h.names());
    assert!(made.iter().all(|&(n, id)| bound(n, id)), "every spare's device is bound to it");

    let c = claim(&h.paths, &t).expect("a spare is there");
    let (n, id) = *made.iter().find(|(n, _)| c.dev == format!("/dev/loop{n}")).expect("one of the spares");
    assert_eq!(published(&h, &t).len(), SPARES - 1, "the claimed spare is no longer offered");
    // What the mounted filesystem would be: another holder of the device.
    let mounted = sys::openat(None, Path::new(&c.dev), libc::O_RDONLY, 0).unwrap();
    let fd = c.arm();
    assert!(h.names().iter().all(|n| !n.starts_with(".claimed-")), "an armed spare keeps no name: {:?}", h.names());
    assert!(bound(n, id), "detached while the filesystem holds it");
    drop(fd);
    drop(mounted);
    assert!(released(n, id), "loop{n} still attached after its last holder let go");

    // A claim dropped unarmed (the filesystem would not mount) lets the device go too.
    let (n, id) = published(&h, &t)[0];
    drop(claim(&h.paths, &t).expect("the second spare"));
    assert!(released(n, id), "loop{n} still attached after an unarmed claim was dropped");
    assert!(claim(&h.paths, &t).is_none(), "no spare left");
    assert_eq!(h.names(), Vec::<String>::new());
}

// Catches: a helper killed while making a spare (after attaching, before publishing) or
// while claiming one (before arming) leaking its loop device for good; the next maker
// destroying the half-made spare of a maker still at work.
#[test]
fn the_next_maker_releases_what_dead_makers_and_claimers_left() {
    let Some(h) = Host::new("the_next_maker_releases_what_dead_makers_and_claimers_left") else {
        return;
    };
    let t = h.template(4);
    let dead = dead_pid();
    let (n1, made_then_died) = h.attached(|_| format!(".making-{dead}-0a0b.img"));
    // Killed while copying the template: never attached.
    std::fs::write(h.spares().join(format!(".making-{dead}-0c0d.img")), b"half").unwrap();
    let (n2, claimed_then_died) = h.attached(|n| format!(".claimed-{dead}.loop{n}.img"));
    let me = std::process::id();
    let (n3, at_work) = h.attached(|_| format!(".making-{me}-0e0f.img"));

    replenish(&h.paths, &t).unwrap();

    assert!(let_go(n1, &made_then_died), "a dead maker's device is still attached: {}", diagnose(&h, n1));
    assert!(let_go(n2, &claimed_then_died), "a dead claimer's device is still attached: {}", diagnose(&h, n2));
    assert!(serves(n3, &at_work), "a live maker's device was taken away");
    let names = h.names();
    assert!(names.iter().all(|n| !n.contains(&format!("-{dead}"))), "a dead helper's name stays: {names:?}");
    assert!(names.contains(&format!(".making-{me}-0e0f.img")), "a live maker's file was removed: {names:?}");
    assert_eq!(published(&h, &t).len(), 1, "and the maker made its spare: {names:?}");
}

// Catches: two sandboxes handed the same spare (two ext4 mounts of one device: both corrupt).
// Claiming is a rename: of concurrent claimers exactly one may win each spare.
#[test]
fn concurrent_claims_of_a_spare_have_exactly_one_winner() {
    let Some(h) = Host::new("concurrent_claims_of_a_spare_have_exactly_one_winner") else {
        return;
    };
    let t = h.template(4);
    // Rounds make the race likely on few cores: every claimer lists the spare, one renames it.
    for spares in (1..=SPARES).cycle().take(20) {
        while published(&h, &t).len() < spares {
            replenish(&h.paths, &t).unwrap();
        }
        let claimers = 8;
        let start = Arc::new(Barrier::new(claimers));
        let got: Vec<Option<Claimed>> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..claimers)
                .map(|_| {
                    let start = start.clone();
                    s.spawn(|| {
                        let start = start;
                        start.wait();
                        claim(&h.paths, &t)
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut devices: Vec<&str> = got.iter().flatten().map(|c| c.dev.as_str()).collect();
        assert_eq!(devices.len(), spares, "{spares} spare(s), {} winners: {devices:?}", devices.len());
        devices.sort();
        devices.dedup();
        assert_eq!(devices.len(), spares, "one device handed out twice");
        drop(got);
    }
}

// Catches: spares kept forever (each holds a loop device and disk space) once nobody uses
// their size, and the age limit throwing away spares still young.
#[test]
fn spares_past_the_age_limit_are_retired_not_handed_out() {
    let Some(h) = Host::new("spares_past_the_age_limit_are_retired_not_handed_out") else {
        return;
    };
    let (t, unused) = (h.template(4), h.template(8));
    replenish(&h.paths, &unused).unwrap();
    replenish(&h.paths, &t).unwrap();
    replenish(&h.paths, &t).unwrap();
    let [old, young] = published(&h, &t)[..] else { panic!("two spares: {:?}", h.names()) };
    let [forgotten] = published(&h, &unused)[..] else { panic!("one spare: {:?}", h.names()) };
    let age = |n: u32, secs: u64| {
        let name = h.names().into_iter().find(|name| name.ends_with(&format!(".loop{n}.img"))).unwrap();
        let p = h.spares().join(name);
        let m = mark(&p);
        let f = File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs)).unwrap();
        m
    };
    let old_mark = age(old.0, MAX_AGE.as_secs() + 60);
    let forgotten_mark = age(forgotten.0, MAX_AGE.as_secs() + 60);
    age(young.0, MAX_AGE.as_secs() - 60);

    // The next maker of any size retires them, and makes a fresh one in place of the old.
    replenish(&h.paths, &t).unwrap();

    assert!(let_go(old.0, &old_mark), "an hour-old spare still holds its device: {}", diagnose(&h, old.0));
    assert!(
        let_go(forgotten.0, &forgotten_mark),
        "a spare of a size nobody uses still holds its device: {}",
        diagnose(&h, forgotten.0)
    );
    assert!(published(&h, &unused).is_empty(), "{:?}", h.names());
    let now = published(&h, &t);
    assert_eq!(now.len(), SPARES, "{:?}", h.names());
    assert!(now.iter().any(|(n, _)| *n == young.0), "a spare under the age limit was retired");
    for _ in 0..SPARES {
        let c = claim(&h.paths, &t).expect("a spare");
        let n: u32 = c.dev.trim_start_matches("/dev/loop").parse().unwrap();
        assert!(!serves(n, &old_mark), "the old spare was handed out");
    }
}

// Catches: a spare whose device was detached (`losetup -D`, a reboot) and then attached to
// another file, say another sandbox's layer, being handed out: the new sandbox would mount
// someone else's filesystem. It must be dropped, and the other file's device left alone.
#[test]
fn a_spare_whose_device_now_serves_another_file_is_never_handed_out() {
    let Some(h) = Host::new("a_spare_whose_device_now_serves_another_file_is_never_handed_out") else {
        return;
    };
    let t = h.template(4);
    let prefix = prefix(&t).unwrap();
    // Another sandbox's layer, on loop N.
    let (n, other) = h.attached(|_| ".someone-else.img".into());
    // A stale spare naming loop N, and one naming a device that does not exist.
    std::fs::write(h.spares().join(format!("{prefix}{n}.img")), b"stale").unwrap();
    std::fs::write(h.spares().join(format!("{prefix}99999.img")), b"stale").unwrap();

    assert!(claim(&h.paths, &t).is_none(), "a stale spare was handed out");
    assert!(serves(n, &other), "loop{n}, which serves another file, was detached");
    assert_eq!(h.names(), vec![".someone-else.img".to_string()], "stale names are deleted");
}
