//! Spare writable layers, made before they are needed.
//!
//! Attaching a loop device writes its backing file back to disk and flushes the disk's cache
//! (`LOOP_CONFIGURE` calls `fsync` since Linux 6.14). On a disk with a write-back cache that
//! flush takes 1 to 10 ms here, more on a busy disk, and it used to sit on every sandbox's
//! start-up path. So the disk helper of each sandbox, once its sandbox has ended, makes the
//! next sandbox's: a copy of the template, attached to a loop device without autoclear and left
//! attached, its backing file named `<template>.loop<N>.img` in `<state>/disk-spares`.
//!
//! The next sandbox of that size claims it by renaming the file (of concurrent claimers, one
//! rename wins), checks that loop N is still bound to that very file, turns on autoclear and
//! unlinks the name. From then on the layer is as private as one made on the spot, and goes
//! the same way: detached when the sandbox's filesystem is unmounted, its blocks freed with
//! the unlinked file.
//!
//! At most two spares per template are kept; spares unused for an hour are removed; a spare
//! whose device is gone (after a reboot, or `losetup -D`) is deleted when found. A helper
//! killed half-way leaves a `.making-PID-TOKEN.img` (its device found by inode) or
//! `.claimed-PID.loopN.img` file that the next maker releases. `FNBOX_DISK_SPARES=0` turns
//! spares off.

use super::{attach_loop, copy_sparse};
use crate::error::{Context, Result};
use crate::paths::Paths;
use crate::sys::{self, abi};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Spares kept per template: one for the next sandbox, one more for a sandbox that starts
/// before the last one's helper has made the next (back-to-back starts, bursts).
const SPARES: usize = 2;

/// A spare nobody claimed for this long belongs to a size nobody uses any more.
const MAX_AGE: Duration = Duration::from_secs(3600);

fn enabled() -> bool {
    std::env::var_os("FNBOX_DISK_SPARES").is_none_or(|v| v != "0")
}

/// The spare-name prefix for a template: `ext4-1024M-v2.loop`.
fn prefix(template: &Path) -> Option<String> {
    Some(format!("{}.loop", template.file_stem()?.to_str()?))
}

/// The loop number in a spare's name, if `name` is a spare of `prefix`.
fn loop_number(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.strip_suffix(".img")?.parse().ok()
}

/// A claimed spare: its loop device, open, still without autoclear (see [`Claimed::arm`]).
/// Dropped unarmed (the filesystem could not be mounted), it releases the device.
pub(super) struct Claimed {
    pub dev: String,
    fd: Option<OwnedFd>,
    /// The spare's name while claimed: what tells the next maker to release the device if this
    /// process dies before arming it.
    name: PathBuf,
}

impl Claimed {
    /// Once the filesystem on the device holds it open: makes the device detach itself when
    /// the last holder lets go. `LOOP_CLR_FD` on a device someone else holds open only sets
    /// autoclear, without the queue freeze (an RCU grace period, milliseconds) that
    /// `LOOP_SET_STATUS64` would cost.
    pub fn arm(mut self) -> OwnedFd {
        let fd = self.fd.take().expect("a claimed spare is armed once");
        finish(&fd, &self.name);
        fd
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        // Never armed (the filesystem could not be mounted): the device goes at once.
        if let Some(fd) = self.fd.take() {
            finish(&fd, &self.name);
        }
    }
}

/// Sets autoclear on a claimed device and forgets its name; if that fails, the name stays
/// for the next maker to release the device (see [`collect`]).
fn finish(fd: &OwnedFd, name: &Path) {
    if clear(fd) {
        let _ = std::fs::remove_file(name);
    }
}

/// Takes a spare made from `template`. `None` when there is none (or spares are off).
pub(super) fn claim(paths: &Paths, template: &Path) -> Option<Claimed> {
    if !enabled() {
        return None;
    }
    let dir = paths.disk_spares();
    let prefix = prefix(template)?;
    for e in std::fs::read_dir(&dir).ok()?.flatten() {
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|s| loop_number(s, &prefix)) else {
            continue;
        };
        let claimed = dir.join(format!(".claimed-{}.loop{n}.img", std::process::id()));
        if std::fs::rename(e.path(), &claimed).is_err() {
            continue; // another sandbox took it first
        }
        match binding(&claimed, n) {
            Binding::Bound(dev, fd) => return Some(Claimed { dev, fd: Some(fd), name: claimed }),
            // Its device is gone (a reboot, `losetup -D`): a stale name.
            Binding::Gone => {
                let _ = std::fs::remove_file(&claimed);
            }
            // Cannot tell now: the claimed name stays for the next maker to sort out.
            Binding::Unknown => {}
        }
    }
    None
}

