//! Value rules shared by several resources.

use validator::ValidateEmail;

/// `local@domain`, at most 254 characters (validator's HTML5 rule).
pub fn is_email(text: &str) -> bool {
    text.chars().count() <= 254 && text.validate_email()
}

/// An absolute `http`/`https` URL without userinfo; `allow_query` for webhook targets.
pub fn check_http_url(text: &str, allow_query: bool) -> Result<url::Url, String> {
    let url =
        url::Url::parse(text).map_err(|_| "must be an absolute http or https URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("must be an absolute http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user information".into());
    }
    if !allow_query && (url.query().is_some() || url.fragment().is_some()) {
        return Err("must not contain a query or fragment".into());
    }
    Ok(url)
}

/// RFC 9110 `token` (header names).
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they never cross a proxy.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers a client may not configure: hop-by-hop ones, `Host` and `Content-Length`.
pub fn is_reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    HOP_BY_HOP.contains(&name.as_str()) || name == "host" || name == "content-length"
}

/// `Acme Corp!` → `acme-corp`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let trimmed: String = slug.trim_end_matches('-').chars().take(63).collect();
    let trimmed = trimmed.trim_end_matches('-').to_owned();
    if trimmed.is_empty() {
        "group".into()
    } else {
        trimmed
    }
}

pub fn is_slug(text: &str) -> bool {
    static_regex(r"^[a-z0-9](-?[a-z0-9])*$").is_match(text) && text.len() <= 63
}

fn static_regex(pattern: &'static str) -> regex::Regex {
    regex::Regex::new(pattern).unwrap_or_else(|_| unreachable!("literal pattern"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Acme Corp!"), "acme-corp");
        assert_eq!(slugify("--"), "group");
        assert!(is_slug("acme-corp"));
        assert!(!is_slug("acme--corp"));
        assert!(!is_slug("-acme"));
    }

    #[test]
    fn urls() {
        assert!(check_http_url("https://api.example.com/v1", false).is_ok());
        assert!(check_http_url("ftp://x", false).is_err());
        assert!(check_http_url("http://u:p@x", false).is_err());
        assert!(check_http_url("http://x/?a=1", false).is_err());
        assert!(check_http_url("http://x/?a=1", true).is_ok());
        assert!(check_http_url("/relative", false).is_err());
    }

    #[test]
    fn emails_and_tokens() {
        assert!(is_email("ada@example.com"));
        assert!(!is_email("ada"));
        assert!(is_token("X-Api-Version"));
        assert!(!is_token("bad header"));
    }
}
