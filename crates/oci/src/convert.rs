//! A bundle (`config.json` + rootfs) → the spec of an fnbox sandbox. Everything that can be
//! checked is checked here, before anything is created, with errors that name the field.

use crate::config;
use crate::error::{Error, Result};
use crate::{devices, mounts, names, seccomp};
use fnbox_sandbox::spec::{
    CapSets, Container, IdMapping, Image, Namespace, ProcessSettings, Resources, Rlimit, SandboxKind, SandboxSpec,
};
use std::path::{Path, PathBuf};

/// The annotation that picks the sandbox, overriding the binary's name.
pub const SANDBOX_ANNOTATION: &str = "dev.fnbox.sandbox";

/// Reads and parses `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<config::Spec> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::Bundle(format!(
            "cannot read {}: {e}: a bundle needs a config.json (fnbox-runc spec writes one)",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Bundle(format!("{} is not a valid OCI config: {e}", path.display())))
}

/// The sandbox: the binary's own, or v2 when the annotation asks for it. The annotation only
/// makes the sandbox stronger: whoever writes a pod writes its annotations (containerd passes
/// them with `pod_annotations`), and the RuntimeClass an operator polices must stay a floor,
/// so v1 asked under `fnbox-runc-v2` is refused, never run outside the Sentry.
pub fn kind(spec: &config::Spec, binary: SandboxKind) -> Result<SandboxKind> {
    let Some(v) = spec.annotations.get(SANDBOX_ANNOTATION) else { return Ok(binary) };
    let asked: SandboxKind = v.parse().map_err(|_| {
        Error::Bundle(format!("annotation {SANDBOX_ANNOTATION}={v} in config.json is not a sandbox: use v1 or v2"))
    })?;
    if binary == SandboxKind::V2 && asked == SandboxKind::V1 {
        return Err(Error::Bundle(format!(
            "annotation {SANDBOX_ANNOTATION}={v} asks for a weaker sandbox than fnbox-runc-v2 gives: the annotation \
             can only raise v1 to v2; to run v1, use the fnbox-runc-v1 runtime (RuntimeClass fnbox-v1)"
        )));
    }
    Ok(asked)
}

fn bad(m: impl Into<String>) -> Error {
    Error::Bundle(m.into())
}

/// The sandbox spec for container `id` of `bundle`, held before `execve` until `start`.
pub fn sandbox_spec(
    id: &str,
    bundle: &Path,
    spec: &config::Spec,
    kind: SandboxKind,
    systemd: bool,
    devices_dir: &Path,
) -> Result<SandboxSpec> {
    let process = spec.process.as_ref().ok_or_else(|| bad("config.json has no process: say what to run"))?;
    if process.args.is_empty() || process.args[0].is_empty() {
        return Err(bad("config.json: process.args is empty: give the program to run"));
    }
    let root = spec.root.as_ref().ok_or_else(|| bad("config.json has no root: give root.path"))?;
    let mut rootfs = PathBuf::from(&root.path);
    if rootfs.is_relative() {
        rootfs = bundle.join(rootfs);
    }
    if !rootfs.is_dir() {
        return Err(bad(format!(
            "the rootfs {} (root.path in config.json) does not exist: unpack the image there or fix root.path",
            rootfs.display()
        )));
    }
    let rootfs = rootfs.canonicalize().unwrap_or(rootfs);
    let linux = spec.linux.clone().unwrap_or_default();
    let mut s = SandboxSpec::new(kind, process.args.clone());
    s.image = Image::Dir(rootfs.clone());
    s.env = process
        .env
        .iter()
        .map(|e| e.split_once('=').map_or((e.clone(), String::new()), |(k, v)| (k.into(), v.into())))
        .collect();
    s.workdir = PathBuf::from(if process.cwd.is_empty() { "/" } else { &process.cwd });
    if !s.workdir.is_absolute() {
        return Err(bad(format!("config.json: process.cwd '{}' must be an absolute path", process.cwd)));
    }
    let mut c = Container {
        hold: true,
        root: fnbox_sandbox::rootfs::container::root_of(&rootfs)?,
        readonly_root: root.readonly,
        masked_paths: linux.masked_paths.iter().map(PathBuf::from).collect(),
        readonly_paths: linux.readonly_paths.iter().map(PathBuf::from).collect(),
        hostname: spec.hostname.clone().filter(|h| !h.is_empty()),
        process: process_settings(process)?,
        resources: resources(linux.resources.as_ref())?,
        cgroup_path: Some(cgroup_path(id, linux.cgroups_path.as_deref(), systemd)),
        ..Default::default()
    };
    c.mounts = spec.mounts.iter().map(|m| mounts::convert(m, bundle)).collect::<Result<_, _>>().map_err(bad)?;
    c.mounts.extend(devices::mounts(&linux.devices, devices_dir).map_err(bad)?);
    c.sysctl = sysctls(&linux.sysctl)?;
    c.oom_score_adj = process.oom_score_adj;
    namespaces(&mut c, &linux)?;
    // v1: the bundle's profile replaces fnbox's; v2: it is applied with the Sentry's filter.
    c.seccomp = linux.seccomp.as_ref().map(seccomp::profile).transpose().map_err(bad)?;
    s.container = Some(Box::new(c));
    s.validate()?;
    Ok(s)
}

