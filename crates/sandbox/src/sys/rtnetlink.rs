//! Route netlink, for the two link changes a sandbox's egress needs from the host: making a
//! veth pair whose peer is created straight in the sandbox's network namespace, and deleting
//! a link by name. What `ip link add` / `ip link del` do, without starting `ip` (a few
//! milliseconds of CPU on every egress sandbox's start). See docs/architecture.md, "Network".

use rustix::net::{recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
/// `struct ifinfomsg`: family, type, index, flags and change, all zero here.
const IFINFOMSG_LEN: usize = 16;
/// How long the kernel may take to answer one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// One request being written: a header, then attributes (nested ones patched with their
/// length when they close).
struct Request {
    buf: Vec<u8>,
}

impl Request {
    fn new(kind: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        buf.extend_from_slice(&[0; IFINFOMSG_LEN]);
        Self { buf }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// An interface name attribute (NUL-terminated, as the kernel wants it).
    fn name(&mut self, name: &str) -> &mut Self {
        let mut z = name.as_bytes().to_vec();
        z.push(0);
        self.attr(IFLA_IFNAME, &z)
    }

    /// Opens a nested attribute; `close` with what this returns.
    fn open(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn close(&mut self, at: usize) -> &mut Self {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn route_socket() -> io::Result<OwnedFd> {
    let s = socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None)?;
    super::net::set_timeouts(std::os::fd::AsFd::as_fd(&s), ANSWER_TIMEOUT)?;
    Ok(s)
}

/// Sends `request` to the kernel and reads its acknowledgement: `Ok` or the error it names.
fn exchange(request: Vec<u8>) -> io::Result<()> {
    let s = route_socket()?;
    send(&s, &request, SendFlags::empty())?;
    let mut answer = [0u8; 1024];
    let (n, _) = recv(&s, &mut answer, RecvFlags::empty())?;
    acknowledgement(&answer[..n])
}

/// The error code of an `NLMSG_ERROR` answer (0: done).
fn acknowledgement(answer: &[u8]) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "the kernel's netlink answer is not an acknowledgement");
    if answer.len() < 20 || u16::from_ne_bytes([answer[4], answer[5]]) != NLMSG_ERROR {
        return Err(bad());
    }
    match i32::from_ne_bytes([answer[16], answer[17], answer[18], answer[19]]) {
        0 => Ok(()),
        e if e < 0 => Err(io::Error::from_raw_os_error(-e)),
        _ => Err(bad()),
    }
}

fn veth_request(host: &str, peer: &str, pid: libc::pid_t) -> Vec<u8> {
    let mut r = Request::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    r.name(host);
    let info = r.open(IFLA_LINKINFO);
    r.attr(IFLA_INFO_KIND, b"veth");
    let data = r.open(IFLA_INFO_DATA);
    let p = r.open(VETH_INFO_PEER);
    r.buf.extend_from_slice(&[0; IFINFOMSG_LEN]);
    r.name(peer).attr(IFLA_NET_NS_PID, &(pid as u32).to_ne_bytes());
    r.close(p).close(data).close(info);
    r.finish()
}

/// Makes the veth pair `host` (in the caller's network namespace) and `peer` (in the network
/// namespace of process `pid`): `ip link add HOST type veth peer name PEER netns PID`.
pub fn add_veth_pair(host: &str, peer: &str, pid: libc::pid_t) -> io::Result<()> {
    exchange(veth_request(host, peer, pid))
}

/// Deletes the link `name` of the caller's network namespace (`ENODEV` when there is none).
pub fn delete_link(name: &str) -> io::Result<()> {
    let mut r = Request::new(RTM_DELLINK, 0);
    r.name(name);
    exchange(r.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).position(|w| w == needle).unwrap_or_else(|| panic!("{needle:02x?} not in {hay:02x?}"))
    }

    #[test]
    fn a_veth_request_nests_the_peer_in_the_link_info() {
        let m = veth_request("fnbx7", "eth0", 0x0102_0304);
        assert_eq!(u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize, m.len());
        assert!(m.len().is_multiple_of(4));
        let host = find(&m, &[10, 0, 3, 0, b'f', b'n', b'b', b'x', b'7', 0, 0, 0]);
        let kind = find(&m, &[8, 0, 1, 0, b'v', b'e', b't', b'h']);
        let peer = find(&m, &[9, 0, 3, 0, b'e', b't', b'h', b'0', 0, 0, 0, 0, 8, 0, 19, 0, 4, 3, 2, 1]);
        // IFLA_LINKINFO > IFLA_INFO_DATA > VETH_INFO_PEER, each nested and each running to the
        // end of the message (the peer is the last thing in it).
        let mut at = host;
        for nested in [IFLA_LINKINFO, IFLA_INFO_DATA, VETH_INFO_PEER] {
            let t = find(&m[at..], &(nested | NLA_F_NESTED).to_ne_bytes()) + at;
            let len = u16::from_ne_bytes([m[t - 2], m[t - 1]]) as usize;
            assert_eq!(t - 2 + len, m.len(), "attribute {nested}");
            at = t;
        }
        assert!(host < kind && kind < at && at < peer, "{m:02x?}");
    }

    #[test]
    fn acknowledgements_are_read_and_anything_else_refused() {
        let ack = |code: i32| {
            let mut a = vec![0u8; 36];
            a[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            a[16..20].copy_from_slice(&code.to_ne_bytes());
            a
        };
        assert!(acknowledgement(&ack(0)).is_ok());
        assert_eq!(acknowledgement(&ack(-libc::EEXIST)).unwrap_err().raw_os_error(), Some(libc::EEXIST));
        assert!(acknowledgement(&ack(5)).is_err());
        assert!(acknowledgement(&[0u8; 8]).is_err());
        let mut other = ack(0);
        other[4] = 16;
        assert!(acknowledgement(&other).is_err());
    }

    #[test]
    fn a_pair_is_made_into_another_namespace_and_deleted() {
        // A child in a network namespace of its own holds the peer's end.
        let mut child = std::process::Command::new("unshare")
            .args(["--net", "sleep", "30"])
            .spawn()
            .expect("unshare (util-linux) is needed for this test");
        let pid = child.id() as libc::pid_t;
        std::thread::sleep(Duration::from_millis(200));
        let host = format!("fnbxt{}", std::process::id() % 100_000);
        let made = add_veth_pair(&host, "eth0", pid);
        let exists = std::path::Path::new("/sys/class/net").join(&host).exists();
        let inside = std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "cat", "/sys/class/net/eth0/ifindex"])
            .output()
            .is_ok_and(|o| o.status.success());
        let deleted = delete_link(&host);
        let _ = child.kill();
        let _ = child.wait();
        made.expect("RTM_NEWLINK veth");
        assert!(exists && inside, "host end {host}: {exists}, peer in the namespace: {inside}");
        deleted.expect("RTM_DELLINK");
        assert!(!std::path::Path::new("/sys/class/net").join(&host).exists());
        assert_eq!(delete_link(&host).unwrap_err().raw_os_error(), Some(libc::ENODEV));
    }
}
