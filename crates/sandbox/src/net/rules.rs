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

/// Never reachable unless an operator allows a range: "this network", RFC 1918, shared
/// (100.64.0.0/10), loopback, link-local (cloud metadata), multicast and reserved.
const DENIED_V4: &str =
    "0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 224.0.0.0/3";

/// The shared part of the table. Loaded with every sandbox's rules in one transaction: base
/// chains are flushed and filled again, so loading it twice leaves one copy, and a table
/// someone flushed is whole again before the next sandbox's link exists.
fn base(subnet: Cidr) -> String {
    let p = LINK_PREFIX;
    format!(
        "add table {TABLE}
add map {TABLE} sandboxes {{ type ifname : verdict; }}
add set {TABLE} denied4 {{ type ipv4_addr; flags interval; }}
flush set {TABLE} denied4
add element {TABLE} denied4 {{ {DENIED_V4} }}
add chain {TABLE} input {{ type filter hook input priority filter - 5; policy accept; }}
flush chain {TABLE} input
add rule {TABLE} input iifname \"{p}*\" drop
add chain {TABLE} egress
flush chain {TABLE} egress
add rule {TABLE} egress fib saddr . iif oif missing drop
add rule {TABLE} egress meta nfproto ipv6 drop
add rule {TABLE} egress oifname \"{p}*\" drop
add rule {TABLE} egress tcp dport {{ 25, 465 }} drop
add rule {TABLE} egress iifname vmap @sandboxes
add rule {TABLE} egress ip daddr @denied4 drop
add rule {TABLE} egress accept
add chain {TABLE} forward {{ type filter hook forward priority filter - 5; policy accept; }}
flush chain {TABLE} forward
add rule {TABLE} forward iifname \"{p}*\" jump egress
add rule {TABLE} forward oifname \"{p}*\" ct state established,related accept
add rule {TABLE} forward oifname \"{p}*\" drop
add chain {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
flush chain {TABLE} postrouting
add rule {TABLE} postrouting ip saddr {subnet} masquerade
"
    )
}

/// One sandbox's own chain: its resolvers on port 53 and the ranges it was allowed.
fn sandbox(slot: u32, allow: &[Cidr], servers: &[Ipv4Addr]) -> String {
    let chain = format!("slot{slot}");
    let mut s = format!("add chain {TABLE} {chain}\nflush chain {TABLE} {chain}\n");
    if !servers.is_empty() {
        let list: Vec<String> = servers.iter().map(Ipv4Addr::to_string).collect();
        s.push_str(&format!(
            "add rule {TABLE} {chain} ip daddr {{ {} }} meta l4proto {{ tcp, udp }} th dport 53 accept\n",
            list.join(", ")
        ));
    }
    if !allow.is_empty() {
        let list: Vec<String> = allow.iter().map(Cidr::to_string).collect();
        s.push_str(&format!("add rule {TABLE} {chain} ip daddr {{ {} }} accept\n", list.join(", ")));
    }
    s.push_str(&format!("add element {TABLE} sandboxes {{ \"{}\" : jump {chain} }}\n", super::link_name(slot)));
    s
}

/// Starts `nft` loading the table and the sandbox's chain, in one transaction.
pub(super) fn load(slot: u32, allow: &[Cidr], servers: &[Ipv4Addr]) -> Result<std::process::Child> {
    nft(&format!("{}{}", base(super::subnet()), sandbox(slot, allow, servers)))
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

/// [`forget`], without waiting for `nft`: called as the launcher ends, whose exit hands it to
/// init, which reaps it.
#[allow(clippy::zombie_processes)]
pub(super) fn forget_later(slot: u32) {
    if let Ok(mut child) = nft(&forget_script(slot)) {
        // Closing our end of its stderr is all: it exits on its own.
        drop(child.stderr.take());
    }
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
                let gone = Command::new("ip")
                    .args(["link", "del", &super::link_name(slot)])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                n += gone as usize;
                links_left += !gone as usize;
            }
            None => links_left += 1,
        }
    }
    if links_left == 0 && !listed.is_empty() && run_quietly(&format!("delete table {TABLE}\n")) {
        n += 1;
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
}
