//! What the launcher works out from a spec for the sandbox's own processes before it clones
//! them: the first process's [`ChildConfig`] and the program's
//! [`ProgramConfig`](super::program::ProgramConfig) (its argv, environment and seccomp
//! filters). The processes read it in their copy of the launcher's memory; nothing here runs
//! in them.

use super::container;
use super::program::ProgramConfig;
use crate::error::{Error, Result};
use crate::rootfs::{self, ProcMode};
use crate::spec::{Namespace, SandboxKind, SandboxSpec};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Everything the child needs, prepared by the launcher before `clone3`.
pub struct ChildConfig {
    pub layout: rootfs::Layout,
    pub program: ProgramConfig,
    pub workdir: PathBuf,
    /// `None`: the UTS namespace is not the sandbox's own; its name stays.
    pub hostname: Option<String>,
    /// Bring `lo` up (the network namespace is the sandbox's own).
    pub loopback: bool,
    /// Create the network namespace (rather than get it from `clone3`): see `Sandbox::start`.
    pub new_net: bool,
    /// Egress: the uid slot whose link (`eth0`) the launcher makes before `STAGE`.
    pub egress_slot: Option<u32>,
    /// Hold the program before `execve` until the launcher sends `START`.
    pub hold: bool,
    /// Cloned as the launcher's sibling (`Container::sibling_init`): no parent-death signal
    /// (the parent is not the launcher); the init ends when the launcher's socket closes.
    pub sibling: bool,
    /// The launcher's descriptor the program gets as `LISTEN_FD` (see `SandboxSpec::listen_fd`).
    pub listen: Option<std::os::fd::RawFd>,
}

pub(super) fn child_config(spec: &SandboxSpec, stage: &Path) -> Result<ChildConfig> {
    let env = spec.full_env();
    let search_path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
    let v2 = spec.kind == SandboxKind::V2;
    let c = spec.container.as_deref();
    let (filter, extra_filter) = filters(v2, c.is_some(), c.and_then(|c| c.seccomp.as_ref()), spec.report.is_some());
    let own_ns = |ns: Option<&Namespace>| ns.is_none_or(|n| *n == Namespace::New);
    Ok(ChildConfig {
        layout: rootfs::Layout {
            stage: stage.to_path_buf(),
            // A container's /tmp is what its mounts say (its root's directory otherwise).
            tmp_in_memory: v2 && c.is_none(),
            proc: if v2 { ProcMode::Placeholder } else { ProcMode::Kernel },
            sys: !v2,
            container: c.map(|c| container::layout(c, spec.kind)),
        },
        program: ProgramConfig {
            argv: cstrings(spec.argv.iter().cloned())?,
            env: cstrings(env.into_iter().map(|(k, v)| format!("{k}={v}")))?,
            search_path,
            filter,
            extra_filter,
            notify: v2,
            settings: c.map(|c| c.process.clone()),
        },
        workdir: spec.workdir.clone(),
        hostname: match c {
            Some(c) if own_ns(Some(&c.uts)) => c.hostname.clone(),
            Some(_) => None,
            None => Some(spec.hostname.clone()),
        },
        loopback: own_ns(c.map(|c| &c.net)),
        new_net: false,
        egress_slot: None,
        hold: c.is_some_and(|c| c.hold),
        sibling: c.is_some_and(|c| c.sibling_init),
        listen: spec.listen_fd,
    })
}

pub(super) fn cstrings(items: impl IntoIterator<Item = String>) -> Result<Vec<CString>> {
    items
        .into_iter()
        .map(|s| {
            CString::new(s).map_err(|_| Error::Invalid("arguments and environment may not contain NUL bytes".into()))
        })
        .collect()
}

/// A program's seccomp filter (empty: none), and a second one to install before it: v1 runs
/// a container's own profile, none for a container without one (as the OCI spec says), or
/// fnbox's default; v2 the Sentry's filter, after a container's profile if it has one.
pub(super) fn filters(
    v2: bool,
    container: bool,
    profile: Option<&crate::seccomp::profile::Profile>,
    report: bool,
) -> (Vec<crate::seccomp::bpf::Insn>, Option<Vec<crate::seccomp::bpf::Insn>>) {
    match (v2, profile) {
        (true, p) => (crate::seccomp::policy_v2(report).compile(), p.map(|p| p.policy().compile())),
        (false, Some(p)) => (p.policy().compile(), None),
        (false, None) if container => (Vec::new(), None),
        (false, None) => (crate::seccomp::policy_v1().compile(), None),
    }
}
