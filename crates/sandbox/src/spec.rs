//! What to run and under which limits: the input every sandbox kind takes.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod container;
pub use container::{CapSets, Container, IdMapping, Mount, MountKind, Namespace, ProcessSettings, Resources, Rlimit};

/// Which sandbox runs the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    /// Namespaces, cgroups and a seccomp denylist: the full Linux syscall interface.
    V1,
    /// The same walls plus the Sentry, a user-space kernel that implements a documented
    /// selection of syscalls.
    V2,
}

impl std::str::FromStr for SandboxKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "v1" | "container" => Ok(Self::V1),
            "v2" | "sentry" => Ok(Self::V2),
            _ => Err(Error::Invalid(format!("sandbox '{s}' does not exist: use v1 or v2"))),
        }
    }
}

impl std::fmt::Display for SandboxKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        })
    }
}

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

/// A host path made visible inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    pub readonly: bool,
}

impl Bind {
    /// Parses `SRC[:DST][:ro|:rw]`.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts: Vec<&str> = s.split(':').collect();
        let mut readonly = false;
        if parts.len() > 1 && matches!(*parts.last().unwrap_or(&""), "ro" | "rw") {
            readonly = parts.pop() == Some("ro");
        }
        let (src, dst) = match parts.as_slice() {
            [src] => (*src, *src),
            [src, dst] => (*src, *dst),
            _ => return Err(Error::BadBind(s.to_string())),
        };
        if src.is_empty() || !dst.starts_with('/') {
            return Err(Error::BadBind(s.to_string()));
        }
        let source = PathBuf::from(src);
        if !source.exists() {
            return Err(Error::BindSourceMissing(source));
        }
        let source = source.canonicalize().unwrap_or(source);
        let target = normalize_abs(Path::new(dst)).ok_or_else(|| Error::BadBind(s.to_string()))?;
        if target == Path::new("/") {
            return Err(Error::BadBind(s.to_string()));
        }
        Ok(Self { source, target, readonly })
    }
}

/// Lexically normalises an absolute path (`.`, `..`, repeated slashes); `None` if relative.
pub fn normalize_abs(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Some(out)
}

/// A memory size from the tier table, and the CPU share that comes with it (**contract**,
/// DESIGN.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub memory_mb: u64,
    /// Thousandths of a vCPU.
    pub millicpu: u64,
}

pub const TIERS: [Tier; 7] = [
    Tier { memory_mb: 128, millicpu: 70 },
    Tier { memory_mb: 256, millicpu: 140 },
    Tier { memory_mb: 512, millicpu: 280 },
    Tier { memory_mb: 1024, millicpu: 560 },
    Tier { memory_mb: 2048, millicpu: 1120 },
    Tier { memory_mb: 3072, millicpu: 1680 },
    Tier { memory_mb: 4096, millicpu: 2240 },
];

impl Tier {
    /// The tier for a size in MiB, or the error naming the tiers.
    pub fn for_mb(mb: u64) -> Result<Self> {
        TIERS.iter().copied().find(|t| t.memory_mb == mb).ok_or(Error::NotATier { mb })
    }

    /// Parses `128`, `128M`, `128MB`, `128Mi`, `128MiB`, `1G`, `1GiB` (bare numbers are MiB).
    pub fn parse(s: &str) -> Result<Self> {
        let mb = parse_size_mb(s).ok_or_else(|| Error::BadMemory(s.to_string()))?;
        Self::for_mb(mb)
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory_mb << 20
    }
}

/// Parses a size with an optional K/M/G suffix into MiB (bare numbers are MiB). Sizes that
/// are not a whole number of MiB are rejected.
pub fn parse_size_mb(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mb = match unit {
        "" | "m" => n,
        "g" => n.checked_mul(1024)?,
        "k" if n.is_multiple_of(1024) => n / 1024,
        _ => return None,
    };
    Some(mb)
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
}

/// The descriptor a program finds its listening socket on (see [`SandboxSpec::listen_fd`]).
pub const LISTEN_FD: std::os::fd::RawFd = 3;

pub const DEFAULT_DISK_MB: u64 = 1024;
pub const DEFAULT_PIDS_MAX: u64 = 1024;
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
            binds: Vec::new(),
            hostname: "fnbox".to_string(),
            report: None,
            cgroup_parent: "fnbox".to_string(),
            container: None,
            listen_fd: None,
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
        if self.disk_bytes < (16 << 20) {
            return Err(Error::BadDisk(format!("{} bytes", self.disk_bytes)));
        }
        if self.pids_max < 8 {
            return Err(Error::Invalid(format!(
                "pids limit {} is too small to start a program: use 8 or more",
                self.pids_max
            )));
        }
        if let Some(c) = &self.container {
            if let Some(l) = c.layers.iter().find(|l| !l.is_dir()) {
                return Err(Error::ImageMissing(l.clone()));
            }
        }
        if let Image::Dir(d) = &self.image {
            if !d.is_dir() {
                return Err(Error::ImageMissing(d.clone()));
            }
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

/// Parses `KEY=VALUE`.
pub fn parse_env(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::BadEnv(s.to_string())),
    }
}

/// Reads `KEY=VALUE` lines from a file (blank lines and `#` comments skipped).
pub fn parse_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("cannot read the env file {}: {e}", path.display())))?;
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(parse_env)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_in_every_spelling() {
        for s in ["128", "128M", "128m", "128MB", "128Mi", "128MiB", "131072K"] {
            assert_eq!(Tier::parse(s).unwrap().memory_mb, 128, "{s}");
        }
        assert_eq!(Tier::parse("1G").unwrap().millicpu, 560);
        assert_eq!(Tier::parse("4GiB").unwrap().millicpu, 2240);
    }

    #[test]
    fn bad_memory_names_the_tiers() {
        let e = Tier::parse("100M").unwrap_err().to_string();
        assert!(e.contains("not a tier") && e.contains("128, 256"), "{e}");
        let e = Tier::parse("12Q").unwrap_err().to_string();
        assert!(e.contains("'12Q' is not a size"), "{e}");
        assert!(Tier::parse("").is_err());
        assert!(Tier::parse("M").is_err());
    }

    #[test]
    fn binds_parse() {
        let b = Bind::parse("/tmp:/data:ro").unwrap();
        assert_eq!((b.target.as_path(), b.readonly), (Path::new("/data"), true));
        let b = Bind::parse("/tmp").unwrap();
        assert_eq!((b.target.as_path(), b.readonly), (Path::new("/tmp"), false));
        assert!(matches!(Bind::parse("/does/not/exist"), Err(Error::BindSourceMissing(_))));
        assert!(matches!(Bind::parse("/tmp:relative"), Err(Error::BadBind(_))));
        assert!(matches!(Bind::parse("/tmp:/"), Err(Error::BadBind(_))));
    }

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
    fn normalize() {
        assert_eq!(normalize_abs(Path::new("/a/../../b/./c/")).unwrap(), Path::new("/b/c"));
        assert!(normalize_abs(Path::new("a")).is_none());
    }
}
