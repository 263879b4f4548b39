//! A sandbox's veth pair: the host's end `fnbx<slot>`, the sandbox's `eth0`, a /31 between.

use super::{addrs, link_name, Addrs};
use crate::error::{Context, Error, Result};
use crate::sys;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};

/// Makes the pair, its sandbox end straight in the namespace of `pid`, and gives the host end
/// its address (by netlink and ioctl: an `ip` process would cost more CPU than the work). The
/// host end is left down: [`host_side`] brings it up once IPv6 is off on it.
pub(super) fn create(slot: u32, pid: libc::pid_t) -> Result<()> {
    let name = link_name(slot);
    let Addrs { host, .. } = addrs(slot);
    let failed = |what: &str, e: std::io::Error| super::setup_error(what, &e.to_string());
    // The slot is ours (its lock is held): a link by its name is a dead sandbox's.
    if std::path::Path::new("/sys/class/net").join(&name).exists() {
        match sys::rtnetlink::delete_link(&name) {
            Err(e) if e.raw_os_error() != Some(libc::ENODEV) => return Err(failed(&format!("deleting {name}"), e)),
            _ => {}
        }
    }
    sys::rtnetlink::add_veth_pair(&name, "eth0", pid)
        .map_err(|e| failed(&format!("making the pair {name}/eth0"), e))?;
    let s = inet_socket().map_err(Error::Setup)?;
    sys::net::set_ipv4(s.as_fd(), &name, host, Ipv4Addr::new(255, 255, 255, 254))
        .map_err(|e| failed(&format!("giving {name} its address"), e))
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

/// Brings interface `name` of the caller's network namespace up.
pub fn bring_up(s: &OwnedFd, name: &str) -> std::result::Result<(), String> {
    sys::net::link_up(s.as_fd(), name).map_err(|e| format!("cannot bring {name} up: {e}"))
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
    sys::net::set_ipv4(s.as_fd(), "eth0", sandbox, Ipv4Addr::new(255, 255, 255, 254))
        .map_err(|e| format!("cannot give eth0 its address: {e}"))?;
    bring_up(&s, "eth0")?;
    sys::net::add_default_route(s.as_fd(), host).map_err(|e| format!("cannot add the default route: {e}"))
}

fn inet_socket() -> std::result::Result<OwnedFd, String> {
    sys::net::inet_socket().map_err(|e| format!("socket: {e}"))
}
