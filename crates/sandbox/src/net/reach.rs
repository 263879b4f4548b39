//! Where fnbox itself may connect on a caller's behalf (an asynchronous call's
//! `X-Callback-Url`): the rule a sandbox's egress follows (docs/architecture.md, "Network"),
//! applied to the address fnbox is about to connect to. Never the host itself (loopback, its
//! own addresses: fnbox's admin API and every local service), link-local (cloud metadata),
//! private and shared ranges, nor any other range [`DENIED`](super::DENIED) lists, unless the operator opened
//! a range that holds the address (`--callback-net` only: `--allow-net` opens ranges to
//! sandboxes, which never reach the host). IPv4 only, as sandboxes' egress: the host's IPv6
//! addresses and prefixes are not known here, so an IPv6 address is refused (an IPv4-mapped
//! one is judged as IPv4). Checked on the resolved address that is then connected to, so a
//! name that resolves elsewhere later (DNS rebinding) gains nothing.

use super::{denied, Cidr, HostView};
use std::net::{IpAddr, Ipv6Addr};

/// Why fnbox will not connect to `ip` on a caller's behalf, or `None` when it may. `opened`:
/// the ranges the operator opened for this (which, unlike `--allow-net`, may hold loopback).
pub fn refused(ip: IpAddr, host: &HostView, opened: &[Cidr]) -> Option<&'static str> {
    let v4 = match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(a) => a,
            None => return refused_v6(a),
        },
    };
    let one = Cidr { addr: v4, prefix: 32 };
    if opened.iter().any(|c| c.contains(&one)) {
        return None;
    }
    if host.addresses.contains(&v4) || v4.is_loopback() {
        return Some("it is this host itself");
    }
    if denied(host).iter().any(|c| c.contains(&one)) {
        return Some("it is in a private, link-local, shared or reserved range, or on the host's own network");
    }
    None
}

/// IPv6 is not reached (see the module's text): the host's own global addresses, NAT64 and
/// 6to4 forms of refused IPv4 addresses would all need judging.
fn refused_v6(a: Ipv6Addr) -> Option<&'static str> {
    if a.is_loopback() || a.is_unspecified() {
        Some("it is this host itself")
    } else {
        Some("callbacks, as sandboxes, reach IPv4 addresses only; give an IPv4 address or a name with one")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn host() -> HostView {
        HostView {
            addresses: vec![Ipv4Addr::new(81, 2, 69, 7)],
            networks: vec![Cidr { addr: Ipv4Addr::new(81, 2, 69, 0), prefix: 24 }],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_host_its_network_metadata_and_private_ranges_are_refused() {
        for a in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "81.2.69.7",
            "81.2.69.200",
            "169.254.169.254",
            "10.236.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::127.0.0.1",
        ] {
            assert!(refused(ip(a), &host(), &[]).is_some(), "{a} was allowed");
        }
    }

    #[test]
    fn public_addresses_are_reached() {
        for a in ["1.1.1.1", "81.2.70.1", "::ffff:8.8.8.8"] {
            assert_eq!(refused(ip(a), &host(), &[]), None, "{a}");
        }
        assert!(refused(ip("2a00:1450::1"), &host(), &[]).unwrap().contains("IPv4 addresses only"));
    }

    #[test]
    fn an_opened_range_is_reached_and_only_it() {
        let opened = [Cidr::parse_as("127.0.0.1", "t").unwrap(), Cidr::parse_as("10.9.0.0/16", "t").unwrap()];
        assert_eq!(refused(ip("127.0.0.1"), &host(), &opened), None);
        assert_eq!(refused(ip("10.9.3.4"), &host(), &opened), None);
        assert!(refused(ip("127.0.0.2"), &host(), &opened).is_some());
        assert!(refused(ip("10.8.0.1"), &host(), &opened).is_some());
        assert!(refused(ip("169.254.169.254"), &host(), &opened).is_some());
    }

    #[test]
    fn callback_ranges_may_name_loopback_alone_and_allow_net_may_not() {
        assert_eq!(Cidr::parse_callback("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        let wide = Cidr::parse_callback("0.0.0.0/0").unwrap_err().to_string();
        assert!(wide.contains("--callback-net") && wide.contains("link-local"), "{wide}");
        let over = Cidr::parse_callback("112.0.0.0/4").unwrap_err().to_string();
        assert!(over.contains("loopback") && over.contains("on its own"), "{over}");
        assert!(Cidr::parse("127.0.0.1").unwrap_err().to_string().contains("--allow-net"));
    }
}
