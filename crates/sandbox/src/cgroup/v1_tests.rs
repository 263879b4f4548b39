//! cgroup v1 against the fake tree (`fake.rs`), and the stale-cgroup reaper against this
//! host's real v1 hierarchies (as root). Each test says which bug it catches.

use super::fake::{FakeTree, V1_NO_LIMIT};
use super::{Cgroup, HostCgroupFs, Layout, Limits, MemoryUse};
use crate::spec::{Resources, Tier};
use crate::testutil::{root_or_skip, TempDir};
use std::path::PathBuf;
use std::sync::Arc;

/// A host laid out as systemd does: `cpu,cpuacct` co-mounted, the others one per hierarchy.
fn host(memsw: bool) -> Arc<FakeTree> {
    Arc::new(FakeTree::v1(
        &[
            ("/cg/memory", "memory"),
            ("/cg/cpu,cpuacct", "cpu,cpuacct"),
            ("/cg/pids", "pids"),
            ("/cg/cpuset", "cpuset"),
            ("/cg/freezer", "freezer"),
        ],
        memsw,
    ))
}

fn tier(mb: u64, pids: u64) -> Limits {
    Limits::for_tier(Tier::for_mb(mb).unwrap(), pids)
}

/// Where `file` of the sandbox `name` under `fnbox/serve` is, in the hierarchy at `mount`.
fn at(mount: &str, name: &str, file: &str) -> String {
    format!("/cg/{mount}/fnbox/serve/{name}/{file}")
}

const HIERARCHIES: [&str; 5] = ["cpu,cpuacct", "cpuset", "freezer", "memory", "pids"];

// Catches: a controller skipped (no freezer: `pause` fails; no cpuset: OCI cpusets ignored),
// the co-mounted cpu,cpuacct directory listed twice, a nested parent not created level by
// level, a limit written to a v2 file name or in v2's spelling, swap left on.
#[test]
fn v1_create_makes_one_directory_per_hierarchy_and_writes_the_limits() {
    let tree = host(true);
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "7-ab", &tier(512, 321)).unwrap();
    let mut dirs = cg.dirs();
    dirs.sort();
    let want: Vec<PathBuf> = HIERARCHIES.iter().map(|h| format!("/cg/{h}/fnbox/serve/7-ab").into()).collect();
    assert_eq!(dirs, want);
    assert_eq!(cg.unified_dir(), None, "v1 has no directory for CLONE_INTO_CGROUP");
    assert!(HIERARCHIES.iter().all(|h| tree.is_dir(&format!("/cg/{h}/fnbox/serve"))));
    let mem = (512u64 << 20).to_string();
    assert_eq!(tree.get(&at("memory", "7-ab", "memory.limit_in_bytes")).unwrap(), mem);
    assert_eq!(tree.get(&at("memory", "7-ab", "memory.memsw.limit_in_bytes")).unwrap(), mem, "swap off");
    assert_eq!(tree.get(&at("memory", "7-ab", "memory.swappiness")).unwrap(), "0");
    assert_eq!(tree.get(&at("cpu,cpuacct", "7-ab", "cpu.cfs_quota_us")).unwrap(), "28000");
    assert_eq!(tree.get(&at("cpu,cpuacct", "7-ab", "cpu.cfs_period_us")).unwrap(), "100000");
    assert_eq!(tree.get(&at("pids", "7-ab", "pids.max")).unwrap(), "321");
}

// Catches: a new cpuset level left without CPUs or memory nodes, which then refuses every
// process (ENOSPC from the kernel, here from the fake): each level of a nested parent
// inherits its parent's.
#[test]
fn v1_cpuset_levels_inherit_their_parents_cpus_and_nodes() {
    let tree = host(false);
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "3-cd", &tier(128, 64)).unwrap();
    for dir in ["/cg/cpuset/fnbox", "/cg/cpuset/fnbox/serve", "/cg/cpuset/fnbox/serve/3-cd"] {
        assert_eq!(tree.get(&format!("{dir}/cpuset.cpus")).unwrap(), "0-1", "{dir}");
        assert_eq!(tree.get(&format!("{dir}/cpuset.mems")).unwrap(), "0", "{dir}");
    }
    cg.add_pid(4242).expect("a process joins the cpuset cgroup");
}

