//! Memory semantics users rely on (issue 4): in v2, /tmp and /dev live in memory and count
//! toward the limit; the rest of the root is a capped disk layer; an OOM ends the whole
//! sandbox and is reported; forks share memory copy-on-write in both sandboxes.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

fn memfree_kb(line: &str) -> u64 {
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn v2_in_memory_files_count_and_are_given_back() {
    let s = Scope::new("tmpfs-count");
    for dir in ["/tmp", "/dev/shm"] {
        let script = format!(
            "grep MemFree /proc/meminfo; dd if=/dev/zero of={dir}/f bs=1M count=100 status=none; grep MemFree /proc/meminfo; rm {dir}/f; grep MemFree /proc/meminfo"
        );
        let out = ok(&s.sh("v2", &["--memory", "512M"], &script));
        let v: Vec<u64> = out.lines().map(memfree_kb).collect();
        assert!(v[0] - v[1] >= 95 * 1024, "writing 100 MiB to {dir} must cost ~100 MiB of the limit: {out}");
        assert!(v[2] + 5 * 1024 >= v[0], "deleting the file gives the memory back: {out}");
    }
}

#[test]
fn v2_filling_tmp_is_an_oom_of_that_sandbox_only() {
    let s = Scope::new("tmpfs-oom");
    let marker = unique("bystander");
    // Another sandbox runs throughout and must be untouched.
    let bystander = s
        .cmd("v2", &["--memory", "128M"], &["sh", "-c", &format!("sleep 3; echo alive # {marker}")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = s.sh("v2", &["--memory", "128M"], "dd if=/dev/zero of=/tmp/big bs=1M count=300 status=none; echo survived");
    assert_eq!(code(&o), 137, "{}", stderr(&o));
    assert!(stderr(&o).contains("fnbox: killed: out of memory (limit 128 MiB)"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("survived"), "the whole sandbox ends, not just dd");
    let b = bystander.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&b.stdout), "alive\n");
    assert!(eventually(Duration::from_secs(5), || s.leftover_cgroups().is_empty()), "{:?}", s.leftover_cgroups());
}

#[test]
fn the_disk_path_is_not_memory_and_is_capped() {
    for kind in ["v1", "v2"] {
        let s = Scope::new("diskpath");
        // 200 MiB outside /tmp and /dev under a 128 MiB limit: fine, it is disk.
        let o = s.sh(
            kind,
            &["--memory", "128M"],
            "dd if=/dev/zero of=/var/tmp/f bs=1M count=200 status=none && wc -c < /var/tmp/f",
        );
        // The size written, not `du`'s blocks: ext4 may add a block of extent tree (201 MiB).
        assert_eq!(ok(&o).trim(), "209715200", "{kind}");
        let o = s.sh(kind, &["--disk", "64M"], "dd if=/dev/zero of=/home/f bs=1M count=100 2>&1; echo rc=$?");
        assert!(stdout(&o).contains("No space left on device"), "{kind}: {}", stdout(&o));
    }
}

#[test]
fn v1_dev_is_capped_and_tmp_is_disk() {
    let s = Scope::new("v1-dev");
    let o = s.sh("v1", &[], "dd if=/dev/zero of=/dev/shm/x bs=1M count=70 2>&1 | grep -c 'No space'");
    assert_eq!(ok(&o), "1\n");
    let o = s.sh("v1", &["--memory", "128M"], "dd if=/dev/zero of=/tmp/x bs=1M count=200 status=none && echo ok");
    assert_eq!(ok(&o), "ok\n");
}

#[test]
fn stats_split_process_memory_and_in_memory_files() {
    let s = Scope::new("stats");
    let o =
        s.sh("v2", &["--memory", "512M", "--stats"], "dd if=/dev/zero of=/tmp/f bs=1M count=64 status=none; sleep 0.1");
    let line = stderr(&o).lines().find(|l| l.starts_with("fnbox: stats:")).map(String::from).unwrap_or_default();
    let files: f64 = line
        .split("in-memory files ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!((60.0..80.0).contains(&files), "{line}");
}

/// Peak memory (MiB) of a sandbox running cow.py with `n` workers.
fn cow_peak(s: &Scope, kind: &str, n: usize) -> f64 {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/memory");
    let bind = format!("{}:/t:ro", dir.display());
    let o = s.run(kind, &["--memory", "1024M", "--stats", "--bind", &bind], &["python3", "/t/cow.py", &n.to_string()]);
    ok(&o);
    let line = stderr(&o).lines().find(|l| l.starts_with("fnbox: stats:")).map(String::from).unwrap_or_default();
    line.split("peak memory ").nth(1).and_then(|r| r.split(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(f64::MAX)
}

#[test]
fn forked_readers_share_memory_copy_on_write() {
    for kind in ["v1", "v2"] {
        let s = Scope::new("cow");
        let alone = cow_peak(&s, kind, 0);
        let eight = cow_peak(&s, kind, 8);
        assert!(alone > 200.0, "{kind}: the parent alone holds 200 MiB, measured {alone}");
        assert!(
            eight < 2.0 * alone,
            "{kind}: 8 forked readers took {eight} MiB against {alone} MiB for the parent alone"
        );
    }
}