/// `linux.sysctl` as paths below `/proc/sys` (`net.ipv4.ip_forward` → `net/ipv4/ip_forward`).
fn sysctls(given: &std::collections::BTreeMap<String, String>) -> Result<Vec<(String, String)>> {
    given
        .iter()
        .map(|(k, v)| {
            let parts: Vec<&str> = k.split(['.', '/']).collect();
            let ok = parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-:".contains(c)));
            if !ok {
                return Err(bad(format!("linux.sysctl: '{k}' is not a sysctl name (like net.ipv4.ip_forward)")));
            }
            Ok((parts.join("/"), v.clone()))
        })
        .collect()
}

/// Who a process runs as and with what (a container's own, or one started by `exec`).
pub fn process_settings(p: &config::Process) -> Result<ProcessSettings> {
    let caps = match &p.capabilities {
        Some(c) => {
            let permitted = names::caps_mask(&c.permitted).map_err(bad)?;
            let inheritable = names::caps_mask(&c.inheritable).map_err(bad)?;
            Some(CapSets {
                bounding: names::caps_mask(&c.bounding).map_err(bad)?,
                effective: names::caps_mask(&c.effective).map_err(bad)?,
                permitted,
                inheritable,
                // The kernel refuses an ambient capability that is not both permitted and
                // inheritable; runc's default spec asks for exactly that (ambient set,
                // inheritable empty) and runc leaves such ones out, so does fnbox.
                ambient: names::caps_mask(&c.ambient).map_err(bad)? & permitted & inheritable,
            })
        }
        None => None,
    };
    let rlimits = p
        .rlimits
        .iter()
        .map(|r| names::rlimit(&r.kind).map(|resource| Rlimit { resource, soft: r.soft, hard: r.hard }))
        .collect::<Result<_, _>>()
        .map_err(bad)?;
    Ok(ProcessSettings {
        uid: p.user.uid,
        gid: p.user.gid,
        additional_gids: p.user.additional_gids.clone(),
        umask: p.user.umask,
        caps,
        rlimits,
        no_new_privs: p.no_new_privileges,
        terminal: p.terminal,
    })
}

/// OCI limits → fnbox's; zero and negative values mean "no limit", as in runc. A disabled OOM
/// killer is refused: in fnbox an OOM kill ends the whole sandbox (docs/kubernetes.md), and a
/// sandbox whose processes wait at the limit forever is not one fnbox can end cleanly.
pub fn resources(r: Option<&config::Resources>) -> Result<Resources> {
    let positive = |v: Option<i64>| v.filter(|v| *v > 0).map(|v| v as u64);
    let r = r.cloned().unwrap_or_default();
    if r.memory.as_ref().and_then(|m| m.disable_oom_killer) == Some(true) {
        return Err(bad(
            "linux.resources.memory.disableOOMKiller is not supported by fnbox: an OOM kill ends the whole container; remove it",
        ));
    }
    Ok(Resources {
        memory_bytes: positive(r.memory.as_ref().and_then(|m| m.limit)),
        cpu_quota_us: positive(r.cpu.as_ref().and_then(|c| c.quota)),
        cpu_period_us: r.cpu.as_ref().and_then(|c| c.period).filter(|p| *p > 0),
        cpu_shares: r.cpu.as_ref().and_then(|c| c.shares).filter(|s| *s > 0),
        pids_max: positive(r.pids.as_ref().map(|p| p.limit)),
        cpuset_cpus: r.cpu.as_ref().and_then(|c| c.cpus.clone()).filter(|s| !s.is_empty()),
        cpuset_mems: r.cpu.as_ref().and_then(|c| c.mems.clone()).filter(|s| !s.is_empty()),
        memory_reservation: positive(r.memory.as_ref().and_then(|m| m.reservation)),
        swappiness: r.memory.as_ref().and_then(|m| m.swappiness),
    })
}

