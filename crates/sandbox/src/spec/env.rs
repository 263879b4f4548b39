//! A program's environment variables: one rule for names and values everywhere (command line,
//! env files, the zygote), and the env file's encoding.

use crate::error::{Error, Result};
use std::path::Path;

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_.-]*` (Scaleway's examples use `-`).
/// What the sandboxes, the zygote and the env file all accept: one rule everywhere.
pub fn check_env_name(k: &str) -> Result<()> {
    let ok = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        return Ok(());
    }
    Err(Error::BadEnv(format!(
        "environment variable name '{}' is not valid: use letters, digits, '_', '.' and '-', starting with a letter or '_'",
        k.escape_debug()
    )))
}

/// A value is passed byte for byte (newlines and spaces included); only NUL cannot be, since
/// the kernel's environment strings end there.
pub fn check_env_value(k: &str, v: &str) -> Result<()> {
    if v.contains('\0') {
        return Err(Error::BadEnv(format!(
            "the value of environment variable '{k}' contains a NUL byte, which no program can receive: remove it"
        )));
    }
    Ok(())
}

pub fn check_env(k: &str, v: &str) -> Result<()> {
    check_env_name(k).and_then(|()| check_env_value(k, v))
}

/// Parses `KEY=VALUE` (the value is everything after the first `=`, byte for byte).
pub fn parse_env(s: &str) -> Result<(String, String)> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(Error::BadEnv(format!(
            "environment entry '{}' has no '=': use KEY=VALUE",
            s.chars().take(64).collect::<String>().escape_debug()
        )));
    };
    check_env(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// The env file fnbox writes (for `--env-file`): `KEY=VALUE\0` records, as in
/// `/proc/PID/environ`, so a value may hold newlines and no byte of it can start another
/// variable. Entries are checked first.
pub fn encode_env_file(env: &[(String, String)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (k, v) in env {
        check_env(k, v)?;
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    Ok(out)
}

/// Reads an env file: `KEY=VALUE\0` records if it holds a NUL byte (what fnbox writes, see
/// [`encode_env_file`]), else one `KEY=VALUE` per line, as people write them (empty lines
/// and lines starting with `#` skipped). Values are kept byte for byte, trailing spaces too.
pub fn parse_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read the env file {}: {e}", path.display())))?;
    parse_env_bytes(&bytes).map_err(|e| Error::BadEnv(format!("env file {}: {e}", path.display())))
}

fn parse_env_bytes(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let records: Vec<&[u8]> = if bytes.contains(&0) {
        bytes.split(|&b| b == 0).filter(|r| !r.is_empty()).collect()
    } else {
        bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty() && !l.starts_with(b"#")).collect()
    };
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let s = std::str::from_utf8(r)
                .map_err(|_| Error::BadEnv(format!("entry {} is not UTF-8 text: write the file as UTF-8", i + 1)))?;
            parse_env(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_one_encoding_byte_exact() {
        assert_eq!(parse_env("my-key.v2=a=b ").unwrap(), ("my-key.v2".into(), "a=b ".into()));
        for bad in ["1A=x", "A B=x", "A\nLD_PRELOAD=x", "-A=x", "A\0=x"] {
            let e = parse_env(bad).unwrap_err().to_string();
            assert!(e.contains("is not valid"), "{bad:?}: {e}");
        }
        let e = parse_env("SECRET=s3cr3t\0x").unwrap_err().to_string();
        assert!(e.contains("'SECRET'") && e.contains("NUL") && !e.contains("s3cr3t"), "{e}");
        // A newline in a value stays in the value: no second variable.
        let env = vec![("A".to_string(), "x\nLD_PRELOAD=/x.so".to_string()), ("B".to_string(), " y ".to_string())];
        let file = encode_env_file(&env).unwrap();
        assert_eq!(parse_env_bytes(&file).unwrap(), env);
        assert!(encode_env_file(&[("A".into(), "a\0b".into())]).is_err());
        // Files people write: lines, comments, trailing spaces kept.
        let lines = parse_env_bytes(b"# c\nA=1 \n\nB=two words\n").unwrap();
        assert_eq!(lines, vec![("A".into(), "1 ".into()), ("B".into(), "two words".into())]);
    }
}
