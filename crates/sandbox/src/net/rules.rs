//! The nftables table `inet fnbox`: what egress sandboxes may reach. Every rule matches on
//! the host end of a sandbox's link (`fnbx<slot>`), in the host's network namespace, so a
//! sandbox's root cannot change it. See docs/architecture.md, "Network".

use super::Cidr;
use crate::error::Result;
use crate::idmap::IdRange;
use crate::paths::Paths;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

pub(super) const LINK_PREFIX: &str = "fnbx";
const TABLE: &str = "inet fnbox";

/// New flows (conntrack entries) one sandbox may hold at once: enough for a busy client
/// (a browser holds a few hundred), far from the host's table (`nf_conntrack_max`, 262144
/// here), which sandboxes share with each other and with the host's own traffic.
pub const FLOWS_PER_SANDBOX: u32 = 4096;

/// The rules both layers start a sandbox's outbound traffic with: no packet conntrack cannot
/// follow (it would leave un-NATed), no spoofed source, no IPv6, no other sandbox, no mail.
const EGRESS_FIRST: [&str; 5] = [
    "ct state invalid drop",
    "fib saddr . iif oif missing drop",
    "meta nfproto ipv6 drop",
    "oifname \"fnbx*\" drop",
    "tcp dport { 25, 465 } drop",
];

fn list<T: ToString>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

/// What one sandbox may reach within the denied ranges: its resolvers on port 53 and the
/// ranges it was allowed.
fn accepts(allow: &[Cidr], servers: &[Ipv4Addr]) -> Vec<String> {
    let mut r = Vec::new();
    if !servers.is_empty() {
        r.push(format!("ip daddr {{ {} }} meta l4proto {{ tcp, udp }} th dport 53 accept", list(servers)));
    }
    if !allow.is_empty() {
        r.push(format!("ip daddr {{ {} }} accept", list(allow)));
    }
    r
}

/// The shared part of the table. Loaded with every sandbox's rules in one transaction: base
/// chains are flushed and filled again, so loading it twice leaves one copy, and a table
/// someone flushed is whole again before the next sandbox's link exists. `router_off`: fnbox
/// turned forwarding on, so the host forwards nothing but its sandboxes' traffic.
fn base(denied: &[Cidr], router_off: bool) -> String {
    let p = LINK_PREFIX;
    let mut s = format!(
        "add table {TABLE}
add map {TABLE} sandboxes {{ type ifname : verdict; }}
add set {TABLE} denied4 {{ type ipv4_addr; flags interval; }}
flush set {TABLE} denied4
add element {TABLE} denied4 {{ {} }}
add set {TABLE} flows {{ type ipv4_addr; size 65535; flags dynamic; }}
add chain {TABLE} input {{ type filter hook input priority filter - 5; policy accept; }}
flush chain {TABLE} input
add rule {TABLE} input iifname \"{p}*\" drop
add chain {TABLE} egress
flush chain {TABLE} egress
",
        list(denied)
    );
    for r in EGRESS_FIRST {
        s.push_str(&format!("add rule {TABLE} egress {r}\n"));
    }
    s.push_str(&format!(
        "add rule {TABLE} egress ct state new add @flows {{ ip saddr ct count over {FLOWS_PER_SANDBOX} }} drop
add rule {TABLE} egress iifname vmap @sandboxes
add rule {TABLE} egress ip daddr @denied4 drop
add rule {TABLE} egress accept
add chain {TABLE} forward {{ type filter hook forward priority filter - 5; policy accept; }}
flush chain {TABLE} forward
add rule {TABLE} forward iifname \"{p}*\" jump egress
add rule {TABLE} forward oifname \"{p}*\" ct state established,related accept
add rule {TABLE} forward oifname \"{p}*\" drop
"
    ));
    if router_off {
        s.push_str(&format!("add rule {TABLE} forward drop\n"));
    }
    s.push_str(&format!(
        "add chain {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
flush chain {TABLE} postrouting
add rule {TABLE} postrouting iifname \"{p}*\" masquerade
"
    ));
    s
}

/// One sandbox's own chain: its resolvers on port 53 and the ranges it was allowed.
fn sandbox(slot: u32, allow: &[Cidr], servers: &[Ipv4Addr]) -> String {
    let chain = format!("slot{slot}");
    let mut s = format!("add chain {TABLE} {chain}\nflush chain {TABLE} {chain}\n");
    for r in accepts(allow, servers) {
        s.push_str(&format!("add rule {TABLE} {chain} {r}\n"));
    }
    s.push_str(&format!("add element {TABLE} sandboxes {{ \"{}\" : jump {chain} }}\n", super::link_name(slot)));
    s
}

