//! An in-memory cgroup filesystem for unit tests (v2 trees, and v1 ones: one directory per
//! controller mount, see [`FakeTree::v1`]).

use super::CgroupFs;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An in-memory cgroup v2 tree that behaves like the kernel's where fnbox relies on it:
/// `mkdir` creates the interface files, `subtree_control` accepts `+ctrl` lists, `rmdir`
/// refuses populated groups.
#[derive(Default)]
pub struct FakeTree {
    pub files: Mutex<BTreeMap<PathBuf, String>>,
    dirs: Mutex<Vec<PathBuf>>,
}

impl FakeTree {
    pub fn new(root: &str, controllers: &str) -> Arc<Self> {
        let t = Arc::new(Self::default());
        t.dirs.lock().unwrap().push(root.into());
        let mut f = t.files.lock().unwrap();
        f.insert(Path::new(root).join("cgroup.controllers"), controllers.into());
        f.insert(Path::new(root).join("cgroup.subtree_control"), String::new());
        drop(f);
        t
    }
    /// A cgroup v1 host: `root`/`<controller>` mounted for each of `controllers`; returns the
    /// tree and the layout naming those mounts.
    pub fn v1(root: &str, controllers: &[&str]) -> (Arc<Self>, super::Layout) {
        let t = Arc::new(Self::default());
        let mounts: Vec<(String, PathBuf)> =
            controllers.iter().map(|c| (c.to_string(), Path::new(root).join(c))).collect();
        t.dirs.lock().unwrap().extend(mounts.iter().map(|(_, d)| d.clone()));
        (t, super::Layout::V1 { controllers: mounts })
    }

    pub fn get(&self, p: &str) -> Option<String> {
        self.files.lock().unwrap().get(Path::new(p)).cloned()
    }
}

impl CgroupFs for FakeTree {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files.lock().unwrap().get(path).cloned().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut f = self.files.lock().unwrap();
        if !self.dirs.lock().unwrap().iter().any(|d| Some(d.as_path()) == path.parent()) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        if path.ends_with("cgroup.subtree_control") {
            let mut cur: Vec<String> =
                f.get(path).map(|s| s.split_whitespace().map(String::from).collect()).unwrap_or_default();
            for tok in value.split_whitespace() {
                let name = tok.trim_start_matches('+').to_string();
                if !cur.contains(&name) {
                    cur.push(name);
                }
            }
            f.insert(path.to_path_buf(), cur.join(" "));
        } else if path.ends_with("cgroup.procs") {
            let entry = f.entry(path.to_path_buf()).or_default();
            entry.push_str(value);
            entry.push('\n');
        } else {
            f.insert(path.to_path_buf(), value.to_string());
        }
        Ok(())
    }
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let mut d = self.dirs.lock().unwrap();
        if !d.iter().any(|x| x == path) {
            d.push(path.to_path_buf());
            let mut f = self.files.lock().unwrap();
            for (file, v) in [
                ("memory.max", "max"),
                ("memory.swap.max", "max"),
                ("memory.oom.group", "0"),
                ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
                ("memory.current", "0"),
                ("memory.peak", "0"),
                ("memory.stat", "anon 0\nshmem 0\n"),
                ("cpu.max", "max 100000"),
                ("pids.max", "max"),
                ("cgroup.procs", ""),
                ("cgroup.subtree_control", ""),
                ("cgroup.kill", ""),
            ] {
                f.insert(path.join(file), v.into());
            }
        }
        Ok(())
    }
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        let mut f = self.files.lock().unwrap();
        if f.get(&path.join("cgroup.procs")).is_some_and(|s| !s.trim().is_empty()) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        f.retain(|k, _| k.parent() != Some(path));
        self.dirs.lock().unwrap().retain(|d| d != path);
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        self.files.lock().unwrap().contains_key(path) || self.dirs.lock().unwrap().iter().any(|d| d == path)
    }
}
