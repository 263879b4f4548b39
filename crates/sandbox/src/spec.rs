//! What to run and under which limits: the input every sandbox kind takes. The parts with
//! rules of their own have their own modules: the kinds (`kind.rs`), binds and the kernel views
//! they may not reach (`bind.rs`), memory tiers (`tier.rs`), environment variables (`env.rs`)
//! and what an OCI bundle adds (`container.rs`).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::net::{Cidr, Network};

mod bind;
mod container;
mod env;
mod kind;
mod tier;
pub use bind::{normalize_abs, Access, Bind};
pub use container::{
    CapSets, Container, ContainerRoot, IdMapping, Mount, MountKind, Namespace, ProcessSettings, Resources, Rlimit,
};
pub use env::{check_env, check_env_name, check_env_value, encode_env_file, parse_env, parse_env_file};
pub use kind::SandboxKind;
pub use tier::{parse_size_mb, Tier, TIERS};

/// The root filesystem a sandbox starts from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Image {
    /// A read-only view of this machine's `/usr` with a small generated `/etc`.
    Host,
    /// A directory holding a root filesystem (an unpacked image).
    Dir(PathBuf),
}

impl Image {
    pub fn parse(s: &str) -> Result<Self> {
        if s == "host" {
            return Ok(Self::Host);
        }
        let p = PathBuf::from(s);
        if !p.is_dir() {
            return Err(Error::ImageMissing(p));
        }
        Ok(Self::Dir(p.canonicalize().unwrap_or(p)))
    }
}

/// Everything a sandbox needs to start a program.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub kind: SandboxKind,
    pub image: Image,
    /// The program and its arguments; `argv[0]` is looked up in `PATH` inside the sandbox.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub tier: Tier,
    /// Cap of the disk-backed writable layer, in bytes.
    pub disk_bytes: u64,
    pub pids_max: u64,
    pub timeout: Option<Duration>,
    /// Start without the CPU quota for at most this long, until the supervisor sends
    /// `throttle` (docs/architecture.md, "Start-up CPU boost"). Not for containers.
    #[serde(default)]
    pub cpu_boost: Option<Duration>,
    /// During the boost, the lowest CPU weight: work no one waits for (a pre-warmed sandbox).
    #[serde(default)]
    pub cpu_boost_background: bool,
    pub binds: Vec<Bind>,
    pub hostname: String,
    /// Where v2 writes its compatibility report, if asked.
    pub report: Option<PathBuf>,
    /// Parent cgroup (relative to each hierarchy's root) that holds fnbox's sandboxes.
    pub cgroup_parent: String,
    /// Set when the sandbox runs an OCI bundle (`fnbox-runc-v1`/`-v2`).
    #[serde(default)]
    pub container: Option<Box<Container>>,
    /// A descriptor of the launcher (a bound Unix socket) the program gets as
    /// [`LISTEN_FD`], named in `$FNBOX_LISTEN_FD`: a server listens on it without creating a
    /// socket file anywhere (so nothing outside the sandbox ever opens a path inside it).
    #[serde(skip)]
    pub listen_fd: Option<std::os::fd::RawFd>,
    /// Loopback only, or outbound network too (docs/architecture.md, "Network").
    #[serde(default)]
    pub network: Network,
    /// Ranges egress may reach although they are private (`--allow-net`).
    #[serde(default)]
    pub allow_net: Vec<Cidr>,
}

/// The descriptor a program finds its listening socket on (see [`SandboxSpec::listen_fd`]).
pub const LISTEN_FD: std::os::fd::RawFd = 3;

pub const DEFAULT_DISK_MB: u64 = 1024;
/// 16 TiB: the writable layer is a sparse file; past this a size is a typo.
pub const DISK_MAX_MB: u64 = 16 << 20;
pub const DEFAULT_PIDS_MAX: u64 = 1024;
/// The kernel's own ceiling on process ids (`PID_MAX_LIMIT`).
pub const PIDS_LIMIT: u64 = 4 << 20;
/// A year: longer timeouts are typos (and `1e30` seconds is no `Duration`).
pub const TIMEOUT_MAX_S: f64 = 365.0 * 86400.0;

/// A `--cpu-boost` in seconds, range-checked.
pub fn cpu_boost_from_secs(t: f64) -> Result<Duration> {
    let max = crate::cgroup::boost::MAX_WINDOW.as_secs_f64();
    if !(t.is_finite() && t > 0.0 && t <= max) {
        return Err(Error::Invalid(format!(
            "cpu boost {t} is not valid: give a number of seconds above 0 and at most {max}"
        )));
    }
    Ok(Duration::from_secs_f64(t))
}

