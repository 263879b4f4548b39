//! The socket to a runtime's zygote (the sandbox program's stdin): its answers read as the
//! typed messages of [`super::protocol`], one bounded line at a time, and the bind request
//! written. A leaf: the launcher makes the socket (`Zygote::new`) and knows nothing else of
//! zygotes.
//!
//! Everything read here is hostile. Before the bind request only fnbox's wrapper runs in the
//! zygote (unless the function's environment shapes the interpreter's start, when its code
//! may run from the first instruction), but from the request on the function's own code does,
//! and it can write on the socket: an answer may be forged, cut, too long or never come. Each of
//! those is an error that says what came (the caller then explains the failure by how the
//! sandbox ended, or stops it); none is read as a default, and none panics. A forged `bound` or
//! `checked` only misleads the platform about the forger's own instance or check (see
//! [`Zygote::check`]).

use super::protocol::{Answer, Request, ANSWER, REQUEST};
use std::os::unix::net::UnixStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest line read from a zygote: its answers are small (a traceback is cut by the
/// wrappers well below this), and past the bind request the user's code runs in it.
pub const LINE_MAX: usize = 64 << 10;
/// Bytes read at once: the buffer never holds more than `LINE_MAX + CHUNK`.
const CHUNK: usize = 4096;

pub struct Zygote {
    stream: tokio::net::UnixStream,
    buf: Vec<u8>,
}

/// Times the zygote reported for a bind (CLOCK_MONOTONIC seconds: hostile numbers, see
/// `backend.rs`'s `since`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    pub received: f64,
    /// When the instance's own process began: the bind (the zygote becomes the instance).
    pub forked: f64,
    pub imported: f64,
}

#[derive(Debug, PartialEq)]
pub enum BindError {
    /// The handler cannot be loaded: the user's to fix.
    Handler { reason: String, detail: String },
    /// The zygote went away or answered something else than the protocol's next answer (see
    /// how its sandbox ended).
    Failed(String),
}

impl Zygote {
    /// The platform's end of the socket pair whose other end is the zygote's stdin.
    pub(crate) fn new(sock: UnixStream) -> std::io::Result<Self> {
        sock.set_nonblocking(true)?;
        Ok(Self { stream: tokio::net::UnixStream::from_std(sock)?, buf: Vec::new() })
    }

    /// The next line, read as an answer.
    async fn answer(&mut self) -> Result<Answer, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                if i > LINE_MAX {
                    return Err(too_long());
                }
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return ANSWER.decode(&line).map_err(|e| e.to_string());
            }
            if self.buf.len() > LINE_MAX {
                return Err(too_long());
            }
            let mut chunk = [0u8; CHUNK];
            match self.stream.read(&mut chunk).await {
                Ok(0) if self.buf.is_empty() => return Err("the runtime's zygote closed its socket".into()),
                Ok(0) => {
                    return Err(format!(
                        "the runtime's zygote closed its socket in the middle of a line: {}",
                        quote(&self.buf)
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("cannot read from the runtime's zygote: {e}")),
            }
        }
    }

    /// Waits until the runtime is up; returns when its interpreter started.
    pub async fn ready(&mut self) -> Result<f64, String> {
        match self.answer().await? {
            Answer::Ready { started } => Ok(started),
            other => Err(unexpected(&other, "ready")),
        }
    }

    /// Hands the function to the zygote; returns once it serves. The socket is closed after:
    /// the instance reads end of file on stdin.
    pub async fn serve(self, handler: &str, env: &[(String, String)]) -> Result<Bound, BindError> {
        match self.bind(handler, env, false).await? {
            Answer::Bound { received, forked, imported } => Ok(Bound { received, forked, imported }),
            other => Err(BindError::Failed(unexpected(&other, "bound"))),
        }
    }

    /// Has the zygote load the handler, answer and exit: the deploy-time check.
    ///
    /// The verdict is the `checked` answer alone; the zygote's exit status is not awaited. The
    /// handler's module runs before the answer and can forge it (write `checked` on its stdin,
    /// then fail), but a check only tells the function's owner early that their handler does
    /// not load: a forged verdict misleads no one but its author, whose instances then fail to
    /// start as the check would have said (an instance's bind is a separate exchange). Waiting
    /// for the exit would not stop a forger (its code can exit 0 as well) and would add the
    /// sandbox's teardown to every deploy.
    pub async fn check(self, handler: &str, env: &[(String, String)]) -> Result<(), BindError> {
        match self.bind(handler, env, true).await? {
            Answer::Checked {} => Ok(()),
            other => Err(BindError::Failed(unexpected(&other, "checked"))),
        }
    }

    /// Writes the bind request and reads the answer; a handler that cannot load is an error.
    async fn bind(mut self, handler: &str, env: &[(String, String)], check: bool) -> Result<Answer, BindError> {
        // The same rule as the env file's: JSON would carry anything, the interpreter not.
        if let Some(e) = env.iter().find_map(|(k, v)| fnbox_sandbox::spec::check_env(k, v).err()) {
            return Err(BindError::Failed(e.to_string()));
        }
        let request = Request::Bind {
            handler: handler.to_string(),
            env: env.iter().cloned().collect(),
            workdir: "/code".into(),
            check,
        };
        self.stream
            .write_all(REQUEST.encode_line(&request).as_bytes())
            .await
            .map_err(|e| BindError::Failed(format!("cannot write to the runtime's zygote: {e}")))?;
        match self.answer().await.map_err(BindError::Failed)? {
            Answer::Error { reason, detail } => Err(BindError::Handler { reason, detail }),
            answer => Ok(answer),
        }
    }
}

