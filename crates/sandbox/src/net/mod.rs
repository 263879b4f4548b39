//! Outbound network ("egress") for sandboxes: a veth link per sandbox, routed and NATed by
//! the host, filtered by an nftables table in the host's network namespace, where nothing in
//! the sandbox can reach it. See docs/architecture.md, "Network".

mod guard;
mod link;
pub mod reach;
mod rules;

pub use link::{configure_inside, loopback_up};
pub use rules::{clean, forget};

use crate::error::{Context, Error, Result};
use crate::paths::Paths;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// A sandbox's network. Written `none`/`egress` everywhere (command lines, the platform's
/// registry and API); read with [`std::str::FromStr`], whose error names the value and the
/// choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase", try_from = "String")]
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

/// Through [`std::str::FromStr`]: a network sent or stored is read as a command line's is, and
/// a bad one is refused with the same message.
impl TryFrom<String> for Network {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
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
    /// Parses an `--allow-net` value, `A.B.C.D/N` or a single address (`/32`). Refused: host
    /// bits set (`10.0.0.1/8`: a typo that would open more than meant), and a range that
    /// takes in loopback (127.0.0.0/8, never reachable) or link-local (169.254.0.0/16, cloud
    /// metadata) along with other addresses (`0.0.0.0/0`): metadata is opened only by naming
    /// a range inside 169.254.0.0/16.
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_opened(s, "--allow-net", false)
    }

    /// Parses a `--callback-net` value (ranges fnbox's callbacks may reach, see
    /// [`reach::refused`]): as `--allow-net`, but loopback may be named, on its own: a
    /// callback receiver on this host is the operator's choice to make.
    pub fn parse_callback(s: &str) -> Result<Self> {
        Self::parse_opened(s, "--callback-net", true)
    }

    fn parse_opened(s: &str, flag: &str, loopback: bool) -> Result<Self> {
        let c = Self::parse_as(s, flag)?;
        let bad = |why: &str| Error::Invalid(format!("{flag} '{s}' is refused: {why}"));
        if c.overlaps(&LINK_LOCAL) && !LINK_LOCAL.contains(&c) {
            return Err(bad(
                "it covers link-local 169.254.0.0/16 (cloud metadata at 169.254.169.254) with other ranges; \
                 give narrower ranges that leave it out, and name a range inside 169.254.0.0/16 on its own to open it",
            ));
        }
        if c.overlaps(&LOOPBACK) && !(loopback && LOOPBACK.contains(&c)) {
            return Err(bad(if loopback {
                "it covers loopback (127.0.0.0/8) with other ranges; name a range inside 127.0.0.0/8 on its own"
            } else {
                "it covers loopback (127.0.0.0/8), which no sandbox reaches; leave it out"
            }));
        }
        Ok(c)
    }

    /// `A.B.C.D/N` or `A.B.C.D`, host bits clear; errors name `what` (the flag or variable).
    fn parse_as(s: &str, what: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid(format!("{what} '{s}' is not valid: {why}"));
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let addr: IpAddr = a.parse().map_err(|_| bad("use an IPv4 range such as 10.1.0.0/16"))?;
        let IpAddr::V4(addr) = addr else {
            return Err(bad("sandboxes have IPv4 egress only; give an IPv4 range such as 10.1.0.0/16"));
        };
        let prefix: u8 = Some(p)
            .filter(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse().ok())
            .filter(|n| *n <= 32)
            .ok_or_else(|| bad("the prefix must be 0 to 32"))?;
        let c = Self { addr, prefix };
        if c.network() != addr {
            return Err(bad(&format!("host bits are set; the range is {}/{prefix}", c.network())));
        }
        Ok(c)
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// Whether every address of `other` is in this range.
    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && u32::from(other.addr) & self.mask() == u32::from(self.addr)
    }

    /// Whether the ranges share an address (CIDR ranges nest or are apart).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }
}

const fn cidr(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
    Cidr { addr: Ipv4Addr::new(a, b, c, d), prefix }
}

const LOOPBACK: Cidr = cidr(127, 0, 0, 0, 8);
const LINK_LOCAL: Cidr = cidr(169, 254, 0, 0, 16);

