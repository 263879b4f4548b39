//! Secrets at rest: each secret value is sealed (ChaCha20-Poly1305, a random nonce per value)
//! before it reaches the registry, with a key kept apart from it, so a copied `registry.db`
//! (or its WAL) reveals nothing. The key is `DATA_DIR/secret.key` (mode 0400, made on first
//! start) unless the operator gives one (`fnbox serve --secret-key-file`).
//!
//! A sealed value is `fnbox-sealed-v1:` and the base64 of nonce ‖ ciphertext ‖ tag. The
//! function's and the secret's names are authenticated with it: a value moved to another
//! function or variable does not open.

use crate::error::{Context, Error, Result};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const KEY_FILE: &str = "secret.key";
const SEALED: &str = "fnbox-sealed-v1:";
const NONCE_LEN: usize = 12;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The key secrets are sealed with. Never printed (no `Debug`).
pub struct SecretKey {
    cipher: ChaCha20Poly1305,
    /// Where it was read from, for error messages.
    pub path: PathBuf,
}

/// Is a stored value sealed (or plain text from before sealing)?
pub fn is_sealed(v: &str) -> bool {
    v.starts_with(SEALED)
}

fn aad(function: &str, name: &str) -> Vec<u8> {
    [function.as_bytes(), b"\0", name.as_bytes()].concat()
}

impl SecretKey {
    fn from_hex(hex: &str, path: &Path) -> Result<Self> {
        let hex = hex.trim();
        let bytes: Option<Vec<u8>> = (hex.len() == 64)
            .then(|| (0..32).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect())
            .flatten();
        let Some(bytes) = bytes else {
            return Err(Error::Invalid(format!(
                "the secret key {} is not 64 hexadecimal characters (32 bytes): make one with `head -c32 /dev/urandom | xxd -p -c64`",
                path.display()
            )));
        };
        let cipher = ChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Self { cipher, path: path.to_path_buf() })
    }

    /// The operator's key file: it must exist and be readable by its owner only.
    pub fn load(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).context(|| {
            format!("cannot read the secret key {} (give an existing key file, or leave --secret-key-file out to use one in the data directory)", path.display())
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::Invalid(format!(
                "the secret key {} can be read by other users (mode {:o}): chmod 0400 it",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let hex = std::fs::read_to_string(path).context(|| format!("cannot read the secret key {}", path.display()))?;
        Self::from_hex(&hex, path)
    }

    /// The data directory's key, made on first start (mode 0400; an existing file's mode is
    /// set back to 0400).
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(KEY_FILE);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))
                .context(|| format!("cannot make the secret key {} readable by its owner only", path.display()))?;
            return Self::load(&path);
        }
        let mut key = [0u8; 32];
        fnbox_sandbox::sys::random_bytes(&mut key).context(|| "cannot draw a random secret key".into())?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = data_dir.join(format!(".{KEY_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{hex}\n").as_bytes()))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .context(|| format!("cannot write the secret key to {}", path.display()))?;
        Self::from_hex(&hex, &path)
    }

    /// Seals the value of secret `name` of `function`.
    pub fn seal(&self, function: &str, name: &str, value: &str) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        fnbox_sandbox::sys::random_bytes(&mut nonce).context(|| "cannot draw a random nonce".into())?;
        let aad = aad(function, name);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: &aad })
            .map_err(|_| Error::Internal(format!("cannot seal secret '{name}' of function '{function}'")))?;
        Ok(format!("{SEALED}{}", B64.encode([&nonce[..], &sealed].concat())))
    }

    /// Opens a sealed value; the error says which secret and what to do.
    pub fn open(&self, function: &str, name: &str, stored: &str) -> Result<String> {
        let fail = || {
            Error::Invalid(format!(
                "secret '{name}' cannot be decrypted with this server's secret key (another key sealed it, or the registry was altered): restart the server with the key it was sealed with, or redeploy the function with its secrets"
            ))
        };
        let raw = stored.strip_prefix(SEALED).and_then(|b| B64.decode(b).ok()).ok_or_else(fail)?;
        if raw.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad(function, name) })
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

#[cfg(test)]
pub(crate) fn test_key(tag: &str) -> SecretKey {
    SecretKey::from_hex(&crate::auth::sha256_hex(tag.as_bytes()), Path::new("test.key")).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_place_with_their_key() {
        let k = test_key("a");
        let s = k.seal("f", "TOKEN", "s3cr3t\nline").unwrap();
        assert!(is_sealed(&s) && !s.contains("s3cr3t"));
        assert_ne!(s, k.seal("f", "TOKEN", "s3cr3t\nline").unwrap(), "a nonce per value");
        assert_eq!(k.open("f", "TOKEN", &s).unwrap(), "s3cr3t\nline");
        assert!(k.open("g", "TOKEN", &s).is_err() && k.open("f", "OTHER", &s).is_err());
        let e = test_key("b").open("f", "TOKEN", &s).unwrap_err().to_string();
        assert!(e.contains("secret 'TOKEN' cannot be decrypted") && e.contains("redeploy"), "{e}");
        assert!(k.open("f", "TOKEN", "fnbox-sealed-v1:!!").is_err());
    }

    #[test]
    fn key_files_are_owner_only() {
        let dir = std::env::temp_dir().join(format!("fnbox-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let made = SecretKey::load_or_create(&dir).unwrap();
        let path = dir.join(KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o400);
        let again = SecretKey::load_or_create(&dir).unwrap();
        assert_eq!(again.open("f", "K", &made.seal("f", "K", "v").unwrap()).unwrap(), "v");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SecretKey::load(&path).err().unwrap().to_string().contains("chmod 0400"));
        SecretKey::load_or_create(&dir).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o400);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
