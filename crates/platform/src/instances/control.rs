//! The control channel of a running sandbox (`fnbox run --control-fd`): the requests and
//! replies of [`fnbox_sandbox::supervision`], one reply line each. Attaching the function's code into a pre-warmed sandbox goes through it,
//! and so does a kill. Closing it stops the sandbox: whoever holds it owns the sandbox.

use super::{Ended, InstanceControl};
use fnbox_sandbox::supervision::{self as wire, AttachMode, Reply, Request};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

/// How long a stopped sandbox may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a killed sandbox may take to report its end before its launcher is killed too.
const KILL_GRACE: Duration = Duration::from_secs(3);

pub struct SandboxControl {
    write: Arc<OwnedWriteHalf>,
    read: tokio::sync::Mutex<BufReader<OwnedReadHalf>>,
    launcher_pid: i32,
    ended: watch::Receiver<Option<Ended>>,
}

/// The kill request's line.
fn kill_line() -> String {
    wire::REQUEST.encode_line(&Request::Kill {})
}

/// Writes all of `line` on the socket (small lines: a write or two).
async fn write_all(w: &OwnedWriteHalf, mut line: &[u8]) -> std::io::Result<()> {
    while !line.is_empty() {
        w.writable().await?;
        match w.try_write(line) {
            Ok(n) => line = &line[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl SandboxControl {
    pub(super) fn new(
        sock: UnixStream,
        launcher_pid: i32,
        ended: watch::Receiver<Option<Ended>>,
    ) -> std::io::Result<Self> {
        sock.set_nonblocking(true)?;
        let (read, write) = tokio::net::UnixStream::from_std(sock)?.into_split();
        Ok(Self { write: Arc::new(write), read: tokio::sync::Mutex::new(BufReader::new(read)), launcher_pid, ended })
    }

    /// Sends requests in one write and waits for their replies: `Err` carries the first
    /// reason the launcher gave.
    async fn request(&self, reqs: &[Request]) -> Result<(), String> {
        let mut read = self.read.lock().await;
        let gone = |e: std::io::Error| format!("its launcher does not answer ({e})");
        let lines: String = reqs.iter().map(|r| wire::REQUEST.encode_line(r)).collect();
        write_all(&self.write, lines.as_bytes()).await.map_err(gone)?;
        let mut first = Ok(());
        for req in reqs {
            let mut reply = String::new();
            if read.read_line(&mut reply).await.map_err(gone)? == 0 {
                return Err("its launcher has ended".into());
            }
            let reply: Reply = wire::REPLY.decode(reply.as_bytes()).map_err(|e| e.to_string())?;
            if reply.reply != req.op() {
                return Err(format!("its launcher answered {:?} to a {:?} request", reply.reply, req.op()));
            }
            if let (Err(e), Ok(())) = (reply.into_result(), &first) {
                first = Err(e);
            }
        }
        first
    }

    /// Makes `source` (a host directory) visible at `target` in the sandbox, writable
    /// copy-on-write: writes go to the sandbox's own layer, never into `source`.
    /// With `throttle`, the start-up CPU boost ends in the same exchange ([`Self::throttle`]).
    pub async fn attach(&self, source: &Path, target: &str, throttle: bool) -> Result<(), String> {
        let source = source.to_str().ok_or_else(|| format!("{} is not UTF-8", source.display()))?;
        let attach = Request::Attach { source: source.into(), target: target.into(), mode: AttachMode::Cow };
        match throttle {
            true => self.request(&[attach, Request::Throttle {}]).await,
            false => self.request(&[attach]).await,
        }
    }

    /// Ends the sandbox's start-up CPU boost: its tier's quota applies once this returns `Ok`.
    pub async fn throttle(&self) -> Result<(), String> {
        self.request(&[Request::Throttle {}]).await
    }

    fn signal(&self, sig: i32) {
        signal_launcher(self.launcher_pid, &self.ended, sig);
    }

    /// If the sandbox has not ended after `after`: asks for a kill, then kills its launcher.
    fn kill_later(&self, after: Duration) {
        let (pid, ended, write) = (self.launcher_pid, self.ended.clone(), self.write.clone());
        tokio::spawn(async move {
            let mut rx = ended.clone();
            if tokio::time::timeout(after, rx.wait_for(|e| e.is_some())).await.is_ok() {
                return;
            }
            let _ = write.try_write(kill_line().as_bytes());
            if tokio::time::timeout(KILL_GRACE, rx.wait_for(|e| e.is_some())).await.is_err() {
                signal_launcher(pid, &ended, libc::SIGKILL);
            }
        });
    }
}

fn signal_launcher(pid: i32, ended: &watch::Receiver<Option<Ended>>, sig: i32) {
    // The launcher is our child and not yet reaped while `ended` is empty, so its pid cannot
    // have been reused.
    if pid > 0 && ended.borrow().is_none() {
        let _ = fnbox_sandbox::sys::process::kill(pid, sig);
    }
}

impl InstanceControl for SandboxControl {
    fn kill(&self) {
        // The launcher kills the sandbox, removes its cgroup and reports "stopped".
        if self.write.try_write(kill_line().as_bytes()).is_err() {
            self.signal(libc::SIGKILL);
        }
        self.kill_later(KILL_GRACE);
    }

    fn stop(&self) {
        // The launcher passes SIGTERM on to the program.
        self.signal(libc::SIGTERM);
        self.kill_later(STOP_GRACE);
    }
}
