//! What an OCI bundle asks of a sandbox beyond fnbox's own options: the parts of a
//! container's `config.json` that the launcher and the sandbox's first process act on.
//! `crates/oci` translates `config.json` into these types; everything here is plain data.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A container: set on [`super::SandboxSpec::container`] when the sandbox runs an OCI bundle.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Container {
    /// Build everything, then hold the program just before `execve` until the launcher says
    /// start (`create` then `start`).
    pub hold: bool,
    /// Clone the sandbox's init as a sibling of the launcher (`CLONE_PARENT`), so that the
    /// launcher's parent, and the subreaper above it once that parent exits (containerd's
    /// shim), reaps the init and sees its exit as the container's, as with runc; the launcher
    /// watches it through its pidfd (docs/architecture.md, "OCI containers").
    #[serde(default)]
    pub sibling_init: bool,
    /// The root filesystem, written in place as the OCI spec says (`root.path`): no layer of
    /// fnbox's goes on top.
    pub root: ContainerRoot,
    pub readonly_root: bool,
    /// Mounts, in the order `config.json` lists them.
    pub mounts: Vec<Mount>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub net: Namespace,
    pub ipc: Namespace,
    pub uts: Namespace,
    /// `uid_map`/`gid_map` lines; empty: fnbox gives the sandbox its own host id range.
    pub uid_map: Vec<IdMapping>,
    pub gid_map: Vec<IdMapping>,
    pub resources: Resources,
    pub process: ProcessSettings,
    /// The bundle's seccomp profile: v1 runs it instead of its own (none when `None`), v2 with the Sentry's.
    pub seccomp: Option<crate::seccomp::profile::Profile>,
    /// `None`: keep the UTS namespace's name (a joined or shared namespace).
    pub hostname: Option<String>,
    /// The cgroup's path below each hierarchy's root, when the container names one.
    pub cgroup_path: Option<String>,
    /// `linux.sysctl`: paths below `/proc/sys` and their values, written in the container's
    /// namespaces before its masks and read-only paths are applied.
    pub sysctl: Vec<(String, String)>,
    /// `process.oomScoreAdj`, written for the program by the launcher (host root).
    pub oom_score_adj: Option<i32>,
    /// A Unix socket to send the terminal's master side to (`terminal: true`).
    pub console_socket: Option<PathBuf>,
}

/// A container's root filesystem (see docs/architecture.md, "OCI containers").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ContainerRoot {
    /// A directory, bound (idmapped) as the root itself.
    Dir(PathBuf),
    /// An overlay mount (containerd's overlay snapshotter): an overlay cannot be idmapped, its
    /// layers can, so the sandbox mounts a new overlay on the same layers, writing to the same
    /// upper directory. `upper` and `work` are siblings (one directory is idmapped for both).
    Overlay { upper: PathBuf, work: PathBuf, lowers: Vec<PathBuf> },
}

impl Default for ContainerRoot {
    fn default() -> Self {
        Self::Dir(PathBuf::from("/nonexistent"))
    }
}

impl ContainerRoot {
    /// Every directory it is made of.
    pub fn dirs(&self) -> Vec<&PathBuf> {
        match self {
            Self::Dir(d) => vec![d],
            Self::Overlay { upper, work, lowers } => [upper, work].into_iter().chain(lowers).collect(),
        }
    }
}

/// How the sandbox gets one of the namespaces an OCI spec may share.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Namespace {
    /// A new one, owned by the sandbox's user namespace.
    #[default]
    New,
    /// An existing one, by path (`/var/run/netns/cni-...`, `/proc/PID/ns/net`): joined by the
    /// launcher before the sandbox is cloned.
    Join(PathBuf),
    /// The launcher's own (the spec does not ask for one).
    Host,
}

/// One line of a `uid_map` or `gid_map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// Cgroup limits in the units OCI specs use; `None` leaves the kernel's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub memory_bytes: Option<u64>,
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub pids_max: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory_reservation: Option<u64>,
    pub swappiness: Option<u64>,
}

/// A mount of the container, applied inside its root before `pivot_root`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container.
    pub target: PathBuf,
    pub kind: MountKind,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MountKind {
    /// A host path, cloned (and idmapped) by the launcher.
    Bind {
        source: PathBuf,
        recursive: bool,
        readonly: bool,
        /// `MOUNT_ATTR_NOSUID | NODEV | NOEXEC` bits asked for.
        attrs: u64,
    },
    /// A filesystem mounted by the sandbox's first process (`proc`, `sysfs`, `tmpfs`,
    /// `devpts`, `mqueue`, `cgroup`, ...).
    Fs { fstype: String, source: String, flags: u64, data: String },
}

/// Who the program runs as and with what.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessSettings {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    /// `None`: Docker's default set.
    pub caps: Option<CapSets>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privs: bool,
    /// Give the program a terminal (its master side goes to the console socket).
    pub terminal: bool,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        Self {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            umask: None,
            caps: None,
            rlimits: Vec::new(),
            no_new_privs: true,
            terminal: false,
        }
    }
}

/// Capability sets as bit masks (bit N = capability N).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_*` number.
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}
