//! What to run and under which limits: the input every sandbox kind takes.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::net::{Cidr, Network};

mod container;
pub use container::{
    CapSets, Container, ContainerRoot, IdMapping, Mount, MountKind, Namespace, ProcessSettings, Resources, Rlimit,
};

/// Which sandbox runs the program. Written `v1`/`v2` everywhere (command lines, the
/// platform's registry and API); read with [`std::str::FromStr`], which also takes the old
/// names `container`/`sentry` and whose error names the value and the choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    /// Namespaces, cgroups and a seccomp denylist: the full Linux syscall interface.
    #[cfg_attr(feature = "clap", value(alias = "container"))]
    V1,
    /// The same walls plus the Sentry, a user-space kernel that implements a documented
    /// selection of syscalls.
    #[cfg_attr(feature = "clap", value(alias = "sentry"))]
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

impl SandboxKind {
    /// The name it is written with: `v1` or `v2`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

impl std::fmt::Display for SandboxKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Through [`std::str::FromStr`]: a stored or sent kind is read as a command line's is, and a
/// bad one is refused with the same message.
impl<'de> Deserialize<'de> for SandboxKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
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

/// How a bound directory may be written from inside the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// Writes reach the host directory.
    ReadWrite,
    ReadOnly,
    /// Writable, copy-on-write: the host directory is the read-only lower layer of an overlay
    /// whose upper layer is on the sandbox's own disk layer, so writes stay in the sandbox
    /// and are gone with it (how a function's code is writable per instance).
    CopyOnWrite,
}

impl Access {
    /// The byte that stands for it in the launcher's messages to the sandbox.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::ReadWrite => 0,
            Self::ReadOnly => 1,
            Self::CopyOnWrite => 2,
        }
    }

    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::ReadWrite,
            2 => Self::CopyOnWrite,
            _ => Self::ReadOnly,
        }
    }

    /// Whether the host directory itself is mounted read-only.
    pub fn source_readonly(self) -> bool {
        self != Self::ReadWrite
    }
}

/// A host path made visible inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    pub access: Access,
}

impl Bind {
    /// Parses `SRC[:DST][:ro|:rw|:cow]`.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts: Vec<&str> = s.split(':').collect();
        let mut access = Access::ReadWrite;
        if parts.len() > 1 {
            let mode = match *parts.last().unwrap_or(&"") {
                "ro" => Some(Access::ReadOnly),
                "rw" => Some(Access::ReadWrite),
                "cow" => Some(Access::CopyOnWrite),
                _ => None,
            };
            if let Some(m) = mode {
                access = m;
                parts.pop();
            }
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
        if kernel_view(&source) || normalize_abs(Path::new(src)).is_some_and(|p| kernel_view(&p)) {
            return Err(Error::BindKernelView(source));
        }
        // Binds are recursive: `/` would carry the host's /proc and /sys along.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if let Some((at, fs)) = kernel_view_within(&source, &mountinfo) {
            return Err(Error::BindHoldsKernelView { dir: source, at, fs });
        }
        let target = normalize_abs(Path::new(dst)).ok_or_else(|| Error::BadBind(s.to_string()))?;
        if target == Path::new("/") {
            return Err(Error::BadBind(s.to_string()));
        }
        if access == Access::CopyOnWrite && !source.is_dir() {
            return Err(Error::Invalid(format!(
                "bind '{s}': only a directory can be bound copy-on-write (:cow); bind a file with :ro or :rw"
            )));
        }
        Ok(Self { source, target, access })
    }
}

/// Is `p` (absolute, normalised) the host's `/proc`, `/sys`, `/dev` (device nodes, its ptys, the
/// shared memory of every host process) or `/run` (namespace handles, fnbox's run directory
/// with other sandboxes' sockets), or under them?
fn kernel_view(p: &Path) -> bool {
    ["/proc", "/sys", "/dev", "/run"].iter().any(|d| p.starts_with(d))
}

/// Filesystems that show, or let a sandbox reach, the host's processes, devices or kernel.
const KERNEL_FILESYSTEMS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "bpf",
    "configfs",
    "pstore",
    "efivarfs",
    "binfmt_misc",
    "fusectl",
    "devtmpfs",
    "devpts",
    "mqueue",
    "nsfs",
    "hugetlbfs",
    "autofs",
    "rpc_pipefs",
    "fuse.lxcfs",
];

