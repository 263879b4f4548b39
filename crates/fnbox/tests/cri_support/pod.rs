//! A pod as kubelet runs one through CRI (its namespaces, cgroup parent, DNS, log directory,
//! `RuntimeDefault` seccomp) and the containers started in it, stopped and removed at the end
//! with a check that nothing of them is left on the host.

use super::{image_spec, CriContainerd, IMAGE};
use crate::oci_support::text;
use k8s_cri::v1::security_profile::ProfileType;
use k8s_cri::v1::*;
use std::path::PathBuf;
use std::time::Duration;

/// A long-running container program that ends cleanly on SIGTERM (as a well-behaved server
/// does): StopContainer should then see exit code 0 well before its timeout.
pub const SERVE: &str = "trap 'exit 0' TERM; cat /proc/self/oom_score_adj > /tmp/oom_score_adj; \
                     echo started > /tmp/started; while :; do sleep 0.1; done";

pub fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

pub fn namespaces() -> NamespaceOption {
    // kubelet's defaults: the pod's network and IPC, a pid namespace per container.
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A container's security context as kubelet sends it for `seccompProfile: RuntimeDefault`.
pub fn runtime_default() -> LinuxContainerSecurityContext {
    LinuxContainerSecurityContext {
        namespace_options: Some(namespaces()),
        seccomp: Some(SecurityProfile { profile_type: ProfileType::RuntimeDefault as i32, ..Default::default() }),
        ..Default::default()
    }
}

/// One pod sandbox of one handler and the containers started in it. Dropped unfinished (a
/// failed check), it is stopped and removed without checks.
pub struct Pod<'a> {
    pub cri: &'a CriContainerd,
    pub id: String,
    pub config: PodSandboxConfig,
    pub containers: Vec<String>,
    finished: bool,
}

impl<'a> Pod<'a> {
    pub fn run(cri: &'a CriContainerd, handler: &str, name: &str) -> Result<Self, String> {
        Self::run_with(cri, handler, name, NamespaceMode::Container)
    }