/// The table and the sandbox's chain, as one line (the first half of [`sandbox_line`]).
pub(super) fn load(slot: u32, allow: &[Cidr], servers: &[Ipv4Addr], denied: &[Cidr], router_off: bool) -> String {
    one_line(&format!("{}{}", base(denied, router_off), sandbox(slot, allow, servers)))
}

/// A script's commands joined on one line (`nft -i` runs a line as one transaction). No
/// command of ours spans lines or holds a comment.
fn one_line(script: &str) -> String {
    script.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("; ")
}

/// The second layer: one sandbox's whole filter in a table of its own, `inet fnboxg<slot>`,
/// owned by the `nft` process that made it (`flags owner`). `nft flush ruleset` (a firewall
/// reload) leaves a table another process owns alone, and the kernel removes it when that
/// process ends. Denies alone: what it accepts still meets the shared table. One line: `nft
/// -i` runs it as one transaction.
pub(super) fn guard(slot: u32, allow: &[Cidr], servers: &[Ipv4Addr], denied: &[Cidr]) -> String {
    let t = format!("inet {}", guard_table(slot));
    let link = super::link_name(slot);
    let mut r = vec![
        format!("add table {t} {{ flags owner; }}"),
        format!("add chain {t} input {{ type filter hook input priority filter - 10; policy accept; }}"),
        format!("add rule {t} input iifname \"{link}\" drop"),
        format!("add chain {t} egress"),
    ];
    r.extend(EGRESS_FIRST.iter().map(|e| format!("add rule {t} egress {e}")));
    r.extend(accepts(allow, servers).iter().map(|a| format!("add rule {t} egress {a}")));
    r.push(format!("add rule {t} egress ip daddr {{ {} }} drop", list(denied)));
    r.push(format!("add chain {t} forward {{ type filter hook forward priority filter - 10; policy accept; }}"));
    r.push(format!("add rule {t} forward iifname \"{link}\" jump egress"));
    r.push(format!("add rule {t} forward oifname \"{link}\" ct state established,related accept"));
    r.push(format!("add rule {t} forward oifname \"{link}\" drop"));
    r.join("; ")
}

/// Both layers for one sandbox as one line, which `nft -i` runs as one transaction: the shared
/// table with the sandbox's chain ([`load`]) and its guard table ([`guard`]) go in together or
/// not at all. One transaction rather than two also fetches nft's cache once, which costs
/// about 0.35 ms of CPU for every table on the host (each of them a sandbox's guard table):
/// docs/architecture.md, "Network".
pub(super) fn sandbox_line(
    slot: u32,
    allow: &[Cidr],
    servers: &[Ipv4Addr],
    denied: &[Cidr],
    router_off: bool,
) -> String {
    format!("{}; {}", load(slot, allow, servers, denied, router_off), guard(slot, allow, servers, denied))
}

pub(super) fn guard_table(slot: u32) -> String {
    format!("fnboxg{slot}")
}

fn nft(script: &str) -> Result<std::process::Child> {
    super::run_script("nft", &["-f", "-"], "nftables", script)
}

fn run_quietly(script: &str) -> bool {
    nft(script).ok().and_then(|c| c.wait_with_output().ok()).is_some_and(|o| o.status.success())
}

/// Removes the chain of the sandbox in slot `slot` (made sure to exist first, so that this
/// is one transaction whether or not it does). Nothing happens without the table.
pub fn forget(slot: u32) {
    run_quietly(&forget_script(slot));
}

/// [`forget`]'s commands as one line, for the guard process to run before it exits.
pub(super) fn forget_line(slot: u32) -> String {
    one_line(&forget_script(slot))
}

