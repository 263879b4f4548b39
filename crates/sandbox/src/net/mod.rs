//! Outbound network ("egress") for sandboxes: a veth link per sandbox, routed and NATed by
//! the host, filtered by an nftables table in the host's network namespace, where nothing in
//! the sandbox can reach it. See docs/architecture.md, "Network".

mod link;
mod rules;

pub use link::{configure_inside, loopback_up};
pub use rules::{clean, forget};

use crate::error::{Context, Error, Result};
use crate::paths::Paths;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// A sandbox's network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Loopback only.
    #[default]
    None,
    /// Loopback and the internet through the host's routes (the host itself, link-local,
    /// private and shared ranges, other sandboxes and ports 25/465 excepted).
    Egress,
}

impl std::str::FromStr for Network {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "egress" => Ok(Self::Egress),
            _ => Err(Error::Invalid(format!("network '{s}' does not exist: use egress or none"))),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Egress => "egress",
        })
    }
}

/// An IPv4 range an operator opens to sandboxes (`--allow-net`), host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `A.B.C.D/N` or a single address (`/32`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid(format!("--allow-net '{s}' is not valid: {why}"));
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let addr: IpAddr = a.trim().parse().map_err(|_| bad("use an IPv4 range such as 10.1.0.0/16"))?;
        let IpAddr::V4(addr) = addr else {
            return Err(bad("sandboxes have IPv4 egress only; give an IPv4 range such as 10.1.0.0/16"));
        };
        let prefix: u8 = p.trim().parse().ok().filter(|n| *n <= 32).ok_or_else(|| bad("the prefix must be 0 to 32"))?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Ok(Self { addr: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl TryFrom<String> for Cidr {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> Self {
        c.to_string()
    }
}

/// The /16 sandbox links are numbered from: a /31 per uid slot (16384 slots), the host's end
/// even, the sandbox's odd. `FNBOX_SANDBOX_NET` (`A.B.0.0/16`) moves it where it collides
/// with the host's own networks.
pub fn subnet() -> Cidr {
    std::env::var("FNBOX_SANDBOX_NET")
        .ok()
        .and_then(|s| Cidr::parse(&s).ok())
        .filter(|c| c.prefix == 16)
        .unwrap_or(Cidr { addr: Ipv4Addr::new(10, 236, 0, 0), prefix: 16 })
}

/// The two ends of a sandbox's link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addrs {
    /// The host's end (the sandbox's gateway).
    pub host: Ipv4Addr,
    pub sandbox: Ipv4Addr,
}

pub fn addrs(slot: u32) -> Addrs {
    let base = u32::from(subnet().addr);
    let host = base + 2 * (slot & 0x7fff);
    Addrs { host: Ipv4Addr::from(host), sandbox: Ipv4Addr::from(host + 1) }
}

/// The host end's interface name: one per uid slot, so a stale one is known to be stale (its
/// slot's lock is free) and the rules name it without a per-sandbox table.
pub fn link_name(slot: u32) -> String {
    format!("{}{slot}", rules::LINK_PREFIX)
}

/// The host's DNS resolvers as a sandbox reaches them: the `nameserver` lines of
/// `FNBOX_RESOLV_CONF` (default `/etc/resolv.conf`), IPv4 and not loopback (a resolver on
/// the host's loopback, such as systemd-resolved's stub, is the host itself: its upstream
/// servers in `/run/systemd/resolve/resolv.conf` are used instead).
pub fn resolvers() -> Vec<Ipv4Addr> {
    let configured = std::env::var_os("FNBOX_RESOLV_CONF").map(PathBuf::from);
    let read = |p: &std::path::Path| -> Vec<Ipv4Addr> {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
            .filter(|a| !a.is_loopback() && !a.is_unspecified())
            .take(3)
            .collect()
    };
    match configured {
        Some(p) => read(&p),
        None => {
            let r = read(std::path::Path::new("/etc/resolv.conf"));
            if r.is_empty() {
                read(std::path::Path::new("/run/systemd/resolve/resolv.conf"))
            } else {
                r
            }
        }
    }
}

/// Writes the `resolv.conf` egress sandboxes see (bound over their `/etc/resolv.conf`) and
/// returns its path. Rewritten (by rename: a sandbox keeps the file it was given) only when
/// the resolvers changed.
pub fn resolv_conf(paths: &Paths, servers: &[Ipv4Addr]) -> Result<PathBuf> {
    let dir = dir(paths)?;
    let mut text = String::from("# written by fnbox: the host's resolvers, reachable on port 53\n");
    if servers.is_empty() {
        text.push_str("# none: the host has no IPv4 resolver outside its loopback (set FNBOX_RESOLV_CONF)\n");
    }
    for s in servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    let path = dir.join("resolv.conf");
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(path);
    }
    let tmp = dir.join(format!(".resolv.conf.{}", std::process::id()));
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `run/net`: the sandboxes' `resolv.conf` and the lock that keeps `fnbox cleanup` from
/// removing the table while a sandbox's link is being made.
fn dir(paths: &Paths) -> Result<PathBuf> {
    let d = paths.run.join("net");
    if !d.is_dir() {
        crate::paths::ensure_dir(&d, 0o755)?;
    }
    Ok(d)
}

fn lock(paths: &Paths, exclusive: bool) -> Result<std::fs::File> {
    let p = dir(paths)?.join("lock");
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .context(|| format!("cannot open {}", p.display()))?;
    crate::sys::flock(&f, exclusive, false).context(|| format!("cannot lock {}", p.display()))?;
    Ok(f)
}

/// A sandbox's link being made: the rules and the veth pair, by `nft` and `ip` running while
/// the launcher prepares the rest. [`Pending::finish`] waits for both.
pub struct Pending {
    slot: u32,
    nft: Option<std::process::Child>,
    ip: Option<std::process::Child>,
    done: bool,
    _lock: std::fs::File,
}

/// Starts loading the rules of the sandbox in slot `slot` (before its namespaces exist: they
/// need none of them).
pub fn begin(paths: &Paths, slot: u32, allow: &[Cidr], servers: &[Ipv4Addr]) -> Result<Pending> {
    let lock = lock(paths, false)?;
    let nft = rules::load(slot, allow, servers)?;
    Ok(Pending { slot, nft: Some(nft), ip: None, done: false, _lock: lock })
}

impl Pending {
    /// Starts making the pair, once the sandbox's init `pid` (and its network namespace)
    /// exists.
    pub fn link(&mut self, pid: libc::pid_t) -> Result<()> {
        self.ip = Some(link::create(self.slot, pid)?);
        Ok(())
    }

    /// Waits for the rules and the link; the host's end is up when this returns.
    pub fn finish(mut self) -> Result<Link> {
        let nft = self.nft.take().map(|c| wait(c, "nft"));
        let ip = self.ip.take().map(|c| wait(c, "ip"));
        nft.transpose()?;
        ip.transpose()?;
        link::host_side(self.slot)?;
        self.done = true;
        Ok(Link { slot: self.slot })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        for c in [self.nft.take(), self.ip.take()].into_iter().flatten() {
            let _ = wait(c, "");
        }
        if !self.done {
            forget(self.slot);
        }
    }
}

/// Starts `program` reading `script` on its stdin (a few KiB: it fits the pipe, so this
/// does not wait for the program); its stderr is kept for [`wait`].
fn run_script(program: &str, args: &[&str], package: &str, script: &str) -> Result<std::process::Child> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(|| format!("cannot run {program} (install the {package} package, or run with --network none)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).context(|| format!("cannot write to {program}"))?;
    }
    Ok(child)
}

fn wait(child: std::process::Child, what: &str) -> Result<()> {
    let out = child.wait_with_output().context(|| format!("cannot wait for {what}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let err: String = err.trim().chars().take(600).collect();
    Err(Error::Setup(format!(
        "cannot set up the sandbox's network: {what} failed ({}): {err}; is the nftables/iproute2 package installed and the kernel's nf_tables available? Or run with --network none",
        out.status
    )))
}

/// A sandbox's link, made. Its veth pair goes with the sandbox's network namespace; dropping
/// this removes its rules.
pub struct Link {
    slot: u32,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Not waited for: the launcher is about to exit, and the next sandbox of this slot
        // flushes the chain anyway.
        rules::forget_later(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_mask() {
        assert_eq!(Cidr::parse("10.77.0.9/24").unwrap().to_string(), "10.77.0.0/24");
        assert_eq!(Cidr::parse("192.168.1.5").unwrap().to_string(), "192.168.1.5/32");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        for bad in ["10.0.0.0/33", "fd00::/8", "x", "10.0.0.0/a", ""] {
            assert!(Cidr::parse(bad).unwrap_err().to_string().contains("--allow-net"), "{bad}");
        }
    }

    #[test]
    fn links_are_numbered_by_slot() {
        let a = addrs(0);
        assert_eq!((a.host, a.sandbox), (Ipv4Addr::new(10, 236, 0, 0), Ipv4Addr::new(10, 236, 0, 1)));
        let a = addrs(16383);
        assert_eq!((a.host, a.sandbox), (Ipv4Addr::new(10, 236, 127, 254), Ipv4Addr::new(10, 236, 127, 255)));
        assert_eq!(link_name(12), "fnbx12");
    }
}
