//! `linux.devices`: a user namespace may not `mknod` device nodes, so the runtime (host root)
//! makes each one, with the type, numbers, mode and owner the spec asks for, in the
//! container's state directory, and binds it in (see docs/architecture.md, "OCI containers").

use crate::config;
use fnbox_sandbox::spec::{Mount, MountKind};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where a container's nodes are made: under its state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("dev")
}

/// The node of device `i`.
fn node(dir: &Path, i: usize) -> PathBuf {
    dir.join(i.to_string())
}

/// `S_IF*` for a spec's device type.
fn file_type(d: &config::Device) -> Result<libc::mode_t, String> {
    match d.kind.as_str() {
        "c" | "u" => Ok(libc::S_IFCHR),
        "b" => Ok(libc::S_IFBLK),
        "p" => Ok(libc::S_IFIFO),
        other => Err(format!("linux.devices: {} has type '{other}': use c, u, b or p", d.path)),
    }
}

/// The binds of the nodes, checked (made later by [`make`], once the state directory exists).
pub fn mounts(devices: &[config::Device], dir: &Path) -> Result<Vec<Mount>, String> {
    devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            file_type(d)?;
            let target = PathBuf::from(&d.path);
            if !target.is_absolute() {
                return Err(format!("linux.devices: the path '{}' must be absolute", d.path));
            }
            if !(0..=0xfff).contains(&d.major) || !(0..=0xfffff).contains(&d.minor) {
                return Err(format!("linux.devices: {} has major {} minor {}: out of range", d.path, d.major, d.minor));
            }
            Ok(Mount {
                target,
                kind: MountKind::Bind { source: node(dir, i), recursive: false, readonly: false, attrs: 0 },
            })
        })
        .collect()
}

/// Makes the nodes (mode 0666 unless `fileMode` says otherwise; owner root unless given).
pub fn make(devices: &[config::Device], dir: &Path) -> Result<(), String> {
    if devices.is_empty() {
        return Ok(());
    }
    std::fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (i, d) in devices.iter().enumerate() {
        let p = node(dir, i);
        let mode = d.file_mode.unwrap_or(0o666) & 0o7777;
        let dev = libc::makedev(d.major as u32, d.minor as u32);
        if let Err(e) = fnbox_sandbox::sys::mknodat(None, &p, file_type(d)? | mode, dev) {
            return Err(format!("linux.devices: cannot make {} ({}): {e}", d.path, p.display()));
        }
        // The umask took bits off: set the mode exactly.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("linux.devices: cannot set the mode of {}: {e}", d.path))?;
        std::os::unix::fs::chown(&p, Some(d.uid.unwrap_or(0)), Some(d.gid.unwrap_or(0)))
            .map_err(|e| format!("linux.devices: cannot set the owner of {}: {e}", d.path))?;
    }
    Ok(())
}
