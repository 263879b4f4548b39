//! `install.sh`: what a real installation puts on the host (the binaries, the runc entry
//! points, the systemd unit), and that `install.sh uninstall --purge` takes all of it away
//! again, loop devices and state included. Installs into a temporary prefix.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../install.sh")
}

#[test]
fn install_then_uninstall_purge_leaves_nothing() {
    let t = TempDir::new("install");
    let top = t.0.as_path();
    let scope = Scope::new("install");
    let env = |c: &mut Command| {
        c.env("PREFIX", top.join("usr"))
            .env("SYSTEMD_DIR", top.join("systemd"))
            .env("FNBOX_STATE_DIR", top.join("state"))
            .env("FNBOX_RUN_DIR", top.join("run"))
            .env("FNBOX_BIN", FNBOX);
    };
    let mut c = Command::new(script());
    env(&mut c);
    let out = c.output().unwrap();
    let said = ok(&out);
    let bin = top.join("usr/bin");
    assert!(said.contains("installed"), "{said}");
    let version = ok(&Command::new(bin.join("fnbox")).arg("--version").output().unwrap());
    assert!(version.starts_with("fnbox "), "{version}");
    for v in ["v1", "v2"] {
        assert_eq!(std::fs::read_link(bin.join(format!("fnbox-runc-{v}"))).unwrap(), Path::new("fnbox"));
    }
    let unit = std::fs::read_to_string(top.join("systemd/fnbox.service")).unwrap();
    let exec = format!("ExecStart={}/fnbox serve", bin.display());
    assert!(unit.contains(&exec), "{unit}");
    assert!(unit.contains("Restart=on-failure") && unit.contains("WantedBy=multi-user.target"), "{unit}");
    assert!(unit.contains(&format!("--data-dir {}/serve", top.join("state").display())), "{unit}");
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let v = Command::new("systemd-analyze").arg("verify").arg(top.join("systemd/fnbox.service")).output().unwrap();
        assert!(v.status.success(), "systemd-analyze verify: {}", stderr(&v));
    }

    // The installed fnbox runs a sandbox, which leaves state and a spare layer (a loop device).
    let mut run = Command::new(bin.join("fnbox"));
    run.args(["run", "--cgroup-parent", &scope.parent, "--", "true"])
        .env("FNBOX_STATE_DIR", top.join("state"))
        .env("FNBOX_RUN_DIR", top.join("run"));
    ok(&run.output().unwrap());
    assert!(top.join("state/disk-templates").is_dir());
    assert!(eventually(std::time::Duration::from_secs(20), || !loops_under(top).is_empty()), "no spare was made");

    let mut c = Command::new(script());
    env(&mut c);
    let said = ok(&c.args(["uninstall", "--purge"]).output().unwrap());
    assert!(said.contains("removed fnbox's state"), "{said}");
    for gone in
        ["usr/bin/fnbox", "usr/bin/fnbox-runc-v1", "usr/bin/fnbox-runc-v2", "systemd/fnbox.service", "state", "run"]
    {
        assert!(std::fs::symlink_metadata(top.join(gone)).is_err(), "{gone} is still there");
    }
    assert_eq!(loops_under(top), Vec::<String>::new(), "loop devices left behind");
}

#[test]
fn install_refuses_unknown_commands_with_the_usage() {
    let out = Command::new(script()).arg("upgrade").output().unwrap();
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("use install (the default), uninstall [--purge] or --help"), "{}", stderr(&out));
}