/// Never reachable unless an operator allows a range: every range RFC 6890 (IANA's
/// special-purpose registry) marks not globally reachable, and multicast. 192.0.0.0/24 goes
/// whole (its two global anycast addresses, PCP and TURN, serve a site's own NAT).
pub const DENIED: [Cidr; 14] = [
    cidr(0, 0, 0, 0, 8),       // "this network"
    cidr(10, 0, 0, 0, 8),      // private
    cidr(100, 64, 0, 0, 10),   // shared (carrier-grade NAT)
    LOOPBACK,                  //
    LINK_LOCAL,                // cloud metadata
    cidr(172, 16, 0, 0, 12),   // private
    cidr(192, 0, 0, 0, 24),    // IETF protocol assignments
    cidr(192, 0, 2, 0, 24),    // documentation (TEST-NET-1)
    cidr(192, 168, 0, 0, 16),  // private
    cidr(198, 18, 0, 0, 15),   // benchmarking (fake-IP proxies, appliances)
    cidr(198, 51, 100, 0, 24), // documentation (TEST-NET-2)
    cidr(203, 0, 113, 0, 24),  // documentation (TEST-NET-3)
    cidr(224, 0, 0, 0, 4),     // multicast
    cidr(240, 0, 0, 0, 4),     // reserved, limited broadcast
];

/// The ranges a sandbox may not reach: [`DENIED`] and the networks the host is directly
/// connected to (its LAN, whatever its addresses), each once (a range inside another goes).
pub fn denied(host: &HostView) -> Vec<Cidr> {
    let all: Vec<Cidr> = DENIED.iter().chain(&host.networks).copied().collect();
    let mut out: Vec<Cidr> = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let inside_another =
            all.iter().enumerate().any(|(j, o)| j != i && o.contains(c) && (o.prefix < c.prefix || j < i));
        if !inside_another {
            out.push(*c);
        }
    }
    out
}

/// What a sandbox's rules need to know of the host: its IPv4 addresses and the networks
/// they are on (the sandbox links' own excepted).
#[derive(Clone, Debug, Default)]
pub struct HostView {
    pub addresses: Vec<Ipv4Addr>,
    pub networks: Vec<Cidr>,
}

impl HostView {
    /// The host's interfaces now (`getifaddrs`); none when it fails.
    pub fn now() -> Self {
        Self::read().unwrap_or_default()
    }

    /// The host's interfaces now, or why they cannot be listed (for a check that must fail
    /// closed: [`reach::refused`]'s callers).
    pub fn read() -> std::io::Result<Self> {
        let mut view = Self::default();
        for i in crate::sys::net::ipv4_interfaces()? {
            if i.name.starts_with(rules::LINK_PREFIX) {
                continue;
            }
            view.addresses.push(i.addr);
            let prefix = i.mask.leading_ones() as u8;
            if prefix < 32 && !i.addr.is_loopback() {
                view.networks.push(Cidr { addr: Ipv4Addr::from(u32::from(i.addr) & i.mask), prefix });
            }
        }
        Ok(view)
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
/// with the host's own networks; it must be a private range (one every sandbox is denied, so
/// that sandboxes of launchers given different ranges cannot reach each other either).
pub fn sandbox_net() -> Result<Cidr> {
    sandbox_net_from(std::env::var("FNBOX_SANDBOX_NET").ok().as_deref())
}

fn sandbox_net_from(var: Option<&str>) -> Result<Cidr> {
    let Some(s) = var else {
        return Ok(cidr(10, 236, 0, 0, 16));
    };
    let c = Cidr::parse_as(s, "FNBOX_SANDBOX_NET")?;
    let private = [cidr(10, 0, 0, 0, 8), cidr(172, 16, 0, 0, 12), cidr(192, 168, 0, 0, 16), cidr(100, 64, 0, 0, 10)];
    if c.prefix != 16 || !private.iter().any(|p| p.contains(&c)) {
        return Err(Error::Invalid(format!(
            "FNBOX_SANDBOX_NET '{s}' is not valid: give a /16 inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10"
        )));
    }
    Ok(c)
}

/// [`sandbox_net`], checked by [`begin`] before any link exists.
pub fn subnet() -> Cidr {
    sandbox_net().unwrap_or(cidr(10, 236, 0, 0, 16))
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

/// The `resolv.conf` egress sandboxes see over their `/etc/resolv.conf` (the launcher hands
/// each sandbox its own copy: no file on the host, so none to swap under a starting sandbox).
pub fn resolv_conf(servers: &[Ipv4Addr]) -> String {
    let mut text = String::from("# written by fnbox: the host's resolvers, reachable on port 53\n");
    if servers.is_empty() {
        text.push_str("# none: the host has no IPv4 resolver outside its loopback (set FNBOX_RESOLV_CONF)\n");
    }
    for s in servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    text
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

/// Where [`link::forwarding_is_ours`] records that forwarding was off: one per network
/// namespace (by its inode), the setting being one per namespace.
fn forwarding_record(paths: &Paths) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).unwrap_or(0);
    Ok(dir(paths)?.join(format!("forwarding-was-off.{ns}")))
}

/// A sandbox's link being made: the rules (both layers), loaded by the sandbox's `nft`
/// process while the launcher prepares the rest, and the veth pair ([`Pending::link`]).
/// [`Pending::finish`] waits for the rules.
pub struct Pending {
    slot: u32,
    guard: Option<guard::Guard>,
    done: bool,
    _lock: std::fs::File,
}

/// The host program egress runs (`nft`) when it is not on `PATH`, with its Debian
/// packages: `fnbox serve` says so when it starts, since a deployed function has egress by
/// default and its start would fail.
pub fn missing_programs() -> Vec<(&'static str, &'static str)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    [("nft", "nftables")]
        .into_iter()
        .filter(|(prog, _)| !std::env::split_paths(&path).any(|d| d.join(prog).is_file()))
        .collect()
}

/// Starts loading the rules of the sandbox in slot `slot` (before its namespaces exist: they
/// need none of them).
pub fn begin(paths: &Paths, slot: u32, allow: &[Cidr], servers: &[Ipv4Addr]) -> Result<Pending> {
    sandbox_net()?;
    let lock = lock(paths, false)?;
    let denied = denied(&HostView::now());
    let router_off = link::forwarding_is_ours(&forwarding_record(paths)?);
    let line = rules::sandbox_line(slot, allow, servers, &denied, router_off);
    let guard = guard::Guard::start(&line, &rules::guard_table(slot))?;
    Ok(Pending { slot, guard: Some(guard), done: false, _lock: lock })
}

impl Pending {
    /// Makes the pair, once the sandbox's init `pid` (and its network namespace) exists.
    pub fn link(&mut self, pid: libc::pid_t) -> Result<()> {
        link::create(self.slot, pid)
    }

