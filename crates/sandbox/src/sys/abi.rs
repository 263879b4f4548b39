//! Kernel ABI definitions that the `libc` crate does not carry (or carries only for some
//! targets): the seccomp user-notification structures, `open_how`, `clone_args`, the loop
//! device configuration and the new mount API constants. Values are from the kernel's uapi
//! headers for x86-64; fnbox supports x86-64 Linux only.
//!
//! The structures a sandbox hands the Sentry (read from its memory) derive `zerocopy::FromBytes`,
//! which compiles only for types every bit pattern is a valid value of; the ones the Sentry
//! writes back implement [`KernelOut`], only for types without padding bytes.

#![allow(non_camel_case_types, dead_code)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// ---- clone3 ----------------------------------------------------------------------------------

#[repr(C)]
#[derive(Default)]
pub struct clone_args {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

// ---- openat2 ---------------------------------------------------------------------------------

#[repr(C)]
#[derive(Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct open_how {
    pub flags: u64,
    pub mode: u64,
    pub resolve: u64,
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
pub const RESOLVE_CACHED: u64 = 0x20;

// ---- new mount API ---------------------------------------------------------------------------

pub const FSOPEN_CLOEXEC: u32 = 0x1;
pub const FSCONFIG_SET_FLAG: u32 = 0;
pub const FSCONFIG_SET_STRING: u32 = 1;
pub const FSCONFIG_CMD_CREATE: u32 = 6;
pub const FSMOUNT_CLOEXEC: u32 = 0x1;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const OPEN_TREE_CLONE: u32 = 1;
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
#[derive(Default)]
pub struct mount_attr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

// ---- loop devices ----------------------------------------------------------------------------

pub const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
pub const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
pub const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
pub const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
pub const LO_FLAGS_READ_ONLY: u32 = 1;
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
pub struct loop_info64 {
    pub lo_device: u64,
    pub lo_inode: u64,
    pub lo_rdevice: u64,
    pub lo_offset: u64,
    pub lo_sizelimit: u64,
    pub lo_number: u32,
    pub lo_encrypt_type: u32,
    pub lo_encrypt_key_size: u32,
    pub lo_flags: u32,
    pub lo_file_name: [u8; 64],
    pub lo_crypt_name: [u8; 64],
    pub lo_encrypt_key: [u8; 32],
    pub lo_init: [u64; 2],
}

#[repr(C)]
#[derive(Default)]
pub struct loop_config {
    pub fd: u32,
    pub block_size: u32,
    pub info: loop_info64,
    pub reserved: [u64; 8],
}

impl Default for loop_info64 {
    fn default() -> Self {
        Self {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; 64],
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        }
    }
}

// ---- seccomp ---------------------------------------------------------------------------------

pub const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
pub const SECCOMP_FILTER_FLAG_TSYNC: libc::c_uint = 1 << 0;
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 1 << 3;
pub const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_uint = 1 << 5;

pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const SECCOMP_RET_KILL_THREAD: u32 = 0x0000_0000;
pub const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
pub const SECCOMP_RET_DATA: u32 = 0x0000_ffff;

pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `struct seccomp_data` offsets, used by the BPF programs.
pub const SECCOMP_DATA_NR: u32 = 0;
pub const SECCOMP_DATA_ARCH: u32 = 4;
pub const SECCOMP_DATA_IP: u32 = 8;
pub const SECCOMP_DATA_ARGS: u32 = 16;

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct seccomp_data {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct seccomp_notif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub data: seccomp_data,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct seccomp_notif_resp {
    pub id: u64,
    pub val: i64,
    pub error: i32,
    pub flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct seccomp_notif_addfd {
    pub id: u64,
    pub flags: u32,
    pub srcfd: u32,
    pub newfd: u32,
    pub newfd_flags: u32,
}

pub const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;
pub const SECCOMP_ADDFD_FLAG_SETFD: u32 = 1;
pub const SECCOMP_ADDFD_FLAG_SEND: u32 = 2;
pub const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

// ioctl numbers: _IOWR('!', 0, seccomp_notif), _IOWR('!', 1, resp), _IOW('!', 2, u64),
// _IOW('!', 3, addfd), _IOW('!', 4, u64)
pub const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
pub const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;
pub const SECCOMP_IOCTL_NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;
pub const SECCOMP_IOCTL_NOTIF_ADDFD: libc::c_ulong = 0x4018_2103;
pub const SECCOMP_IOCTL_NOTIF_SET_FLAGS: libc::c_ulong = 0x4008_2104;

// ---- time and system information ------------------------------------------------------------

/// `struct __kernel_timespec` (`utimensat`'s times, as the caller passes them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct kernel_timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

impl From<kernel_timespec> for libc::timespec {
    fn from(t: kernel_timespec) -> Self {
        libc::timespec { tv_sec: t.tv_sec, tv_nsec: t.tv_nsec }
    }
}

/// `struct __kernel_old_timeval` (`utimes`' and `futimesat`'s times).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct kernel_old_timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// `struct sysinfo` with its padding spelt out: libc's leaves 4 bytes after `pad` to the
/// compiler, which must not be copied to a sandbox (they are not initialised).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, IntoBytes, Immutable)]
pub struct sysinfo {
    pub uptime: i64,
    pub loads: [u64; 3],
    pub totalram: u64,
    pub freeram: u64,
    pub sharedram: u64,
    pub bufferram: u64,
    pub totalswap: u64,
    pub freeswap: u64,
    pub procs: u16,
    pub pad: u16,
    pub pad2: u32,
    pub totalhigh: u64,
    pub freehigh: u64,
    pub mem_unit: u32,
    pub pad3: u32,
}

impl From<&libc::sysinfo> for sysinfo {
    fn from(s: &libc::sysinfo) -> Self {
        sysinfo {
            uptime: s.uptime,
            loads: s.loads,
            totalram: s.totalram,
            freeram: s.freeram,
            sharedram: s.sharedram,
            bufferram: s.bufferram,
            totalswap: s.totalswap,
            freeswap: s.freeswap,
            procs: s.procs,
            pad: 0,
            pad2: 0,
            totalhigh: s.totalhigh,
            freehigh: s.freehigh,
            mem_unit: s.mem_unit,
            pad3: 0,
        }
    }
}

/// `siginfo_t` as a program hands it to `pidfd_send_signal`: the three fields the Sentry
/// checks, then the union the kernel interprets by `si_code`, 128 bytes in all.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct siginfo {
    pub si_signo: i32,
    pub si_errno: i32,
    pub si_code: i32,
    pub rest: [i32; 29],
}

/// A kernel structure the Sentry may copy byte for byte into a sandbox's memory.
///
/// # Safety
/// Implement only for `#[repr(C)]` types with no padding bytes, so that every byte of a value
/// is initialised (a padding byte would be undefined behaviour to read, and could carry the
/// Sentry's own data into the sandbox).
pub unsafe trait KernelOut: Copy {
    /// The value's bytes, as the kernel lays them out.
    fn out_bytes(&self) -> &[u8] {
        // SAFETY: `Self` has no padding (the trait's contract), so all size_of::<Self>()
        // bytes behind `self` are initialised; the slice borrows `self`.
        unsafe { std::slice::from_raw_parts((self as *const Self).cast::<u8>(), std::mem::size_of::<Self>()) }
    }
}

// The three libc structs below have no gap the compiler fills: their fields sit at the uapi
// offsets (tested below) and libc names every other byte as a private padding field. Those
// fields are `MaybeUninit` in libc's types, so the guarantee is the crate's: every value of
// them the Sentry writes starts from `mem::zeroed()` and is filled by the kernel or field by
// field, and copies keep a `MaybeUninit`'s bytes.
// SAFETY: as above.
unsafe impl KernelOut for libc::stat {}
// SAFETY: as above.
unsafe impl KernelOut for libc::statx {}
// SAFETY: as above.
unsafe impl KernelOut for libc::statfs {}
// SAFETY: it derives `IntoBytes`, which compiles only for a type without padding.
unsafe impl KernelOut for sysinfo {}

/// A kernel structure of plain data (integers and arrays of them: no pointer, reference,
/// enum or `bool`), so that all zeroes is a valid value of it: what a call the kernel fills
/// starts from.
///
/// # Safety
/// Implement only for such types.
pub unsafe trait Zeroable: Sized {}

// SAFETY: integers and arrays of integers (libc's private padding fields included).
unsafe impl Zeroable for libc::stat {}
// SAFETY: as above.
unsafe impl Zeroable for libc::statx {}
// SAFETY: as above.
unsafe impl Zeroable for libc::statfs {}
// SAFETY: as above.
unsafe impl Zeroable for libc::timespec {}

/// The all-zero value of a [`Zeroable`] structure.
pub fn zeroed<T: Zeroable>() -> T {
    // SAFETY: all zeroes is a valid `T` (the trait's contract).
    unsafe { std::mem::zeroed() }
}

// ---- misc ------------------------------------------------------------------------------------

pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
pub const TMPFS_MAGIC: i64 = 0x0102_1994;
pub const PR_CAP_AMBIENT: libc::c_int = 47;
pub const PR_CAP_AMBIENT_RAISE: libc::c_ulong = 2;
pub const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<seccomp_notif>(), 80);
        assert_eq!(std::mem::size_of::<seccomp_notif_resp>(), 24);
        assert_eq!(std::mem::size_of::<seccomp_notif_addfd>(), 24);
        assert_eq!(std::mem::size_of::<clone_args>(), 88);
        assert_eq!(std::mem::size_of::<open_how>(), 24);
        assert_eq!(std::mem::size_of::<loop_config>(), 304);
        assert_eq!(std::mem::size_of::<kernel_timespec>(), 16);
        assert_eq!(std::mem::size_of::<siginfo>(), std::mem::size_of::<libc::siginfo_t>());
        assert_eq!(std::mem::size_of::<kernel_old_timeval>(), 16);
        assert_eq!(std::mem::size_of::<sysinfo>(), std::mem::size_of::<libc::sysinfo>());
    }

    /// The libc structs the Sentry writes out lie exactly where the kernel's uapi headers put
    /// them: each public field at its offset, the named (private) padding filling the rest,
    /// so no byte is left to the compiler.
    #[test]
    fn kernel_out_structs_have_the_kernels_layout() {
        use std::mem::{offset_of, size_of};
        macro_rules! at {
            ($t:ty, $($f:ident = $o:expr),* ; $size:expr) => {
                $(assert_eq!(offset_of!($t, $f), $o, concat!(stringify!($t), ".", stringify!($f)));)*
                assert_eq!(size_of::<$t>(), $size, stringify!($t));
            };
        }
        // __pad0 at 36, __unused at 120.
        at!(libc::stat, st_dev = 0, st_ino = 8, st_nlink = 16, st_mode = 24, st_uid = 28, st_gid = 32,
            st_rdev = 40, st_size = 48, st_blksize = 56, st_blocks = 64, st_atime = 72, st_atime_nsec = 80,
            st_mtime = 88, st_mtime_nsec = 96, st_ctime = 104, st_ctime_nsec = 112; 144);
        // f_flags and f_spare (private) from 80.
        at!(libc::statfs, f_type = 0, f_bsize = 8, f_blocks = 16, f_bfree = 24, f_bavail = 32, f_files = 40,
            f_ffree = 48, f_fsid = 56, f_namelen = 64, f_frsize = 72; 120);
        // __statx_pad1 at 30; the timestamps' pad at 12 of 16; the spare tail from 188.
        at!(libc::statx_timestamp, tv_sec = 0, tv_nsec = 8; 16);
        at!(libc::statx, stx_mask = 0, stx_blksize = 4, stx_attributes = 8, stx_nlink = 16, stx_uid = 20,
            stx_gid = 24, stx_mode = 28, stx_ino = 32, stx_size = 40, stx_blocks = 48, stx_attributes_mask = 56,
            stx_atime = 64, stx_btime = 80, stx_ctime = 96, stx_mtime = 112, stx_rdev_major = 128,
            stx_rdev_minor = 132, stx_dev_major = 136, stx_dev_minor = 140, stx_mnt_id = 144,
            stx_dio_mem_align = 152, stx_dio_offset_align = 156, stx_subvol = 160,
            stx_atomic_write_unit_min = 168, stx_atomic_write_unit_max = 172,
            stx_atomic_write_segments_max = 176, stx_dio_read_offset_align = 180,
            stx_atomic_write_unit_max_opt = 184; 256);
    }
}
