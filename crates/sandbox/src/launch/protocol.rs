//! Messages between the launcher and the sandbox's first process (and its program, the Sentry
//! and `exec`'s helper), over `SOCK_SEQPACKET` pairs: one message per packet, descriptors
//! attached with `SCM_RIGHTS`. Binary: a tag byte, then fixed-size little-endian fields or one
//! variable-length byte string. Every message is encoded by [`ToSandbox::encode`] /
//! [`FromSandbox::encode`] and read by their `decode`, which checks the tag and the length;
//! nothing else in the code knows the layout (see "Processes and their messages" in
//! docs/architecture.md).

use crate::spec::Access;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The longest message. A receive buffer one byte longer tells a message that was cut
/// (`SOCK_SEQPACKET` drops what does not fit) from one that fits.
pub const MAX: usize = 4096;
/// The size of a receive buffer: [`MAX`] + 1.
pub const BUF: usize = MAX + 1;

/// The bits of an attach's flags that hold the access ([`Access::to_byte`]).
const ATTACH_ACCESS: u8 = 0x0f;
/// A read-only directory shown through an overlay of its own, so the sandbox's mountinfo does
/// not show its host path.
const ATTACH_OVERLAY: u8 = 0x10;

/// Launcher → sandbox's init: its root's pieces and, once running, mounts and `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToSandbox {
    /// The image (overlayfs lower layer); one descriptor.
    Lower,
    /// The disk-backed writable layer; one descriptor.
    Disk,
    /// The sandbox's `/dev` (`rootfs::make_dev`); one descriptor.
    Dev,
    /// A mount to attach (before `Go`, or into the running sandbox, answered by
    /// [`FromSandbox::Attached`]); one descriptor. `overlay`: a read-only directory shown
    /// through an overlay of its own (see `rootfs::stage`).
    Attach(Attach),
    /// A container's mount `i` (a bind, or v2's `/proc`); one descriptor.
    Bind(u16),
    /// The image and attachments are sent; build what does not need the disk.
    Stage,
    /// Everything is sent, go.
    Go,
    /// Let the held program `execve`.
    Start,
    /// A sibling init's exit status, the answer to its [`FromSandbox::Exited`]: the program's,
    /// or 128+SIGKILL when the OOM killer acted in the sandbox (an OOM kill ends the whole
    /// sandbox, and the init's parent reaps the init's status as the container's).
    Exit(u8),
}

/// A mount to attach (see [`ToSandbox::Attach`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    pub target: PathBuf,
    pub dir: bool,
    pub access: Access,
    pub overlay: bool,
}

/// Sandbox → launcher (init and program; `exec`'s helper and process → the `exec` verb), and
/// → the Sentry (`SentryFds`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromSandbox {
    /// Set-up failed: why (cut at [`MAX`]).
    SetupError(String),
    /// The program could not be started: errno.
    ExecError(i32),
    /// The program ended: its wait status.
    Exited(i32),
    /// The answer to a running sandbox's attach: errno, 0 for done.
    Attached(i32),
    /// The program is about to `execve`, at this CLOCK_MONOTONIC time (ns).
    Exec(u64),
    /// Held programs: everything up to `execve` is done; waiting for [`ToSandbox::Start`].
    Ready,
    /// The terminal's master side, for the console socket; one descriptor.
    Console,
    /// → the Sentry: a seccomp listener (and, from the program, the root); descriptors.
    SentryFds,
    /// `exec`'s helper → the verb: the new process's host pid.
    Pid(i32),
}

mod tag {
    pub const LOWER: u8 = b'L';
    pub const DISK: u8 = b'D';
    pub const DEV: u8 = b'V';
    pub const ATTACH: u8 = b'A';
    pub const STAGE: u8 = b'P';
    pub const GO: u8 = b'G';
    pub const BIND: u8 = b'B';
    pub const START: u8 = b'T';
    pub const EXIT: u8 = b'Z';
    pub const SETUP_ERROR: u8 = b'E';
    pub const EXEC_ERROR: u8 = b'F';
    pub const EXITED: u8 = b'X';
    pub const ATTACHED: u8 = b'a';
    pub const EXEC: u8 = b'R';
    pub const READY: u8 = b'Y';
    pub const CONSOLE: u8 = b'C';
    pub const SENTRY_FDS: u8 = b'S';
    pub const PID: u8 = b'P';
}

