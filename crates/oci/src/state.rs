//! A container's state under `--root`: one directory per container, holding `state.json`
//! (written atomically, read-modify-written under a lock) and the supervisor's control socket.
//! Every verb is a new process; this is what they share.

use crate::error::{Error, IoContext, Result};
use fnbox_sandbox::spec::{SandboxKind, SandboxSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// What the runtime last recorded about a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recorded {
    Creating,
    Created,
    Running,
    Stopped,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub kind: SandboxKind,
    pub status: Recorded,
    /// The per-container supervisor and its start time, so a recycled pid is never taken for
    /// it.
    pub supervisor: i32,
    pub supervisor_start: u64,
    /// Host pids of the program, the sandbox's init (the container's process: the pid `state`
    /// reports and `--pid-file` holds) and (v2) the Sentry.
    pub pid: i32,
    pub init_pid: i32,
    /// The init's start time (0: not known yet).
    #[serde(default)]
    pub init_start: u64,
    pub sentry_pid: Option<i32>,
    /// The cgroup below each hierarchy's root, and its directories.
    pub cgroup: String,
    pub cgroup_dirs: Vec<PathBuf>,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    pub exit_code: Option<i32>,
    pub spec: SandboxSpec,
    /// config.json's hooks: `poststart` and `poststop` run from later verbs.
    #[serde(default)]
    pub hooks: crate::config::Hooks,
}

/// The status `state` reports: the record checked against what runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
        }
    }
}

impl Record {
    pub fn status(&self) -> Status {
        // The init's end is the container's, as the shim sees it (it reaps the init), even
        // while the supervisor is still cleaning up.
        let init_ended = self.init_start != 0 && !alive(self.init_pid, self.init_start);
        if self.status == Recorded::Stopped || !alive(self.supervisor, self.supervisor_start) || init_ended {
            return Status::Stopped;
        }
        match self.status {
            Recorded::Creating => Status::Creating,
            Recorded::Created => Status::Created,
            _ if self.cgroup().is_some_and(|c| c.frozen()) => Status::Paused,
            _ => Status::Running,
        }
    }

    /// The container's cgroup, reopened.
    pub fn cgroup(&self) -> Option<fnbox_sandbox::cgroup::Cgroup> {
        let layout = fnbox_sandbox::cgroup::Layout::detect().ok()?;
        let (parent, name) = self.cgroup.rsplit_once('/').unwrap_or(("", &self.cgroup));
        Some(fnbox_sandbox::cgroup::Cgroup::open(
            &layout,
            std::sync::Arc::new(fnbox_sandbox::cgroup::HostCgroupFs),
            parent,
            name,
        ))
    }

    /// The OCI state document.
    pub fn oci_state(&self) -> serde_json::Value {
        self.oci_state_as(self.status())
    }

    /// The state `poststart` hooks are given: `running`, with the container's pid, as `start`
    /// left it. A short program may have ended before the hooks run; what they are told is
    /// that the start happened, not a race with its end (runc's hooks see `running` too).
    pub fn oci_state_started(&self) -> serde_json::Value {
        self.oci_state_as(Status::Running)
    }

    fn oci_state_as(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped { 0 } else { self.init_pid };
        serde_json::json!({
            "ociVersion": crate::OCI_VERSION,
            "id": self.id,
            "status": status.as_str(),
            "pid": pid,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
            "annotations": self.annotations,
        })
    }
}

/// State letter and start time (clock ticks since boot) of a process, from `/proc/PID/stat`.
fn stat(pid: i32) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')': the state
    // first, starttime (field 22) the 20th.
    let mut f = stat.rsplit_once(')')?.1.split_whitespace();
    let state = f.next()?.to_string();
    Some((state, f.nth(18)?.parse().ok()?))
}

/// Start time (clock ticks since boot) of a process.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// True when `pid` runs and is the process that started at `start` (not a zombie).
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && stat(pid).is_some_and(|(state, t)| state != "Z" && state != "X" && t == start)
}

/// One container's directory.
pub struct StateDir {
    pub id: String,
    pub dir: PathBuf,
}

fn valid_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!("container id '{id}' is not valid: use letters, digits, '_', '.', '-' and '+'")))
    }
}

