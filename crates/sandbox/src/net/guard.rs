//! The one `nft` process of a sandbox (`nft -i`, a line per transaction): it loads the shared
//! table and the sandbox's chain, then the second layer of the sandbox's filter, a table only
//! it may change, which lives as long as the launcher keeps its input open; its last line
//! removes the sandbox's chain. One process instead of one per step: each `nft` costs a few
//! milliseconds of CPU to start, paid on every sandbox's start. See docs/architecture.md,
//! "Network".

use crate::error::{Context, Result};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `nft` may take to load a guard table before the sandbox's start fails.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The `nft -i` process owning a sandbox's guard table. Dropping this closes its input: `nft`
/// exits, and the kernel removes the table with it (also when the launcher is killed).
pub(super) struct Guard {
    child: Child,
    table: String,
    /// The process's pidfd (readable once it has exited), from [`Guard::ready`] on: the
    /// launcher ends the sandbox when it fires (see [`super::Link::watch_fd`]).
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl Guard {
    /// Starts `nft -i` on `line` (one transaction), then asks it to list a chain of `table`,
    /// whose answer says the line was run.
    pub(super) fn start(line: &str, table: &str) -> Result<Self> {
        let mut child = Command::new("nft")
            .arg("-i")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context(|| "cannot run nft (install the nftables package, or run with --network none)".into())?;
        let line = format!("{line}\nlist chain inet {table} input\n");
        // nft reads the whole line before it writes anything, so this cannot wait on a full
        // output pipe: at worst it waits for nft to read (a long `--allow-net` list).
        if let Some(stdin) = child.stdin.as_mut() {
            stdin.write_all(line.as_bytes()).context(|| "cannot write to nft".into())?;
        }
        // Never the OOM killer's pick: its death takes the guard table away from a running
        // sandbox, which the launcher then ends (`Link::watch_fd`): an outage for memory
        // pressure elsewhere. A few MB, bounded. Needs CAP_SYS_RESOURCE (as the Sentry's
        // does); without it the watch still fails closed.
        let _ = std::fs::write(format!("/proc/{}/oom_score_adj", child.id()), "-1000");
        Ok(Self { child, table: table.to_string(), pidfd: None })
    }

    /// Waits (bounded) until `nft` lists the table; its error otherwise.
    pub(super) fn ready(mut self) -> std::result::Result<Self, String> {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        let want = format!("table inet {} {{", self.table);
        let mut out = Vec::new();
        let mut err = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = self.child.kill();
                return Err(format!("no answer in {} s", LOAD_TIMEOUT.as_secs()));
            }
            let (Some(o), Some(e)) = (self.child.stdout.as_mut(), self.child.stderr.as_mut()) else {
                return Err("its output is gone".into());
            };
            let mut fds = [
                libc::pollfd { fd: o.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: e.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            ];
            if crate::sys::fd::poll(&mut fds, left.as_millis().min(i32::MAX as u128) as i32).is_err() {
                continue;
            }
            let mut buf = [0u8; 4096];
            if fds[1].revents != 0 {
                // nft reports an error on stderr and waits for more input: what it said is all.
                let k = e.read(&mut buf).unwrap_or(0);
                err.extend_from_slice(&buf[..k]);
                std::thread::sleep(Duration::from_millis(20));
                let _ = self.child.kill();
                let _ = self.child.wait();
                let text = String::from_utf8_lossy(&err).into_owned();
                return Err(if text.trim().is_empty() { "nft exited".into() } else { text });
            }
            if fds[0].revents != 0 {
                let k = o.read(&mut buf).unwrap_or(0);
                if k == 0 {
                    let _ = self.child.wait();
                    return Err("nft exited".into());
                }
                out.extend_from_slice(&buf[..k.min(4096 - out.len().min(4096))]);
                if String::from_utf8_lossy(&out).contains(&want) {
                    // The rest of the listing is a few lines: it fits the pipe unread.
                    let pidfd = crate::sys::process::pidfd_open(self.child.id() as libc::pid_t)
                        .map_err(|e| format!("pidfd_open of nft: {e}"))?;
                    self.pidfd = Some(pidfd);
                    return Ok(self);
                }
            }
        }
    }

    /// A descriptor readable once the `nft` process has exited (after [`Guard::ready`]).
    pub(super) fn exited_fd(&self) -> Option<std::os::fd::RawFd> {
        self.pidfd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)
    }

    /// The `nft` process's pid (tests stall it to play a busy host; a background start sets
    /// its nice value back once the sandbox is made).
    pub(super) fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Runs `line` last, then ends `nft` (and the table with it). With `wait`, returns once
    /// `nft` has exited (at most [`LOAD_TIMEOUT`], then it is killed), so that the line is done;
    /// false when it could not be given to `nft`.
    pub(super) fn end_with(mut self, line: &str, wait: bool) -> bool {
        let given = self.child.stdin.take().is_some_and(|mut i| i.write_all(format!("{line}\n").as_bytes()).is_ok());
        if wait {
            let deadline = Instant::now() + LOAD_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) {
                if Instant::now() >= deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        given
    }
}

impl Drop for Guard {
    #[allow(clippy::zombie_processes)]
    fn drop(&mut self) {
        // Closing its input ends `nft`, and the table with it; the launcher is about to exit,
        // which hands the process to init.
        drop(self.child.stdin.take());
    }
}
