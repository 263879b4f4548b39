//! cgroup v2: one unified directory per sandbox.

use super::v1::io_err;
use super::{keyed_value, CgroupFs, Limits, MemoryUse};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

const CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

pub struct CgroupV2 {
    pub dir: PathBuf,
}

impl CgroupV2 {
    pub fn open(root: &Path, parent: &str, name: &str) -> Self {
        Self { dir: root.join(parent).join(name) }
    }

    pub fn create(fs: &dyn CgroupFs, root: &Path, parent: &str, name: &str, limits: &Limits) -> Result<Self> {
        let available = fs
            .read(&root.join("cgroup.controllers"))
            .map_err(|e| io_err("read", &root.join("cgroup.controllers"), e))?;
        for c in CONTROLLERS {
            if !available.split_whitespace().any(|a| a == c) {
                return Err(Error::Cgroup(format!(
                    "the cgroup v2 '{c}' controller is not available in {}: enable it in the parent cgroup",
                    root.display()
                )));
            }
        }
        // Delegate the controllers down to the sandbox's directory: the root enables them for
        // the fnbox parent, the parent for each sandbox.
        enable_controllers(fs, root)?;
        let mut parent_dir = root.to_path_buf();
        for c in Path::new(parent).components() {
            parent_dir.push(c);
            fs.mkdir(&parent_dir).map_err(|e| io_err("create", &parent_dir, e))?;
            enable_controllers(fs, &parent_dir)?;
        }
        let cg = Self::open(root, parent, name);
        fs.mkdir(&cg.dir).map_err(|e| io_err("create", &cg.dir, e))?;
        if let Err(e) = cg.update(fs, limits) {
            let _ = fs.rmdir(&cg.dir);
            return Err(e);
        }
        Ok(cg)
    }

    /// Writes the limits (on creation, and to move a live sandbox to another tier).
    pub fn update(&self, fs: &dyn CgroupFs, limits: &Limits) -> Result<()> {
        self.set(fs, "memory.max", &v2_value(limits.memory_bytes))?;
        // No swap, and an OOM kills the whole sandbox rather than one process in it.
        if fs.exists(&self.dir.join("memory.swap.max")) {
            self.set(fs, "memory.swap.max", "0")?;
        }
        if fs.exists(&self.dir.join("memory.oom.group")) {
            self.set(fs, "memory.oom.group", "1")?;
        }
        self.set_cpu(fs, limits)?;
        self.set(fs, "pids.max", &v2_value(limits.pids_max))?;
        if let Some(r) = limits.memory_reservation {
            self.set(fs, "memory.low", &r.to_string())?;
        }
        if limits.swappiness.is_some() {
            return Err(Error::Cgroup(
                "memory.swappiness is a cgroup v1 setting; this host runs cgroup v2: leave linux.resources.memory.swappiness out".into(),
            ));
        }
        for (file, value) in [("cpuset.cpus", &limits.cpuset_cpus), ("cpuset.mems", &limits.cpuset_mems)] {
            if let Some(v) = value {
                if !fs.exists(&self.dir.join(file)) {
                    return Err(Error::Cgroup(format!(
                        "{file} is asked for but the cpuset controller is not enabled for {}: enable it in the parent's cgroup.subtree_control",
                        self.dir.display()
                    )));
                }
                self.set(fs, file, v)?;
            }
        }
        Ok(())
    }

    /// `cpu.max` and `cpu.weight` only (the kernel's default weight when `cpu_shares` is
    /// `None`).
    pub fn set_cpu(&self, fs: &dyn CgroupFs, limits: &Limits) -> Result<()> {
        self.set(fs, "cpu.max", &format!("{} {}", v2_value(limits.cpu_quota_us), limits.cpu_period_us))?;
        let weight = match limits.cpu_shares {
            // The conversion runc and the kubelet use from v1 shares to a v2 weight.
            Some(shares) => 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142,
            None => 100,
        };
        self.set(fs, "cpu.weight", &weight.to_string())
    }

    pub fn cpu_quota_us(&self, fs: &dyn CgroupFs) -> Option<u64> {
        let v = fs.read(&self.dir.join("cpu.max")).ok()?;
        match v.split_whitespace().next()? {
            "max" => Some(Limits::UNLIMITED),
            n => n.parse().ok(),
        }
    }

    fn set(&self, fs: &dyn CgroupFs, file: &str, value: &str) -> Result<()> {
        let p = self.dir.join(file);
        fs.write(&p, value).map_err(|e| io_err("write to", &p, e))
    }

    pub fn add_pid(&self, fs: &dyn CgroupFs, pid: i32) -> Result<()> {
        self.set(fs, "cgroup.procs", &pid.to_string())
    }

    pub fn oom_kills(&self, fs: &dyn CgroupFs) -> u64 {
        fs.read(&self.dir.join("memory.events")).ok().and_then(|s| keyed_value(&s, "oom_kill")).unwrap_or(0)
    }

    pub fn memory_now(&self, fs: &dyn CgroupFs) -> MemoryUse {
        let total = read_u64(fs, &self.dir.join("memory.current")).unwrap_or(0);
        let stat = fs.read(&self.dir.join("memory.stat")).unwrap_or_default();
        MemoryUse {
            total,
            in_memory_files: keyed_value(&stat, "shmem").unwrap_or(0),
            anon: keyed_value(&stat, "anon").unwrap_or(0),
        }
    }