    /// A pod with `annotations` (`metadata.annotations` of the Pod object).
    pub fn run_annotated(
        cri: &'a CriContainerd,
        handler: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> Result<Self, String> {
        Self::run_full(cri, handler, name, NamespaceMode::Container, annotations)
    }

    /// A pod whose containers get `pid` as their pid namespace mode (kubelet: `Pod` when
    /// `shareProcessNamespace`, else `Container`).
    pub fn run_with(cri: &'a CriContainerd, handler: &str, name: &str, pid: NamespaceMode) -> Result<Self, String> {
        Self::run_full(cri, handler, name, pid, &[])
    }

    pub fn run_full(
        cri: &'a CriContainerd,
        handler: &str,
        name: &str,
        pid: NamespaceMode,
        annotations: &[(&str, &str)],
    ) -> Result<Self, String> {
        let uid = format!("{name}-{handler}");
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: uid.clone(),
                uid: uid.clone(),
                namespace: "fnbox-test".into(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            dns_config: Some(DnsConfig {
                servers: vec!["192.0.2.53".into()],
                searches: vec!["fnbox.test".into()],
                options: vec!["ndots:2".into()],
            }),
            log_directory: cri.dir().join("logs").join(&uid).to_string_lossy().into_owned(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/{uid}", cri.cgroup_root),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption { pid: pid as i32, ..namespaces() }),
                    seccomp: Some(SecurityProfile {
                        profile_type: ProfileType::RuntimeDefault as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = cri.run_pod(&config, handler)?;
        Ok(Self { cri, id, config, containers: Vec::new(), finished: false })
    }

    pub fn container_config(&self, name: &str, script: &str, resources: LinuxContainerResources) -> ContainerConfig {
        self.container_config_with(name, script, resources, runtime_default(), Vec::new())
    }

    pub fn container_config_with(
        &self,
        name: &str,
        script: &str,
        resources: LinuxContainerResources,
        security: LinuxContainerSecurityContext,
        mounts: Vec<Mount>,
    ) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.to_string(), attempt: 0 }),
            image: Some(image_spec(IMAGE)),
            command: vec!["sh".into(), "-c".into()],
            args: vec![script.to_string()],
            envs: vec![KeyValue { key: "CONTAINER_NAME".into(), value: name.to_string() }],
            // kubelet's layout: <container name>/<restart count>.log under the pod's directory.
            log_path: format!("{name}/0.log"),
            mounts,
            linux: Some(LinuxContainerConfig { resources: Some(resources), security_context: Some(security) }),
            ..Default::default()
        }
    }

    /// CreateContainer + StartContainer of `sh -c script`.
    pub fn start(&mut self, name: &str, script: &str, resources: LinuxContainerResources) -> Result<String, String> {
        let config = self.container_config(name, script, resources);
        self.start_config(config)
    }

    /// CreateContainer + StartContainer of `config`.
    pub fn start_config(&mut self, config: ContainerConfig) -> Result<String, String> {
        let id = self.cri.create_container(&self.id, config, &self.config)?;
        self.containers.push(id.clone());
        self.cri.start_container(&id)?;
        Ok(id)
    }

    /// A started container running SERVE, once its program has begun.
    pub fn serve(&mut self, name: &str, resources: LinuxContainerResources) -> Result<String, String> {
        let id = self.start(name, SERVE, resources)?;
        self.cri.wait_container(&id, ContainerState::ContainerRunning, Duration::from_secs(30))?;
        let up = crate::common::eventually(Duration::from_secs(20), || {
            self.cri.exec_sync(&id, &["cat", "/tmp/started"], 10).is_ok_and(|r| r.exit_code == 0)
        });
        ensure(up, || format!("{name}: /tmp/started never appeared (ExecSync cat)"))?;
        Ok(id)
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        PathBuf::from(&self.config.log_directory).join(format!("{name}/0.log"))
    }

    /// StopPodSandbox (it stops every container), RemovePodSandbox, and nothing is left: no
    /// process, mount or cgroup of the pod or its containers.
    pub fn finish(mut self) -> Result<(), String> {
        self.finished = true;
        self.cri.stop_pod(&self.id)?;
        let status = self.cri.pod_status(&self.id)?;
        ensure(status.state == PodSandboxState::SandboxNotready as i32, || {
            format!("after StopPodSandbox the pod is {:?}", status.state())
        })?;
        for c in &self.containers {
            let (s, _) = self.cri.container_status(c)?;
            ensure(s.state == ContainerState::ContainerExited as i32, || {
                format!("after StopPodSandbox container {c} is {:?}", s.state())
            })?;
        }
        self.cri.remove_pod(&self.id)?;
        ensure(self.cri.pod_status(&self.id).is_err(), || "PodSandboxStatus answers after RemovePodSandbox".into())?;
        let mut ids = self.containers.clone();
        ids.push(self.id.clone());
        let cgroup_parent = self.config.linux.as_ref().map(|l| l.cgroup_parent.clone()).unwrap_or_default();
        let mut left = Vec::new();
        let gone = crate::common::eventually(Duration::from_secs(15), || {
            left = leftovers(&ids, &cgroup_parent);
            left.is_empty()
        });
        ensure(gone, || format!("left behind after RemovePodSandbox: {left:?}"))
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.cri.stop_pod(&self.id);
            let _ = self.cri.remove_pod(&self.id);
        }
    }
}

/// Processes, mounts and cgroups that still name one of `ids` (or sit below `cgroup_parent`).
pub fn leftovers(ids: &[String], cgroup_parent: &str) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok().map(|c| (e.file_name(), c)))
        .map(|(pid, c)| (pid.to_string_lossy().into_owned(), text(&c).replace('\0', " ")))
        .filter(|(_, c)| ids.iter().any(|id| c.contains(id.as_str())))
        .map(|(pid, c)| format!("process {pid}: {c}"))
        .collect();
    for id in ids {
        left.extend(crate::oci_support::mounts_mentioning(id).into_iter().map(|m| format!("mount {m}")));
    }
    for dir in crate::oci_support::cgroups_at(cgroup_parent) {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            left.extend(rd.flatten().filter(|e| e.path().is_dir()).map(|e| format!("cgroup {}", e.path().display())));
        }
    }
    left
}

pub fn resources(memory: i64, quota: i64, period: i64, shares: i64) -> LinuxContainerResources {
    LinuxContainerResources {
        memory_limit_in_bytes: memory,
        cpu_quota: quota,
        cpu_period: period,
        cpu_shares: shares,
        ..Default::default()
    }
}