impl StateDir {
    /// Makes the directory of a new container; fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        valid_id(id)?;
        // As runc: created private when missing; an existing root (containerd's) is left as it is.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .what(|| format!("cannot create the state root {}", root.display()))?;
        let dir = root.join(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(Self { id: id.into(), dir }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Exists(id.into())),
            Err(e) => Err(e).what(|| format!("cannot create {}", dir.display())),
        }
    }

    pub fn open(root: &Path, id: &str) -> Result<Self> {
        valid_id(id)?;
        let dir = root.join(id);
        if !dir.join("state.json").exists() {
            return Err(Error::NotFound(id.into()));
        }
        Ok(Self { id: id.into(), dir })
    }

    pub fn read(&self) -> Result<Record> {
        let p = self.dir.join("state.json");
        let text = std::fs::read(&p).map_err(|_| Error::NotFound(self.id.clone()))?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::Bundle(format!("{} is damaged ({e}): delete the container with --force", p.display())))
    }

    /// Writes the record atomically (a reader sees the old or the new one, never half).
    pub fn write(&self, r: &Record) -> Result<()> {
        let tmp = self.dir.join(format!(".state.{}.json", std::process::id()));
        let data = serde_json::to_vec(r).map_err(|e| Error::Bundle(format!("cannot encode the state: {e}")))?;
        std::fs::write(&tmp, data).what(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join("state.json")).what(|| format!("cannot update {}", self.dir.display()))
    }

    /// Read-modify-write under the directory's lock.
    pub fn update(&self, f: impl FnOnce(&mut Record)) -> Result<Record> {
        let lock =
            std::fs::File::create(self.dir.join("lock")).what(|| format!("cannot lock {}", self.dir.display()))?;
        fnbox_sandbox::sys::flock(&lock, true, false).what(|| format!("cannot lock {}", self.dir.display()))?;
        let mut r = self.read()?;
        f(&mut r);
        self.write(&r)?;
        Ok(r)
    }

    /// The supervisor's control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("ctl.sock")
    }

    pub fn remove(&self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).what(|| format!("cannot remove {}", self.dir.display()))
    }
}

/// `--pid-file`, written whole or not at all: the shim reads it as soon as the verb returns.
///
/// The caller names the path, which may be in a directory the container writes (a bind
/// mount, its rootfs), and `run` and `exec` write it while the container runs: the temporary
/// file is made new (`O_EXCL`), so a symlink planted at its predictable name is never
/// followed to a host file (it is removed first; one planted again in between fails the write).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let failed = |p: &Path| format!("cannot write the pid file {}", p.display());
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).what(|| failed(&tmp))?;
    f.write_all(pid.to_string().as_bytes()).what(|| failed(&tmp))?;
    std::fs::rename(&tmp, path).what(|| failed(path))
}

/// Now, as RFC 3339 in UTC with nanoseconds (what runc writes in `created`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_file_never_follows_a_symlink_planted_at_its_temporary_name() {
        let dir = std::env::temp_dir().join(format!("fnbox-oci-pidfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "host file").unwrap();
        let pid_file = dir.join("init.pid");
        // The name the writer uses: what a container sharing the directory can guess.
        let tmp = pid_file.with_extension(format!("tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let written = write_pid_file(&pid_file, 4242);
        let victim_after = std::fs::read_to_string(&victim).unwrap();
        let pid_after = std::fs::read_to_string(&pid_file);
        let pid_is_link = std::fs::symlink_metadata(&pid_file).is_ok_and(|m| m.file_type().is_symlink());
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(victim_after, "host file", "the pid file's write followed a planted symlink");
        written.unwrap();
        assert!(!pid_is_link);
        assert_eq!(pid_after.unwrap(), "4242");
    }

    #[test]
    fn ids_are_checked_and_taken_once() {
        let root = std::env::temp_dir().join(format!("fnbox-oci-state-{}", std::process::id()));
        assert!(StateDir::create(&root, "../x").is_err());
        assert!(StateDir::create(&root, "a/b").is_err());
        let d = StateDir::create(&root, "c1").unwrap();
        assert!(matches!(StateDir::create(&root, "c1"), Err(Error::Exists(_))));
        assert!(matches!(StateDir::open(&root, "c2"), Err(Error::NotFound(_))));
        d.remove().unwrap();
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn own_process_is_alive_and_time_is_rfc3339() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        assert!(alive(me, t) && !alive(me, t + 1) && !alive(0, 0));
        let now = now_rfc3339();
        assert_eq!(now.len(), 30, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
