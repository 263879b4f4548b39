//! Shared by the OCI runtime tests: the `fnbox-runc-v1`/`fnbox-runc-v2` entry points (symlinks
//! to the built `fnbox`, as an installation makes them), a busybox root filesystem, bundles,
//! and OCI image tarballs built from that root filesystem.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use crate::common::{require_root, TempDir, FNBOX};

mod runtime;
#[allow(unused_imports)] // Not every test binary drives a runtime directly.
pub use runtime::{kind, Runtime};

/// `dir/fnbox-runc-v1` and `dir/fnbox-runc-v2`, symlinks to the built fnbox.
pub fn runtimes(dir: &Path) -> [PathBuf; 2] {
    ["v1", "v2"].map(|v| {
        let link = dir.join(format!("fnbox-runc-{v}"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(FNBOX, &link).unwrap();
        link
    })
}

/// The host's busybox: Debian's `busybox` (dynamically linked) or `busybox-static`.
fn host_busybox() -> PathBuf {
    ["/usr/bin/busybox", "/bin/busybox", "/usr/local/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox is missing: apt-get install busybox (or busybox-static; .ci/run installs one)")
}

/// The shared libraries (and the dynamic loader) `exe` needs; none for a static binary.
fn shared_libraries(exe: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(exe).stdin(Stdio::null()).output().expect("ldd (libc-bin) is missing");
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if !out.status.success() || all.contains("statically linked") {
        assert!(
            all.contains("not a dynamic executable") || all.contains("statically linked"),
            "ldd {} failed: {all}",
            exe.display()
        );
        return Vec::new();
    }
    all.split_whitespace().filter(|w| w.starts_with('/')).map(PathBuf::from).collect()
}

/// A root filesystem: busybox with every applet linked, and the shared libraries it needs
/// (Debian's `busybox` is dynamically linked, `busybox-static` needs none).
pub fn busybox_rootfs(root: &Path) {
    let busybox = &host_busybox();
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox, bin.join("busybox")).unwrap();
    let list = run_ok(Command::new(busybox).arg("--list"));
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    for lib in shared_libraries(busybox) {
        let to = root.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &to).unwrap();
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
}

/// Runs a command and insists it succeeded.
pub fn run_ok(c: &mut Command) -> Output {
    let out = c.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    assert!(out.status.success(), "{c:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A bundle in `dir`: a busybox rootfs and the config.json `fnbox-runc spec` writes, with
/// `args` as the process and no terminal.
pub fn bundle(dir: &Path, runtime: &Path, args: &[&str]) -> PathBuf {
    busybox_rootfs(&dir.join("rootfs"));
    run_ok(Command::new(runtime).args(["spec", "--bundle"]).arg(dir));
    edit_config(dir, |c| {
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = serde_json::json!(args);
    });
    dir.to_path_buf()
}

/// Reads, changes and writes back `dir/config.json`.
pub fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut c);
    std::fs::write(&p, c.to_string()).unwrap();
}

fn sha256(path: &Path) -> String {
    let out = run_ok(Command::new("sha256sum").arg(path));
    text(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// Adds `path` to the layout's blobs under its digest; returns (digest, size).
fn blob(layout: &Path, path: &Path) -> (String, u64) {
    let digest = sha256(path);
    let size = std::fs::metadata(path).unwrap().len();
    std::fs::rename(path, layout.join("blobs/sha256").join(&digest)).unwrap();
    (format!("sha256:{digest}"), size)
}

/// An OCI image archive (the tar `ctr image import` reads) of the directory `rootfs`, named
/// `name`, built without a registry: one uncompressed layer, its config, manifest and index.
pub fn image_tarball(rootfs: &Path, name: &str, work: &Path) -> PathBuf {
    image_tarball_with(rootfs, name, work, serde_json::json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]}))
}

/// `image_tarball` with `config` as the image's run configuration (Env, Entrypoint, Cmd, ...).
pub fn image_tarball_with(rootfs: &Path, name: &str, work: &Path, config: serde_json::Value) -> PathBuf {
    let layout = work.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = work.join("layer.tar");
    run_ok(Command::new("tar").arg("-C").arg(rootfs).arg("-cf").arg(&layer).arg("."));
    let (layer_digest, layer_size) = blob(&layout, &layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let put = |file: &str, v: &serde_json::Value| {
        let p = work.join(file);
        std::fs::write(&p, v.to_string()).unwrap();
        blob(&layout, &p)
    };
    let (config_digest, config_size) = put("config.json", &config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put("manifest.json", &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"io.containerd.image.name": name},
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let tarball = work.join("image.tar");
    run_ok(Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&tarball).arg("."));
    tarball
}

/// The cgroup directories at `rel` (below each hierarchy's root) that exist.
pub fn cgroups_at(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let roots = std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten().map(|e| e.path());
    std::iter::once(PathBuf::from("/sys/fs/cgroup")).chain(roots).map(|r| r.join(rel)).filter(|p| p.is_dir()).collect()
}

/// Mounts in this mount namespace whose line mentions `needle`.
pub fn mounts_mentioning(needle: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
}

/// The start of a private containerd's `config.toml`: root, state and sockets under `dir`
/// (`socket` the gRPC one), no debug or metrics listener, and the plugins this machine cannot
/// or need not run (other snapshotters, tracing) off, with `disabled` besides.
pub fn containerd_config(dir: &Path, socket: &Path, disabled: &[&str]) -> String {
    let mut off = vec![
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.internal.v1.tracing",
    ];
    off.extend_from_slice(disabled);
    format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = {off:?}\n\
         [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{s}.ttrpc\"\n[debug]\n  address = \"\"\n\
         [metrics]\n  address = \"\"\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n",
        d = dir.display(),
        s = socket.display(),
    )
}

/// Starts containerd on `dir/config.toml`, its output in `dir/containerd.log`.
pub fn spawn_containerd(dir: &Path) -> std::process::Child {
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("cannot start containerd")
}

/// Unmounts, lazily and deepest first, what is mounted below `root` (containerd's snapshots).
pub fn unmount_below(root: &Path) {
    let root = root.to_string_lossy().into_owned();
    let mut mounts: Vec<String> = mounts_mentioning(&root)
        .iter()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&root))
        .collect();
    mounts.reverse();
    for m in mounts {
        let _ = Command::new("umount").args(["-l", &m]).output();
    }
}
