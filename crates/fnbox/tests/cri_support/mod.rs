//! The Kubernetes path at the CRI level: a private containerd (Debian's, with its CRI plugin)
//! configured with the runtime handlers `runc`, `fnbox-v1` and `fnbox-v2`, a CNI bridge
//! network, a pause image and a busybox image built here (no registry), and a small CRI client
//! on the CRI protobuf (the `k8s-cri` crate) that speaks to it over its unix socket as kubelet
//! does.

#![allow(dead_code)]

pub mod pod;

use crate::oci_support::{
    busybox_rootfs, containerd_config, image_tarball_with, run_ok, runtimes, spawn_containerd, text, unmount_below,
    TempDir,
};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint, Uri};

/// The image the test containers run: busybox, every applet linked.
pub const IMAGE: &str = "fnbox.test/busybox:latest";
/// The pod sandbox's image (containerd's `sandbox_image`): only `/pause`.
pub const PAUSE_IMAGE: &str = "fnbox.test/pause:1";
/// The handlers (containerd runtimes) the tests compare: runc is the yardstick.
pub const HANDLERS: [&str; 3] = ["runc", "fnbox-v1", "fnbox-v2"];
/// How long one CRI call may take before the test gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);
/// Where Debian (`containernetworking-plugins`) and the CNI project install the plugins.
const CNI_BIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// A requirement of the CRI tests is missing: say what to install, and fail (never skip).
fn missing(what: &str, install: &str) -> ! {
    panic!(
        "CRI tests: {what} is missing: {install} (.ci/run installs it). The CRI path cannot be \
         tested without it; this test fails rather than skips{}",
        if std::env::var("CI").is_ok_and(|v| v == "true") { " (CI=true)" } else { "" }
    )
}

fn command_exists(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// Whether this process may lower an OOM score (CAP_SYS_RESOURCE, capability 24). Some hosts'
/// root lacks it; CRI's pause container asks for -998 and every runtime (runc too) then fails
/// to create it, so containerd is told to keep scores at or above its own
/// (`restrict_oom_score_adj`, the setting containerd has for such hosts).
fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap_or("0");
    u64::from_str_radix(eff.trim(), 16).is_ok_and(|caps| caps & (1 << 24) != 0)
}

fn cni_bin_dir() -> &'static str {
    CNI_BIN_DIRS
        .into_iter()
        .find(|d| ["bridge", "host-local", "loopback"].iter().all(|p| Path::new(d).join(p).exists()))
        .unwrap_or_else(|| {
            missing("the CNI plugins bridge, host-local and loopback", "apt-get install containernetworking-plugins")
        })
}

