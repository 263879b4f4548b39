//! cgroups: one per sandbox, holding its memory, CPU and pids limits.
//!
//! Both hierarchies are supported. cgroup v1 (one tree per controller) is what this project's
//! machines run; cgroup v2 (one unified tree) is what most production hosts run. The logic
//! talks to the filesystem through [`CgroupFs`], so both are unit-tested against a fake
//! tree without root (see `fake.rs`, and the tests in `v2.rs` and `v1_tests.rs`).

pub mod boost;
#[cfg(test)]
mod fake;
mod fs;
mod v1;
#[cfg(test)]
mod v1_tests;
mod v2;

pub use boost::CpuBoost;
pub use fs::{CgroupFs, HostCgroupFs};

use crate::error::{Error, Result};
use crate::spec::Tier;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The limits a sandbox's cgroup enforces. [`Limits::UNLIMITED`] in a field means no limit
/// (OCI containers may ask for none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    /// CPU time allowed per `cpu_period_us`, in microseconds.
    pub cpu_quota_us: u64,
    pub cpu_period_us: u64,
    pub pids_max: u64,
    /// Relative CPU weight in cgroup v1 `cpu.shares` units (2..262144); `None`: the default.
    pub cpu_shares: Option<u64>,
    /// OCI containers: `cpuset` CPUs and memory nodes (`0-3`, `0,2`); `None`: the parent's.
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// OCI containers: the memory reservation (v1's soft limit, v2's `memory.low`).
    pub memory_reservation: Option<u64>,
    /// OCI containers: v1's `memory.swappiness` (`None`: 0, fnbox's own setting).
    pub swappiness: Option<u64>,
}

impl Limits {
    pub const CPU_PERIOD_US: u64 = 100_000;
    /// cgroup v1's default `cpu.shares` (v2's default `cpu.weight`, 100, is what
    /// [`Limits::cpu_shares`] `None` writes there).
    pub const DEFAULT_SHARES: u64 = 1024;
    /// The lowest `cpu.shares` (v2 weight 1): CPU nothing else wants.
    pub const IDLE_SHARES: u64 = 2;
    pub const UNLIMITED: u64 = u64::MAX;

    /// The tier's memory, its CPU share as a CFS quota, and the pids limit.
    pub fn for_tier(tier: Tier, pids_max: u64) -> Self {
        Self {
            memory_bytes: tier.memory_bytes(),
            cpu_quota_us: tier.millicpu * Self::CPU_PERIOD_US / 1000,
            cpu_period_us: Self::CPU_PERIOD_US,
            pids_max,
            cpu_shares: None,
            cpuset_cpus: None,
            cpuset_mems: None,
            memory_reservation: None,
            swappiness: None,
        }
    }
}

impl Limits {
    /// The same limits with no CPU quota: the start-up boost (docs/architecture.md, "Start-up
    /// CPU boost"), at the lowest weight for `background` work. Memory and pids stay as they
    /// are.
    pub fn boosted(&self, background: bool) -> Self {
        let cpu_shares = if background { Some(Self::IDLE_SHARES) } else { self.cpu_shares };
        Self { cpu_quota_us: Self::UNLIMITED, cpu_shares, ..self.clone() }
    }

    /// An OCI container's own limits (unlimited where it sets none).
    pub fn for_container(r: &crate::spec::Resources) -> Self {
        Self {
            memory_bytes: r.memory_bytes.unwrap_or(Self::UNLIMITED),
            cpu_quota_us: r.cpu_quota_us.unwrap_or(Self::UNLIMITED),
            cpu_period_us: r.cpu_period_us.unwrap_or(Self::CPU_PERIOD_US),
            pids_max: r.pids_max.unwrap_or(Self::UNLIMITED),
            cpu_shares: r.cpu_shares,
            cpuset_cpus: r.cpuset_cpus.clone(),
            cpuset_mems: r.cpuset_mems.clone(),
            memory_reservation: r.memory_reservation,
            swappiness: r.swappiness,
        }
    }
}

/// Memory use of a cgroup, split the way a user needs to see why a sandbox was killed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryUse {
    /// All memory charged to the cgroup.
    pub total: u64,
    /// Of which: files in memory (tmpfs such as v2's `/tmp` and `/dev`, shared memory).
    pub in_memory_files: u64,
    /// Of which: anonymous process memory (heap, stacks).
    pub anon: u64,
}

