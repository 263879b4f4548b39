//! A fake cgroup filesystem for unit tests, in either layout, that behaves like the kernel's
//! where fnbox relies on it (see docs/architecture.md, "Unit-test fakes"):
//!
//! * `mkdir` needs the parent to exist and creates the interface files of the hierarchy's
//!   controllers (v2: the unified set; v1: the files of the controllers mounted there, so a
//!   co-mounted `cpu,cpuacct` directory has both). Nothing else can be created: writing a file
//!   that does not exist fails with `ENOENT`, as on cgroupfs.
//! * v2's `cgroup.subtree_control` takes `+ctrl` lists.
//! * v1 checks what the kernel checks: `memory.limit_in_bytes` may not exceed
//!   `memory.memsw.limit_in_bytes` nor the other way round (`EINVAL`), `-1` means no limit,
//!   numbers must be numbers (`max` in a v1 file is `EINVAL`), and a new cpuset directory with
//!   no CPUs or memory nodes refuses processes (`ENOSPC`).
//! * `rmdir` refuses a cgroup with processes or child cgroups (`EBUSY`).
//!
//! Tests change what the kernel would change (usage, OOM counts) with [`FakeTree::set`].

use super::CgroupFs;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What v1 shows for "no limit" in `memory.limit_in_bytes` (the page counter's maximum).
pub const V1_NO_LIMIT: &str = "9223372036854771712";

pub struct FakeTree {
    files: Mutex<BTreeMap<PathBuf, String>>,
    dirs: Mutex<Vec<PathBuf>>,
    /// v1: each hierarchy's mount and the controllers on it. Empty: v2.
    v1: Vec<(PathBuf, Vec<String>)>,
    /// v1: swap accounting is on (`memory.memsw.*` exist).
    memsw: bool,
}

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// v1 interface files of one controller, with the values a new cgroup starts with.
fn v1_files(controller: &str, memsw: bool) -> Vec<(&'static str, &'static str)> {
    match controller {
        "memory" => {
            let mut f = vec![
                ("memory.limit_in_bytes", V1_NO_LIMIT),
                ("memory.soft_limit_in_bytes", V1_NO_LIMIT),
                ("memory.usage_in_bytes", "0"),
                ("memory.max_usage_in_bytes", "0"),
                ("memory.failcnt", "0"),
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
                ("memory.stat", "cache 0\nrss 0\nshmem 0\n"),
                ("memory.swappiness", "60"),
                ("cgroup.event_control", ""),
            ];
            if memsw {
                f.push(("memory.memsw.limit_in_bytes", V1_NO_LIMIT));
                f.push(("memory.memsw.usage_in_bytes", "0"));
            }
            f
        }
        "cpu" => vec![("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "100000"), ("cpu.shares", "1024")],
        "cpuacct" => vec![("cpuacct.usage", "0")],
        "pids" => vec![("pids.max", "max"), ("pids.current", "0")],
        // A new cpuset cgroup starts with none (unless the parent sets clone_children).
        "cpuset" => vec![("cpuset.cpus", ""), ("cpuset.mems", "")],
        "freezer" => vec![("freezer.state", "THAWED")],
        _ => Vec::new(),
    }
}

const V2_FILES: [(&str, &str); 13] = [
    ("memory.max", "max"),
    ("memory.swap.max", "max"),
    ("memory.oom.group", "0"),
    ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
    ("memory.current", "0"),
    ("memory.peak", "0"),
    ("memory.stat", "anon 0\nshmem 0\n"),
    ("cpu.max", "max 100000"),
    ("cpu.weight", "100"),
    ("pids.max", "max"),
    ("cgroup.procs", ""),
    ("cgroup.subtree_control", ""),
    ("cgroup.kill", ""),
];

impl FakeTree {
    /// A v2 tree mounted at `root` offering `controllers` (`cgroup.controllers`).
    pub fn v2(root: &str, controllers: &str) -> Self {
        let t = Self { files: Mutex::default(), dirs: Mutex::new(vec![root.into()]), v1: Vec::new(), memsw: false };
        t.set(&format!("{root}/cgroup.controllers"), controllers);
        t.set(&format!("{root}/cgroup.subtree_control"), "");
        t
    }

    /// A v1 host: each `(mount, "ctrl,ctrl")` a hierarchy, its root holding the root cgroup's
    /// files (the cpuset root has CPUs `0-1` and memory node `0`). `memsw`: swap accounting on.
    pub fn v1(hierarchies: &[(&str, &str)], memsw: bool) -> Self {
        let v1: Vec<(PathBuf, Vec<String>)> =
            hierarchies.iter().map(|(m, c)| (PathBuf::from(m), c.split(',').map(String::from).collect())).collect();
        let t = Self { files: Mutex::default(), dirs: Mutex::default(), v1, memsw };
        for (mount, _) in &t.v1 {
            t.dirs.lock().unwrap().push(mount.clone());
            t.populate(mount);
        }
        for (mount, ctrls) in &t.v1 {
            if ctrls.iter().any(|c| c == "cpuset") {
                t.set(&mount.join("cpuset.cpus").to_string_lossy(), "0-1\n");
                t.set(&mount.join("cpuset.mems").to_string_lossy(), "0\n");
            }
        }
        t
    }

    /// [`FakeTree::v2`], shared.
    pub fn new(root: &str, controllers: &str) -> Arc<Self> {
        Arc::new(Self::v2(root, controllers))
    }

    /// A v1 host with one hierarchy per controller, each mounted at `root/<controller>`, and
    /// its layout.
    pub fn v1_each(root: &str, controllers: &[&str]) -> (Arc<Self>, super::Layout) {
        let mounts: Vec<(String, &str)> = controllers.iter().map(|c| (format!("{root}/{c}"), *c)).collect();
        let list: Vec<(&str, &str)> = mounts.iter().map(|(m, c)| (m.as_str(), *c)).collect();
        let t = Self::v1(&list, false);
        let layout = t.v1_layout();
        (Arc::new(t), layout)
    }

    /// The `Layout` of a v1 tree, as `Layout::from_mountinfo` lists it: one entry per
    /// controller (co-mounted ones share a mount).
    pub fn v1_layout(&self) -> super::Layout {
        let controllers = self.v1.iter().flat_map(|(m, cs)| cs.iter().map(move |c| (c.clone(), m.clone()))).collect();
        super::Layout::V1 { controllers }
    }

    fn populate(&self, dir: &Path) {
        let mut f = self.files.lock().unwrap();
        match self.v1.iter().find(|(m, _)| dir.starts_with(m)) {
            Some((_, ctrls)) => {
                for (file, v) in ctrls.iter().flat_map(|c| v1_files(c, self.memsw)) {
                    f.insert(dir.join(file), v.into());
                }
                for file in ["cgroup.procs", "tasks", "notify_on_release"] {
                    f.insert(dir.join(file), String::new());
                }
            }
            None => {
                for (file, v) in V2_FILES {
                    f.insert(dir.join(file), v.into());
                }
            }
        }
    }

    /// A file's content.
    pub fn get(&self, p: &str) -> Option<String> {
        self.files.lock().unwrap().get(Path::new(p)).cloned()
    }

    /// Sets a file as the kernel would (usage, counters), bypassing the write rules.
    pub fn set(&self, p: &str, value: &str) {
        self.files.lock().unwrap().insert(p.into(), value.into());
    }

    pub fn is_dir(&self, p: &str) -> bool {
        self.dirs.lock().unwrap().iter().any(|d| d == Path::new(p))
    }

    /// The v1 rules for a value written to `path` (see the module doc).
    fn v1_check(files: &BTreeMap<PathBuf, String>, path: &Path, value: &str) -> io::Result<String> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let dir = path.parent().unwrap_or(Path::new("/"));
        let number = |v: &str| v.trim().parse::<u64>().map_err(|_| err(libc::EINVAL));
        // -1 (no limit) reads back as the page counter's maximum.
        let bytes = |v: &str| if v.trim() == "-1" { Ok(V1_NO_LIMIT.parse().unwrap()) } else { number(v) };
        let current = |f: &str| files.get(&dir.join(f)).and_then(|v| v.trim().parse::<u64>().ok());
        match name {
            "memory.limit_in_bytes" => {
                let v = bytes(value)?;
                if current("memory.memsw.limit_in_bytes").is_some_and(|sw| v > sw) {
                    return Err(err(libc::EINVAL));
                }
                Ok(v.to_string())
            }
            "memory.memsw.limit_in_bytes" => {
                let v = bytes(value)?;
                if current("memory.limit_in_bytes").is_some_and(|mem| v < mem) {
                    return Err(err(libc::EINVAL));
                }
                Ok(v.to_string())
            }
            "memory.soft_limit_in_bytes" => Ok(bytes(value)?.to_string()),
            "memory.swappiness" => match number(value)? {
                v @ 0..=100 => Ok(v.to_string()),
                _ => Err(err(libc::EINVAL)),
            },
            "cpu.cfs_quota_us" if value.trim() == "-1" => Ok("-1".into()),
            "cpu.cfs_quota_us" => match number(value)? {
                v if v >= 1000 => Ok(v.to_string()),
                _ => Err(err(libc::EINVAL)),
            },
            "cpu.cfs_period_us" => match number(value)? {
                v @ 1000..=1_000_000 => Ok(v.to_string()),
                _ => Err(err(libc::EINVAL)),
            },
            "cpu.shares" => Ok(number(value)?.max(2).to_string()),
            "pids.max" if value.trim() == "max" => Ok("max".into()),
            "pids.max" => Ok(number(value)?.to_string()),
            "freezer.state" => match value.trim() {
                s @ ("FROZEN" | "THAWED") => Ok(s.into()),
                _ => Err(err(libc::EINVAL)),
            },
            _ => Ok(value.to_string()),
        }
    }
}

impl CgroupFs for FakeTree {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files.lock().unwrap().get(path).cloned().ok_or_else(|| err(libc::ENOENT))
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut f = self.files.lock().unwrap();
        // cgroupfs has only the files the kernel made.
        let Some(old) = f.get(path).cloned() else { return Err(err(libc::ENOENT)) };
        let dir = path.parent().unwrap_or(Path::new("/"));
        if path.ends_with("cgroup.subtree_control") {
            let mut cur: Vec<String> = old.split_whitespace().map(String::from).collect();
            for tok in value.split_whitespace() {
                let name = tok.trim_start_matches('+').to_string();
                if !cur.contains(&name) {
                    cur.push(name);
                }
            }
            f.insert(path.to_path_buf(), cur.join(" "));
        } else if path.ends_with("cgroup.procs") || path.ends_with("tasks") {
            value.trim().parse::<i32>().map_err(|_| err(libc::EINVAL))?;
            // v1 cpuset: no CPUs or memory nodes, no processes.
            let empty = |file: &str| f.get(&dir.join(file)).is_some_and(|v| v.trim().is_empty());
            if empty("cpuset.cpus") || empty("cpuset.mems") {
                return Err(err(libc::ENOSPC));
            }
            let entry = f.entry(path.to_path_buf()).or_default();
            entry.push_str(value.trim());
            entry.push('\n');
        } else if !self.v1.is_empty() {
            let v = Self::v1_check(&f, path, value)?;
            f.insert(path.to_path_buf(), v);
        } else {
            f.insert(path.to_path_buf(), value.to_string());
        }
        Ok(())
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let mut d = self.dirs.lock().unwrap();
        if d.iter().any(|x| x == path) {
            return Ok(());
        }
        if !d.iter().any(|x| Some(x.as_path()) == path.parent()) {
            return Err(err(libc::ENOENT));
        }
        d.push(path.to_path_buf());
        drop(d);
        self.populate(path);
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        let mut d = self.dirs.lock().unwrap();
        if !d.iter().any(|x| x == path) {
            return Err(err(libc::ENOENT));
        }
        if d.iter().any(|x| x.parent() == Some(path)) {
            return Err(err(libc::EBUSY));
        }
        let mut f = self.files.lock().unwrap();
        let busy = |file: &str| f.get(&path.join(file)).is_some_and(|s| !s.trim().is_empty());
        if busy("cgroup.procs") || busy("tasks") {
            return Err(err(libc::EBUSY));
        }
        f.retain(|k, _| k.parent() != Some(path));
        d.retain(|x| x != path);
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.files.lock().unwrap().contains_key(path) || self.dirs.lock().unwrap().iter().any(|d| d == path)
    }
}