/// Whether a spare's loop device is still bound to the spare's file.
enum Binding {
    /// Yes: the device's path, opened.
    Bound(String, OwnedFd),
    /// No: no such device, a device bound to nothing, or to another file.
    Gone,
    /// Could not be checked (out of descriptors or memory, say).
    Unknown,
}

fn binding(file: &Path, n: u32) -> Binding {
    let Ok(st) = std::fs::metadata(file) else {
        return Binding::Unknown;
    };
    let gone = |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENXIO | libc::ENODEV));
    let dev = format!("/dev/loop{n}");
    let fd = match sys::openat(None, Path::new(&dev), libc::O_RDWR, 0) {
        Ok(fd) => fd,
        Err(e) if gone(&e) => return Binding::Gone,
        Err(_) => return Binding::Unknown,
    };
    match status(&fd) {
        Ok(info) if info.lo_inode == st.ino() && info.lo_device == st.dev() => Binding::Bound(dev, fd),
        Ok(_) => Binding::Gone,
        Err(e) if gone(&e) => Binding::Gone,
        Err(_) => Binding::Unknown,
    }
}

fn status(fd: &OwnedFd) -> std::io::Result<abi::loop_info64> {
    sys::loopdev::status(fd.as_fd())
}

/// Detaches the device at its last close (at once if `fd` is its only holder). Whether the
/// kernel took the request.
fn clear(fd: &OwnedFd) -> bool {
    sys::loopdev::clear(fd.as_fd()).is_ok()
}

/// Takes the published spare `file` (loop `n`) out of use and releases it. Claimed like any
/// spare first, so that no sandbox takes it while it goes. Whether it was this call's to take.
fn retire(dir: &Path, file: &Path, n: u32) -> bool {
    let claimed = dir.join(format!(".claimed-{}.loop{n}.img", std::process::id()));
    let taken = std::fs::rename(file, &claimed).is_ok();
    if taken {
        release(&claimed, n);
    }
    taken
}

/// Detaches loop `n` if it is still bound to `file`, then deletes `file` (unless the device
/// could not be checked: the name stays for the next try).
fn release(file: &Path, n: u32) {
    match binding(file, n) {
        Binding::Bound(_, fd) => finish(&fd, file),
        Binding::Gone => {
            let _ = std::fs::remove_file(file);
        }
        Binding::Unknown => {}
    }
}

/// Makes a spare of `template` unless [`SPARES`] exist or another helper is making one. Errors are
/// for tracing only: without a spare, the next sandbox makes its layer itself.
pub(super) fn replenish(paths: &Paths, template: &Path) -> Result<()> {
    if !enabled() {
        return Ok(());
    }
    let dir = paths.disk_spares();
    let Some(prefix) = prefix(template) else {
        return Ok(());
    };
    std::fs::create_dir_all(&dir).context(|| format!("cannot create {}", dir.display()))?;
    let lock = File::create(dir.join(format!(".{prefix}-lock")))
        .context(|| format!("cannot create a lock in {}", dir.display()))?;
    if !sys::flock(&lock, true, true).context(|| "cannot lock the spare layers".into())? {
        return Ok(()); // another helper is making this one
    }
    if collect(&dir, &prefix) >= SPARES {
        return Ok(());
    }
    // Named before its device exists, so that a maker killed at any point leaves a name the
    // next one finds (see `collect`); no autoclear, so that the device stays bound once this
    // process lets go of it.
    // The token keeps a name left by a dead helper whose PID came back from being in the way.
    let making = dir.join(format!(".making-{}-{}.img", std::process::id(), sys::random_hex(4)));
    let image = sys::openat(None, &making, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o600)
        .context(|| format!("cannot create the spare layer {}", making.display()))?;
    if let Err(e) = copy_sparse(template, &image) {
        let _ = std::fs::remove_file(&making);
        return Err(e).context(|| "cannot fill a spare layer from its template".into());
    }
    let (n, _, device) = match attach_loop(&image, false) {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(&making);
            return Err(e);
        }
    };
    if std::fs::rename(&making, dir.join(format!("{prefix}{n}.img"))).is_err() {
        finish(&device, &making);
    }
    Ok(())
}