/// Where the cgroup hierarchies are mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: a directory per controller (`memory`, `cpu`, `pids`, ...).
    V1 { controllers: Vec<(String, PathBuf)> },
    /// cgroup v2: one unified tree.
    V2 { root: PathBuf },
}

impl Layout {
    /// Reads `/proc/self/mountinfo` and picks the hierarchy that carries the memory
    /// controller: v2 when `/sys/fs/cgroup` is cgroup2 (or v1 has no memory controller), v1
    /// otherwise.
    pub fn detect() -> Result<Self> {
        Self::from_mountinfo(&mountinfo()?)
    }

    pub fn from_mountinfo(info: &str) -> Result<Self> {
        let mut v1 = Vec::new();
        let mut v2_root = None;
        for line in info.lines() {
            // fields: id parent maj:min root mountpoint options [optional...] - fstype source superopts
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mountpoint = left.split(' ').nth(4).unwrap_or_default();
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or_default();
            let superopts = r.nth(1).unwrap_or_default();
            match fstype {
                "cgroup2" if v2_root.is_none() || mountpoint == "/sys/fs/cgroup" => {
                    v2_root = Some(PathBuf::from(mountpoint));
                }
                "cgroup" => {
                    for opt in superopts.split(',') {
                        if matches!(opt, "memory" | "cpu" | "cpuacct" | "pids" | "freezer" | "cpuset") {
                            v1.push((opt.to_string(), PathBuf::from(mountpoint)));
                        }
                    }
                }
                _ => {}
            }
        }
        let v1_has_memory = v1.iter().any(|(c, _)| c == "memory");
        match v2_root {
            Some(root) if !v1_has_memory => Ok(Self::V2 { root }),
            _ if v1_has_memory => Ok(Self::V1 { controllers: v1 }),
            _ => Err(Error::Cgroup(
                "no cgroup hierarchy with the memory controller is mounted: mount cgroup2 at /sys/fs/cgroup".into(),
            )),
        }
    }
}

impl Layout {
    /// The same layout without the given v1 controllers (v2 is one directory: unchanged).
    pub fn without(&self, skip: &[&str]) -> Self {
        match self {
            Layout::V1 { controllers } => Layout::V1 {
                controllers: controllers.iter().filter(|(c, _)| !skip.contains(&c.as_str())).cloned().collect(),
            },
            v2 => v2.clone(),
        }
    }
}

/// This process's mount table, which [`Layout::from_mountinfo`] and [`tune_host`] read.
pub fn mountinfo() -> Result<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::Cgroup(format!("cannot read /proc/self/mountinfo: {e}")))
}

/// Host tuning for fast sandbox starts on cgroup v1 hosts.
///
/// Moving a process into a v1 cgroup takes the kernel's global threadgroup lock for writing,
/// which by default waits for an RCU grace period: 15-20 ms per sandbox on the machines we
/// measured. The cgroup2 `favordynmods` mount option switches that lock to favour such moves
/// (at a small cost to fork and exit). Its only v1-compatible switch is on the cgroup2 mount,
/// so when a v1 host also mounts cgroup2 (as systemd's hybrid layout does), fnbox turns it on
/// there. On pure cgroup v2 hosts nothing is needed: fnbox clones straight into the cgroup
/// (CLONE_INTO_CGROUP), which never moves a process.
///
/// `info` is this process's `/proc/self/mountinfo` (see [`mountinfo`]).
pub fn tune_host(layout: &Layout, info: &str) {
    if !matches!(layout, Layout::V1 { .. }) {
        return;
    }
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !right.starts_with("cgroup2 ") || right.contains("favordynmods") {
            continue;
        }
        // Keep the mount's other options (nsdelegate, ...): a remount resets what it omits.
        let mut opts: Vec<&str> = right
            .split(' ')
            .nth(2)
            .unwrap_or("")
            .split(',')
            .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
            .collect();
        opts.push("favordynmods");
        if let Some(mnt) = left.split(' ').nth(4) {
            let _ = crate::sys::mount::mount(None, Path::new(mnt), None, libc::MS_REMOUNT, Some(&opts.join(",")));
        }
        return;
    }
}