fn forget_script(slot: u32) -> String {
    let chain = format!("slot{slot}");
    let link = super::link_name(slot);
    format!(
        "add chain {TABLE} {chain}
add element {TABLE} sandboxes {{ \"{link}\" : jump {chain} }}
delete element {TABLE} sandboxes {{ \"{link}\" }}
delete chain {TABLE} {chain}
"
    )
}

/// `fnbox cleanup`: removes the links and chains of slots no launcher holds, and the whole
/// table when no sandbox link is left. Returns how many links and chains went.
pub fn clean(paths: &Paths) -> usize {
    let Ok(_lock) = super::lock(paths, true) else { return 0 };
    let mut n = 0;
    let listed = Command::new("nft").args(["list", "table", "inet", "fnbox"]).stderr(Stdio::null()).output();
    let listed = listed.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    for slot in listed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain slot"))
        .filter_map(|l| l.trim_end_matches('{').trim().parse::<u32>().ok())
    {
        if let Some(_held) = IdRange::try_take(paths, slot) {
            forget(slot);
            n += 1;
        }
    }
    let mut links_left = 0;
    for slot in links() {
        match IdRange::try_take(paths, slot) {
            Some(_held) => {
                let gone = crate::sys::rtnetlink::delete_link(&super::link_name(slot)).is_ok();
                n += gone as usize;
                links_left += !gone as usize;
            }
            None => links_left += 1,
        }
    }
    if links_left == 0 && !listed.is_empty() && run_quietly(&format!("delete table {TABLE}\n")) {
        n += 1;
    }
    if links_left == 0 {
        n += super::forwarding_record(paths).is_ok_and(|r| super::link::restore_forwarding(&r)) as usize;
    }
    n
}

/// The slots of the sandbox links on the host.
pub(super) fn links() -> Vec<u32> {
    std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix(LINK_PREFIX)).and_then(|s| s.parse().ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_chain_allows_its_resolvers_and_ranges_only() {
        let s = sandbox(7, &[Cidr::parse("10.77.0.0/24").unwrap()], &[Ipv4Addr::new(10, 255, 255, 53)]);
        assert!(s.contains("ip daddr { 10.255.255.53 } meta l4proto { tcp, udp } th dport 53 accept"), "{s}");
        assert!(s.contains("ip daddr { 10.77.0.0/24 } accept"), "{s}");
        assert!(s.contains("\"fnbx7\" : jump slot7"), "{s}");
        let none = sandbox(7, &[], &[]);
        assert!(!none.contains("accept"), "{none}");
    }

    #[test]
    fn the_shared_table_drops_invalid_caps_flows_and_nats_by_link() {
        let denied = super::super::denied(&Default::default());
        let s = base(&denied, false);
        let invalid = s.find("egress ct state invalid drop").expect(&s);
        let vmap = s.find("egress iifname vmap @sandboxes").expect(&s);
        let cap = s.find(&format!("ct count over {FLOWS_PER_SANDBOX} }} drop")).expect(&s);
        assert!(invalid < cap && cap < vmap, "{s}");
        assert!(s.contains("198.18.0.0/15") && s.contains("240.0.0.0/4"), "{s}");
        // The NAT rule names no range: no launcher's FNBOX_SANDBOX_NET rewrites it for others.
        assert!(s.contains("postrouting iifname \"fnbx*\" masquerade"), "{s}");
        assert!(!s.contains("add rule inet fnbox forward drop"), "{s}");
        let router_off = base(&denied, true);
        assert!(router_off.ends_with("add rule inet fnbox forward drop\nadd chain inet fnbox postrouting { type nat hook postrouting priority srcnat; policy accept; }\nflush chain inet fnbox postrouting\nadd rule inet fnbox postrouting iifname \"fnbx*\" masquerade\n"), "{router_off}");
    }

    #[test]
    fn the_shared_table_and_forgetting_a_slot_are_one_line_each() {
        let denied = super::super::denied(&Default::default());
        let l = load(4, &[], &[Ipv4Addr::new(10, 255, 255, 53)], &denied, true);
        assert!(!l.contains('\n') && !l.contains("; ;") && !l.ends_with("; "), "{l}");
        assert!(l.starts_with("add table inet fnbox; add map inet fnbox sandboxes"), "{l}");
        assert!(l.ends_with("add element inet fnbox sandboxes { \"fnbx4\" : jump slot4 }"), "{l}");
        let f = forget_line(4);
        assert_eq!(f, "add chain inet fnbox slot4; add element inet fnbox sandboxes { \"fnbx4\" : jump slot4 }; delete element inet fnbox sandboxes { \"fnbx4\" }; delete chain inet fnbox slot4");
    }

    #[test]
    fn the_guard_table_is_owned_and_holds_the_whole_filter_of_one_link() {
        let denied = super::super::denied(&Default::default());
        let g = guard(3, &[Cidr::parse("10.77.0.0/24").unwrap()], &[Ipv4Addr::new(10, 255, 255, 53)], &denied);
        assert!(!g.contains('\n'), "one line, one transaction: {g}");
        assert!(g.starts_with("add table inet fnboxg3 { flags owner; }"), "{g}");
        for want in [
            "input iifname \"fnbx3\" drop",
            "egress ct state invalid drop",
            "egress tcp dport { 25, 465 } drop",
            "egress meta nfproto ipv6 drop",
            "egress ip daddr { 10.255.255.53 } meta l4proto { tcp, udp } th dport 53 accept",
            "egress ip daddr { 10.77.0.0/24 } accept",
            "forward iifname \"fnbx3\" jump egress",
            "forward oifname \"fnbx3\" drop",
        ] {
            assert!(g.contains(want), "{want}: {g}");
        }
        assert!(g.find("10.77.0.0/24 } accept").unwrap() < g.find("198.18.0.0/15").unwrap(), "{g}");
    }
}
