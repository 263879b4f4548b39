//! Capabilities. Inside its user namespace a sandbox's root keeps Docker's default set and
//! nothing else; the bounding set is cut so no `execve` can regain the rest.

use crate::spec::CapSets;
use crate::sys::{abi, prctl};
use std::io;

/// Docker's default capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID,
/// SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
pub const DOCKER_DEFAULT: [u32; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

const LAST_CAP_GUESS: u32 = 63;

/// Bit mask of a capability list.
pub fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0u64, |m, c| m | (1u64 << c))
}

/// Reduces the calling process to exactly `keep` (bounding, effective, permitted and
/// inheritable sets; the ambient set is cleared).
pub fn restrict_to(keep: u64) -> io::Result<()> {
    drop_bounding(keep)?;
    set(&CapSets { bounding: keep, effective: keep, permitted: keep, inheritable: keep, ambient: 0 })
}

/// Removes every capability outside `keep` from the bounding set, so no `execve` can regain it.
pub fn drop_bounding(keep: u64) -> io::Result<()> {
    for cap in 0..=LAST_CAP_GUESS {
        if keep & (1 << cap) == 0 {
            match prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0) {
                Ok(_) => {}
                // Past the kernel's last capability.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Sets the effective, permitted and inheritable sets, then the ambient set (whose members
/// must be permitted and inheritable).
pub fn set(sets: &CapSets) -> io::Result<()> {
    prctl(abi::PR_CAP_AMBIENT, abi::PR_CAP_AMBIENT_CLEAR_ALL, 0)?;
    crate::sys::process::set_capabilities(sets.effective, sets.permitted, sets.inheritable)?;
    for cap in 0..=LAST_CAP_GUESS {
        if sets.ambient & (1 << cap) != 0 {
            prctl(abi::PR_CAP_AMBIENT, abi::PR_CAP_AMBIENT_RAISE, cap as libc::c_ulong)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_mask() {
        assert_eq!(super::mask(&super::DOCKER_DEFAULT), 0xa80425fb);
    }
}
