//! cgroup v1: one directory per controller.

use super::{keyed_value, CgroupFs, Limits, MemoryUse};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The controllers a sandbox needs, and the optional ones: CPU accounting, and the freezer
/// (`pause`/`resume` of OCI containers).
const REQUIRED: [&str; 3] = ["memory", "cpu", "pids"];
const OPTIONAL: [&str; 3] = ["cpuacct", "freezer", "cpuset"];

pub struct CgroupV1 {
    pub dirs: Vec<(String, PathBuf)>,
    /// The hierarchy mount of each entry of `dirs`.
    mounts: Vec<PathBuf>,
}

impl CgroupV1 {
    pub fn open(controllers: &[(String, PathBuf)], parent: &str, name: &str) -> Self {
        let mut dirs: Vec<(String, PathBuf)> = Vec::new();
        let mut mounts = Vec::new();
        for want in REQUIRED.iter().chain(OPTIONAL.iter()) {
            if let Some((_, mnt)) = controllers.iter().find(|(c, _)| c == want) {
                let dir = mnt.join(parent).join(name);
                // Co-mounted controllers (cpu,cpuacct) share a directory: keep it once.
                if !dirs.iter().any(|(_, d)| *d == dir) {
                    dirs.push((want.to_string(), dir));
                    mounts.push(mnt.clone());
                }
            }
        }
        Self { dirs, mounts }
    }

    pub fn create(
        fs: &dyn CgroupFs,
        controllers: &[(String, PathBuf)],
        parent: &str,
        name: &str,
        limits: &Limits,
    ) -> Result<Self> {
        for want in REQUIRED {
            if !controllers.iter().any(|(c, _)| c == want) {
                return Err(Error::Cgroup(format!(
                    "the cgroup v1 '{want}' controller is not mounted: mount it under /sys/fs/cgroup/{want}"
                )));
            }
        }
        let cg = Self::open(controllers, parent, name);
        let result = cg.make(fs, limits);
        if result.is_err() {
            for (_, d) in &cg.dirs {
                let _ = fs.rmdir(d);
            }
        }
        result.map(|()| cg)
    }

    fn make(&self, fs: &dyn CgroupFs, limits: &Limits) -> Result<()> {
        for ((_, dir), mnt) in self.dirs.iter().zip(&self.mounts) {
            // The parent may be nested (`fnbox/serve`): create each level below the mount.
            let rel = dir.strip_prefix(mnt).unwrap_or(dir);
            let mut p = mnt.clone();
            for c in rel.components() {
                p.push(c);
                fs.mkdir(&p).map_err(|e| io_err("create", &p, e))?;
                if fs.exists(&p.join("cpuset.cpus")) {
                    inherit_cpuset(fs, &p)?;
                }
            }
        }
        self.update(fs, limits)
    }

    /// Writes the limits (on creation, and to move a live sandbox to another tier).
    pub fn update(&self, fs: &dyn CgroupFs, limits: &Limits) -> Result<()> {
        let mem = self.dir("memory");
        let bytes = v1_value(limits.memory_bytes);
        // Swap off: memory+swap may not exceed memory. Absent when swap accounting is off,
        // in which case there is no swap to account for. The kernel wants memory <= memsw at
        // every step: raise memsw first when growing, lower memory first when shrinking.
        let memsw = mem.join("memory.memsw.limit_in_bytes");
        let has_memsw = fs.exists(&memsw);
        let growing = read_u64(fs, &mem.join("memory.limit_in_bytes")).is_some_and(|cur| limits.memory_bytes > cur);
        if has_memsw && growing {
            set(fs, &mem, "memory.memsw.limit_in_bytes", &bytes)?;
        }
        set(fs, &mem, "memory.limit_in_bytes", &bytes)?;
        if has_memsw && !growing {
            set(fs, &mem, "memory.memsw.limit_in_bytes", &bytes)?;
        }
        match limits.swappiness {
            Some(v) => set(fs, &mem, "memory.swappiness", &v.to_string())?,
            None => {
                let _ = fs.write(&mem.join("memory.swappiness"), "0");
            }
        }
        if let Some(r) = limits.memory_reservation {
            set(fs, &mem, "memory.soft_limit_in_bytes", &r.to_string())?;
        }
        let cpuset = self.dirs.iter().find(|(c, _)| c == "cpuset").map(|(_, d)| d.clone());
        for (file, value) in [("cpuset.cpus", &limits.cpuset_cpus), ("cpuset.mems", &limits.cpuset_mems)] {
            match (value, &cpuset) {
                (Some(v), Some(dir)) => set(fs, dir, file, v)?,
                (Some(_), None) => {
                    return Err(Error::Cgroup(format!(
                        "{file} is asked for but the cgroup v1 cpuset controller is not mounted: mount it under /sys/fs/cgroup/cpuset"
                    )))
                }
                (None, _) => {}
            }
        }
        self.set_cpu(fs, limits)?;
        let pids = if limits.pids_max == Limits::UNLIMITED { "max".to_string() } else { limits.pids_max.to_string() };
        set(fs, &self.dir("pids"), "pids.max", &pids)?;
        Ok(())
    }

