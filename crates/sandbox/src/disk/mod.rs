//! The disk-backed writable layer: a private ext4 filesystem per sandbox, in a sparse file
//! on the host's disk, attached through a loop device.
//!
//! A filesystem of its own gives an exact cap (writes past it fail with `ENOSPC`, as on a
//! full disk), keeps one sandbox from exhausting another's inodes, and is gone when the
//! sandbox ends. Formatting is done once per size (a template), so a sandbox only copies the
//! template's few hundred KiB of metadata.

use crate::error::{Context, Error, Result};
use crate::paths::Paths;
use crate::sys::{self, abi, mount::FsContext};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod spare;

pub use spare::release_all as release_spares;

/// A sandbox's writable layer, mounted but not attached anywhere yet.
pub struct Disk {
    /// The detached mount; `move_mount` attaches it inside the sandbox's mount namespace.
    pub mount: OwnedFd,
    /// The loop device, held open by whoever owns the `Disk` (the helper, see [`DiskJob`]).
    device: OwnedFd,
    template: PathBuf,
}

impl Disk {
    /// Creates the layer, with the template's `upper/` and `work/` directories ready for
    /// overlayfs. They belong to uid 0 on disk; the launcher idmaps the mount so that they
    /// belong to the sandbox's root, which spares a write (and a flush at unmount) here.
    ///
    /// The image is an unnamed file (`O_TMPFILE`) in the state directory, or a spare made
    /// earlier (see `spare.rs`) whose name is deleted when claimed: it has no name to delete and
    /// disappears when the loop device lets go of it, which happens when the sandbox's mount
    /// namespace dies, even if the launcher was killed.
    pub fn create(paths: &Paths, size_bytes: u64) -> Result<Self> {
        let template = template(paths, size_bytes)?;
        let (dev, device) = match spare::claim(paths, &template) {
            Some(c) => {
                crate::trace::mark("disk: spare claimed");
                (c.dev.clone(), Device::Spare(c))
            }
            None => {
                let dir = paths.sandboxes();
                let image = sys::openat(None, &dir, libc::O_TMPFILE | libc::O_RDWR, 0o600)
                    .context(|| format!("cannot create the writable layer in {}", dir.display()))?;
                copy_sparse(&template, &image).context(|| "cannot fill the writable layer from its template".into())?;
                crate::trace::mark("disk: image copied");
                // Keep the device open until the filesystem holds it: with autoclear, the last
                // close of an unmounted loop device detaches it.
                let (_, dev, fd) = attach_loop(&image, true)?;
                crate::trace::mark("disk: loop attached");
                (dev, Device::Fresh(fd))
            }
        };
        let fs = FsContext::open("ext4").context(|| "cannot mount the writable layer (ext4)".into())?;
        fs.set_string("source", &dev).context(|| format!("cannot use {dev} for the writable layer"))?;
        // The template was made with lazy inode-table init; do not start a zeroing thread.
        let _ = fs.set_flag("noinit_itable");
        // The layer dies with the sandbox: cache flushes (which the loop device turns into
        // fsyncs of the image on the host's disk) would only make every exit wait for I/O.
        let _ = fs.set_flag("nobarrier");
        let mount = fs
            .mount(abi::MOUNT_ATTR_NOSUID | abi::MOUNT_ATTR_NODEV)
            .context(|| format!("cannot mount the writable layer from {dev}"))?;
        crate::trace::mark("disk: mounted");
        let device = match device {
            Device::Fresh(fd) => fd,
            Device::Spare(c) => c.arm(),
        };
        Ok(Self { mount, device, template })
    }
}

/// The loop device under a layer being made.
enum Device {
    /// Attached on the spot, with autoclear.
    Fresh(OwnedFd),
    /// A spare, given autoclear once the filesystem holds it.
    Spare(spare::Claimed),
}

/// A process preparing a [`Disk`] while the launcher does everything else: attaching a loop
/// device and mounting ext4 mostly waits on the kernel (RCU grace periods, block I/O), so
/// doing it beside the namespace and mount work takes it off the start-up path.
///
/// The helper then keeps the loop device open until the launcher lets go of it (drops the
/// job, or dies). Detaching a loop device waits for an RCU grace period and freeing the
/// image's blocks costs milliseconds on hosts that discard freed blocks; held this way, both
/// happen in the helper after the sandbox ended, not in the sandbox's exit or the launcher's.
pub struct DiskJob {
    pid: libc::pid_t,
    sock: OwnedFd,
}