// Catches: "no limit" written in v2's spelling (`max`), which v1's memory and cpu files
// reject with EINVAL, so an OCI container without limits could not start on v1.
#[test]
fn v1_no_limit_is_minus_one_where_v1_wants_it() {
    let tree = host(true);
    let limits = Limits::for_container(&Resources::default());
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "9-ef", &limits).unwrap();
    assert_eq!(tree.get(&at("memory", "9-ef", "memory.limit_in_bytes")).unwrap(), V1_NO_LIMIT);
    assert_eq!(tree.get(&at("memory", "9-ef", "memory.memsw.limit_in_bytes")).unwrap(), V1_NO_LIMIT);
    assert_eq!(tree.get(&at("cpu,cpuacct", "9-ef", "cpu.cfs_quota_us")).unwrap(), "-1");
    assert_eq!(tree.get(&at("pids", "9-ef", "pids.max")).unwrap(), "max");
    drop(cg);
}

// Catches: the memory and memory+swap limits written in the wrong order on a tier change.
// The kernel keeps memory <= memory+swap at every write: growing must raise memsw first,
// shrinking must lower memory first, or the write fails with EINVAL.
#[test]
fn v1_tier_changes_keep_memory_within_memory_plus_swap() {
    let tree = host(true);
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "5-gh", &tier(128, 64)).unwrap();
    for mb in [1024, 128, 2048, 256] {
        cg.update(&tier(mb, 64)).unwrap_or_else(|e| panic!("update to {mb} MiB: {e}"));
        let bytes = (mb << 20).to_string();
        assert_eq!(tree.get(&at("memory", "5-gh", "memory.limit_in_bytes")).unwrap(), bytes);
        assert_eq!(tree.get(&at("memory", "5-gh", "memory.memsw.limit_in_bytes")).unwrap(), bytes);
    }
    // Without swap accounting there is no memsw file to write.
    let tree = host(false);
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "5-gh", &tier(128, 64)).unwrap();
    cg.update(&tier(1024, 64)).unwrap();
    assert_eq!(tree.get(&at("memory", "5-gh", "memory.limit_in_bytes")).unwrap(), (1024u64 << 20).to_string());
    assert_eq!(tree.get(&at("memory", "5-gh", "memory.memsw.limit_in_bytes")), None);
}

// Catches: an OCI container's extra settings dropped or written to the wrong hierarchy.
#[test]
fn v1_container_settings_reach_their_controllers() {
    let tree = host(false);
    let r = Resources {
        memory_bytes: Some(256 << 20),
        cpu_quota_us: Some(50_000),
        cpu_period_us: Some(200_000),
        cpu_shares: Some(512),
        pids_max: Some(99),
        cpuset_cpus: Some("1".into()),
        cpuset_mems: Some("0".into()),
        memory_reservation: Some(64 << 20),
        swappiness: Some(10),
    };
    Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "2-oc", &Limits::for_container(&r)).unwrap();
    assert_eq!(tree.get(&at("cpu,cpuacct", "2-oc", "cpu.cfs_quota_us")).unwrap(), "50000");
    assert_eq!(tree.get(&at("cpu,cpuacct", "2-oc", "cpu.cfs_period_us")).unwrap(), "200000");
    assert_eq!(tree.get(&at("cpu,cpuacct", "2-oc", "cpu.shares")).unwrap(), "512");
    assert_eq!(tree.get(&at("cpuset", "2-oc", "cpuset.cpus")).unwrap(), "1");
    assert_eq!(tree.get(&at("memory", "2-oc", "memory.soft_limit_in_bytes")).unwrap(), (64u64 << 20).to_string());
    assert_eq!(tree.get(&at("memory", "2-oc", "memory.swappiness")).unwrap(), "10");
    assert_eq!(tree.get(&at("pids", "2-oc", "pids.max")).unwrap(), "99");
}