    pub fn memory_peak(&self, fs: &dyn CgroupFs) -> Option<u64> {
        read_u64(fs, &self.dir.join("memory.peak"))
    }

    /// `cgroup.freeze`: freezes or thaws every process.
    pub fn freeze(&self, fs: &dyn CgroupFs, frozen: bool) -> Result<()> {
        self.set(fs, "cgroup.freeze", if frozen { "1" } else { "0" })
    }

    pub fn frozen(&self, fs: &dyn CgroupFs) -> bool {
        fs.read(&self.dir.join("cgroup.events")).ok().and_then(|s| keyed_value(&s, "frozen")) == Some(1)
    }

    /// `cgroup.kill` (Linux 5.14+); false when unavailable.
    pub fn kill(&self, fs: &dyn CgroupFs) -> bool {
        let p = self.dir.join("cgroup.kill");
        fs.exists(&p) && fs.write(&p, "1").is_ok()
    }
}

/// v2 spells "no limit" `max`.
fn v2_value(v: u64) -> String {
    if v == Limits::UNLIMITED {
        "max".into()
    } else {
        v.to_string()
    }
}

fn enable_controllers(fs: &dyn CgroupFs, dir: &Path) -> Result<()> {
    let p = dir.join("cgroup.subtree_control");
    let current = fs.read(&p).unwrap_or_default();
    let missing: Vec<String> =
        CONTROLLERS.iter().filter(|c| !current.split_whitespace().any(|a| a == **c)).map(|c| format!("+{c}")).collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs.write(&p, &missing.join(" ")).map_err(|e| io_err("enable controllers in", &p, e))
}

fn read_u64(fs: &dyn CgroupFs, p: &Path) -> Option<u64> {
    fs.read(p).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeTree;
    use super::super::{Cgroup, Layout};
    use super::*;

    fn layout() -> Layout {
        Layout::V2 { root: "/cg".into() }
    }

    #[test]
    fn v2_limits_are_written_where_the_kernel_reads_them() {
        let tree = FakeTree::new("/cg", "cpuset cpu io memory pids");
        let limits = Limits::for_tier(crate::spec::Tier::for_mb(512).unwrap(), 321);
        let cg = Cgroup::create(&layout(), tree.clone(), "fnbox", "sb1", &limits).unwrap();
        assert_eq!(cg.unified_dir(), Some(Path::new("/cg/fnbox/sb1")));
        assert_eq!(tree.get("/cg/cgroup.subtree_control").unwrap(), "memory cpu pids");
        assert_eq!(tree.get("/cg/fnbox/cgroup.subtree_control").unwrap(), "memory cpu pids");
        assert_eq!(tree.get("/cg/fnbox/sb1/memory.max").unwrap(), (512u64 << 20).to_string());
        assert_eq!(tree.get("/cg/fnbox/sb1/memory.swap.max").unwrap(), "0");
        assert_eq!(tree.get("/cg/fnbox/sb1/memory.oom.group").unwrap(), "1");
        assert_eq!(tree.get("/cg/fnbox/sb1/cpu.max").unwrap(), "28000 100000");
        assert_eq!(tree.get("/cg/fnbox/sb1/pids.max").unwrap(), "321");
    }

    #[test]
    fn v2_reports_oom_kills_and_memory() {
        let tree = FakeTree::new("/cg", "cpu memory pids");
        let limits = Limits::for_tier(crate::spec::Tier::for_mb(128).unwrap(), 64);
        let cg = Cgroup::create(&layout(), tree.clone(), "fnbox", "sb2", &limits).unwrap();
        tree.write(Path::new("/cg/fnbox/sb2/memory.events"), "oom 2\noom_kill 1\n").unwrap();
        tree.write(Path::new("/cg/fnbox/sb2/memory.current"), "4096").unwrap();
        tree.write(Path::new("/cg/fnbox/sb2/memory.stat"), "anon 1024\nfile 0\nshmem 2048\n").unwrap();
        tree.write(Path::new("/cg/fnbox/sb2/memory.peak"), "8192").unwrap();
        assert_eq!(cg.oom_kills(), 1);
        assert_eq!(cg.memory_now(), MemoryUse { total: 4096, in_memory_files: 2048, anon: 1024 });
        assert_eq!(cg.memory_peak(), Some(8192));
    }

    #[test]
    fn v2_missing_controller_is_a_clear_error() {
        let tree = FakeTree::new("/cg", "cpu pids");
        let limits = Limits::for_tier(crate::spec::Tier::for_mb(128).unwrap(), 64);
        let err = Cgroup::create(&layout(), tree, "fnbox", "sb3", &limits).err().unwrap().to_string();
        assert!(err.contains("'memory' controller is not available"), "{err}");
    }

    #[test]
    fn v2_destroy_removes_the_directory_and_add_pid_joins() {
        let tree = FakeTree::new("/cg", "cpu memory pids");
        let limits = Limits::for_tier(crate::spec::Tier::for_mb(128).unwrap(), 64);
        let cg = Cgroup::create(&layout(), tree.clone(), "fnbox", "sb4", &limits).unwrap();
        cg.add_pid(4242).unwrap();
        assert_eq!(cg.pids(), vec![4242]);
        // Emulate the process having exited, then destroy.
        tree.set("/cg/fnbox/sb4/cgroup.procs", "");
        cg.destroy().unwrap();
        assert!(!tree.exists(Path::new("/cg/fnbox/sb4")));
        assert!(tree.exists(Path::new("/cg/fnbox")), "the shared parent stays");
    }
}
