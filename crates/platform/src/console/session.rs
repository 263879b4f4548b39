//! Console sessions: the admin token, checked once at login, is exchanged for a random
//! session id in an `HttpOnly; SameSite=Strict` cookie; each session has its own CSRF token,
//! which every state-changing form carries and which is compared in constant time. Sessions
//! live in the server's memory: a restart logs everyone out. The cookie is scoped to
//! `/console` and never reaches a function (see docs/architecture.md, "Console").

use crate::auth::random_hex;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "fnbox_session";
/// A session ends this long after login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; past it, the oldest goes.
const MAX_SESSIONS: usize = 256;

/// Where the browser sends the cookie: the console's pages only, never `/fn/`.
pub const COOKIE_PATH: &str = "/console";

#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    created: Instant,
    /// Closed when the session ends (logout, or pushed out by newer ones).
    ended: tokio::sync::watch::Receiver<()>,
}

impl Session {
    /// Resolves when the session ends: logged out, pushed out, or past its lifetime. What
    /// lives on with a session (a live log stream) stops then.
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.ended.clone();
        let expiry = tokio::time::Instant::from_std(self.created + LIFETIME);
        async move {
            tokio::select! {
                _ = async { while rx.changed().await.is_ok() {} } => {}
                _ = tokio::time::sleep_until(expiry) => {}
            }
        }
    }
}

struct Entry {
    session: Session,
    /// Dropped with the entry: that closes [`Session::ended`].
    _alive: tokio::sync::watch::Sender<()>,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Entry>>,
}

/// Compares without an early exit.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// A new session: (id, the `Set-Cookie` value).
    pub fn create(&self) -> (String, String) {
        let id = random_hex(32);
        let mut m = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, e| e.session.created.elapsed() < LIFETIME);
        if m.len() >= MAX_SESSIONS {
            if let Some(oldest) = m.iter().min_by_key(|(_, e)| e.session.created).map(|(k, _)| k.clone()) {
                m.remove(&oldest);
            }
        }
        let (alive, ended) = tokio::sync::watch::channel(());
        let session = Session { csrf: random_hex(32), created: Instant::now(), ended };
        m.insert(id.clone(), Entry { session, _alive: alive });
        let cookie =
            format!("{COOKIE}={id}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs());
        (id, cookie)
    }

    /// The live session a `Cookie` header names. Every `fnbox_session` value is tried: a
    /// cookie planted with a more specific path comes first and must not hide the real one.
    pub fn find(&self, cookie_header: Option<&str>) -> Option<(String, Session)> {
        let m = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        named(cookie_header?, COOKIE).find_map(|id| {
            // Looked up by its hash map, then compared in full without an early exit.
            let (k, e) = m.get_key_value(id)?;
            (same(k, id) && e.session.created.elapsed() < LIFETIME).then(|| (k.clone(), e.session.clone()))
        })
    }

    pub fn end(&self, id: &str) {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// The values of the cookies called `name` in a `Cookie` header.
fn named<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .filter(move |(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
}

/// A `Cookie` header without the console's cookie (what a function receives); `None` when
/// nothing else is left.
pub fn without_console_cookie(header: &str) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.split_once('=').map_or(c.trim(), |(k, _)| k.trim()) != COOKIE)
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Does this `Set-Cookie` value (from a function) name the console's cookie?
pub fn sets_console_cookie(set_cookie: &[u8]) -> bool {
    let s = String::from_utf8_lossy(set_cookie);
    let pair = s.split(';').next().unwrap_or("");
    pair.split_once('=').map_or(pair, |(k, _)| k).trim() == COOKIE
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_finds_its_session_only() {
        let s = Sessions::default();
        let (id, cookie) = s.create();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let found = s.find(Some(&format!("a=b; {COOKIE}={id}"))).unwrap();
        assert_eq!(found.0, id);
        assert_eq!(found.1.csrf.len(), 64);
        assert!(s.find(Some(&format!("{COOKIE}={}", &id[..10]))).is_none());
        assert!(s.find(Some(&format!("{COOKIE}=x{id}"))).is_none());
        assert!(s.find(None).is_none());
        s.end(&id);
        assert!(s.find(Some(&format!("{COOKIE}={id}"))).is_none());
    }

    #[test]
    fn cookie_is_the_consoles_only_and_cannot_be_shadowed() {
        let s = Sessions::default();
        let (id, cookie) = s.create();
        assert!(cookie.split(';').any(|a| a.trim() == "Path=/console"), "{cookie}");
        // A planted cookie with a more specific path is sent first: the real one still counts.
        let both = format!("{COOKIE}=bogus; other=1; {COOKIE}={id}");
        assert_eq!(s.find(Some(&both)).map(|f| f.0), Some(id.clone()));
        assert_eq!(without_console_cookie(&both).as_deref(), Some("other=1"));
        assert_eq!(without_console_cookie(&format!("{COOKIE}={id}")), None);
        assert!(sets_console_cookie(format!(" {COOKIE} =x; Path=/console").as_bytes()));
        assert!(!sets_console_cookie(b"fnbox_session_other=x"));
    }

    #[tokio::test]
    async fn a_session_ending_is_heard() {
        let s = Sessions::default();
        let (id, _) = s.create();
        let (_, session) = s.find(Some(&format!("{COOKIE}={id}"))).unwrap();
        let ended = session.ended();
        s.end(&id);
        tokio::time::timeout(std::time::Duration::from_secs(5), ended).await.expect("the end of the session is heard");
    }
}
