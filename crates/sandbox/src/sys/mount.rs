//! Mount system calls: the classic `mount(2)` family and the new fd-based mount API.

use super::abi;
use super::{cpath, cvt, cvt_long, owned};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

/// `mount(2)`.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(cpath).transpose()?;
    let tgt = cpath(target)?;
    let fst = fstype.map(cpath).transpose()?;
    let dat = data.map(cpath).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
    cvt(unsafe { libc::mount(p(&src), tgt.as_ptr(), p(&fst), flags, p(&dat).cast()) }).map(drop)
}

/// Bind-mounts `source` on `target` (recursively when `recursive`).
pub fn bind(source: &Path, target: &Path, recursive: bool) -> io::Result<()> {
    let mut flags = libc::MS_BIND;
    if recursive {
        flags |= libc::MS_REC;
    }
    let src = cpath(source)?;
    let tgt = cpath(target)?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    cvt(unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), std::ptr::null(), flags, std::ptr::null()) }).map(drop)
}

/// `mount(MS_MOVE)`: moves the mount at `from` (with everything mounted under it) to `to`.
pub fn move_path(from: &Path, to: &Path) -> io::Result<()> {
    let f = cpath(from)?;
    let t = cpath(to)?;
    // SAFETY: both paths are NUL-terminated; MS_MOVE ignores the type and data arguments.
    cvt(unsafe { libc::mount(f.as_ptr(), t.as_ptr(), std::ptr::null(), libc::MS_MOVE, std::ptr::null()) }).map(drop)
}

/// `umount2(2)`.
pub fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let t = cpath(target)?;
    // SAFETY: `t` is NUL-terminated.
    cvt(unsafe { libc::umount2(t.as_ptr(), flags) }).map(drop)
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let n = cpath(new_root)?;
    let o = cpath(put_old)?;
    // SAFETY: both strings are NUL-terminated.
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }).map(drop)
}

/// `mount_setattr(2)` on a path: sets (and clears) mount attributes without touching the
/// ones the caller did not name, which is what makes it safe on mounts whose other flags are
/// locked by a user namespace.
pub fn mount_setattr(
    dir: Option<BorrowedFd<'_>>,
    path: &Path,
    set: u64,
    clear: u64,
    recursive: bool,
) -> io::Result<()> {
    let c = cpath(path)?;
    let attr = abi::mount_attr { attr_set: set, attr_clr: clear, ..Default::default() };
    let mut flags = 0;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    if path.as_os_str().is_empty() && dir.is_some() {
        flags |= libc::AT_EMPTY_PATH;
    }
    // SAFETY: `c` is NUL-terminated and `attr` is a correctly sized mount_attr.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd()),
            c.as_ptr(),
            flags,
            &attr as *const abi::mount_attr,
            std::mem::size_of::<abi::mount_attr>(),
        )
    })
    .map(drop)
}

/// A filesystem context from `fsopen(2)`, configured then turned into a detached mount.
pub struct FsContext(OwnedFd);

impl FsContext {
    pub fn open(fstype: &str) -> io::Result<Self> {
        let t = cpath(fstype)?;
        // SAFETY: `t` is NUL-terminated.
        let fd = cvt_long(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), abi::FSOPEN_CLOEXEC) })?;
        // SAFETY: fsopen returned a new descriptor.
        Ok(Self(unsafe { owned(fd as RawFd) }))
    }

    pub fn set_string(&self, key: &str, value: &str) -> io::Result<()> {
        let k = cpath(key)?;
        let v = cpath(value)?;
        // SAFETY: the key and value are NUL-terminated.
        cvt_long(unsafe {
            libc::syscall(libc::SYS_fsconfig, self.0.as_raw_fd(), abi::FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr(), 0)
        })
        .map(drop)
    }

    pub fn set_flag(&self, key: &str) -> io::Result<()> {
        let k = cpath(key)?;
        // SAFETY: the key is NUL-terminated; flags take no value.
        cvt_long(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                abi::FSCONFIG_SET_FLAG,
                k.as_ptr(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        })
        .map(drop)
    }

    /// Creates the superblock and returns a detached mount of it. The mount belongs to no
    /// namespace until `move_mount` attaches it, and disappears when the last descriptor
    /// closes, so nothing is left behind on the host if the sandbox never starts.
    pub fn mount(self, attrs: u64) -> io::Result<OwnedFd> {
        // SAFETY: FSCONFIG_CMD_CREATE takes no pointers.
        cvt_long(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                abi::FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        })?;
        // SAFETY: fsmount takes a descriptor and integer flags.
        let fd =
            cvt_long(unsafe { libc::syscall(libc::SYS_fsmount, self.0.as_raw_fd(), abi::FSMOUNT_CLOEXEC, attrs) })?;
        // SAFETY: fsmount returned a new descriptor.
        Ok(unsafe { owned(fd as RawFd) })
    }
}

