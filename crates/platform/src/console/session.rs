//! Console sessions: the admin token, checked once at login, is exchanged for a random
//! session id in an `HttpOnly; SameSite=Strict` cookie; each session has its own CSRF token,
//! which every state-changing form carries and which is compared in constant time.
//!
//! Sessions last across restarts (a user who logged in expects a page that still works after
//! the server came back): the registry keeps each one's SHA-256 and its login time, never the
//! id itself, so a copy of the registry logs nobody in. The CSRF token is derived from the id
//! (a SHA-256 under another prefix): the registry holds nothing it could be made from. Expired
//! rows are dropped. The cookie is scoped to `/console` and never reaches a function (see
//! docs/architecture.md, "Console").

use crate::auth::{random_hex, sha256_hex};
use crate::error::Result;
use crate::registry::{now_s, Registry};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const COOKIE: &str = "fnbox_session";
/// A session ends this long after login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; past it, the oldest goes.
const MAX_SESSIONS: usize = 256;

/// Where the browser sends the cookie: the console's pages only, never `/fn/`.
pub const COOKIE_PATH: &str = "/console";

impl Registry {
    fn put_session(&self, hash: &str, created_at: u64) -> Result<()> {
        let db = self.db();
        let oldest_kept = created_at.saturating_sub(LIFETIME.as_secs()) as i64;
        db.execute("DELETE FROM console_sessions WHERE created_at <= ?1", [oldest_kept])?;
        // At most MAX_SESSIONS with the new one: the oldest go.
        db.execute(
            "DELETE FROM console_sessions WHERE hash IN
             (SELECT hash FROM console_sessions ORDER BY created_at DESC, hash LIMIT -1 OFFSET ?1)",
            [MAX_SESSIONS as i64 - 1],
        )?;
        db.execute(
            "INSERT OR REPLACE INTO console_sessions (hash, created_at) VALUES (?1, ?2)",
            params![hash, created_at as i64],
        )?;
        Ok(())
    }

    fn session_created(&self, hash: &str) -> Result<Option<u64>> {
        let db = self.db();
        let at = db
            .query_row("SELECT created_at FROM console_sessions WHERE hash = ?1", [hash], |r| r.get::<_, i64>(0))
            .optional()?;
        Ok(at.map(|t| t.max(0) as u64))
    }

    fn remove_session(&self, hash: &str) -> Result<()> {
        self.db().execute("DELETE FROM console_sessions WHERE hash = ?1", [hash])?;
        Ok(())
    }
}

#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    /// The SHA-256 of the id: how the session is named everywhere but in the cookie.
    pub hash: String,
    /// Login time, seconds since the epoch.
    created: u64,
    /// Closed when the session ends (logout, or pushed out by newer ones).
    ended: tokio::sync::watch::Receiver<()>,
}

impl Session {
    fn expires_in(&self) -> Duration {
        Duration::from_secs((self.created + LIFETIME.as_secs()).saturating_sub(now_s()))
    }

    /// Resolves when the session ends: logged out, pushed out, or past its lifetime. What
    /// lives on with a session (a live log stream) stops then.
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.ended.clone();
        let expiry = tokio::time::Instant::now() + self.expires_in();
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

/// The sessions this server has seen since it started, by hash; the registry has them all.
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Entry>>,
}

/// Compares without an early exit.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The CSRF token of the session with this id: only the holder of the id can make it.
fn csrf_of(id: &str) -> String {
    sha256_hex(format!("fnbox console csrf\0{id}").as_bytes())
}

