//! OCI mounts and their option strings → fnbox's mount descriptions.

use crate::config;
use fnbox_sandbox::spec::{Mount, MountKind};
use fnbox_sandbox::sys::abi;
use std::path::{Path, PathBuf};

/// Flags `mount(2)` takes for an option; `None` for options passed to the filesystem.
fn flag(opt: &str) -> Option<(libc::c_ulong, bool)> {
    Some(match opt {
        "ro" => (libc::MS_RDONLY, true),
        "rw" => (libc::MS_RDONLY, false),
        "nosuid" => (libc::MS_NOSUID, true),
        "suid" => (libc::MS_NOSUID, false),
        "nodev" => (libc::MS_NODEV, true),
        "dev" => (libc::MS_NODEV, false),
        "noexec" => (libc::MS_NOEXEC, true),
        "exec" => (libc::MS_NOEXEC, false),
        "sync" => (libc::MS_SYNCHRONOUS, true),
        "async" => (libc::MS_SYNCHRONOUS, false),
        "dirsync" => (libc::MS_DIRSYNC, true),
        "mand" => (libc::MS_MANDLOCK, true),
        "nomand" => (libc::MS_MANDLOCK, false),
        "noatime" => (libc::MS_NOATIME, true),
        "atime" => (libc::MS_NOATIME, false),
        "nodiratime" => (libc::MS_NODIRATIME, true),
        "diratime" => (libc::MS_NODIRATIME, false),
        "relatime" => (libc::MS_RELATIME, true),
        "norelatime" => (libc::MS_RELATIME, false),
        "strictatime" => (libc::MS_STRICTATIME, true),
        _ => return None,
    })
}

/// Options that only say how mounts propagate or how runc copies things up: a sandbox's mount
/// namespace is private, so they change nothing here.
const IGNORED: [&str; 11] = [
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "tmpcopyup",
    "bind",
    "rbind",
];

/// Converts one mount; `bundle` anchors relative bind sources.
pub fn convert(m: &config::Mount, bundle: &Path) -> Result<Mount, String> {
    let target = PathBuf::from(&m.destination);
    if !target.is_absolute() {
        return Err(format!("mount destination '{}' in config.json must be an absolute path", m.destination));
    }
    let kind = m.kind.as_deref().unwrap_or("");
    let bind = kind == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind");
    let mut flags: libc::c_ulong = 0;
    let mut data = Vec::new();
    for o in &m.options {
        match flag(o) {
            Some((f, true)) => flags |= f,
            Some((f, false)) => flags &= !f,
            None if IGNORED.contains(&o.as_str()) => {}
            None => data.push(o.as_str()),
        }
    }
    let source = m.source.clone().unwrap_or_default();
    if bind {
        let mut src = PathBuf::from(&source);
        if src.is_relative() {
            src = bundle.join(src);
        }
        let attr = |f: libc::c_ulong, a: u64| if flags & f != 0 { a } else { 0 };
        return Ok(Mount {
            target,
            kind: MountKind::Bind {
                source: src,
                recursive: m.options.iter().any(|o| o == "rbind"),
                readonly: flags & libc::MS_RDONLY != 0,
                attrs: attr(libc::MS_NOSUID, abi::MOUNT_ATTR_NOSUID)
                    | attr(libc::MS_NODEV, abi::MOUNT_ATTR_NODEV)
                    | attr(libc::MS_NOEXEC, abi::MOUNT_ATTR_NOEXEC),
            },
        });
    }
    if kind.is_empty() {
        return Err(format!(
            "mount on {} in config.json has no type: give one (tmpfs, proc, bind, ...)",
            m.destination
        ));
    }
    Ok(Mount {
        target,
        kind: MountKind::Fs { fstype: kind.to_string(), source, flags: flags as u64, data: data.join(",") },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(dest: &str, kind: &str, src: &str, opts: &[&str]) -> config::Mount {
        config::Mount {
            destination: dest.into(),
            kind: Some(kind.into()),
            source: Some(src.into()),
            options: opts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let c = convert(
            &m("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
            Path::new("/b"),
        )
        .unwrap();
        let MountKind::Fs { fstype, flags, data, .. } = c.kind else { panic!("not fs") };
        assert_eq!(fstype, "tmpfs");
        assert_eq!(flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(data, "mode=755,size=65536k");
        let b = convert(&m("/etc/hosts", "bind", "hosts", &["rbind", "ro", "nosuid", "rprivate"]), Path::new("/b"))
            .unwrap();
        let MountKind::Bind { source, recursive, readonly, attrs } = b.kind else { panic!("not bind") };
        assert_eq!(
            (source, recursive, readonly, attrs),
            (PathBuf::from("/b/hosts"), true, true, abi::MOUNT_ATTR_NOSUID)
        );
        assert!(convert(&m("rel", "tmpfs", "tmpfs", &[]), Path::new("/b")).is_err());
    }
}
