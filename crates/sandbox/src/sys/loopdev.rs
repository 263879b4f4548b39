//! Loop devices, the block devices each sandbox's writable layer lives on: finding a free
//! one, binding it to a backing file, reading its binding, detaching it. Our own ioctls
//! (rustix covers none of them). See docs/architecture.md, "Disk budget".

use super::{abi, cvt};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `LOOP_CTL_GET_FREE` on `/dev/loop-control`: the number of a free device (made if needed).
pub fn get_free(control: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
    cvt(unsafe { libc::ioctl(control.as_raw_fd(), abi::LOOP_CTL_GET_FREE) }).map(|n| n as u32)
}

/// `LOOP_CONFIGURE`: binds `device` to `backing`; with `autoclear`, the device detaches
/// itself when the filesystem on it is unmounted and its last descriptor closed. `EBUSY`
/// when another process bound it first.
pub fn configure(device: BorrowedFd<'_>, backing: BorrowedFd<'_>, autoclear: bool) -> io::Result<()> {
    let cfg = abi::loop_config {
        fd: backing.as_raw_fd() as u32,
        info: abi::loop_info64 { lo_flags: if autoclear { abi::LO_FLAGS_AUTOCLEAR } else { 0 }, ..Default::default() },
        ..Default::default()
    };
    // SAFETY: `cfg` is a valid loop_config that outlives the call; the kernel only reads it.
    cvt(unsafe { libc::ioctl(device.as_raw_fd(), abi::LOOP_CONFIGURE, &cfg as *const abi::loop_config) }).map(drop)
}

/// `LOOP_GET_STATUS64`: what `device` is bound to (`ENXIO` when it is bound to nothing).
pub fn status(device: BorrowedFd<'_>) -> io::Result<abi::loop_info64> {
    let mut info = abi::loop_info64::default();
    // SAFETY: LOOP_GET_STATUS64 fills the loop_info64 `info` points to, which we own.
    cvt(unsafe { libc::ioctl(device.as_raw_fd(), abi::LOOP_GET_STATUS64, &mut info as *mut abi::loop_info64) })?;
    Ok(info)
}

/// `LOOP_CLR_FD`: detaches `device` at its last close (at once if this is its only holder).
pub fn clear(device: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument.
    cvt(unsafe { libc::ioctl(device.as_raw_fd(), abi::LOOP_CLR_FD) }).map(drop)
}

/// The data extents (start, end) of a sparse file, by `SEEK_DATA` and `SEEK_HOLE`.
pub fn data_extents(f: &std::fs::File) -> io::Result<Vec<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom};
    let len = f.metadata()?.len();
    let mut extents = Vec::new();
    let mut off = 0;
    while off < len {
        let Ok(data) = seek(f, SeekFrom::Data(off)) else {
            return Ok(extents); // ENXIO: no more data
        };
        let end = seek(f, SeekFrom::Hole(data)).unwrap_or(len);
        extents.push((data, end));
        off = end;
    }
    Ok(extents)
}