impl DiskJob {
    /// The helper's pid: it lives until the launcher is done with the sandbox.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Forks the helper. Must be called while the launcher is single-threaded.
    pub fn spawn(paths: &Paths, size_bytes: u64) -> Result<Self> {
        let (ours, theirs) = sys::fdpass::seqpacket_pair().context(|| "socketpair".into())?;
        // SAFETY: the launcher is single-threaded here; the child keeps none of its
        // descriptors, prepares the disk, then lives on its own and ends in `exit_now`.
        let pid = unsafe { sys::process::fork() }.context(|| "cannot fork the disk helper".into())?;
        if pid == 0 {
            drop(ours);
            let theirs = keep_only(theirs);
            let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
            let code = match Disk::create(paths, size_bytes) {
                Ok(d) => {
                    let sent = sys::fdpass::sendmsg(theirs.as_fd(), b"ok", &[d.mount.as_fd()]);
                    // From here the helper outlives the launcher on purpose (below); the end of
                    // the socket tells it the launcher is gone.
                    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, 0, 0);
                    d.warm();
                    crate::trace::mark("disk: warmed");
                    // Hold the loop device, and what the launcher hands over (see `hold`), until
                    // the launcher is done with the sandbox: it then closes its end, or dies.
                    let mut kept = Vec::new();
                    let mut b = [0u8; 1];
                    while let Ok((n, fds)) = sys::fdpass::recv(&theirs, &mut b) {
                        if n == 0 {
                            break;
                        }
                        kept.extend(fds);
                    }
                    // Let the sandbox's mounts go first (whoever unmounts a bind source next
                    // should not find it busy); then make the next sandbox's layer, now that
                    // this one no longer competes for the CPU (a spare half made is cleaned up
                    // by the next maker).
                    drop(kept);
                    // Background work: instances and cold starts come first.
                    let _ = sys::process::set_thread_nice(sys::process::BACKGROUND_NICE);
                    if let Err(e) = spare::replenish(paths, &d.template) {
                        crate::trace::mark(&format!("disk: no spare made: {e}"));
                    }
                    drop(d);
                    sent.is_err() as i32
                }
                Err(e) => {
                    let _ = sys::fdpass::sendmsg(theirs.as_fd(), format!("E{e}").as_bytes(), &[]);
                    1
                }
            };
            // Without running the launcher's destructors.
            sys::process::exit_now(code);
        }
        Ok(Self { pid, sock: ours })
    }

    /// Waits for the helper's result: the layer's detached mount.
    pub fn take(&self) -> Result<OwnedFd> {
        let mut buf = [0u8; 1024];
        let (n, mut fds) =
            sys::fdpass::recv(&self.sock, &mut buf).context(|| "cannot receive the writable layer".into())?;
        match fds.pop() {
            Some(mount) if n > 0 && buf[0] != b'E' => Ok(mount),
            _ if n > 1 => Err(Error::Setup(String::from_utf8_lossy(&buf[1..n]).into_owned())),
            _ => Err(Error::Setup("the disk helper died".into())),
        }
    }
}

impl DiskJob {
    /// Has the helper hold `fds` (the sandbox's mount namespace) until the launcher is done:
    /// what goes when they are let go of (unmounting the sandbox's whole tree, waiting for RCU
    /// grace periods) then happens in the helper, after the launcher has exited, rather than
    /// in the sandbox's exit, which the launcher waits for.
    pub fn hold(&self, fds: &[OwnedFd]) {
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        let _ = sys::fdpass::sendmsg(self.sock.as_fd(), b"h", &borrowed);
    }
}

impl Drop for DiskJob {
    fn drop(&mut self) {
        // Closing our end releases the helper (which finishes after the launcher has exited);
        // reap it if it is already gone.
        let _ = sys::process::waitpid(self.pid, true);
    }
}

/// The helper outlives the launcher: it keeps none of the launcher's descriptors (its
/// standard streams, a status pipe someone waits to see closed, a secret's memfd), only its
/// socket (returned, as fd 3) and, for tracing, stderr.
fn keep_only(sock: OwnedFd) -> OwnedFd {
    let sock = sys::keep_only(vec![sock]).pop().expect("keep_only returns what it is given");
    if let Ok(null) = sys::openat(None, Path::new("/dev/null"), libc::O_RDWR, 0) {
        let streams: &[i32] = if crate::trace::enabled() { &[0, 1] } else { &[0, 1, 2] };
        sys::fd::redirect_std_streams(null.as_fd(), streams);
    }
    sock
}