/// The cgroup below each hierarchy's root. With `--systemd-cgroup`, a `slice:prefix:name`
/// path is turned into the directory systemd would use (fnbox creates it directly; it does
/// not ask systemd for a scope).
pub fn cgroup_path(id: &str, given: Option<&str>, systemd: bool) -> String {
    let given = given.unwrap_or("").trim_matches('/');
    if given.is_empty() {
        return format!("fnbox/{id}");
    }
    if !systemd {
        return given.to_string();
    }
    let parts: Vec<&str> = given.split(':').collect();
    let [slice, prefix, name] = parts[..] else { return given.to_string() };
    let mut dir = String::new();
    let slice = slice.trim_end_matches(".slice");
    let slice = if slice.is_empty() { "system" } else { slice };
    // kubepods-besteffort-pod1.slice → kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice
    let mut acc = String::new();
    for part in slice.split('-') {
        if !acc.is_empty() {
            acc.push('-');
        }
        acc.push_str(part);
        dir.push_str(&format!("{acc}.slice/"));
    }
    format!("{dir}{prefix}-{name}.scope")
}

fn namespaces(c: &mut Container, linux: &config::Linux) -> Result<()> {
    // Namespaces the spec does not list are shared with the runtime's, as in runc; fnbox
    // always gives a container its own user, mount, pid and cgroup namespaces.
    c.net = Namespace::Host;
    c.ipc = Namespace::Host;
    c.uts = Namespace::Host;
    for ns in &linux.namespaces {
        let path = ns.path.as_ref().filter(|p| !p.is_empty()).map(PathBuf::from);
        let mode = match &path {
            Some(p) if !p.exists() => {
                return Err(bad(format!("the {} namespace {} in config.json does not exist", ns.kind, p.display())))
            }
            Some(p) => Namespace::Join(p.clone()),
            None => Namespace::New,
        };
        match ns.kind.as_str() {
            "network" => c.net = mode,
            "ipc" => c.ipc = mode,
            "uts" => c.uts = mode,
            "pid" | "mount" | "user" | "cgroup" | "time" => {
                if let Some(p) = path {
                    return Err(bad(format!(
                        "fnbox cannot join the existing {} namespace {}: each fnbox container gets its own pid, mount, user and cgroup namespaces",
                        ns.kind,
                        p.display()
                    )));
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown namespace type '{other}' in config.json: use pid, network, mount, ipc, uts, user or cgroup"
                )))
            }
        }
    }
    let user_ns = linux.namespaces.iter().any(|n| n.kind == "user");
    if user_ns && !linux.uid_mappings.is_empty() && !linux.gid_mappings.is_empty() {
        let map = |m: &[config::IdMapping]| {
            m.iter().map(|l| IdMapping { container: l.container_id, host: l.host_id, size: l.size }).collect()
        };
        c.uid_map = map(&linux.uid_mappings);
        c.gid_map = map(&linux.gid_mappings);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_annotation_only_raises_the_sandbox() {
        let with = |v: Option<&str>| {
            let mut s: config::Spec = serde_json::from_str("{}").unwrap();
            if let Some(v) = v {
                s.annotations.insert(SANDBOX_ANNOTATION.into(), v.into());
            }
            s
        };
        assert_eq!(kind(&with(None), SandboxKind::V2).unwrap(), SandboxKind::V2);
        assert_eq!(kind(&with(Some("v2")), SandboxKind::V1).unwrap(), SandboxKind::V2);
        assert_eq!(kind(&with(Some("v1")), SandboxKind::V1).unwrap(), SandboxKind::V1);
        let e = kind(&with(Some("v1")), SandboxKind::V2).unwrap_err().to_string();
        assert!(e.contains("weaker sandbox") && e.contains("fnbox-runc-v1"), "{e}");
        assert!(kind(&with(Some("v3")), SandboxKind::V1).unwrap_err().to_string().contains("use v1 or v2"));
    }

    #[test]
    fn systemd_paths_expand_like_systemd() {
        assert_eq!(
            cgroup_path("x", Some("kubepods-besteffort-pod1.slice:cri-containerd:abc"), true),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"
        );
        assert_eq!(cgroup_path("x", Some("/default/x"), false), "default/x");
        assert_eq!(cgroup_path("x", None, false), "fnbox/x");
    }

    #[test]
    fn limits_zero_or_negative_mean_none() {
        let r: config::Resources = serde_json::from_str(
            r#"{"memory":{"limit":67108864},"cpu":{"quota":-1,"period":100000,"shares":0},"pids":{"limit":0}}"#,
        )
        .unwrap();
        let x = resources(Some(&r)).unwrap();
        assert_eq!(x.memory_bytes, Some(64 << 20));
        assert_eq!((x.cpu_quota_us, x.cpu_period_us, x.cpu_shares, x.pids_max), (None, Some(100_000), None, None));
    }

    #[test]
    fn a_disabled_oom_killer_is_refused_by_name() {
        let r = |j: &str| resources(Some(&serde_json::from_str(j).unwrap())).map_err(|e| e.to_string());
        assert!(r(r#"{"memory":{"limit":67108864,"disableOOMKiller":true}}"#)
            .unwrap_err()
            .contains("disableOOMKiller"));
        assert!(r(r#"{"memory":{"limit":67108864,"disableOOMKiller":false}}"#).is_ok());
    }
}
