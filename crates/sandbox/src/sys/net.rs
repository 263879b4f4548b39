//! The network calls of a sandbox's set-up: interface flags, an IPv4 address and a default
//! route by `ioctl` on an `AF_INET` socket (in the caller's network namespace), and the
//! host's IPv4 interfaces (`getifaddrs`). See docs/architecture.md, "Network". Also the Unix
//! sockets fnbox's own processes talk over (on rustix).

use super::cvt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// A close-on-exec Unix socket of type `kind` (`libc::SOCK_STREAM`, `libc::SOCK_SEQPACKET`).
pub fn unix_socket(kind: libc::c_int) -> io::Result<OwnedFd> {
    use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
    Ok(socket_with(AddressFamily::UNIX, SocketType::from_raw(kind as u32), SocketFlags::CLOEXEC, None)?)
}

/// `bind(2)` to the filesystem path `path` (`ENAMETOOLONG` past the 108 bytes of `sun_path`).
pub fn bind_unix(sock: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    Ok(rustix::net::bind(sock, &rustix::net::SocketAddrUnix::new(path)?)?)
}

/// `connect(2)` to the filesystem path `path`.
pub fn connect_unix(sock: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    Ok(rustix::net::connect(sock, &rustix::net::SocketAddrUnix::new(path)?)?)
}

/// `listen(2)`.
pub fn listen(sock: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    Ok(rustix::net::listen(sock, backlog)?)
}

/// `accept4(2)`: the next connection, close-on-exec.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    Ok(rustix::net::accept_with(listener, rustix::net::SocketFlags::CLOEXEC)?)
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO`: a receive or send waits at most `limit`.
pub fn set_timeouts(sock: BorrowedFd<'_>, limit: Duration) -> io::Result<()> {
    use rustix::net::sockopt::{set_socket_timeout, Timeout};
    set_socket_timeout(sock, Timeout::Recv, Some(limit))?;
    Ok(set_socket_timeout(sock, Timeout::Send, Some(limit))?)
}

/// A `sockaddr` held as the bytes a sandbox wrote, for [`bind_bytes`], [`connect_bytes`] and
/// [`sendto_bytes`]: the kernel checks its family and length, as for the sandbox's own call.
fn sockaddr_bytes(addr: &[u8]) -> (*const libc::sockaddr, libc::socklen_t) {
    (addr.as_ptr().cast(), addr.len() as libc::socklen_t)
}

/// `bind(2)` to an address given as raw bytes (see `sockaddr_bytes`).
pub fn bind_bytes(sock: BorrowedFd<'_>, addr: &[u8]) -> io::Result<()> {
    let (a, l) = sockaddr_bytes(addr);
    // SAFETY: `a` points to `l` readable bytes (`addr`), which outlive the call.
    cvt(unsafe { libc::bind(sock.as_raw_fd(), a, l) }).map(drop)
}

/// `connect(2)` to an address given as raw bytes (see `sockaddr_bytes`).
pub fn connect_bytes(sock: BorrowedFd<'_>, addr: &[u8]) -> io::Result<()> {
    let (a, l) = sockaddr_bytes(addr);
    // SAFETY: as in `bind_bytes`.
    cvt(unsafe { libc::connect(sock.as_raw_fd(), a, l) }).map(drop)
}

/// `sendto(2)` of `data` with `flags` to an address given as raw bytes (see `sockaddr_bytes`); the
/// byte count sent.
pub fn sendto_bytes(sock: BorrowedFd<'_>, data: &[u8], flags: libc::c_int, addr: &[u8]) -> io::Result<usize> {
    let (a, l) = sockaddr_bytes(addr);
    // SAFETY: as in `bind_bytes`; `data` is readable for its length.
    let n = unsafe { libc::sendto(sock.as_raw_fd(), data.as_ptr().cast(), data.len(), flags, a, l) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// An `AF_INET` datagram socket, the handle the interface ioctls go through.
pub fn inet_socket() -> io::Result<OwnedFd> {
    use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
    Ok(socket_with(AddressFamily::INET, SocketType::DGRAM, SocketFlags::CLOEXEC, None)?)
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data (integers, arrays and unions of them): all zeroes is valid.
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

/// Sets `IFF_UP` on interface `name`.
pub fn link_up(s: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let mut ifr = ifreq(name);
    // SAFETY: `ifr` is a valid ifreq the kernel fills (SIOCGIFFLAGS) then reads (SIOCSIFFLAGS),
    // and `ifru_flags` is the union member both calls use.
    unsafe {
        cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        cvt(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))?;
    }
    Ok(())
}

/// Gives interface `name` the address `addr` and the netmask `mask`.
pub fn set_ipv4(s: BorrowedFd<'_>, name: &str, addr: Ipv4Addr, mask: Ipv4Addr) -> io::Result<()> {
    let mut ifr = ifreq(name);
    ifr.ifr_ifru.ifru_addr = sockaddr(addr);
    // SAFETY: `ifr` is a valid ifreq holding an AF_INET address.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFADDR, &ifr) })?;
    ifr.ifr_ifru.ifru_netmask = sockaddr(mask);
    // SAFETY: as above, with the netmask.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFNETMASK, &ifr) }).map(drop)
}

/// Adds the default route through `gateway` (the kernel finds the device by the gateway).
pub fn add_default_route(s: BorrowedFd<'_>, gateway: Ipv4Addr) -> io::Result<()> {
    // SAFETY: rtentry is plain data (integers, pointers, sockaddrs): all zeroes is valid, and
    // a null rt_dev means "no device name".
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: `rt` is a valid rtentry that outlives the call.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCADDRT, &rt) }).map(drop)
}

/// An IPv4 address of one of the host's interfaces, with its netmask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Interface {
    pub name: String,
    pub addr: Ipv4Addr,
    pub mask: u32,
}

/// The IPv4 addresses of the caller's network namespace, by interface (`getifaddrs`).
pub fn ipv4_interfaces() -> io::Result<Vec<Ipv4Interface>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list freed below, once.
    cvt(unsafe { libc::getifaddrs(&mut list) })?;
    let mut out = Vec::new();
    let mut p = list;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr, whose family says its type.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated interface name; both addresses are AF_INET
        // (an IPv4 address's netmask is one too), so they are sockaddr_in.
        let (name, addr, mask) = unsafe {
            let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
            (
                std::ffi::CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned(),
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u32::from_be(m.sin_addr.s_addr),
            )
        };
        out.push(Ipv4Interface { name, addr, mask });
    }
    // SAFETY: `list` came from getifaddrs and is freed once, after its last use.
    unsafe { libc::freeifaddrs(list) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_interface_is_listed_with_its_mask() {
        let all = ipv4_interfaces().expect("getifaddrs");
        let lo = all.iter().find(|i| i.name == "lo").expect("no lo among the interfaces");
        assert_eq!(lo.addr, Ipv4Addr::LOCALHOST);
        assert_eq!(lo.mask, 0xff00_0000);
    }
}