// Catches: a failed creation leaving directories behind (they would pile up, one per failed
// start), and an error that does not say what to mount.
#[test]
fn v1_a_failed_creation_leaves_nothing_and_says_what_is_missing() {
    let tree = Arc::new(FakeTree::v1(&[("/cg/memory", "memory"), ("/cg/cpu", "cpu"), ("/cg/pids", "pids")], false));
    let r = Resources { cpuset_cpus: Some("0".into()), ..Resources::default() };
    let err =
        Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox", "4-xx", &Limits::for_container(&r)).err().unwrap();
    assert!(err.to_string().contains("cpuset controller is not mounted"), "{err}");
    for h in ["memory", "cpu", "pids"] {
        assert!(!tree.is_dir(&format!("/cg/{h}/fnbox/4-xx")), "{h} left behind");
    }
    // A required controller missing: refused before anything is made.
    let tree = Arc::new(FakeTree::v1(&[("/cg/memory", "memory"), ("/cg/cpu", "cpu")], false));
    let err = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox", "4-xx", &tier(128, 64)).err().unwrap();
    assert!(err.to_string().contains("'pids' controller is not mounted"), "{err}");
    assert!(!tree.is_dir("/cg/memory/fnbox"));
}

// Catches: v1's counters read from v2's files, or a key matched by prefix (`rss_huge` and
// `total_rss` for `rss`, `oom_kill_disable` for `oom_kill`).
#[test]
fn v1_reports_usage_peak_and_oom_kills() {
    let tree = host(true);
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "6-ij", &tier(128, 64)).unwrap();
    assert_eq!((cg.oom_kills(), cg.memory_peak()), (0, Some(0)), "a new cgroup");
    tree.set(&at("memory", "6-ij", "memory.usage_in_bytes"), "4096\n");
    tree.set(&at("memory", "6-ij", "memory.max_usage_in_bytes"), "8192\n");
    tree.set(&at("memory", "6-ij", "memory.failcnt"), "17\n");
    tree.set(&at("memory", "6-ij", "memory.oom_control"), "oom_kill_disable 1\nunder_oom 0\noom_kill 3\n");
    tree.set(
        &at("memory", "6-ij", "memory.stat"),
        "cache 10\nrss_huge 777\nrss 1024\nshmem 2048\nmapped_file 0\ntotal_rss 99999\ntotal_shmem 88888\n",
    );
    assert_eq!(cg.oom_kills(), 3);
    assert_eq!(cg.memory_now(), MemoryUse { total: 4096, in_memory_files: 2048, anon: 1024 });
    assert_eq!(cg.memory_peak(), Some(8192));
}

// Catches: a process joining only some hierarchies (then the memory limit, say, does not
// hold it), the process list read from a hierarchy it did not join, and a removal that
// leaves one hierarchy's directory or takes the shared parent with it.
#[test]
fn v1_add_pid_joins_every_hierarchy_and_destroy_removes_them_all() {
    let tree = host(false);
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "8-kl", &tier(128, 64)).unwrap();
    cg.add_pid(4242).unwrap();
    for h in HIERARCHIES {
        assert_eq!(tree.get(&at(h, "8-kl", "cgroup.procs")).unwrap(), "4242\n", "{h}");
    }
    assert_eq!(cg.pids(), vec![4242]);
    // The process exited (and never was a real one: `destroy` kills what it finds).
    for h in HIERARCHIES {
        tree.set(&at(h, "8-kl", "cgroup.procs"), "");
    }
    cg.destroy().unwrap();
    for h in HIERARCHIES {
        assert!(!tree.is_dir(&format!("/cg/{h}/fnbox/serve/8-kl")), "{h} left behind");
        assert!(tree.is_dir(&format!("/cg/{h}/fnbox/serve")), "{h}: the shared parent stays");
    }
    // Re-opened after a crash, the same directories are found.
    let again = Cgroup::open(&tree.v1_layout(), tree.clone(), "fnbox/serve", "8-kl");
    let mut dirs = again.dirs();
    dirs.sort();
    assert_eq!(
        dirs,
        HIERARCHIES.iter().map(|h| PathBuf::from(format!("/cg/{h}/fnbox/serve/8-kl"))).collect::<Vec<_>>()
    );
    again.destroy().expect("destroying what is already gone is fine");
}