impl ToSandbox {
    /// The message's bytes; `Err` for an attach whose target is too long for one message.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        Ok(match self {
            Self::Lower => vec![tag::LOWER],
            Self::Disk => vec![tag::DISK],
            Self::Dev => vec![tag::DEV],
            Self::Stage => vec![tag::STAGE],
            Self::Go => vec![tag::GO],
            Self::Start => vec![tag::START],
            Self::Bind(i) => with(tag::BIND, &i.to_le_bytes()),
            Self::Exit(c) => vec![tag::EXIT, *c],
            Self::Attach(a) => {
                let target = a.target.as_os_str().as_bytes();
                if target.is_empty() || 3 + target.len() > MAX {
                    return Err(format!(
                        "cannot attach at {}: a mount point must be 1 to {} bytes long",
                        a.target.display(),
                        MAX - 3
                    ));
                }
                let flags = a.access.to_byte() | if a.overlay { ATTACH_OVERLAY } else { 0 };
                let mut m = vec![tag::ATTACH, a.dir as u8, flags];
                m.extend_from_slice(target);
                m
            }
        })
    }

    /// Reads one message (`b`: what was received, at most [`BUF`] bytes).
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let (&t, rest) = split(b, "the launcher")?;
        let fixed = |m: Self, len: usize| exact(m, rest, len, t, "the launcher");
        match t {
            tag::LOWER => fixed(Self::Lower, 0),
            tag::DISK => fixed(Self::Disk, 0),
            tag::DEV => fixed(Self::Dev, 0),
            tag::STAGE => fixed(Self::Stage, 0),
            tag::GO => fixed(Self::Go, 0),
            tag::START => fixed(Self::Start, 0),
            tag::BIND => Ok(Self::Bind(u16::from_le_bytes(array(rest, t, "the launcher")?))),
            tag::EXIT => Ok(Self::Exit(u8::from_le_bytes(array(rest, t, "the launcher")?))),
            tag::ATTACH => {
                let [dir, flags, target @ ..] = rest else {
                    return Err(bad(t, "the launcher", "a flag byte, an access byte and a mount point"));
                };
                let access = match Access::from_byte(flags & ATTACH_ACCESS) {
                    a if a.to_byte() == flags & ATTACH_ACCESS => a,
                    _ => return Err(bad(t, "the launcher", "an access of 0, 1 or 2")),
                };
                if *dir > 1 || flags & !(ATTACH_ACCESS | ATTACH_OVERLAY) != 0 || target.is_empty() {
                    return Err(bad(t, "the launcher", "known flags and a mount point"));
                }
                Ok(Self::Attach(Attach {
                    target: Path::new(OsStr::from_bytes(target)).to_path_buf(),
                    dir: *dir == 1,
                    access,
                    overlay: flags & ATTACH_OVERLAY != 0,
                }))
            }
            _ => Err(format!("the launcher sent an unknown message (tag {t:#04x})")),
        }
    }
}

impl FromSandbox {
    /// The message's bytes (a set-up error longer than a message is cut).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::SetupError(m) => {
                let mut cut = m.len().min(MAX - 1);
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                with(tag::SETUP_ERROR, &m.as_bytes()[..cut])
            }
            Self::ExecError(e) => with(tag::EXEC_ERROR, &e.to_le_bytes()),
            Self::Exited(s) => with(tag::EXITED, &s.to_le_bytes()),
            Self::Attached(e) => with(tag::ATTACHED, &e.to_le_bytes()),
            Self::Exec(ns) => with(tag::EXEC, &ns.to_le_bytes()),
            Self::Pid(p) => with(tag::PID, &p.to_le_bytes()),
            Self::Ready => vec![tag::READY],
            Self::Console => vec![tag::CONSOLE],
            Self::SentryFds => vec![tag::SENTRY_FDS],
        }
    }

    /// Reads one message (`b`: what was received, at most [`BUF`] bytes).
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        const WHO: &str = "the sandbox";
        let (&t, rest) = split(b, WHO)?;
        match t {
            tag::SETUP_ERROR => Ok(Self::SetupError(String::from_utf8_lossy(rest).into_owned())),
            tag::EXEC_ERROR => Ok(Self::ExecError(i32::from_le_bytes(array(rest, t, WHO)?))),
            tag::EXITED => Ok(Self::Exited(i32::from_le_bytes(array(rest, t, WHO)?))),
            tag::ATTACHED => Ok(Self::Attached(i32::from_le_bytes(array(rest, t, WHO)?))),
            tag::PID => Ok(Self::Pid(i32::from_le_bytes(array(rest, t, WHO)?))),
            tag::EXEC => Ok(Self::Exec(u64::from_le_bytes(array(rest, t, WHO)?))),
            tag::READY => exact(Self::Ready, rest, 0, t, WHO),
            tag::CONSOLE => exact(Self::Console, rest, 0, t, WHO),
            tag::SENTRY_FDS => exact(Self::SentryFds, rest, 0, t, WHO),
            _ => Err(format!("{WHO} sent an unknown message (tag {t:#04x})")),
        }
    }
}

fn with(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(1 + rest.len());
    m.push(tag);
    m.extend_from_slice(rest);
    m
}

