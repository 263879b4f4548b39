//! Messages between the launcher and the sandbox's first process, over a `SOCK_SEQPACKET`
//! pair (one message per packet, descriptors attached with `SCM_RIGHTS`).

/// Launcher → sandbox: the image (overlayfs lower layer); one descriptor.
pub const LOWER: u8 = b'L';
/// Launcher → sandbox: the disk-backed writable layer; one descriptor.
pub const DISK: u8 = b'D';
/// Launcher → sandbox: the sandbox's `/dev` (`rootfs::make_dev`); one descriptor.
pub const DEV: u8 = b'V';
/// Launcher → sandbox: a mount to attach: `[ATTACH, is_dir, flags, target...]` (flags: the
/// access, [`crate::spec::Access::to_byte`], in [`ATTACH_ACCESS`], and [`ATTACH_OVERLAY`]);
/// one descriptor.
pub const ATTACH: u8 = b'A';
/// The bits of an `ATTACH` message's flags that hold the access.
pub const ATTACH_ACCESS: u8 = 0x0f;
/// A read-only directory shown through an overlay of its own, so the sandbox's mountinfo does
/// not show its host path.
pub const ATTACH_OVERLAY: u8 = 0x10;
/// Launcher → sandbox: the image and attachments are sent; build what does not need the disk.
pub const STAGE: u8 = b'P';
/// Launcher → sandbox: everything is sent, go.
pub const GO: u8 = b'G';

/// Sandbox → launcher: set-up failed; the rest is the message.
pub const SETUP_ERROR: u8 = b'E';
/// Sandbox → launcher: the program could not be started: `[EXEC_ERROR, errno (4 bytes LE)]`.
pub const EXEC_ERROR: u8 = b'F';
/// Sandbox → launcher: the program ended: `[EXITED, wait status (4 bytes LE)]`.
pub const EXITED: u8 = b'X';
/// Launcher → sandbox (running): a mount to attach, as `ATTACH`; answered with `ATTACHED`.
/// Sandbox → launcher: `[ATTACHED, errno (4 bytes LE, 0 = done)]`.
pub const ATTACHED: u8 = b'a';
/// Sandbox → launcher: the program is about to `execve`: `[EXEC, CLOCK_MONOTONIC ns (8 bytes LE)]`.
pub const EXEC: u8 = b'R';
/// Program → Sentry (v2): the seccomp listener and the root; descriptors attached.
pub const SENTRY_FDS: u8 = b'S';
/// Launcher → sandbox: a container's mount `i` (a bind, or v2's `/proc`):
/// `[BIND, i (2 bytes LE)]`; one descriptor.
pub const BIND: u8 = b'B';
/// Sandbox → launcher (held programs): everything up to `execve` is done; waiting for `START`.
pub const READY: u8 = b'Y';
/// Launcher → sandbox: let the held program `execve`.
pub const START: u8 = b'T';
/// Sandbox → launcher: the terminal's master side, for the console socket; one descriptor.
pub const CONSOLE: u8 = b'C';