// Catches: a function's sandbox, which skips the controllers only containers use
// (`Layout::without`, as `Sandbox::start` asks), losing the CPU limit with them when cpu is
// co-mounted with the skipped cpuacct, or still making freezer and cpuset directories; and
// the stale reaper, which re-opens a cgroup with the host's full layout, failing on the
// directories that were never made.
#[test]
fn v1_a_functions_cgroup_skips_the_container_controllers_but_not_its_cpu_limit() {
    let tree = host(false);
    let full = tree.v1_layout();
    let layout = full.without(&["freezer", "cpuacct", "cpuset"]);
    let cg = Cgroup::create(&layout, tree.clone(), "fnbox/serve", "5-fn", &tier(256, 64)).unwrap();
    let mut dirs = cg.dirs();
    dirs.sort();
    let want: Vec<PathBuf> =
        ["cpu,cpuacct", "memory", "pids"].iter().map(|h| format!("/cg/{h}/fnbox/serve/5-fn").into()).collect();
    assert_eq!(dirs, want);
    assert_eq!(tree.get(&at("cpu,cpuacct", "5-fn", "cpu.cfs_quota_us")).unwrap(), "14000");
    assert_eq!(cg.cpu_quota_us(), Some(14_000));
    for h in ["freezer", "cpuset"] {
        assert!(!tree.is_dir(&format!("/cg/{h}/fnbox/serve/5-fn")), "{h} made for a function");
    }
    cg.add_pid(77).unwrap();
    assert_eq!(cg.pids(), vec![77]);
    for h in ["cpu,cpuacct", "memory", "pids"] {
        tree.set(&at(h, "5-fn", "cgroup.procs"), "");
    }
    Cgroup::open(&full, tree.clone(), "fnbox/serve", "5-fn").destroy().expect("reaped with the full layout");
    for h in HIERARCHIES {
        assert!(!tree.is_dir(&format!("/cg/{h}/fnbox/serve/5-fn")), "{h} left behind");
    }
}

// Catches: pause/resume writing the wrong state or not reading it back, and a host without
// the freezer failing with an error that does not say what to mount.
#[test]
fn v1_freezer_pauses_and_resumes() {
    let tree = host(false);
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox/serve", "1-fr", &tier(128, 64)).unwrap();
    assert!(!cg.frozen());
    cg.freeze(true).unwrap();
    assert_eq!(tree.get(&at("freezer", "1-fr", "freezer.state")).unwrap(), "FROZEN");
    assert!(cg.frozen());
    cg.freeze(false).unwrap();
    assert!(!cg.frozen());
    let tree = Arc::new(FakeTree::v1(&[("/cg/memory", "memory"), ("/cg/cpu", "cpu"), ("/cg/pids", "pids")], false));
    let cg = Cgroup::create(&tree.v1_layout(), tree.clone(), "fnbox", "1-fr", &tier(128, 64)).unwrap();
    let err = cg.freeze(true).err().unwrap();
    assert!(err.to_string().contains("'freezer' controller is not mounted"), "{err}");
}