/// A session id as the cookie carries it: 64 lowercase hex digits.
fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Sessions {
    fn remember(&self, id: &str, created: u64) -> Session {
        let (alive, ended) = tokio::sync::watch::channel(());
        let session = Session { csrf: csrf_of(id), hash: sha256_hex(id.as_bytes()), created, ended };
        let mut m = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, e| !e.session.expires_in().is_zero());
        if m.len() >= MAX_SESSIONS {
            if let Some(oldest) = m.iter().min_by_key(|(_, e)| e.session.created).map(|(k, _)| k.clone()) {
                m.remove(&oldest);
            }
        }
        m.insert(session.hash.clone(), Entry { session: session.clone(), _alive: alive });
        session
    }

    /// A new session, written to the registry: the `Set-Cookie` value.
    pub fn create(&self, registry: &Registry) -> Result<String> {
        let id = random_hex(32);
        let created = now_s();
        registry.put_session(&sha256_hex(id.as_bytes()), created)?;
        self.remember(&id, created);
        Ok(format!("{COOKIE}={id}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs()))
    }

    /// The live session a `Cookie` header names, from memory or (after a restart) the
    /// registry. Every `fnbox_session` value is tried: a cookie planted with a more specific
    /// path comes first and must not hide the real one. Ids are looked up by their hash, so
    /// no comparison with a stored secret can leak by its timing.
    pub fn find(&self, registry: &Registry, cookie_header: Option<&str>) -> Option<Session> {
        named(cookie_header?, COOKIE).filter(|id| well_formed(id)).take(4).find_map(|id| {
            let hash = sha256_hex(id.as_bytes());
            let known = {
                let m = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
                m.get(&hash).map(|e| e.session.clone())
            };
            let session = match known {
                Some(s) => s,
                None => {
                    let created = registry.session_created(&hash).ok().flatten()?;
                    self.remember(id, created)
                }
            };
            (!session.expires_in().is_zero()).then_some(session)
        })
    }

    /// Ends a session, here and in the registry.
    pub fn end(&self, registry: &Registry, hash: &str) {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner()).remove(hash);
        if let Err(e) = registry.remove_session(hash) {
            eprintln!("fnbox serve: cannot remove a console session from the registry: {e}");
        }
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

    fn registry(tag: &str) -> (Registry, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fnbox-sessions-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("registry.db");
        (Registry::open(&path, crate::seal::test_key("k")).unwrap(), path)
    }

    /// A registry, a server's sessions, and one logged in: its `Set-Cookie` and id.
    fn logged_in(tag: &str) -> (Registry, std::path::PathBuf, Sessions, String, String) {
        let (r, path) = registry(tag);
        let s = Sessions::default();
        let cookie = s.create(&r).unwrap();
        let id = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
        (r, path, s, cookie, id)
    }

    #[test]
    fn cookie_finds_its_session_only() {
        let (r, _, s, cookie, id) = logged_in("find");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let found = s.find(&r, Some(&format!("a=b; {COOKIE}={id}"))).unwrap();
        assert_eq!(found.hash, sha256_hex(id.as_bytes()));
        assert_eq!(found.csrf.len(), 64);
        assert_ne!(found.csrf, found.hash);
        assert!(s.find(&r, Some(&format!("{COOKIE}={}", &id[..10]))).is_none());
        assert!(s.find(&r, Some(&format!("{COOKIE}=x{id}"))).is_none());
        assert!(s.find(&r, Some(&format!("{COOKIE}={}", found.hash))).is_none(), "the stored hash is not a key");
        assert!(s.find(&r, None).is_none());
        s.end(&r, &found.hash);
        assert!(s.find(&r, Some(&format!("{COOKIE}={id}"))).is_none());
        assert!(Sessions::default().find(&r, Some(&format!("{COOKIE}={id}"))).is_none(), "ended in the registry too");
    }

    #[test]
    fn sessions_outlive_a_restart_as_hashes_and_expire() {
        let (r, path, s, cookie, id) = logged_in("restart");
        let csrf = s.find(&r, Some(&cookie)).unwrap().csrf;
        drop((s, r));
        // The registry holds neither the id nor the CSRF token.
        let mut raw = Vec::new();
        for f in std::fs::read_dir(path.parent().unwrap()).unwrap() {
            raw.extend(std::fs::read(f.unwrap().path()).unwrap());
        }
        let raw = String::from_utf8_lossy(&raw);
        assert!(!raw.contains(&id) && !raw.contains(&csrf), "a session secret is in the registry");
        // A new server (new memory) finds it, with the same CSRF token for the open pages.
        let r = Registry::open(&path, crate::seal::test_key("k")).unwrap();
        let again = Sessions::default().find(&r, Some(&format!("{COOKIE}={id}"))).expect("the session lasts");
        assert_eq!(again.csrf, csrf);
        // One logged in longer ago than the lifetime is not found, and is dropped at the next login.
        let old = random_hex(32);
        r.put_session(&sha256_hex(old.as_bytes()), now_s() - LIFETIME.as_secs() - 1).unwrap();
        assert!(Sessions::default().find(&r, Some(&format!("{COOKIE}={old}"))).is_none());
        Sessions::default().create(&r).unwrap();
        assert_eq!(r.session_created(&sha256_hex(old.as_bytes())).unwrap(), None);
        // Bounded: the oldest go.
        for _ in 0..MAX_SESSIONS + 5 {
            Sessions::default().create(&r).unwrap();
        }
        let n: i64 = r.db().query_row("SELECT count(*) FROM console_sessions", [], |x| x.get(0)).unwrap();
        assert_eq!(n as usize, MAX_SESSIONS);
    }

    #[test]
    fn cookie_is_the_consoles_only_and_cannot_be_shadowed() {
        let (r, _, s, cookie, id) = logged_in("shadow");
        assert!(cookie.split(';').any(|a| a.trim() == "Path=/console"), "{cookie}");
        // A planted cookie with a more specific path is sent first: the real one still counts.
        let both = format!("{COOKIE}=bogus; other=1; {COOKIE}={id}");
        assert_eq!(s.find(&r, Some(&both)).map(|f| f.hash), Some(sha256_hex(id.as_bytes())));
        assert_eq!(without_console_cookie(&both).as_deref(), Some("other=1"));
        assert_eq!(without_console_cookie(&format!("{COOKIE}={id}")), None);
        assert!(sets_console_cookie(format!(" {COOKIE} =x; Path=/console").as_bytes()));
        assert!(!sets_console_cookie(b"fnbox_session_other=x"));
    }

    #[tokio::test]
    async fn a_session_ending_is_heard() {
        let (r, _, s, cookie, _) = logged_in("ended");
        let session = s.find(&r, Some(&cookie)).unwrap();
        let ended = session.ended();
        s.end(&r, &session.hash);
        tokio::time::timeout(std::time::Duration::from_secs(5), ended).await.expect("the end of the session is heard");
    }
}
