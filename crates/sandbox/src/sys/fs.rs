//! Files and paths: the `*at` calls relative to a directory descriptor (`None`: the current
//! directory), `openat2` (our own: rustix has no `open_how`), and plain writes. On rustix
//! otherwise. See docs/architecture.md, "Crates and modules".

use super::{abi, cpath, cvt, cvt_long, owned};
use std::ffi::{CStr, CString};
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

/// `mknodat(2)`; `mode` holds the file type (`S_IFCHR`...; none is a regular file, as for the
/// kernel) and the permission bits.
pub fn mknodat(dir: Option<BorrowedFd<'_>>, path: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    use rustix::fs::{FileType, Mode};
    // rustix maps an unknown type to all of S_IFMT's bits: the kernel then refuses it (EINVAL),
    // as it would the unknown type itself; only 0 needs saying.
    let kind = if mode & libc::S_IFMT == 0 { FileType::RegularFile } else { FileType::from_raw_mode(mode) };
    let perm = Mode::from_raw_mode(mode);
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

/// `unlinkat(2)`: removes the name `path` in `dir` (or the cwd); with `AT_REMOVEDIR` in
/// `flags`, an empty directory instead of a file. Unknown flags go to the kernel, which
/// refuses them.
pub fn unlinkat(dir: Option<BorrowedFd<'_>>, path: &Path, flags: libc::c_int) -> io::Result<()> {
    let flags = rustix::fs::AtFlags::from_bits_retain(flags as u32);
    Ok(rustix::fs::unlinkat(at(dir), cpath(path)?.as_c_str(), flags)?)
}

/// `renameat2(2)`: `old` (in `old_dir`, or the cwd) becomes `new` (in `new_dir`); `flags`
/// (`RENAME_NOREPLACE`...) go to the kernel as they are.
pub fn renameat2(
    old_dir: Option<BorrowedFd<'_>>,
    old: &Path,
    new_dir: Option<BorrowedFd<'_>>,
    new: &Path,
    flags: u32,
) -> io::Result<()> {
    let flags = rustix::fs::RenameFlags::from_bits_retain(flags);
    Ok(rustix::fs::renameat_with(at(old_dir), cpath(old)?.as_c_str(), at(new_dir), cpath(new)?.as_c_str(), flags)?)
}

/// `linkat(2)`: a new name `new` (in `new_dir`, or the cwd) for `old` (in `old_dir`); `flags`
/// (`AT_SYMLINK_FOLLOW`, `AT_EMPTY_PATH`) go to the kernel as they are.
pub fn linkat(
    old_dir: Option<BorrowedFd<'_>>,
    old: &Path,
    new_dir: Option<BorrowedFd<'_>>,
    new: &Path,
    flags: libc::c_int,
) -> io::Result<()> {
    let flags = rustix::fs::AtFlags::from_bits_retain(flags as u32);
    Ok(rustix::fs::linkat(at(old_dir), cpath(old)?.as_c_str(), at(new_dir), cpath(new)?.as_c_str(), flags)?)
}

/// `ftruncate(2)`: cuts (or extends) the open file `fd` to `len` bytes; a negative `len` is
/// refused by the kernel (EINVAL), as for the caller.
pub fn ftruncate(fd: BorrowedFd<'_>, len: i64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len as u64)?)
}

/// `pread(2)` at `offset`, once: the byte count.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    Ok(rustix::io::pread(fd, buf, offset)?)
}

/// `fchown(2)` of an open file.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    use rustix::fs::{Gid, Uid};
    Ok(rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?)
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

// ---- extended attributes: the `l` forms when `!follow` (a final symlink's own) -----------

/// `getxattr(2)` of `name` on `path` into `buf`; an empty `buf` asks for the size only. The
/// byte count.
pub fn getxattr(path: &Path, follow: bool, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::fs::{getxattr, getxattr_query, lgetxattr, lgetxattr_query};
    let n = match (follow, buf.is_empty()) {
        (true, true) => getxattr_query(path, name),
        (false, true) => lgetxattr_query(path, name),
        (true, false) => getxattr(path, name, buf),
        (false, false) => lgetxattr(path, name, buf),
    };
    Ok(n?)
}

/// `listxattr(2)` of `path` into `buf` (NUL-terminated names); an empty `buf` asks for the
/// size only. The byte count.
pub fn listxattr(path: &Path, follow: bool, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::fs::{listxattr, listxattr_query, llistxattr, llistxattr_query};
    let n = match (follow, buf.is_empty()) {
        (true, true) => listxattr_query(path),
        (false, true) => llistxattr_query(path),
        (true, false) => listxattr(path, buf),
        (false, false) => llistxattr(path, buf),
    };
    Ok(n?)
}

/// `setxattr(2)` of `name` on `path` to `value`; `flags` (`XATTR_CREATE`...) go to the kernel
/// as they are.
pub fn setxattr(path: &Path, follow: bool, name: &CStr, value: &[u8], flags: libc::c_int) -> io::Result<()> {
    let flags = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
    let r = if follow {
        rustix::fs::setxattr(path, name, value, flags)
    } else {
        rustix::fs::lsetxattr(path, name, value, flags)
    };
    Ok(r?)
}

/// `removexattr(2)` of `name` on `path`.
pub fn removexattr(path: &Path, follow: bool, name: &CStr) -> io::Result<()> {
    let r = if follow { rustix::fs::removexattr(path, name) } else { rustix::fs::lremovexattr(path, name) };
    Ok(r?)
}

