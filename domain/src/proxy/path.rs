//! The one canonical form of a request path (wiki/proxying.md, "Canonical path"). Routes are
//! matched on it and it is what the upstream receives, so the gateway and the upstream can
//! never read one request as two different paths (`/public/../private` must not pass the
//! gateway as a public path and reach the upstream as a private one).
//!
//! Canonical means: percent-escapes of unreserved characters (`A–Z a–z 0–9 - . _ ~`,
//! RFC 3986 §2.3) decoded, the hex digits of the remaining escapes upper-cased (§6.2.2.1),
//! empty segments dropped (`//` → `/`), then `.` and `..` segments resolved (§5.2.4). What has
//! no single meaning is refused rather than guessed: an encoded `/` or `\`, a raw `\`, an
//! encoded NUL, a `%` not followed by two hex digits, and `..` above the root.

use std::borrow::Cow;

/// Why a path has no canonical form (answered `400 INVALID_PATH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with /")]
    NotAbsolute,
    #[error("the path contains an encoded / or \\ (%2F, %5C)")]
    EncodedSeparator,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains an encoded NUL (%00)")]
    Nul,
    #[error("the path contains a % not followed by two hex digits")]
    BadEscape,
    #[error("the path climbs above the root with ..")]
    AboveRoot,
}

/// The canonical form of `raw` (a path without its query). Borrows `raw` when it is already
/// canonical, so the common request allocates nothing.
pub fn canonical_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(raw)? {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode_unreserved(raw)?;
    resolve_segments(&decoded).map(Cow::Owned)
}

/// One pass over the bytes: no escape, no empty segment, no dot segment. Refuses a raw `\`
/// on the way (it is the same test either way).
fn is_canonical(raw: &str) -> Result<bool, PathError> {
    let bytes = raw.as_bytes();
    let mut canonical = true;
    for &b in bytes {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => canonical = false,
            _ => {}
        }
    }
    if !canonical {
        return Ok(false);
    }
    // Segments between slashes; the last may be empty (a trailing slash is kept).
    let mut segments = raw[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return Ok(false);
        }
    }
    Ok(true)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes escapes of unreserved characters and upper-cases the others; refuses escapes that
/// would change the segment structure (`%2F`, `%5C`), `%00` and broken escapes.
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            // `raw` is a `&str`: copy the whole run up to the next `%` at once.
            let end = raw[i..].find('%').map_or(raw.len(), |n| i + n);
            out.push_str(&raw[i..end]);
            i = end;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let value = hi * 16 + lo;
        match value {
            b'/' | b'\\' => return Err(PathError::EncodedSeparator),
            0 => return Err(PathError::Nul),
            v if is_unreserved(v) => out.push(char::from(v)),
            v => {
                out.push('%');
                out.push(char::from(HEX[usize::from(v >> 4)]));
                out.push(char::from(HEX[usize::from(v & 0xF)]));
            }
        }
        i += 3;
    }
    Ok(out)
}

/// Drops empty and `.` segments and resolves `..` (RFC 3986 §5.2.4, except that `..` above
/// the root is refused instead of ignored). A path ending in `/`, `/.` or `/..` keeps its
/// trailing slash, as §5.2.4 does.
fn resolve_segments(path: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = false;
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                kept.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = true;
            }
            segment => kept.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_are_borrowed() {
        for path in [
            "/",
            "/a",
            "/a/b",
            "/a/b/",
            "/public/x.json",
            "/v1/.well-known",
            "/a/..b",
        ] {
            match canonical_path(path) {
                Ok(Cow::Borrowed(same)) => assert_eq!(same, path),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn rewrites_to_one_canonical_form() {
        let table = [
            ("/public/../private/x", "/private/x"),
            ("/public/%2e%2e/private/x", "/private/x"),
            ("/public/%2E%2E/private/x", "/private/x"),
            ("/public/.%2e/private/x", "/private/x"),
            ("/public//../private/x", "/private/x"),
            ("/public/./x", "/public/x"),
            ("/public/%2e/x", "/public/x"),
            ("/public/%7Euser", "/public/~user"),
            ("/public/%7euser", "/public/~user"),
            ("/%41%62%63-%5F%2D", "/Abc-_-"),
            ("//a///b//", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/a/%2e%2e", "/"),
            ("//", "/"),
            ("/a%20b", "/a%20b"),
            ("/a%3ab%3F", "/a%3Ab%3F"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a/%2e%2e%2e", "/a/..."),
        ];
        for (raw, canonical) in table {
            assert_eq!(
                canonical_path(raw).as_deref(),
                Ok(canonical),
                "{raw} should become {canonical}"
            );
            // Canonical is a fixed point.
            assert_eq!(canonical_path(canonical).as_deref(), Ok(canonical));
        }
    }

    #[test]
    fn refuses_what_has_no_single_meaning() {
        let table = [
            ("/public/..%2fprivate", PathError::EncodedSeparator),
            ("/public%2F..%2Fprivate", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::Backslash),
            ("/public\\..\\private", PathError::Backslash),
            ("/a%00", PathError::Nul),
            ("/a%", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/a%%41", PathError::BadEscape),
            ("/..", PathError::AboveRoot),
            ("/a/../..", PathError::AboveRoot),
            ("/%2e%2e/etc/passwd", PathError::AboveRoot),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (raw, error) in table {
            assert_eq!(canonical_path(raw), Err(error), "{raw}");
        }
    }

    /// Whatever goes in, what comes out has no dot segment, no empty segment before the end
    /// and no escape of an unreserved character.
    #[test]
    fn output_is_always_canonical() {
        let pieces = [
            "a", ".", "..", "", "%2e", "%2E", "%41", "%7e", "b%20", "%2e%2e",
        ];
        let mut inputs = vec![String::from("/")];
        for _ in 0..4 {
            let mut next = Vec::new();
            for input in &inputs {
                for piece in pieces {
                    let sep = if input.ends_with('/') { "" } else { "/" };
                    next.push(format!("{input}{sep}{piece}"));
                }
            }
            inputs.extend(next);
            inputs.dedup();
        }
        for input in &inputs {
            if let Ok(out) = canonical_path(input) {
                assert!(matches!(canonical_path(&out), Ok(Cow::Borrowed(_))) || out.contains('%'));
                let again = canonical_path(&out).map(Cow::into_owned);
                assert_eq!(again.as_deref(), Ok(out.as_ref()), "{input} → {out}");
                let segments: Vec<&str> = out[1..].split('/').collect();
                let inner = &segments[..segments.len() - 1];
                assert!(
                    !inner
                        .iter()
                        .any(|s| s.is_empty() || *s == "." || *s == ".."),
                    "{input} → {out}"
                );
                let last = segments[segments.len() - 1];
                assert!(last != "." && last != "..", "{input} → {out}");
            }
        }
    }
}