    /// Waits for the rules; the host's end is up when this returns.
    pub fn finish(mut self) -> Result<Link> {
        let guard = self.guard.take().ok_or_else(|| Error::Setup("the sandbox's nft process is missing".into()))?;
        let guard = guard.ready().map_err(|e| setup_error("nft -i (the sandbox's rules)", &e))?;
        link::host_side(self.slot)?;
        self.done = true;
        Ok(Link { slot: self.slot, guard: Some(guard) })
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            // The chain goes after whatever the guard's process loaded, and before the slot
            // (whose lock this holds) can be taken again.
            let forgotten = self.guard.take().is_some_and(|g| g.end_with(&rules::forget_line(self.slot), true));
            if !forgotten {
                forget(self.slot);
            }
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

pub(super) fn setup_error(what: &str, err: &str) -> Error {
    let err: String = err.trim().chars().take(600).collect();
    Error::Setup(format!(
        "cannot set up the sandbox's network: {what} failed ({err}); is the nftables package installed and the kernel's nf_tables available? Or run with --network none"
    ))
}

/// A sandbox's link, made. Its veth pair goes with the sandbox's network namespace; dropping
/// this removes its rules (the guard table goes when its `nft` sees its input end).
pub struct Link {
    slot: u32,
    guard: Option<guard::Guard>,
}

impl Link {
    /// A descriptor that becomes readable if the sandbox's `nft` process ends while the
    /// sandbox runs. The kernel then removes the guard table with it, and a firewall reload
    /// would leave the sandbox unfiltered: the launcher polls this and ends the sandbox (fail
    /// closed; docs/architecture.md, "Network").
    pub fn watch_fd(&self) -> Option<std::os::fd::RawFd> {
        self.guard.as_ref().and_then(guard::Guard::exited_fd)
    }

    /// The pid of the sandbox's `nft` process, which lives as long as the sandbox.
    pub fn guard_pid(&self) -> Option<libc::pid_t> {
        self.guard.as_ref().map(guard::Guard::pid)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The guard's process removes the chain, then exits, taking the guard table with it.
        // Waited for (it sleeps, costing no CPU), as `Pending`'s drop waits: the slot is free
        // once the launcher exits, and an `nft` still running then would refuse the next
        // sandbox of the slot its guard table (owned by this one) or delete its chain after
        // it was loaded.
        if !self.guard.take().is_some_and(|g| g.end_with(&rules::forget_line(self.slot), true)) {
            forget(self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_refuse_host_bits_and_accidental_metadata() {
        assert_eq!(Cidr::parse("10.77.0.0/24").unwrap().to_string(), "10.77.0.0/24");
        assert_eq!(Cidr::parse("192.168.1.5").unwrap().to_string(), "192.168.1.5/32");
        assert_eq!(Cidr::parse("169.254.169.254").unwrap().to_string(), "169.254.169.254/32");
        assert_eq!(Cidr::parse("169.254.0.0/16").unwrap().to_string(), "169.254.0.0/16");
        for bad in ["10.0.0.0/33", "fd00::/8", "x", "10.0.0.0/a", "", "10.0.0.0/+8", "10.0.0.0/", " 10.0.0.0/8"] {
            assert!(Cidr::parse(bad).unwrap_err().to_string().contains("--allow-net"), "{bad}");
        }
        let e = Cidr::parse("10.0.0.1/8").unwrap_err().to_string();
        assert!(e.contains("--allow-net '10.0.0.1/8'") && e.contains("10.0.0.0/8"), "{e}");
        for wide in ["0.0.0.0/0", "128.0.0.0/1", "169.0.0.0/8"] {
            let e = Cidr::parse(wide).unwrap_err().to_string();
            assert!(e.contains("--allow-net") && e.contains("169.254.0.0/16"), "{e}");
        }
        let e = Cidr::parse("127.0.0.0/8").unwrap_err().to_string();
        assert!(e.contains("loopback"), "{e}");
    }

    #[test]
    fn every_non_global_range_and_the_hosts_networks_are_denied_once() {
        let host = HostView {
            addresses: vec![Ipv4Addr::new(192, 0, 2, 2)],
            networks: vec![
                Cidr::parse_as("192.0.2.0/24", "t").unwrap(),
                Cidr::parse_as("81.2.69.0/24", "t").unwrap(),
                Cidr::parse_as("10.9.0.0/16", "t").unwrap(),
            ],
        };
        let d: Vec<String> = denied(&host).iter().map(Cidr::to_string).collect();
        for want in [
            "198.18.0.0/15",
            "192.0.0.0/24",
            "240.0.0.0/4",
            "192.0.2.0/24",
            "81.2.69.0/24",
            "169.254.0.0/16",
            "100.64.0.0/10",
        ] {
            assert_eq!(d.iter().filter(|c| *c == want).count(), 1, "{want} in {d:?}");
        }
        assert!(!d.contains(&"10.9.0.0/16".to_string()), "inside 10.0.0.0/8: {d:?}");
        let global = Cidr::parse("192.88.99.1").unwrap();
        assert!(!denied(&host).iter().any(|c| c.contains(&global)));
    }

    #[test]
    fn the_sandbox_range_is_a_private_16() {
        let e = sandbox_net_from(Some("203.0.0.0/16")).unwrap_err().to_string();
        let host_bits = sandbox_net_from(Some("10.1.2.0/16")).unwrap_err().to_string();
        let ok = sandbox_net_from(Some("172.20.0.0/16"));
        assert_eq!(sandbox_net_from(None).unwrap().to_string(), "10.236.0.0/16");
        assert!(e.contains("FNBOX_SANDBOX_NET") && e.contains("/16 inside"), "{e}");
        assert!(host_bits.contains("FNBOX_SANDBOX_NET") && host_bits.contains("host bits"), "{host_bits}");
        assert_eq!(ok.unwrap().to_string(), "172.20.0.0/16");
    }

    /// The last sandbox of a slot ends while its `nft` is slow to run its last line (a busy
    /// host): the slot's next sandbox, started as soon as the slot is free, must still load its
    /// guard table and keep its chain.
    #[test]
    fn a_slots_next_sandbox_keeps_its_rules_when_the_last_ones_nft_is_slow() {
        use crate::sys::process;
        let slot = 16_000 + std::process::id() % 300;
        let denied = denied(&HostView::default());
        let line = rules::sandbox_line(slot, &[], &[], &denied, false);
        let table = rules::guard_table(slot);
        let first = guard::Guard::start(&line, &table).unwrap().ready().expect("nft -i (the nftables package)");
        let stalled = first.pid();
        process::kill(stalled, libc::SIGSTOP).unwrap();
        let resume = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let _ = process::kill(stalled, libc::SIGCONT);
        });
        // What the launcher does as it ends; then the slot is free.
        drop(Link { slot, guard: Some(first) });
        let next = guard::Guard::start(&line, &table).unwrap().ready();
        resume.join().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let chain = std::process::Command::new("nft")
            .args(["list", "chain", "inet", "fnbox", &format!("slot{slot}")])
            .output()
            .is_ok_and(|o| o.status.success());
        let loaded = next.as_ref().map(|_| ()).map_err(String::clone);
        if let Ok(g) = next {
            g.end_with(&rules::forget_line(slot), true);
        }
        loaded.expect("the next sandbox's rules");
        assert!(chain, "the last sandbox's forget removed the next one's chain slot{slot}");
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
