//! `multipart/form-data` bodies (the console's zip upload), read whole and bounded before
//! they get here. Only what a browser sends for a form: parts with a `Content-Disposition:
//! form-data; name="..."` header, and a `filename` for files.

/// One part: its field name and content.
pub struct Part<'a> {
    pub name: String,
    pub data: &'a [u8],
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        let v = v.trim().trim_matches('"');
        (k.trim().eq_ignore_ascii_case("boundary") && !v.is_empty() && v.len() <= 70).then(|| v.to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// The parts of `body`, or `None` if it is not well formed.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let delim = format!("--{boundary}");
    let next = format!("\r\n--{boundary}");
    let mut at = find(body, delim.as_bytes(), 0)? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body.get(at..at + 2)? == b"--" {
            return Some(parts);
        }
        at += 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = std::str::from_utf8(&body[at..head_end]).ok()?;
        let name = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            if !k.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            v.split(';').find_map(|p| p.trim().strip_prefix("name=").map(|n| n.trim_matches('"').to_string()))
        })?;
        let start = head_end + 4;
        let end = find(body, next.as_bytes(), start)?;
        parts.push(Part { name, data: &body[start..end] });
        at = end + next.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_browser_form() {
        let ct = "multipart/form-data; boundary=----x1";
        let b = boundary(ct).unwrap();
        let body = b"------x1\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n------x1\r\nContent-Disposition: form-data; name=\"zip\"; filename=\"a.zip\"\r\nContent-Type: application/zip\r\n\r\nPK\x03\x04\r\n--\r\n------x1--\r\n";
        let parts = parse(body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].data), ("csrf", &b"abc"[..]));
        assert_eq!((parts[1].name.as_str(), parts[1].data), ("zip", &b"PK\x03\x04\r\n--"[..]));
        assert!(parse(b"------x1\r\nno end", &b).is_none());
        assert!(boundary("application/json").is_none());
    }
}