/// One sandbox's cgroup (a directory per v1 controller, or one v2 directory).
pub struct Cgroup {
    fs: Arc<dyn CgroupFs>,
    imp: Imp,
}

enum Imp {
    V1(v1::CgroupV1),
    V2(v2::CgroupV2),
}

impl Cgroup {
    /// Creates `<parent>/<name>` in every hierarchy and applies `limits`. On failure nothing
    /// is left behind.
    pub fn create(layout: &Layout, fs: Arc<dyn CgroupFs>, parent: &str, name: &str, limits: &Limits) -> Result<Self> {
        let imp = match layout {
            Layout::V1 { controllers } => Imp::V1(v1::CgroupV1::create(&*fs, controllers, parent, name, limits)?),
            Layout::V2 { root } => Imp::V2(v2::CgroupV2::create(&*fs, root, parent, name, limits)?),
        };
        Ok(Self { fs, imp })
    }

    /// Re-opens a cgroup created earlier (for cleaning up after a crash).
    pub fn open(layout: &Layout, fs: Arc<dyn CgroupFs>, parent: &str, name: &str) -> Self {
        let imp = match layout {
            Layout::V1 { controllers } => Imp::V1(v1::CgroupV1::open(controllers, parent, name)),
            Layout::V2 { root } => Imp::V2(v2::CgroupV2::open(root, parent, name)),
        };
        Self { fs, imp }
    }

    /// Changes the limits of a live cgroup.
    pub fn update(&self, limits: &Limits) -> Result<()> {
        match &self.imp {
            Imp::V1(c) => c.update(&*self.fs, limits),
            Imp::V2(c) => c.update(&*self.fs, limits),
        }
    }

    /// Writes only the CPU quota, period and weight of `limits` (`cpu.cfs_quota_us`,
    /// `cpu.cfs_period_us` and `cpu.shares` on v1, `cpu.max` and `cpu.weight` on v2): how a
    /// boosted sandbox gets its quota.
    pub fn set_cpu(&self, limits: &Limits) -> Result<()> {
        match &self.imp {
            Imp::V1(c) => c.set_cpu(&*self.fs, limits),
            Imp::V2(c) => c.set_cpu(&*self.fs, limits),
        }
    }

    /// The CPU quota in force, in microseconds per `cpu_period_us` ([`Limits::UNLIMITED`]
    /// for none), as the kernel reports it.
    pub fn cpu_quota_us(&self) -> Option<u64> {
        match &self.imp {
            Imp::V1(c) => c.cpu_quota_us(&*self.fs),
            Imp::V2(c) => c.cpu_quota_us(&*self.fs),
        }
    }

