//! Percent-encoding of URL query strings and HTML forms (`application/x-www-form-urlencoded`).

/// Decodes `%XX` and `+` (a space); an invalid escape stays as it is. Bytes that are not
/// UTF-8 become U+FFFD.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes everything but `A-Za-z0-9-._~`.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// `k=v&k2=v2`, decoded; the first of a repeated key wins.
pub fn pairs(s: &str) -> std::collections::HashMap<String, String> {
    let mut m = std::collections::HashMap::new();
    for kv in s.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        m.entry(decode(k)).or_insert_with(|| decode(v));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = "a b&c=d/é%";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(decode("x%2"), "x%2");
        assert_eq!(decode("%zz+%41"), "%zz A");
        let p = pairs("grep=a%20b&instance=i-1&grep=other&flag");
        assert_eq!((p["grep"].as_str(), p["instance"].as_str(), p["flag"].as_str()), ("a b", "i-1", ""));
    }
}