/// Detaches and deletes every spare in `paths`' state directory, and what dead helpers left,
/// waiting for makers at work to finish first (their lock). Returns how many devices were
/// let go. For `fnbox cleanup`, before removing fnbox from a host.
pub fn release_all(paths: &Paths) -> usize {
    let dir = paths.disk_spares();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    // Every maker holds its template's lock while it makes a spare: hold them all.
    let _locks: Vec<File> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with('.') && n.ends_with("-lock")))
        .filter_map(|e| File::open(e.path()).ok())
        .filter(|f| sys::flock(f, true, false).is_ok())
        .collect();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        // Published spares only: a live process's `.claimed-` name is a sandbox starting.
        let number = name.strip_suffix(".img").and_then(|r| r.rsplit_once(".loop")).and_then(|(_, n)| n.parse().ok());
        let (Some(loop_n), false) = (number, name.starts_with('.')) else { continue };
        n += usize::from(retire(&dir, &e.path(), loop_n));
    }
    // Names of dead makers and claimers (`collect` checks each one's process).
    collect(&dir, "");
    n
}

/// Which loop device, if any, is bound to `file`: each attached device's backing inode is
/// compared with the file's (a path would not do: the kernel's view of it can differ).
/// `Err` when that cannot be told.
fn device_of(file: &Path) -> std::result::Result<Option<u32>, ()> {
    let st = std::fs::metadata(file).map_err(drop)?;
    for e in std::fs::read_dir("/sys/block").map_err(drop)?.flatten() {
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|s| s.strip_prefix("loop")).and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if !e.path().join("loop/backing_file").exists() {
            continue; // not attached
        }
        let fd = sys::openat(None, Path::new(&format!("/dev/loop{n}")), libc::O_RDONLY, 0).map_err(drop)?;
        match status(&fd) {
            Ok(info) if info.lo_inode == st.ino() && info.lo_device == st.dev() => return Ok(Some(n)),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {} // detached meanwhile
            Err(_) => return Err(()),
        }
    }
    Ok(None)
}

/// Releases what dead helpers left and spares too old to keep; returns how many usable spares
/// with `prefix` exist.
fn collect(dir: &Path, prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut have = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        // `.making-PID-TOKEN.img` (its device, if any, found by inode) or
        // `.claimed-PID.loopN.img`, left by a helper that died.
        if let Some(rest) = name.strip_prefix(".making-").or_else(|| name.strip_prefix(".claimed-")) {
            let Some(rest) = rest.strip_suffix(".img") else { continue };
            let (pid, n) = match rest.split_once(".loop") {
                Some((p, n)) => (p, n.parse::<u32>().ok()),
                None => (rest.split('-').next().unwrap_or_default(), None),
            };
            let Ok(pid) = pid.parse::<libc::pid_t>() else { continue };
            // Signal 0 only checks that the process exists.
            let dead = matches!(sys::process::kill(pid, 0), Err(e) if e.raw_os_error() == Some(libc::ESRCH));
            if !dead {
                continue;
            }
            match n.map(|n| Ok(Some(n))).unwrap_or_else(|| device_of(&e.path())) {
                Ok(Some(n)) => release(&e.path(), n),
                Ok(None) => {
                    let _ = std::fs::remove_file(e.path()); // never attached
                }
                Err(()) => {} // cannot tell now: the next maker tries again
            }
            continue;
        }
        let Some((stem, n)) =
            name.rsplit_once(".loop").and_then(|(s, r)| Some((s, r.strip_suffix(".img")?.parse::<u32>().ok()?)))
        else {
            continue;
        };
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > MAX_AGE);
        if old {
            retire(dir, &e.path(), n);
        } else if format!("{stem}.loop") == prefix {
            have += 1;
        }
    }
    have
}

#[cfg(test)]
mod recovery_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_names() {
        let p = prefix(Path::new("/var/lib/fnbox/disk-templates/ext4-1024M-v2.img")).unwrap();
        assert_eq!(p, "ext4-1024M-v2.loop");
        assert_eq!(loop_number("ext4-1024M-v2.loop17.img", &p), Some(17));
        assert_eq!(loop_number("ext4-64M-v2.loop17.img", &p), None);
        assert_eq!(loop_number(".claimed-12.loop3.img", &p), None);
        assert_eq!(loop_number("ext4-1024M-v2.loopx.img", &p), None);
    }
}