/// The first mount at or under `source` (in `mountinfo`, `/proc/self/mountinfo`'s text) of
/// a filesystem that shows the host's processes or kernel, or that lies in its /proc or /sys:
/// (where, its type).
fn kernel_view_within(source: &Path, mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let at = PathBuf::from(unescape_mountinfo(mount.split(' ').nth(4)?));
        let fs = fs.split(' ').next()?;
        (at.starts_with(source) && (KERNEL_FILESYSTEMS.contains(&fs) || kernel_view(&at))).then(|| (at, fs.to_string()))
    })
}

/// A path as mountinfo writes it: space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
/// docs/architecture.md, "The two sandboxes").
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

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_.-]*` (Scaleway's examples use `-`).
/// What the sandboxes, the zygote and the env file all accept: one rule everywhere.
pub fn check_env_name(k: &str) -> Result<()> {
    let ok = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        return Ok(());
    }
    Err(Error::BadEnv(format!(
        "environment variable name '{}' is not valid: use letters, digits, '_', '.' and '-', starting with a letter or '_'",
        k.escape_debug()
    )))
}

/// A value is passed byte for byte (newlines and spaces included); only NUL cannot be, since
/// the kernel's environment strings end there.
pub fn check_env_value(k: &str, v: &str) -> Result<()> {
    if v.contains('\0') {
        return Err(Error::BadEnv(format!(
            "the value of environment variable '{k}' contains a NUL byte, which no program can receive: remove it"
        )));
    }
    Ok(())
}

pub fn check_env(k: &str, v: &str) -> Result<()> {
    check_env_name(k).and_then(|()| check_env_value(k, v))
}

/// Parses `KEY=VALUE` (the value is everything after the first `=`, byte for byte).
pub fn parse_env(s: &str) -> Result<(String, String)> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(Error::BadEnv(format!(
            "environment entry '{}' has no '=': use KEY=VALUE",
            s.chars().take(64).collect::<String>().escape_debug()
        )));
    };
    check_env(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// The env file fnbox writes (for `--env-file`): `KEY=VALUE\0` records, as in
/// `/proc/PID/environ`, so a value may hold newlines and no byte of it can start another
/// variable. Entries are checked first.
pub fn encode_env_file(env: &[(String, String)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (k, v) in env {
        check_env(k, v)?;
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    Ok(out)
}

/// Reads an env file: `KEY=VALUE\0` records if it holds a NUL byte (what fnbox writes, see
/// [`encode_env_file`]), else one `KEY=VALUE` per line, as people write them (empty lines
/// and lines starting with `#` skipped). Values are kept byte for byte, trailing spaces too.
pub fn parse_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read the env file {}: {e}", path.display())))?;
    parse_env_bytes(&bytes).map_err(|e| Error::BadEnv(format!("env file {}: {e}", path.display())))
}

