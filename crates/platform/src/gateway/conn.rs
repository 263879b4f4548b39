//! What one client may hold: connections are capped, every wait on a client is bounded, and a
//! full descriptor table slows the accept loop down instead of spinning it.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Limits on clients, from `fnbox serve`'s flags.
#[derive(Clone, Debug)]
pub struct ClientLimits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A request's headers must arrive within this of the first byte or of the previous
    /// answer (an idle connection is closed after it).
    pub header_timeout: Duration,
    /// A request's body must arrive within this; a client that takes none of an answer for
    /// this long is dropped.
    pub body_timeout: Duration,
    /// Bytes of function-call bodies held at once.
    pub body_memory: usize,
    /// Connections one client (see [`super::body::client_key`]) may hold at once; more are
    /// answered 503 and closed.
    pub max_connections_per_client: usize,
    /// Bytes of function-call bodies one client may hold at once (a share of `body_memory`).
    pub client_body_memory: usize,
    /// Bytes of answers held in memory for clients at once (see relay.rs).
    pub answer_memory: usize,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
pub const DEFAULT_BODY_TIMEOUT_S: u64 = 30;
pub const DEFAULT_BODY_MEMORY_MIB: usize = 256;
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;

/// A client's share of the body budget when the operator gives none: an eighth of it, but
/// room for at least one whole function-call body.
pub fn default_client_body_memory(body_memory: usize) -> usize {
    (body_memory / 8).max(crate::function::PAYLOAD_MAX).min(body_memory)
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_S),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_S),
            body_memory: DEFAULT_BODY_MEMORY_MIB << 20,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            client_body_memory: default_client_body_memory(DEFAULT_BODY_MEMORY_MIB << 20),
            answer_memory: super::relay::DEFAULT_ANSWER_MEMORY_MIB << 20,
        }
    }
}

/// Raises the soft limit on open files to the hard one (any process may), and lowers
/// `max_connections` to half of it if it is lower still: the other half is for instances
/// (their pipes and sockets), the registry and the code store. Returns a warning to print
/// when the cap was lowered.
pub fn fit_to_open_file_limit(limits: &mut ClientLimits) -> Option<String> {
    let soft = fnbox_sandbox::sys::raise_open_file_limit();
    let room = usize::try_from(soft / 2).unwrap_or(usize::MAX);
    if limits.max_connections <= room {
        return None;
    }
    let asked = limits.max_connections;
    limits.max_connections = room.max(1);
    Some(format!(
        "--max-connections {asked} lowered to {}: the open-file limit is {} (raise it: ulimit -n, or LimitNOFILE= in a systemd unit)",
        limits.max_connections, soft
    ))
}

/// Connections per client, so that one client cannot take all of `--max-connections`.
#[derive(Clone, Default)]
pub struct PerClient {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection counted for its client; uncounted when dropped.
pub struct ClientSlot {
    counts: PerClient,
    key: IpAddr,
}

impl PerClient {
    /// Counts a connection from `peer`, unless its client already holds `max`.
    pub fn admit(&self, peer: IpAddr, max: usize) -> Option<ClientSlot> {
        let key = super::body::client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot { counts: self.clone(), key })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What a client past its connections gets before the close (written once, never waited on).
pub const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 109\r\n\r\nthis client already holds its connections (fnbox serve --max-connections-per-client): close some, then retry\n";

/// `accept()` failed for want of a resource (descriptors, memory): retrying at once would
/// fail again, spinning; wait for connections or instances to close some.
pub fn out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// The pause after `accept()` ran out of resources `streak` times in a row: 10 ms doubling
/// to 1 s.
pub fn accept_backoff(streak: u32) -> Duration {
    Duration::from_millis(10u64 << streak.min(7)).min(Duration::from_secs(1))
}

/// A connection whose writes fail once the client has taken nothing for `stall`: a client
/// that never reads its answers would otherwise hold its connection, and the answer, forever.
pub struct StallGuard<T> {
    inner: T,
    stall: Duration,
    /// Armed while a write waits for the client.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T, stall: Duration) -> Self {
        Self { inner, stall, timer: None }
    }

    fn watch<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            self.timer = None;
            return r;
        }
        let stall = self.stall;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took nothing of its answer for {} s", stall.as_secs()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// The kernel memory one accepted connection may queue for its client (`SO_SNDBUF`; Linux
/// doubles it for its bookkeeping). Without it, a client that does not read keeps up to
/// `tcp_wmem`'s maximum (4 MiB) of unswappable kernel memory queued: a window of its answer,
/// no more, holds only when the kernel's share is bounded too.
pub const SEND_BUFFER: libc::c_int = 128 << 10;

/// Sets [`SEND_BUFFER`] on an accepted socket.
pub fn modest_send_buffer(stream: &tokio::net::TcpStream) {
    let _ = fnbox_sandbox::sys::set_send_buffer(stream, SEND_BUFFER as usize);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn backoff_grows_to_a_second() {
        assert_eq!(accept_backoff(0), Duration::from_millis(10));
        assert_eq!(accept_backoff(3), Duration::from_millis(80));
        assert_eq!(accept_backoff(40), Duration::from_secs(1));
        assert!(out_of_resources(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(!out_of_resources(&io::Error::from_raw_os_error(libc::ECONNABORTED)));
    }

    #[test]
    fn a_client_holds_its_connections_only() {
        let c = PerClient::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..3).map(|_| c.admit(a, 3).expect("under the cap")).collect();
        assert!(c.admit(a, 3).is_none());
        assert!(c.admit("10.0.0.2".parse().unwrap(), 3).is_some());
        drop(slots);
        assert!(c.open.lock().unwrap().is_empty());
        let body = TOO_MANY_CONNECTIONS.split(|&b| b == b'\n').next_back().unwrap();
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap();
        let (_, body_text) = text.split_once("\r\n\r\n").unwrap();
        assert!(body.is_empty());
        assert!(text.contains(&format!("Content-Length: {}\r\n", body_text.len())), "{text}");
    }

    #[tokio::test]
    async fn a_writer_to_a_client_that_reads_nothing_fails() {
        let (a, _b) = tokio::io::duplex(64);
        let mut g = StallGuard::new(a, Duration::from_millis(50));
        g.write_all(&[0; 64]).await.unwrap();
        let err = g.write_all(&[0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