/// Finds a free loop device and binds it to `backing`; with `autoclear`, the device detaches
/// itself when the filesystem on it is unmounted and the last descriptor closed. Returns its
/// number, path and an open descriptor.
fn attach_loop(backing: &OwnedFd, autoclear: bool) -> Result<(u32, String, OwnedFd)> {
    let ctl = sys::openat(None, Path::new("/dev/loop-control"), libc::O_RDWR, 0).context(|| {
        "cannot open /dev/loop-control (the writable layer needs loop devices; load the 'loop' module)".into()
    })?;
    for _ in 0..64 {
        let n = sys::loopdev::get_free(ctl.as_fd()).context(|| "cannot find a free loop device".into())?;
        let dev = format!("/dev/loop{n}");
        let dfd = match sys::openat(None, Path::new(&dev), libc::O_RDWR, 0) {
            Ok(fd) => fd,
            // udev may not have created the node yet on hosts without devtmpfs.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e).context(|| format!("cannot open {dev}")),
        };
        match sys::loopdev::configure(dfd.as_fd(), backing.as_fd(), autoclear) {
            Ok(()) => return Ok((n, dev, dfd)),
            // Another sandbox took this device between GET_FREE and CONFIGURE: try the next.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => continue,
            Err(e) => return Err(e).context(|| format!("cannot attach {dev}")),
        }
    }
    Err(Error::Setup("no free loop device after 64 attempts".into()))
}

/// Returns the formatted template for `size_bytes`, creating it once (under a lock, then
/// renamed into place so a half-written template is never used).
fn template(paths: &Paths, size_bytes: u64) -> Result<PathBuf> {
    let dir = paths.disk_templates();
    let path = dir.join(format!("ext4-{}M-v2.img", size_bytes >> 20));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).context(|| format!("cannot create {}", dir.display()))?;
    let lock = File::create(dir.join(".lock")).context(|| format!("cannot create a lock in {}", dir.display()))?;
    sys::flock(&lock, true, false).context(|| "cannot lock the disk templates".into())?;
    if path.exists() {
        return Ok(path);
    }
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    // The initial content: overlayfs's upper and work directories.
    let seed = dir.join(format!(".seed-{}", std::process::id()));
    for d in ["upper", "work"] {
        std::fs::create_dir_all(seed.join(d)).context(|| format!("cannot create {}", seed.display()))?;
    }
    let f = File::create(&tmp).context(|| format!("cannot create {}", tmp.display()))?;
    f.set_len(size_bytes).context(|| format!("cannot size {}", tmp.display()))?;
    drop(f);
    let out = std::process::Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-m",
            "0",
            "-b",
            "4096",
            "-O",
            "^has_journal,^resize_inode",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
            "-d",
        ])
        .arg(&seed)
        .arg(&tmp)
        .output();
    let _ = std::fs::remove_dir_all(&seed);
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Setup(format!(
                "mkfs.ext4 failed making the writable-layer template: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Setup(format!(
                "cannot run mkfs.ext4 ({e}): install e2fsprogs (apt-get install e2fsprogs)"
            )));
        }
    }
    std::fs::rename(&tmp, &path).context(|| format!("cannot install {}", path.display()))?;
    Ok(path)
}

/// Copies only the data extents of a sparse file (the template is 1 GiB of which a few
/// hundred KiB are written).
fn copy_sparse(src: &Path, dst: &OwnedFd) -> std::io::Result<()> {
    let s = File::open(src)?;
    let d = File::from(dst.try_clone()?);
    d.set_len(s.metadata()?.len())?;
    let mut buf = vec![0u8; 256 << 10];
    for (start, end) in sys::loopdev::data_extents(&s)? {
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            s.read_exact_at(&mut buf[..n], pos)?;
            d.write_all_at(&buf[..n], pos)?;
            pos += n as u64;
        }
    }
    (&d).flush()
}

impl Disk {
    /// Reads the template's metadata through the mounted layer's device, into the device's
    /// cache (see [`warm`]).
    fn warm(&self) {
        warm(&self.device, &self.template);
    }
}

/// Reads the template's metadata through the mounted layer's device, into the device's cache.
/// ext4 then finds the bitmaps, inode table and directories that the overlay mount and the
/// program's first lookups touch already there; each first read would otherwise be a round
/// trip through the loop device's worker thread, on the sandbox's start-up path (this runs in
/// the disk helper, beside it). The backup superblocks, further out, are never read.
fn warm(device: &OwnedFd, template: &Path) {
    let (Ok(t), Ok(d)) = (File::open(template), device.try_clone().map(File::from)) else {
        return;
    };
    let mut buf = vec![0u8; 64 << 10];
    for (start, end) in sys::loopdev::data_extents(&t).unwrap_or_default().into_iter().filter(|(s, _)| *s < 64 << 20) {
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            if d.read_exact_at(&mut buf[..n], pos).is_err() {
                return;
            }
            pos += n as u64;
        }
    }
}