fn too_long() -> String {
    format!("the runtime's zygote sent a line over {} KiB, longer than any answer", LINE_MAX >> 10)
}

/// An answer out of turn.
fn unexpected(got: &Answer, expected: &str) -> String {
    format!("the runtime's zygote answered `{}` where `{expected}` was expected", got.name())
}

/// The start of a cut line, for an error.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    if bytes.len() > 300 {
        text + "..."
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    /// A zygote's channel and the zygote's own end of the socket.
    fn pair() -> (Zygote, tokio::net::UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        (Zygote::new(ours).unwrap(), tokio::net::UnixStream::from_std(theirs).unwrap())
    }

    const READY: &[u8] = b"{\"v\":1,\"event\":\"ready\",\"started\":7.5}\n";

    /// The zygote's side of a bind: reads the request, writes `answer`, returns the request.
    async fn answer_with(theirs: tokio::net::UnixStream, answer: &'static [u8]) -> serde_json::Value {
        let mut r = tokio::io::BufReader::new(theirs);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        r.get_mut().write_all(answer).await.unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[tokio::test]
    async fn a_bind_goes_through_in_the_protocols_order() {
        let (mut z, mut theirs) = pair();
        theirs.write_all(READY).await.unwrap();
        assert_eq!(z.ready().await, Ok(7.5));
        let env = [("A".to_string(), "1".to_string()), ("A".to_string(), "2".to_string())];
        let zygote = tokio::spawn(answer_with(
            theirs,
            b"{\"v\":1,\"event\":\"bound\",\"received\":1,\"forked\":2,\"imported\":3}\n",
        ));
        let bound = z.serve("main.handle", &env).await;
        assert_eq!(bound, Ok(Bound { received: 1.0, forked: 2.0, imported: 3.0 }));
        let req = zygote.await.unwrap();
        assert_eq!(req["v"], 1);
        assert_eq!(req["op"], "bind");
        assert_eq!(req["check"], false);
        assert_eq!(req["env"], serde_json::json!({"A": "2"}), "the last value of a variable wins, as in the env file");
    }

    // Catches: a forged or broken answer read as a default (a missing time as none, an answer
    // to the wrong request as success), a panic on hostile input, and a buffer that grows with
    // what the zygote writes.
    #[tokio::test]
    async fn a_forged_or_broken_answer_is_an_error_that_says_what_came() {
        let cases: [(&'static [u8], bool, &str); 7] = [
            (b"{\"bound\": true}\n", false, "no protocol version"),
            (b"{\"v\":1,\"event\":\"checked\"}\n", false, "`checked` where `bound` was expected"),
            (
                b"{\"v\":1,\"event\":\"bound\",\"received\":1,\"forked\":2,\"imported\":3}\n",
                true,
                "`bound` where `checked`",
            ),
            (b"{\"v\":1,\"event\":\"ready\",\"started\":1}\n", false, "`ready` where `bound`"),
            (b"{\"v\":1,\"event\":\"bound\",\"received\":1e999,\"forked\":2,\"imported\":3}\n", false, "cannot read"),
            (b"{\"v\":1,\"event\":\"bound\",\"received\":1,\"for", false, "closed its socket in the middle of a line"),
            (b"", false, "closed its socket"),
        ];
        for (answer, check, why) in cases {
            let (z, theirs) = pair();
            let zygote = tokio::spawn(answer_with(theirs, answer));
            let got = match check {
                true => z.check("h.f", &[]).await,
                false => z.serve("h.f", &[]).await.map(|_| ()),
            };
            zygote.await.unwrap();
            match got {
                Err(BindError::Failed(e)) => assert!(e.contains(why), "{}: {e}", String::from_utf8_lossy(answer)),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(answer)),
            }
        }
        // A line that never ends: refused once past the bound, however much more comes.
        let (mut z, mut theirs) = pair();
        let flood = tokio::spawn(async move {
            let chunk = vec![b'x'; 1 << 16];
            while theirs.write_all(&chunk).await.is_ok() {}
        });
        let e = z.ready().await.unwrap_err();
        assert!(e.contains("over 64 KiB"), "{e}");
        assert!(z.buf.len() <= LINE_MAX + CHUNK);
        drop(z);
        flood.await.unwrap();
    }

    #[tokio::test]
    async fn a_handler_that_cannot_load_is_the_users_error() {
        let (z, theirs) = pair();
        let zygote = tokio::spawn(answer_with(
            theirs,
            b"{\"v\":1,\"event\":\"error\",\"reason\":\"SyntaxError: x\",\"detail\":\"tb\"}\n",
        ));
        assert_eq!(
            z.check("h.f", &[]).await,
            Err(BindError::Handler { reason: "SyntaxError: x".into(), detail: "tb".into() })
        );
        assert_eq!(zygote.await.unwrap()["check"], true);
        // A variable the interpreter could not take is refused before anything is written.
        let (z, _theirs) = pair();
        let bad = [("A=B".to_string(), "1".to_string())];
        assert!(matches!(z.serve("h.f", &bad).await, Err(BindError::Failed(_))));
    }
}
