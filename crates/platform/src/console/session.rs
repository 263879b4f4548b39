//! Console sessions: the admin token, checked once at login, is exchanged for a random
//! session id in an `HttpOnly; SameSite=Strict` cookie; each session has its own CSRF token,
//! which every state-changing form carries and which is compared in constant time. Sessions
//! live in the server's memory: a restart logs everyone out.

use crate::auth::random_hex;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "fnbox_session";
/// A session ends this long after login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; past it, the oldest goes.
const MAX_SESSIONS: usize = 256;

#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    created: Instant,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
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
        m.retain(|_, s| s.created.elapsed() < LIFETIME);
        if m.len() >= MAX_SESSIONS {
            if let Some(oldest) = m.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| k.clone()) {
                m.remove(&oldest);
            }
        }
        m.insert(id.clone(), Session { csrf: random_hex(32), created: Instant::now() });
        let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs());
        (id, cookie)
    }

    /// The session a `Cookie` header names, if it is live.
    pub fn find(&self, cookie_header: Option<&str>) -> Option<(String, Session)> {
        let id = cookie_header?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v)?;
        let m = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up by its hash map, then compared in full without an early exit.
        let (k, s) = m.get_key_value(id)?;
        (same(k, id) && s.created.elapsed() < LIFETIME).then(|| (k.clone(), s.clone()))
    }

    pub fn end(&self, id: &str) {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
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
}
