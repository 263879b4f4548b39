//! Tokens. The admin token (generated on first start, kept in the data directory with mode
//! 0600) opens the admin API and every function; function tokens (`fnbox token create NAME`)
//! open one private function. Only SHA-256 hashes of function tokens are stored.

use crate::error::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::RwLock;

pub const ADMIN_TOKEN_FILE: &str = "admin.token";

pub use fnbox_sandbox::sys::random_hex;

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads the admin token of a data directory, creating it on first start.
pub fn load_or_create_admin_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .context(|| format!("cannot make the admin token {} private (0600)", path.display()))?;
            return Ok(t.trim().to_string());
        }
    }
    let token = format!("fnbox-admin-{}", random_hex(24));
    let tmp = data_dir.join(".admin.token.tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes()))
        .and_then(|_| std::fs::rename(&tmp, &path))
        .context(|| format!("cannot write the admin token to {}", path.display()))?;
    Ok(token)
}

/// Reads the admin token for the CLI.
pub fn read_admin_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    std::fs::read_to_string(&path).map(|t| t.trim().to_string()).context(|| {
        format!(
            "cannot read the admin token {} (it is created by `fnbox serve` on first start; run as the same user, or pass --data-dir / FNBOX_DATA_DIR)",
            path.display()
        )
    })
}

pub struct Tokens {
    admin: String,
    /// function → hashes of its tokens.
    by_function: RwLock<HashMap<String, HashSet<String>>>,
}

impl Tokens {
    pub fn new(admin: String, hashes: Vec<(String, String)>) -> Self {
        let mut map: HashMap<String, HashSet<String>> = HashMap::new();
        for (f, h) in hashes {
            map.entry(f).or_default().insert(h);
        }
        Self { admin, by_function: RwLock::new(map) }
    }

    pub fn is_admin(&self, token: &str) -> bool {
        same(token.as_bytes(), self.admin.as_bytes())
    }

    /// Does `value` (a header's bytes, in any form: any scheme, case, spacing or padding)
    /// hold the admin token anywhere? Every window is compared in full, as [`Self::is_admin`]
    /// compares.
    pub fn mentions_admin(&self, value: &[u8]) -> bool {
        let admin = self.admin.as_bytes();
        !admin.is_empty() && value.windows(admin.len()).fold(false, |found, w| found | same(w, admin))
    }

    /// Does `value` (a header's value or a query string) carry the admin token in any form a
    /// client could send it in: as it is, percent-encoded (`%41`, `+`), or base64-encoded in any
    /// of its words (HTTP Basic credentials `user:token`, standard or URL-safe alphabet,
    /// padded or not)? The admin token opens the whole server: a function never sees it.
    pub fn carries_admin(&self, value: &[u8]) -> bool {
        use base64::Engine;
        if self.mentions_admin(value) || self.mentions_admin(&percent_decoded(value)) {
            return true;
        }
        let engines =
            [&base64::engine::general_purpose::STANDARD_NO_PAD, &base64::engine::general_purpose::URL_SAFE_NO_PAD];
        let words = value.split(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')));
        words.filter(|w| w.len() >= 4).any(|w| {
            // Padding is cut off with the word; a stray last character is dropped.
            let w = &w[..w.len() / 4 * 4 + [0, 0, 2, 3][w.len() % 4]];
            engines.iter().any(|e| {
                e.decode(w).is_ok_and(|d| self.mentions_admin(&d) || self.mentions_admin(&percent_decoded(&d)))
            })
        })
    }

    /// May `token` invoke `function`?
    pub fn may_invoke(&self, function: &str, token: &str) -> bool {
        if self.is_admin(token) {
            return true;
        }
        let h = sha256_hex(token.as_bytes());
        let map = self.by_function.read().unwrap_or_else(|p| p.into_inner());
        map.get(function).is_some_and(|set| set.iter().any(|s| same(s.as_bytes(), h.as_bytes())))
    }

    /// A new token for `function`: (id, token, hash).
    pub fn mint(&self, function: &str) -> (String, String, String) {
        let token = format!("fnbox-{}-{}", function, random_hex(20));
        let hash = sha256_hex(token.as_bytes());
        self.by_function
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(function.into())
            .or_default()
            .insert(hash.clone());
        (hash[..12].to_string(), token, hash)
    }

    pub fn forget(&self, function: &str, hash_prefix: Option<&str>) {
        let mut map = self.by_function.write().unwrap_or_else(|p| p.into_inner());
        match hash_prefix {
            None => {
                map.remove(function);
            }
            Some(p) => {
                if let Some(set) = map.get_mut(function) {
                    set.retain(|h| !h.starts_with(p));
                }
            }
        }
    }
}

/// `%XX` decoded and `+` as a space (query strings and cookies); other bytes as they are.
fn percent_decoded(v: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match (v[i], v.get(i + 1).copied().and_then(hex), v.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_token_is_found_in_any_form() {
        let t = Tokens::new("fnbox-admin-0123".into(), vec![]);
        for v in
            ["Bearer fnbox-admin-0123", "bearer\tfnbox-admin-0123", "x fnbox-admin-0123 y", "Basic,fnbox-admin-0123"]
        {
            assert!(t.mentions_admin(v.as_bytes()), "{v}");
        }
        for v in ["Bearer fnbox-admin-012", "", "fnbox-admin-01234"[..10].as_ref()] {
            assert!(!t.mentions_admin(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn the_admin_token_is_found_encoded_too() {
        use base64::Engine;
        let t = Tokens::new("fnbox-admin-0123".into(), vec![]);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let url = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let forms = [
            format!("Basic {}", b64("x:fnbox-admin-0123")),
            format!("Basic {}", b64("fnbox-admin-0123:")),
            format!("basic\t{}", b64("someone:fnbox-admin-0123")),
            format!("t={}", url("u:fnbox-admin-0123")),
            "session=1; t=fnbox-admin-0123; x=2".to_string(),
            "token=fnbox%2Dadmin%2D0123&a=1".to_string(),
            "token=%66nbox-admin-0123".to_string(),
        ];
        for v in &forms {
            assert!(t.carries_admin(v.as_bytes()), "{v}");
        }
        for v in ["Basic eDp5", "a=1&b=2", "fnbox-admin-012", &b64("x:fnbox-admin-012")] {
            assert!(!t.carries_admin(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn tokens_open_their_function_only() {
        let t = Tokens::new("admin".into(), vec![]);
        let (id, tok, _) = t.mint("a");
        assert!(t.may_invoke("a", &tok) && !t.may_invoke("b", &tok) && !t.may_invoke("a", "nope"));
        assert!(t.may_invoke("b", "admin"));
        t.forget("a", Some(&id));
        assert!(!t.may_invoke("a", &tok));
    }
}
