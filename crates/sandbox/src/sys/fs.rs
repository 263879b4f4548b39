//! Files and paths: the `*at` calls relative to a directory descriptor (`None`: the current
//! directory), `openat2` (our own: rustix has no `open_how`), and plain writes. On rustix
//! otherwise. See docs/architecture.md, "Crates and modules".

use super::{abi, cpath, cvt_long, owned};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

/// The directory an `*at` call starts from: `dir`, or the current directory when `None`.
fn at(dir: Option<BorrowedFd<'_>>) -> BorrowedFd<'_> {
    dir.unwrap_or(rustix::fs::CWD)
}

/// `openat(2)` relative to `dir` (or the cwd when `None`).
pub fn openat(dir: Option<BorrowedFd<'_>>, path: &Path, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::from_bits_retain((flags | libc::O_CLOEXEC) as u32);
    Ok(rustix::fs::openat(at(dir), cpath(path)?.as_c_str(), flags, Mode::from_bits_retain(mode))?)
}

/// `openat2(2)` with an explicit `open_how`.
pub fn openat2(dir: BorrowedFd<'_>, path: &CString, how: &abi::open_how) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated, `how` points to a properly sized open_how.
    let fd = cvt_long(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            how as *const abi::open_how,
            std::mem::size_of::<abi::open_how>(),
        )
    })?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { owned(fd as RawFd) })
}

/// `path` (absolute as seen from `root`, or relative to it) opened inside `root` by the kernel,
/// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: symlinks and `..` met on the way stay
/// inside `root`, whatever they say, and nothing can swap a component between a check and the
/// use of the descriptor. The one resolver for every path inside a root the caller does not
/// control (see docs/architecture.md, "OCI containers").
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let how = abi::open_how {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: abi::RESOLVE_IN_ROOT | abi::RESOLVE_NO_MAGICLINKS,
    };
    openat2(root, &cpath(rel)?, &how)
}

/// `fchdir(2)`.
pub fn fchdir(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rustix::process::fchdir(dir)?)
}

/// `mkdirat(2)`; an existing directory is not an error when `exist_ok`.
pub fn mkdirat(dir: Option<BorrowedFd<'_>>, path: &Path, mode: u32, exist_ok: bool) -> io::Result<()> {
    match rustix::fs::mkdirat(at(dir), cpath(path)?.as_c_str(), rustix::fs::Mode::from_bits_retain(mode)) {
        Err(rustix::io::Errno::EXIST) if exist_ok => Ok(()),
        r => Ok(r?),
    }
}

/// `mknodat(2)`; `mode` holds the file type (`S_IFCHR`...) and the permission bits.
pub fn mknodat(dir: Option<BorrowedFd<'_>>, path: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    use rustix::fs::{FileType, Mode};
    let (kind, perm) = (FileType::from_raw_mode(mode), Mode::from_raw_mode(mode));
    Ok(rustix::fs::mknodat(at(dir), cpath(path)?.as_c_str(), kind, perm, dev)?)
}

/// `fchmodat(2)`; a final symlink is followed (use it on names made by the caller).
pub fn fchmodat(dir: Option<BorrowedFd<'_>>, path: &Path, mode: u32) -> io::Result<()> {
    use rustix::fs::{AtFlags, Mode};
    Ok(rustix::fs::chmodat(at(dir), cpath(path)?.as_c_str(), Mode::from_bits_retain(mode), AtFlags::empty())?)
}

/// `fchownat(2)` without following a final symlink.
pub fn lchownat(dir: Option<BorrowedFd<'_>>, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    use rustix::fs::{AtFlags, Gid, Uid};
    let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    Ok(rustix::fs::chownat(at(dir), cpath(path)?.as_c_str(), uid, gid, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// `unlinkat(2)`: removes the name `path` in `dir`; with `remove_dir`, an empty directory
/// (`AT_REMOVEDIR`) instead of a file.
pub fn unlinkat(dir: BorrowedFd<'_>, path: &Path, remove_dir: bool) -> io::Result<()> {
    use rustix::fs::AtFlags;
    let flags = if remove_dir { AtFlags::REMOVEDIR } else { AtFlags::empty() };
    Ok(rustix::fs::unlinkat(dir, cpath(path)?.as_c_str(), flags)?)
}

/// `symlinkat(2)`.
pub fn symlinkat(target: &Path, dir: Option<BorrowedFd<'_>>, link: &Path) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(cpath(target)?.as_c_str(), at(dir), cpath(link)?.as_c_str())?)
}

/// `fstat(2)`.
pub fn fstat(fd: impl AsFd) -> io::Result<rustix::fs::Stat> {
    Ok(rustix::fs::fstat(fd)?)
}

/// Writes all of `data` to a descriptor, retrying on EINTR. Used where no `File` exists (in a
/// freshly cloned child, for instance).
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes a small value into a file such as `/proc/PID/uid_map` or a cgroup knob, in a single
/// `write(2)` as those files require.
pub fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let fd = openat(None, path, libc::O_WRONLY, 0)?;
    rustix::io::write(&fd, data)?;
    Ok(())
}