fn parse_env_bytes(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let records: Vec<&[u8]> = if bytes.contains(&0) {
        bytes.split(|&b| b == 0).filter(|r| !r.is_empty()).collect()
    } else {
        bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty() && !l.starts_with(b"#")).collect()
    };
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let s = std::str::from_utf8(r)
                .map_err(|_| Error::BadEnv(format!("entry {} is not UTF-8 text: write the file as UTF-8", i + 1)))?;
            parse_env(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the platform stores and sends: `"v1"`/`"v2"`, the old names read, a bad one
    /// refused with the value and the choices.
    #[test]
    fn sandbox_kinds_keep_their_names() {
        for (k, name) in [(SandboxKind::V1, "v1"), (SandboxKind::V2, "v2")] {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<SandboxKind>(&format!("\"{name}\"")).unwrap(), k);
            assert_eq!((k.to_string(), name.parse::<SandboxKind>().unwrap()), (name.to_string(), k));
        }
        assert_eq!(serde_json::from_str::<SandboxKind>("\"sentry\"").unwrap(), SandboxKind::V2);
        assert_eq!("container".parse::<SandboxKind>().unwrap(), SandboxKind::V1);
        let e = serde_json::from_str::<SandboxKind>("\"v3\"").unwrap_err().to_string();
        assert!(e.contains("sandbox 'v3' does not exist: use v1 or v2"), "{e}");
    }

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
        // Not /tmp: a bind takes what is mounted below it, and other sandboxes' tests mount
        // their /proc under /tmp (refused, rightly: see kernel_view_within).
        let b = Bind::parse("/usr:/data:ro").unwrap();
        assert_eq!((b.target.as_path(), b.access), (Path::new("/data"), Access::ReadOnly));
        let b = Bind::parse("/usr").unwrap();
        assert_eq!((b.target.as_path(), b.access), (Path::new("/usr"), Access::ReadWrite));
        let b = Bind::parse("/usr:/code:cow").unwrap();
        assert_eq!((b.target.as_path(), b.access), (Path::new("/code"), Access::CopyOnWrite));
        assert!(Bind::parse("/etc/hostname:/x:cow").unwrap_err().to_string().contains("only a directory"));
        assert!(matches!(Bind::parse("/does/not/exist"), Err(Error::BindSourceMissing(_))));
        assert!(matches!(Bind::parse("/usr:relative"), Err(Error::BadBind(_))));
        assert!(matches!(Bind::parse("/usr:/"), Err(Error::BadBind(_))));
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
    fn env_is_one_encoding_byte_exact() {
        assert_eq!(parse_env("my-key.v2=a=b ").unwrap(), ("my-key.v2".into(), "a=b ".into()));
        for bad in ["1A=x", "A B=x", "A\nLD_PRELOAD=x", "-A=x", "A\0=x"] {
            let e = parse_env(bad).unwrap_err().to_string();
            assert!(e.contains("is not valid"), "{bad:?}: {e}");
        }
        let e = parse_env("SECRET=s3cr3t\0x").unwrap_err().to_string();
        assert!(e.contains("'SECRET'") && e.contains("NUL") && !e.contains("s3cr3t"), "{e}");
        // A newline in a value stays in the value: no second variable.
        let env = vec![("A".to_string(), "x\nLD_PRELOAD=/x.so".to_string()), ("B".to_string(), " y ".to_string())];
        let file = encode_env_file(&env).unwrap();
        assert_eq!(parse_env_bytes(&file).unwrap(), env);
        assert!(encode_env_file(&[("A".into(), "a\0b".into())]).is_err());
        // Files people write: lines, comments, trailing spaces kept.
        let lines = parse_env_bytes(b"# c\nA=1 \n\nB=two words\n").unwrap();
        assert_eq!(lines, vec![("A".into(), "1 ".into()), ("B".into(), "two words".into())]);
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

    #[test]
    fn binds_of_kernel_views_are_refused() {
        for bad in ["/proc:/x", "/sys", "/proc/self:/p", "/sys/fs/cgroup:/c:ro", "/dev/fd:/x", "/proc/../proc:/y"] {
            assert!(matches!(Bind::parse(bad), Err(Error::BindKernelView(_))), "{bad}");
        }
        assert!(Bind::parse("/usr:/x:ro").is_ok());
        // Binds are recursive: the root carries the host's /proc and /sys.
        let e = Bind::parse("/:/h").unwrap_err();
        assert!(matches!(&e, Error::BindHoldsKernelView { .. }), "{e}");
        assert!(e.to_string().contains("bind source / holds"), "{e}");
        // Host devices, ptys and shared memory; namespace handles and other sandboxes' sockets.
        for bad in ["/dev", "/dev/shm", "/dev/pts:/x", "/run", "/var/run:/x"] {
            assert!(matches!(Bind::parse(bad), Err(Error::BindKernelView(_))), "{bad}");
        }
    }

    #[test]
    fn kernel_views_are_found_under_a_bind_source() {
        let info = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    23 22 0:22 / /mnt/a\\040b rw - proc proc rw\n\
                    24 22 0:23 / /srv/data rw - ext4 /dev/vdb rw\n\
                    25 22 0:24 / /srv/ns/net1 rw - nsfs nsfs rw\n\
                    26 22 0:25 / /opt/d rw - devtmpfs udev rw\n\
                    27 22 0:26 / /opt/q rw - mqueue mqueue rw\n\
                    28 22 0:27 / /opt/h rw - hugetlbfs hugetlbfs rw\n\
                    29 22 0:28 / /opt/a rw - autofs systemd-1 rw\n\
                    30 22 0:29 / /opt/p rw - devpts devpts rw\n";
        let found = |p: &str| kernel_view_within(Path::new(p), info);
        assert_eq!(found("/mnt"), Some((PathBuf::from("/mnt/a b"), "proc".to_string())));
        assert_eq!(found("/mnt/a b"), Some((PathBuf::from("/mnt/a b"), "proc".to_string())));
        assert_eq!(found("/srv/data"), None);
        assert_eq!(found("/mnt/a"), None);
        assert_eq!(found("/srv").map(|f| f.1), Some("nsfs".to_string()));
        for (dir, fs) in [
            ("/opt/d", "devtmpfs"),
            ("/opt/q", "mqueue"),
            ("/opt/h", "hugetlbfs"),
            ("/opt/a", "autofs"),
            ("/opt/p", "devpts"),
        ] {
            assert_eq!(found(dir).map(|f| f.1), Some(fs.to_string()), "{dir}");
        }
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_abs(Path::new("/a/../../b/./c/")).unwrap(), Path::new("/b/c"));
        assert!(normalize_abs(Path::new("a")).is_none());
    }
}