    /// The CPU quota, period and shares only (the kernel's default shares when `None`).
    pub fn set_cpu(&self, fs: &dyn CgroupFs, limits: &Limits) -> Result<()> {
        let cpu = self.dir("cpu");
        set(fs, &cpu, "cpu.cfs_period_us", &limits.cpu_period_us.to_string())?;
        set(fs, &cpu, "cpu.cfs_quota_us", &v1_value(limits.cpu_quota_us))?;
        set(fs, &cpu, "cpu.shares", &limits.cpu_shares.unwrap_or(Limits::DEFAULT_SHARES).to_string())
    }

    pub fn cpu_quota_us(&self, fs: &dyn CgroupFs) -> Option<u64> {
        let v = fs.read(&self.dir("cpu").join("cpu.cfs_quota_us")).ok()?;
        match v.trim() {
            "-1" => Some(Limits::UNLIMITED),
            n => n.parse().ok(),
        }
    }

    fn dir(&self, controller: &str) -> PathBuf {
        self.dirs
            .iter()
            .find(|(c, _)| c == controller)
            .or_else(|| self.dirs.iter().find(|(c, _)| controller == "cpu" && c == "cpuacct"))
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    }

    /// Freezes or thaws every process (the freezer controller); waits until frozen.
    pub fn freeze(&self, fs: &dyn CgroupFs, frozen: bool) -> Result<()> {
        let Some((_, dir)) = self.dirs.iter().find(|(c, _)| c == "freezer") else {
            return Err(Error::Cgroup(
                "the cgroup v1 'freezer' controller is not mounted: mount it under /sys/fs/cgroup/freezer".into(),
            ));
        };
        let state = dir.join("freezer.state");
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..1000 {
            fs.write(&state, want).map_err(|e| io_err("write to", &state, e))?;
            if fs.read(&state).map(|s| s.trim() == want).unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(Error::Cgroup(format!("{} did not reach {want}", state.display())))
    }

    /// Whether the freezer holds the cgroup frozen.
    pub fn frozen(&self, fs: &dyn CgroupFs) -> bool {
        self.dirs
            .iter()
            .find(|(c, _)| c == "freezer")
            .and_then(|(_, d)| fs.read(&d.join("freezer.state")).ok())
            .is_some_and(|s| s.trim() == "FROZEN")
    }

    pub fn procs_file(&self) -> PathBuf {
        self.dir("memory").join("cgroup.procs")
    }

    pub fn add_pid(&self, fs: &dyn CgroupFs, pid: i32) -> Result<()> {
        for (_, d) in &self.dirs {
            let p = d.join("cgroup.procs");
            fs.write(&p, &pid.to_string()).map_err(|e| io_err("write to", &p, e))?;
        }
        Ok(())
    }

    pub fn oom_kills(&self, fs: &dyn CgroupFs) -> u64 {
        fs.read(&self.dir("memory").join("memory.oom_control"))
            .ok()
            .and_then(|s| keyed_value(&s, "oom_kill"))
            .unwrap_or(0)
    }

    pub fn memory_now(&self, fs: &dyn CgroupFs) -> MemoryUse {
        let mem = self.dir("memory");
        let total = read_u64(fs, &mem.join("memory.usage_in_bytes")).unwrap_or(0);
        let stat = fs.read(&mem.join("memory.stat")).unwrap_or_default();
        MemoryUse {
            total,
            in_memory_files: keyed_value(&stat, "shmem").unwrap_or(0),
            anon: keyed_value(&stat, "rss").unwrap_or(0),
        }
    }

    pub fn memory_peak(&self, fs: &dyn CgroupFs) -> Option<u64> {
        read_u64(fs, &self.dir("memory").join("memory.max_usage_in_bytes"))
    }
}

/// v1 spells "no limit" -1.
fn v1_value(v: u64) -> String {
    if v == Limits::UNLIMITED {
        "-1".into()
    } else {
        v.to_string()
    }
}

fn read_u64(fs: &dyn CgroupFs, p: &Path) -> Option<u64> {
    fs.read(p).ok()?.trim().parse().ok()
}

/// A new cpuset directory starts with no CPUs and no memory nodes, and takes no process until
/// it has some: it gets its parent's.
fn inherit_cpuset(fs: &dyn CgroupFs, dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if fs.read(&dir.join(file)).is_ok_and(|v| v.trim().is_empty()) {
            let v = fs.read(&parent.join(file)).map_err(|e| io_err("read", &parent.join(file), e))?;
            set(fs, dir, file, v.trim())?;
        }
    }
    Ok(())
}

fn set(fs: &dyn CgroupFs, dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    fs.write(&p, value).map_err(|e| io_err("write to", &p, e))
}

pub(super) fn io_err(what: &str, p: &Path, e: std::io::Error) -> Error {
    Error::Cgroup(format!("cannot {what} {}: {e}", p.display()))
}