/// A `--timeout` in seconds, range-checked.
pub fn timeout_from_secs(t: f64) -> Result<Duration> {
    if !(t.is_finite() && t > 0.0 && t <= TIMEOUT_MAX_S) {
        return Err(Error::Invalid(format!(
            "timeout {t} is not valid: give a number of seconds above 0 and at most {TIMEOUT_MAX_S} (a year)"
        )));
    }
    Ok(Duration::from_secs_f64(t))
}
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl SandboxSpec {
    /// A spec with fnbox's defaults for `argv`.
    pub fn new(kind: SandboxKind, argv: Vec<String>) -> Self {
        Self {
            kind,
            image: Image::Host,
            argv,
            env: Vec::new(),
            workdir: PathBuf::from("/"),
            tier: TIERS[1],
            disk_bytes: DEFAULT_DISK_MB << 20,
            pids_max: DEFAULT_PIDS_MAX,
            timeout: None,
            cpu_boost: None,
            cpu_boost_background: false,
            binds: Vec::new(),
            hostname: "fnbox".to_string(),
            report: None,
            cgroup_parent: "fnbox".to_string(),
            container: None,
            listen_fd: None,
            network: Network::None,
            allow_net: Vec::new(),
        }
    }

    /// Checks what can be checked before anything is created.
    pub fn validate(&self) -> Result<()> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(Error::NoProgram);
        }
        if !self.workdir.is_absolute() {
            return Err(Error::BadWorkdir(self.workdir.display().to_string()));
        }
        if self.disk_bytes < (16 << 20) || self.disk_bytes > (DISK_MAX_MB << 20) {
            return Err(Error::BadDisk(format!("{} bytes", self.disk_bytes)));
        }
        if !(8..=PIDS_LIMIT).contains(&self.pids_max) {
            return Err(Error::Invalid(format!(
                "pids limit {} is out of range: use 8 (enough to start a program) to {PIDS_LIMIT} (the kernel's limit)",
                self.pids_max
            )));
        }
        if let Some(c) = &self.container {
            if let Some(l) = c.root.dirs().into_iter().find(|l| !l.is_dir()) {
                return Err(Error::ImageMissing(l.clone()));
            }
        }
        if let Image::Dir(d) = &self.image {
            if !d.is_dir() {
                return Err(Error::ImageMissing(d.clone()));
            }
        }
        if !self.allow_net.is_empty() && self.network != Network::Egress {
            return Err(Error::Invalid(
                "--allow-net opens ranges to a sandbox's outbound network: add --network egress".into(),
            ));
        }
        for b in &self.binds {
            if !b.source.exists() {
                return Err(Error::BindSourceMissing(b.source.clone()));
            }
        }
        Ok(())
    }

    /// The program's environment: fnbox's defaults, overridden by the spec's entries (a
    /// container's environment is exactly what its `config.json` says).
    pub fn full_env(&self) -> Vec<(String, String)> {
        if self.container.is_some() {
            return self.env.clone();
        }
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), DEFAULT_PATH.into()),
            ("HOME".into(), "/root".into()),
            ("HOSTNAME".into(), self.hostname.clone()),
            ("LANG".into(), "C.UTF-8".into()),
        ];
        if let Ok(term) = std::env::var("TERM") {
            env.push(("TERM".into(), term));
        }
        if self.listen_fd.is_some() {
            env.push(("FNBOX_LISTEN_FD".into(), LISTEN_FD.to_string()));
        }
        for (k, v) in &self.env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults() {
        let mut s = SandboxSpec::new(SandboxKind::V1, vec!["true".into()]);
        s.env.push(parse_env("PATH=/x").unwrap());
        let env = s.full_env();
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(env.contains(&("PATH".into(), "/x".into())));
        assert!(parse_env("=x").is_err() && parse_env("novalue").is_err());
    }

    #[test]
    fn numbers_are_range_checked() {
        for bad in [0.0, -1.0, 1e30, f64::NAN, f64::INFINITY] {
            assert!(timeout_from_secs(bad).unwrap_err().to_string().contains("at most 31536000"), "{bad}");
        }
        assert_eq!(timeout_from_secs(1.5).unwrap(), Duration::from_millis(1500));
        let mut s = SandboxSpec::new(SandboxKind::V1, vec!["true".into()]);
        s.pids_max = u64::MAX;
        assert!(s.validate().unwrap_err().to_string().contains("out of range"));
        s.pids_max = 8;
        s.disk_bytes = (DISK_MAX_MB + 1) << 20;
        assert!(matches!(s.validate(), Err(Error::BadDisk(_))));
    }
}