/// `inotify_add_watch(2)`: a watch on `path` for the `mask` events (`IN_DONT_FOLLOW`... go to
/// the kernel as they are); the watch descriptor.
pub fn inotify_add_watch(inotify: BorrowedFd<'_>, path: &Path, mask: u32) -> io::Result<i32> {
    let mask = rustix::fs::inotify::WatchFlags::from_bits_retain(mask);
    Ok(rustix::fs::inotify::add_watch(inotify, path, mask)?)
}

// ---- the Sentry's own calls on names it resolved (`&CStr`: no copy on its per-call path) ---

/// `statx(2)` of `path` relative to `dir` (or the cwd); `flags` (`AT_EMPTY_PATH`...) and
/// `mask` go to the kernel as they are.
pub fn statx(dir: Option<BorrowedFd<'_>>, path: &CStr, flags: libc::c_int, mask: u32) -> io::Result<libc::statx> {
    let mut x = abi::zeroed::<libc::statx>();
    // SAFETY: `path` is NUL-terminated and `x` a writable statx, for the call only.
    cvt(unsafe { libc::statx(at(dir).as_raw_fd(), path.as_ptr(), flags, mask, &mut x) })?;
    Ok(x)
}

/// `readlinkat(2)` into `buf`: the byte count (the target, cut at `buf.len()`). An empty
/// `path` reads the symlink `dir` itself (an `O_PATH` descriptor of one).
pub fn readlinkat(dir: Option<BorrowedFd<'_>>, path: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `path` is NUL-terminated; `buf` is writable for its length.
    let n = unsafe { libc::readlinkat(at(dir).as_raw_fd(), path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `fchmodat2(2)` (Linux 6.6): `fchmodat` with `flags` (`AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`).
pub fn fchmodat2(dir: Option<BorrowedFd<'_>>, path: &CStr, mode: u32, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; the other arguments are integers.
    cvt_long(unsafe { libc::syscall(libc::SYS_fchmodat2, at(dir).as_raw_fd(), path.as_ptr(), mode, flags) }).map(drop)
}

/// `fchownat(2)`; `u32::MAX` (-1) leaves that id as it is, and `flags` go to the kernel.
pub fn fchownat(dir: Option<BorrowedFd<'_>>, path: &CStr, uid: u32, gid: u32, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; the other arguments are integers.
    cvt(unsafe { libc::fchownat(at(dir).as_raw_fd(), path.as_ptr(), uid, gid, flags) }).map(drop)
}

/// `utimensat(2)`: the access and modification times (`None`: now), with `flags`.
pub fn utimensat(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    times: Option<&[libc::timespec; 2]>,
    flags: libc::c_int,
) -> io::Result<()> {
    let tp = times.map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: `path` is NUL-terminated; `tp` is null or two timespecs that outlive the call.
    cvt(unsafe { libc::utimensat(at(dir).as_raw_fd(), path.as_ptr(), tp, flags) }).map(drop)
}

/// `faccessat2(2)`: whether `path` allows `mode` (`R_OK`...), with `flags` (`AT_EACCESS`...).
pub fn faccessat2(dir: Option<BorrowedFd<'_>>, path: &CStr, mode: libc::c_int, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; the other arguments are integers.
    cvt_long(unsafe { libc::syscall(libc::SYS_faccessat2, at(dir).as_raw_fd(), path.as_ptr(), mode, flags) }).map(drop)
}

/// `truncate(2)`: cuts (or extends) the file at `path` to `len` bytes.
pub fn truncate(path: &CStr, len: i64) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::truncate(path.as_ptr(), len) }).map(drop)
}

/// `statfs(2)` of the filesystem holding `path`.
pub fn statfs(path: &CStr) -> io::Result<libc::statfs> {
    let mut st = abi::zeroed::<libc::statfs>();
    // SAFETY: `path` is NUL-terminated and `st` a writable statfs.
    cvt(unsafe { libc::statfs(path.as_ptr(), &mut st) })?;
    Ok(st)
}

/// `fstatfs(2)` of the filesystem holding the open file `fd` (an `O_PATH` one too).
pub fn fstatfs(fd: BorrowedFd<'_>) -> io::Result<libc::statfs> {
    let mut st = abi::zeroed::<libc::statfs>();
    // SAFETY: `st` is a writable statfs.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// Whether `path` (relative to `dir`) exists, its final symlink not followed.
pub fn exists_at(dir: BorrowedFd<'_>, path: &CStr) -> bool {
    use rustix::fs::{accessat, Access, AtFlags};
    accessat(dir, path, Access::EXISTS, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// `getdents64(2)` into `buf`: the byte count of the whole `linux_dirent64` records it holds
/// (0 at the end of the directory).
pub fn getdents64(dir: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is writable for its length; the kernel fills whole records only.
    cvt_long(unsafe { libc::syscall(libc::SYS_getdents64, dir.as_raw_fd(), buf.as_mut_ptr(), buf.len()) })
        .map(|n| n as usize)
}

/// `memfd_create(2)`: an anonymous, close-on-exec memory file named `name` (as
/// `/proc/PID/fd` shows it).
pub fn memfd(name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)?)
}

/// `chroot(2)`.
pub fn chroot(path: &CStr) -> io::Result<()> {
    Ok(rustix::process::chroot(path)?)
}