    /// The cgroup's directories (one per v1 controller, or the v2 one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.imp {
            Imp::V1(c) => c.dirs.iter().map(|(_, d)| d.clone()).collect(),
            Imp::V2(c) => vec![c.dir.clone()],
        }
    }

    /// The v2 directory, for `clone3(CLONE_INTO_CGROUP)`; `None` on v1.
    pub fn unified_dir(&self) -> Option<&Path> {
        match &self.imp {
            Imp::V1(_) => None,
            Imp::V2(c) => Some(&c.dir),
        }
    }

    pub fn add_pid(&self, pid: i32) -> Result<()> {
        match &self.imp {
            Imp::V1(c) => c.add_pid(&*self.fs, pid),
            Imp::V2(c) => c.add_pid(&*self.fs, pid),
        }
    }

    pub fn pids(&self) -> Vec<i32> {
        let procs = match &self.imp {
            Imp::V1(c) => c.procs_file(),
            Imp::V2(c) => c.dir.join("cgroup.procs"),
        };
        self.fs.read(&procs).map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect()).unwrap_or_default()
    }

    /// How many times the kernel's OOM killer killed a process in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        match &self.imp {
            Imp::V1(c) => c.oom_kills(&*self.fs),
            Imp::V2(c) => c.oom_kills(&*self.fs),
        }
    }

    pub fn memory_now(&self) -> MemoryUse {
        match &self.imp {
            Imp::V1(c) => c.memory_now(&*self.fs),
            Imp::V2(c) => c.memory_now(&*self.fs),
        }
    }

    /// Peak memory charged since creation, when the kernel tracks it.
    pub fn memory_peak(&self) -> Option<u64> {
        match &self.imp {
            Imp::V1(c) => c.memory_peak(&*self.fs),
            Imp::V2(c) => c.memory_peak(&*self.fs),
        }
    }

    /// A descriptor that becomes readable when the cgroup meets its memory limit and the OOM
    /// killer acts: a v1 OOM eventfd, or v2's `memory.events` (which signals changes as
    /// POLLPRI). `None` where neither is available.
    pub fn oom_watch(&self) -> Option<(std::os::fd::OwnedFd, i16)> {
        use std::os::fd::AsRawFd;
        match &self.imp {
            Imp::V1(c) => {
                let dir = c.dirs.iter().find(|(n, _)| n == "memory")?.1.clone();
                let ctl = crate::sys::openat(None, &dir.join("memory.oom_control"), libc::O_RDONLY, 0).ok()?;
                let efd = crate::sys::fd::eventfd_nonblocking().ok()?;
                let line = format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd());
                self.fs.write(&dir.join("cgroup.event_control"), &line).ok()?;
                Some((efd, libc::POLLIN))
            }
            Imp::V2(c) => {
                let fd = crate::sys::openat(None, &c.dir.join("memory.events"), libc::O_RDONLY, 0).ok()?;
                Some((fd, libc::POLLPRI))
            }
        }
    }

    /// Freezes (`pause`) or thaws (`resume`) every process of the cgroup.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match &self.imp {
            Imp::V1(c) => c.freeze(&*self.fs, frozen),
            Imp::V2(c) => c.freeze(&*self.fs, frozen),
        }
    }

    pub fn frozen(&self) -> bool {
        match &self.imp {
            Imp::V1(c) => c.frozen(&*self.fs),
            Imp::V2(c) => c.frozen(&*self.fs),
        }
    }

    /// Kills every process in the cgroup but the caller: an OCI runtime's supervisor lives in
    /// the cgroup of the container it supervises (see `crates/oci`).
    pub fn kill_all(&self) {
        let me = std::process::id() as i32;
        if let Imp::V2(c) = &self.imp {
            if !self.pids().contains(&me) && c.kill(&*self.fs) {
                return;
            }
        }
        for _ in 0..100 {
            let pids: Vec<i32> = self.pids().into_iter().filter(|p| *p != me).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = crate::sys::process::kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Kills what is left and removes the directories. Retries briefly while exiting tasks
    /// still hold the cgroup busy.
    pub fn destroy(&self) -> Result<()> {
        let dirs = self.dirs();
        let mut last_err = None;
        for attempt in 0..200 {
            last_err = None;
            for d in &dirs {
                match self.fs.rmdir(d) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => last_err = Some((d.clone(), e)),
                }
            }
            if last_err.is_none() {
                return Ok(());
            }
            if attempt % 10 == 0 {
                self.kill_all();
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        let (d, e) = last_err.expect("loop exits early on success");
        Err(Error::Cgroup(format!("cannot remove {}: {e}", d.display())))
    }
}

/// Parses `key value` lines (memory.stat, memory.events, memory.oom_control).
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
36 35 0:31 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
37 35 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 35 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 35 0:34 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const UNIFIED: &str = "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";

    #[test]
    fn hybrid_hosts_use_v1() {
        let l = Layout::from_mountinfo(HYBRID).unwrap();
        let Layout::V1 { controllers } = l else { panic!("expected v1") };
        assert!(controllers.contains(&("memory".into(), "/sys/fs/cgroup/memory".into())));
        assert!(controllers.contains(&("pids".into(), "/sys/fs/cgroup/pids".into())));
    }

    #[test]
    fn unified_hosts_use_v2() {
        assert_eq!(Layout::from_mountinfo(UNIFIED).unwrap(), Layout::V2 { root: "/sys/fs/cgroup".into() });
        assert!(Layout::from_mountinfo("").is_err());
    }

    #[test]
    fn tier_limits() {
        let l = Limits::for_tier(Tier::for_mb(128).unwrap(), 1024);
        assert_eq!((l.memory_bytes, l.cpu_quota_us, l.cpu_period_us), (128 << 20, 7000, 100_000));
        let l = Limits::for_tier(Tier::for_mb(4096).unwrap(), 1024);
        assert_eq!(l.cpu_quota_us, 224_000);
    }
}