/// Attaches a detached mount (from `fsmount` or `open_tree`) at `target`.
pub fn move_mount_to(mount_fd: &OwnedFd, target: &Path) -> io::Result<()> {
    let empty = cpath("")?;
    let t = cpath(target)?;
    // SAFETY: both strings are NUL-terminated; the descriptor is open.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount_fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            abi::MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// Attaches a detached mount (from `fsmount` or `open_tree`) on what `target` refers to (a
/// descriptor, `O_PATH` is enough): no path is looked up again, so nothing can be swapped in
/// between the lookup that made `target` and the mount.
pub fn move_mount_onto(mount_fd: &OwnedFd, target: BorrowedFd<'_>) -> io::Result<()> {
    move_mount_fd(Some(mount_fd.as_fd()), "", target, abi::MOVE_MOUNT_F_EMPTY_PATH)
}

/// Moves the mount attached at `from` (a path of the caller's own, not the sandbox's) onto
/// what `target` refers to, as [`move_mount_onto`] does.
pub fn move_path_onto(from: &Path, target: BorrowedFd<'_>) -> io::Result<()> {
    move_mount_fd(None, from, target, 0)
}

/// `move_mount(2)` of `from` (relative to `from_dir`, or the cwd) onto what `target` refers to.
fn move_mount_fd(
    from_dir: Option<BorrowedFd<'_>>,
    from: impl AsRef<Path>,
    target: BorrowedFd<'_>,
    flags: u32,
) -> io::Result<()> {
    let f = cpath(from.as_ref())?;
    let empty = cpath("")?;
    // SAFETY: both strings are NUL-terminated; the descriptors are open for the call.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from_dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd()),
            f.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            flags | abi::MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount tree at `path`.
pub fn clone_tree(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    open_tree_clone(None, path, recursive)
}

/// [`clone_tree`] of `path` relative to `dir` (a descriptor of a directory or a mount).
pub fn open_tree_clone(dir: Option<BorrowedFd<'_>>, path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let c = cpath(path)?;
    let mut flags = abi::OPEN_TREE_CLONE | abi::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    if path.as_os_str().is_empty() && dir.is_some() {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    // SAFETY: `c` is NUL-terminated.
    let fd = cvt_long(unsafe {
        libc::syscall(libc::SYS_open_tree, dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd()), c.as_ptr(), flags)
    })?;
    // SAFETY: open_tree returned a new descriptor.
    Ok(unsafe { owned(fd as RawFd) })
}

/// Makes a detached mount show its files through the id mapping of `userns` (an idmapped
/// mount): a file owned by host uid 0 appears owned by the sandbox's uid 0.
pub fn idmap(mount_fd: &OwnedFd, userns: &OwnedFd, extra: u64, recursive: bool) -> io::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr = abi::mount_attr {
        attr_set: MOUNT_ATTR_IDMAP | extra,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    let empty = cpath("")?;
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: `attr` is a correctly sized mount_attr; the path is the empty string.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount_fd.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const abi::mount_attr,
            std::mem::size_of::<abi::mount_attr>(),
        )
    })
    .map(drop)
}