// Catches: co-mounted controllers (`rw,cpu,cpuacct` in one mount's options) not both found,
// which would make the sandbox's CPU limit go to a directory that is never created.
#[test]
fn v1_layout_finds_co_mounted_controllers() {
    let info = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
";
    let Layout::V1 { controllers } = Layout::from_mountinfo(info).unwrap() else { panic!("expected v1") };
    let mount = |c: &str| controllers.iter().find(|(n, _)| n == c).map(|(_, m)| m.clone());
    assert_eq!(mount("cpu"), Some("/sys/fs/cgroup/cpu,cpuacct".into()));
    assert_eq!(mount("cpuacct"), Some("/sys/fs/cgroup/cpu,cpuacct".into()));
    assert!(!controllers.iter().any(|(n, _)| n.contains("systemd")));
}

/// Real cgroups made by a test, removed on drop (the sandboxes', then their parent).
struct RealCgroups {
    layout: Layout,
    parent: String,
    names: Vec<String>,
}

impl Drop for RealCgroups {
    fn drop(&mut self) {
        let open = |parent: &str, name: &str| Cgroup::open(&self.layout, Arc::new(HostCgroupFs), parent, name);
        for n in &self.names {
            let _ = open(&self.parent, n).destroy();
        }
        let _ = open("", &self.parent).destroy();
    }
}

/// A `sleep` child, killed and reaped on drop if the test did not see it die.
struct Sleeper(std::process::Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// The reaper against this host's real cgroup v1 hierarchies (root only; this project's
// machines run v1). Catches: a dead launcher's cgroup left behind in any hierarchy, what still
// runs in it left running, and a live sandbox's cgroup (its slot lock held) taken for dead.
#[test]
fn v1_reap_stale_removes_dead_sandboxes_cgroups_only() {
    if !root_or_skip("v1_reap_stale_removes_dead_sandboxes_cgroups_only") {
        return;
    }
    let layout = Layout::detect().unwrap();
    if !matches!(layout, Layout::V1 { .. }) {
        eprintln!("SKIPPED v1_reap_stale_removes_dead_sandboxes_cgroups_only: this host runs cgroup v2");
        return;
    }
    let tmp = TempDir::new("reap-v1");
    let paths = tmp.paths();
    // A parent of its own: the reaper only ever looks under the parent it is given. Slots far
    // above idmap::SLOTS belong to no real sandbox.
    let parent = format!("fnbox-unit-reap-{}", std::process::id());
    let fs: Arc<dyn super::CgroupFs> = Arc::new(HostCgroupFs);
    let (dead_slot, live_slot) = (900_000_001u32, 900_000_002u32);
    let names = [format!("{dead_slot}-dead"), format!("{live_slot}-live")];
    // Removes what the test made even when it fails half-way.
    let _cleanup = RealCgroups { layout: layout.clone(), parent: parent.clone(), names: names.to_vec() };
    let dead = Cgroup::create(&layout, fs.clone(), &parent, &names[0], &tier(128, 64)).unwrap();
    let live = Cgroup::create(&layout, fs.clone(), &parent, &names[1], &tier(128, 64)).unwrap();
    let mut sleeper = Sleeper(std::process::Command::new("sleep").arg("60").spawn().expect("run sleep"));
    dead.add_pid(sleeper.0.id() as i32).unwrap();
    let held = crate::idmap::IdRange::try_take(&paths, live_slot).expect("the live slot is free");

    let reaped = crate::launch::reap_stale(&paths, &layout, &parent);

    let status = (0..500).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        sleeper.0.try_wait().ok().flatten()
    });
    drop(held);
    let dead_left: Vec<PathBuf> = dead.dirs().into_iter().filter(|d| d.exists()).collect();
    let live_gone: Vec<PathBuf> = live.dirs().into_iter().filter(|d| !d.exists()).collect();
    assert_eq!(reaped, 1);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGKILL), "the dead sandbox's process was killed");
    assert!(dead_left.is_empty(), "left behind: {dead_left:?}");
    assert!(live_gone.is_empty(), "a live sandbox's cgroup was removed: {live_gone:?}");
}