/// The tag and the rest of a message that fits.
fn split<'a>(b: &'a [u8], who: &str) -> Result<(&'a u8, &'a [u8]), String> {
    if b.len() > MAX {
        return Err(format!("{who} sent a message over {MAX} bytes"));
    }
    b.split_first().ok_or_else(|| format!("{who} sent an empty message"))
}

fn bad(t: u8, who: &str, expected: &str) -> String {
    format!("{who} sent a malformed message {:?} (expected {expected})", t as char)
}

fn exact<T>(m: T, rest: &[u8], len: usize, t: u8, who: &str) -> Result<T, String> {
    match rest.len() == len {
        true => Ok(m),
        false => Err(bad(t, who, &format!("{len} bytes after the tag, not {}", rest.len()))),
    }
}

fn array<const N: usize>(rest: &[u8], t: u8, who: &str) -> Result<[u8; N], String> {
    rest.try_into().map_err(|_| bad(t, who, &format!("{N} bytes after the tag, not {}", rest.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(target: &str, access: Access, overlay: bool) -> ToSandbox {
        ToSandbox::Attach(Attach { target: target.into(), dir: true, access, overlay })
    }

    #[test]
    fn every_message_round_trips() {
        let down = [
            ToSandbox::Lower,
            ToSandbox::Disk,
            ToSandbox::Dev,
            ToSandbox::Stage,
            ToSandbox::Go,
            ToSandbox::Start,
            ToSandbox::Bind(513),
            ToSandbox::Exit(137),
            attach("/code", Access::CopyOnWrite, false),
            attach("/usr", Access::ReadOnly, true),
            ToSandbox::Attach(Attach {
                target: "/etc/x".into(),
                dir: false,
                access: Access::ReadWrite,
                overlay: false,
            }),
        ];
        for m in down {
            assert_eq!(ToSandbox::decode(&m.encode().unwrap()), Ok(m.clone()), "{m:?}");
        }
        let up = [
            FromSandbox::SetupError("cannot mount /x: EPERM".into()),
            FromSandbox::ExecError(libc::ENOENT),
            FromSandbox::Exited(9),
            FromSandbox::Attached(0),
            FromSandbox::Attached(libc::EBUSY),
            FromSandbox::Exec(1 << 40),
            FromSandbox::Pid(4242),
            FromSandbox::Ready,
            FromSandbox::Console,
            FromSandbox::SentryFds,
        ];
        for m in up {
            assert_eq!(FromSandbox::decode(&m.encode()), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        assert_eq!(FromSandbox::Exec(1).encode(), b"R\x01\0\0\0\0\0\0\0");
        assert_eq!(ToSandbox::Bind(2).encode().unwrap(), b"B\x02\0");
        assert_eq!(attach("/a", Access::ReadOnly, true).encode().unwrap(), b"A\x01\x11/a");
    }

    #[test]
    fn short_long_and_unknown_messages_are_errors() {
        assert!(FromSandbox::decode(b"R\x01\x02").unwrap_err().contains("8 bytes after the tag, not 2"));
        assert!(FromSandbox::decode(b"X").unwrap_err().contains("4 bytes"));
        assert!(FromSandbox::decode(b"Yx").unwrap_err().contains("0 bytes"));
        assert!(FromSandbox::decode(b"").unwrap_err().contains("empty"));
        assert!(FromSandbox::decode(b"Q").unwrap_err().contains("unknown message"));
        assert!(FromSandbox::decode(&[b'E'; BUF]).unwrap_err().contains("over 4096 bytes"));
        assert!(ToSandbox::decode(b"B\x01").unwrap_err().contains("2 bytes"));
        assert!(ToSandbox::decode(b"A\x01").unwrap_err().contains("mount point"));
        assert!(ToSandbox::decode(b"A\x01\x01").unwrap_err().contains("mount point"));
        assert!(ToSandbox::decode(b"A\x02\x01/a").unwrap_err().contains("known flags"));
        assert!(ToSandbox::decode(b"A\x01\x21/a").unwrap_err().contains("known flags"));
        assert!(ToSandbox::decode(b"A\x01\x07/a").unwrap_err().contains("access"));
        assert!(ToSandbox::decode(b"Q").unwrap_err().contains("unknown message"));
        assert!(ToSandbox::decode(b"Z").unwrap_err().contains("1 bytes after the tag, not 0"));
        assert!(ToSandbox::decode(b"Z\x89\0").unwrap_err().contains("1 bytes after the tag, not 2"));
        assert!(attach(&"/x".repeat(MAX), Access::ReadOnly, false).encode().is_err());
        // A set-up error too long for one message is cut, on a character boundary.
        let long = FromSandbox::SetupError("é".repeat(MAX)).encode();
        assert!(long.len() <= MAX);
        assert!(matches!(FromSandbox::decode(&long), Ok(FromSandbox::SetupError(m)) if m.chars().all(|c| c == 'é')));
    }
}
