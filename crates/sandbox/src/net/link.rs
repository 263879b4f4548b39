//! A sandbox's veth pair: the host's end `fnbx<slot>`, the sandbox's `eth0`, a /31 between.

use super::{addrs, link_name, Addrs};
use crate::error::{Context, Error, Result};
use crate::sys;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

/// Starts `ip` making the pair, its sandbox end straight in the namespace of `pid`. The host
/// end is left down: [`host_side`] brings it up once IPv6 is off on it.
pub(super) fn create(slot: u32, pid: libc::pid_t) -> Result<std::process::Child> {
    let name = link_name(slot);
    let Addrs { host, .. } = addrs(slot);
    let mut script = String::new();
    // The slot is ours (its lock is held): a link by its name is a dead sandbox's.
    if std::path::Path::new("/sys/class/net").join(&name).exists() {
        script.push_str(&format!("link del {name}\n"));
    }
    script.push_str(&format!("link add {name} type veth peer name eth0 netns {pid}\naddr add {host}/31 dev {name}\n"));
    super::run_script("ip", &["-batch", "-"], "iproute2", &script)
}

/// The host's end: no IPv6 (no link-local address a sandbox could talk to), ARP answered for
/// its own address only (`arp_ignore=1`, `arp_announce=2`: a sandbox cannot list the host's
/// other addresses or which slots are live), then up; and the host forwards IPv4 (what
/// routing the sandboxes' packets takes).
pub(super) fn host_side(slot: u32) -> Result<()> {
    let name = link_name(slot);
    let _ = sys::write_file(std::path::Path::new(&format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6")), b"1");
    for (key, value) in [("arp_ignore", b"1"), ("arp_announce", b"2")] {
        let p = format!("/proc/sys/net/ipv4/conf/{name}/{key}");
        sys::write_file(std::path::Path::new(&p), value).context(|| format!("cannot set {p}"))?;
    }
    if !forwarding_on() {
        sys::write_file(std::path::Path::new(FORWARD), b"1")
            .context(|| "cannot turn on IPv4 forwarding (net.ipv4.ip_forward)".into())?;
    }
    let s = inet_socket().map_err(Error::Setup)?;
    bring_up(&s, &name).map_err(Error::Setup)
}

const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

fn forwarding_on() -> bool {
    std::fs::read(FORWARD).is_ok_and(|v| v.first() == Some(&b'1'))
}

/// Whether fnbox is the one turning forwarding on: it is off now (recorded in `record`, in
/// the run directory, which goes at reboot as the setting does), or a sandbox before this one
/// recorded that it was.
pub(super) fn forwarding_is_ours(record: &std::path::Path) -> bool {
    if record.exists() {
        return true;
    }
    !forwarding_on() && std::fs::write(record, b"net.ipv4.ip_forward was 0 before fnbox\n").is_ok()
}

/// `fnbox cleanup` with no sandbox link left: forwarding goes back off if fnbox turned it on.
pub(super) fn restore_forwarding(record: &std::path::Path) -> bool {
    record.exists()
        && sys::write_file(std::path::Path::new(FORWARD), b"0").is_ok()
        && std::fs::remove_file(record).is_ok()
}

fn inet_socket() -> std::result::Result<OwnedFd, String> {
    // SAFETY: plain socket creation.
    let s = sys::cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
        .map_err(|e| format!("socket: {e}"))?;
    // SAFETY: socket returned a new descriptor.
    Ok(unsafe { sys::owned(s) })
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
        ifr.ifr_name[i] = b as libc::c_char;
    }
    ifr
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(a).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads it by family.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Brings interface `name` of the caller's network namespace up.
pub fn bring_up(s: &OwnedFd, name: &str) -> std::result::Result<(), String> {
    let mut ifr = ifreq(name);
    // SAFETY: `ifr` is a valid ifreq for SIOCGIFFLAGS/SIOCSIFFLAGS.
    unsafe {
        sys::cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))
            .map_err(|e| format!("SIOCGIFFLAGS {name}: {e}"))?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        sys::cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))
            .map_err(|e| format!("cannot bring {name} up: {e}"))?;
    }
    Ok(())
}

/// `lo` up, in the caller's (new) network namespace.
pub fn loopback_up() -> std::result::Result<(), String> {
    bring_up(&inet_socket()?, "lo")
}

/// Run by the sandbox's first process, in its own namespace, once the launcher has made the
/// pair: `eth0` gets the sandbox's address, comes up, and the host's end is the default route.
pub fn configure_inside(slot: u32) -> std::result::Result<(), String> {
    let Addrs { host, sandbox } = addrs(slot);
    let s = inet_socket()?;
    let mut ifr = ifreq("eth0");
    ifr.ifr_ifru.ifru_addr = sockaddr(sandbox);
    // SAFETY: `ifr` is a valid ifreq holding an AF_INET address.
    sys::cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFADDR, &ifr) })
        .map_err(|e| format!("cannot give eth0 its address: {e}"))?;
    ifr.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::new(255, 255, 255, 254));
    // SAFETY: as above, with the netmask.
    sys::cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFNETMASK, &ifr) })
        .map_err(|e| format!("cannot set eth0's netmask: {e}"))?;
    bring_up(&s, "eth0")?;
    // SAFETY: rtentry is plain data.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr(host);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: `rt` is a valid rtentry (no device name: the kernel finds eth0 by the gateway).
    sys::cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCADDRT, &rt) })
        .map_err(|e| format!("cannot add the default route: {e}"))?;
    Ok(())
}