/// A private containerd with the CRI plugin, its CRI client and what it needs on the host (a
/// CNI bridge, the images). Everything goes on drop: pods, the daemon, its mounts, the bridge.
pub struct CriContainerd {
    dir: TempDir,
    daemon: Child,
    socket: PathBuf,
    bridge: String,
    /// The cgroup parent of every pod this instance runs (kubelet's `kubepods`).
    pub cgroup_root: String,
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl CriContainerd {
    pub fn start(name: &str) -> Self {
        crate::oci_support::require_root();
        for (tool, package) in
            [("containerd", "containerd"), ("ctr", "containerd"), ("runc", "runc"), ("gcc", "gcc"), ("ip", "iproute2")]
        {
            if !command_exists(tool) {
                missing(tool, &format!("apt-get install {package}"));
            }
        }
        let cni_bin = cni_bin_dir();
        let dir = TempDir::new(name);
        let d = dir.path().to_path_buf();
        let socket = d.join("containerd.sock");
        let bridge = format!("fnboxcri{}", std::process::id() % 100_000);
        let cgroup_root = format!("fnbox-cri-{}-{name}", std::process::id());
        std::fs::create_dir_all(d.join("net.d")).unwrap();
        // A bridge without an address on the host (no gateway, no masquerading): the pods reach
        // each other's loopback only within a pod, and nothing leaves the machine.
        let cni = serde_json::json!({
            "cniVersion": "0.4.0", "name": format!("fnbox-cri-{name}"),
            "plugins": [{
                "type": "bridge", "bridge": bridge, "isGateway": false, "ipMasq": false,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "192.0.2.0/24"}]],
                         "dataDir": d.join("ipam")},
            }],
        });
        std::fs::write(d.join("net.d/10-fnbox.conflist"), cni.to_string()).unwrap();
        let [v1, v2] = runtimes(&d);
        let runc = PathBuf::from(text(&run_ok(Command::new("sh").args(["-c", "command -v runc"])).stdout).trim());
        // fnbox's handlers pass the pod annotation that picks the sandbox (docs/kubernetes.md).
        let handler = |name: &str, binary: &Path| {
            let annotations = if name.starts_with("fnbox") { "[\"dev.fnbox.sandbox\"]" } else { "[]" };
            format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}]\n  runtime_type = \"io.containerd.runc.v2\"\n  \
                 pod_annotations = {annotations}\n  \
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}.options]\n    BinaryName = \"{}\"\n    Root = \"{}\"\n",
                binary.display(),
                d.join("runtime").join(name).display()
            )
        };
        let config = format!(
            r#"{head}[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  restrict_oom_score_adj = {restrict_oom}
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{d}/net.d"
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
  snapshotter = "overlayfs"
{runc}{v1}{v2}"#,
            head = containerd_config(&d, &socket, &[]),
            d = d.display(),
            runc = handler("runc", &runc),
            v1 = handler("fnbox-v1", &v1),
            v2 = handler("fnbox-v2", &v2),
            restrict_oom = !has_cap_sys_resource(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let mut daemon = spawn_containerd(&d);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        let channel = loop {
            let connected = rt.block_on(connect(&socket));
            let answered = match &connected {
                Ok(ch) => {
                    let mut c = RuntimeServiceClient::new(ch.clone());
                    rt.block_on(c.version(VersionRequest::default())).is_ok()
                }
                Err(_) => false,
            };
            if answered {
                break connected.unwrap();
            }
            if Instant::now() > until || daemon.try_wait().unwrap().is_some() {
                let _ = daemon.kill();
                let log = std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default();
                panic!("containerd's CRI plugin did not answer; containerd's log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let c = Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            rt,
            dir,
            daemon,
            socket,
            bridge,
            cgroup_root,
        };
        c.import_images();
        c
    }

    /// Builds the pause and busybox images here and imports them into CRI's namespace.
    fn import_images(&self) {
        let d = self.dir.path();
        let pause_root = d.join("pause-rootfs");
        std::fs::create_dir_all(&pause_root).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cri_support/pause.c");
        run_ok(Command::new("gcc").args(["-static", "-Os", "-s", "-o"]).arg(pause_root.join("pause")).arg(&source));
        let busybox_root = d.join("busybox-rootfs");
        busybox_rootfs(&busybox_root);
        let images = [
            (pause_root, PAUSE_IMAGE, serde_json::json!({"Entrypoint": ["/pause"]})),
            (busybox_root, IMAGE, serde_json::json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]})),
        ];
        for (i, (root, name, config)) in images.into_iter().enumerate() {
            let work = d.join(format!("image-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let tarball = image_tarball_with(&root, name, &work, config);
            run_ok(self.ctr().args(["images", "import"]).arg(tarball));
            // CRI's own view of the image (its store follows containerd's image events).
            let seen = crate::common::eventually(Duration::from_secs(10), || {
                self.image_status(name).is_ok_and(|s| s.image.is_some())
            });
            assert!(seen, "CRI does not list the imported image {name}: {:?}", self.image_status(name));
        }
    }

    /// `ctr` on this containerd, in CRI's namespace.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.socket).args(["-n", "k8s.io"]).stdin(Stdio::null());
        c
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Runs one CRI call of the runtime service; an error names the call and gRPC's status.
    pub fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, String>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let call = f(self.runtime.clone());
        let answer = self.rt.block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await });
        match answer {
            Err(_) => Err(format!("{what}: no answer in {CALL_TIMEOUT:?}")),
            Ok(Err(s)) => Err(format!("{what}: {:?}: {}", s.code(), s.message())),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    pub fn version(&self) -> Result<VersionResponse, String> {
        self.call("Version", |mut c| async move { c.version(VersionRequest::default()).await })
    }

    pub fn image_status(&self, image: &str) -> Result<ImageStatusResponse, String> {
        let req = ImageStatusRequest { image: Some(image_spec(image)), verbose: false };
        let mut c = self.images.clone();
        match self.rt.block_on(async { tokio::time::timeout(CALL_TIMEOUT, c.image_status(req)).await }) {
            Err(_) => Err(format!("ImageStatus: no answer in {CALL_TIMEOUT:?}")),
            Ok(r) => r.map(|r| r.into_inner()).map_err(|s| format!("ImageStatus: {:?}: {}", s.code(), s.message())),
        }
    }

    pub fn run_pod(&self, config: &PodSandboxConfig, handler: &str) -> Result<String, String> {
        let req = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.to_string() };
        self.call("RunPodSandbox", |mut c| async move { c.run_pod_sandbox(req).await }).map(|r| r.pod_sandbox_id)
    }

    pub fn pod_status(&self, pod: &str) -> Result<PodSandboxStatus, String> {
        let req = PodSandboxStatusRequest { pod_sandbox_id: pod.to_string(), verbose: false };
        self.call("PodSandboxStatus", |mut c| async move { c.pod_sandbox_status(req).await })?
            .status
            .ok_or_else(|| "PodSandboxStatus: no status".to_string())
    }

    pub fn stop_pod(&self, pod: &str) -> Result<(), String> {
        let req = StopPodSandboxRequest { pod_sandbox_id: pod.to_string() };
        self.call("StopPodSandbox", |mut c| async move { c.stop_pod_sandbox(req).await }).map(drop)
    }

    pub fn remove_pod(&self, pod: &str) -> Result<(), String> {
        let req = RemovePodSandboxRequest { pod_sandbox_id: pod.to_string() };
        self.call("RemovePodSandbox", |mut c| async move { c.remove_pod_sandbox(req).await }).map(drop)
    }

    pub fn pods(&self) -> Result<Vec<PodSandbox>, String> {
        let req = ListPodSandboxRequest { filter: None };
        self.call("ListPodSandbox", |mut c| async move { c.list_pod_sandbox(req).await }).map(|r| r.items)
    }

    pub fn create_container(
        &self,
        pod: &str,
        config: ContainerConfig,
        pod_config: &PodSandboxConfig,
    ) -> Result<String, String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        self.call("CreateContainer", |mut c| async move { c.create_container(req).await }).map(|r| r.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), String> {
        let req = StartContainerRequest { container_id: id.to_string() };
        self.call("StartContainer", |mut c| async move { c.start_container(req).await }).map(drop)
    }

    pub fn stop_container(&self, id: &str, timeout_s: i64) -> Result<(), String> {
        let req = StopContainerRequest { container_id: id.to_string(), timeout: timeout_s };
        self.call("StopContainer", |mut c| async move { c.stop_container(req).await }).map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Result<(), String> {
        let req = RemoveContainerRequest { container_id: id.to_string() };
        self.call("RemoveContainer", |mut c| async move { c.remove_container(req).await }).map(drop)
    }

    /// The container's status and, verbose, containerd's `info` (its pid, the runtime spec).
    pub fn container_status(&self, id: &str) -> Result<(ContainerStatus, serde_json::Value), String> {
        let req = ContainerStatusRequest { container_id: id.to_string(), verbose: true };
        let r = self.call("ContainerStatus", |mut c| async move { c.container_status(req).await })?;
        let info = r.info.get("info").and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
        Ok((r.status.ok_or("ContainerStatus: no status")?, info))
    }

    pub fn container_stats(&self, id: &str) -> Result<ContainerStats, String> {
        let req = ContainerStatsRequest { container_id: id.to_string() };
        self.call("ContainerStats", |mut c| async move { c.container_stats(req).await })?
            .stats
            .ok_or_else(|| "ContainerStats: no stats".to_string())
    }

    pub fn update_resources(&self, id: &str, linux: LinuxContainerResources) -> Result<(), String> {
        let req = UpdateContainerResourcesRequest {
            container_id: id.to_string(),
            linux: Some(linux),
            windows: None,
            annotations: Default::default(),
        };
        self.call("UpdateContainerResources", |mut c| async move { c.update_container_resources(req).await }).map(drop)
    }

    pub fn exec_sync(&self, id: &str, cmd: &[&str], timeout_s: i64) -> Result<ExecSyncResponse, String> {
        let req = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_s,
        };
        self.call("ExecSync", |mut c| async move { c.exec_sync(req).await })
    }

    /// Waits until the container is in `state` (a `ContainerState`); returns its status.
    pub fn wait_container(&self, id: &str, state: ContainerState, within: Duration) -> Result<ContainerStatus, String> {
        let until = Instant::now() + within;
        loop {
            let (status, _) = self.container_status(id)?;
            if status.state == state as i32 {
                return Ok(status);
            }
            if Instant::now() > until {
                return Err(format!("container {id} is {:?}, not {state:?}, after {within:?}", status.state()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    // The URI is required by tonic but unused: every connection goes to the unix socket.
    Endpoint::try_from("http://[::]:50051")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }))
        .await
}

pub fn image_spec(image: &str) -> ImageSpec {
    ImageSpec { image: image.to_string(), ..Default::default() }
}

impl Drop for CriContainerd {
    fn drop(&mut self) {
        // Pods a failed test left: StopPodSandbox kills their containers, then they go.
        for pod in self.pods().unwrap_or_default() {
            let _ = self.stop_pod(&pod.id);
            let _ = self.remove_pod(&pod.id);
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        unmount_below(self.dir.path());
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        let mut cgroups = crate::oci_support::cgroups_at(&self.cgroup_root);
        for c in &cgroups.clone() {
            // Pod cgroups below the root, deepest first.
            if let Ok(rd) = std::fs::read_dir(c) {
                cgroups.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
        }
        cgroups.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for c in cgroups {
            let _ = std::fs::remove_dir(c);
        }
    }
}
