//! The route table: an immutable, precedence-ordered list of compiled routes (proxy.md §2).
//! A new table is built on every configuration change and swapped in whole, so a request
//! never sees half a change.

use std::sync::Arc;

use regex::Regex;

/// How a route's `path_pattern` is compared with the request path.
#[derive(Debug, Clone)]
pub enum PathMatcher {
    /// Equal, segment by segment (`{name}` matches one non-empty segment).
    Exact(Vec<Segment>),
    /// Equal, or the request continues with `/` after the pattern.
    Prefix {
        segments: Vec<Segment>,
        open_end: bool,
    },
    /// Full match of an anchored regular expression.
    Regex(Regex),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
pub enum HostMatcher {
    Any,
    Exact(String),
    /// `*.example.com`: exactly one more label; holds `.example.com`.
    Wildcard(String),
    Regex(Regex),
}

impl HostMatcher {
    /// exact > wildcard > regex > none (§2 precedence rule 2).
    fn specificity(&self) -> u8 {
        match self {
            Self::Exact(_) => 3,
            Self::Wildcard(_) => 2,
            Self::Regex(_) => 1,
            Self::Any => 0,
        }
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(expected) => host.eq_ignore_ascii_case(expected),
            Self::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && !host[..host.len() - suffix.len()].contains('.')
            }
            Self::Regex(regex) => regex.is_match(host),
        }
    }
}

/// A compiled route: what the proxy needs of a `routes` row.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    pub name: String,
    /// Upper-case; empty = every method.
    pub methods: Vec<String>,
    pub path_pattern: String,
    pub path: PathMatcher,
    pub host: HostMatcher,
    pub strip_path: bool,
    pub path_rewrite: Option<String>,
    pub auth_required: bool,
    pub rate_limit_override: Option<u64>,
    pub priority: i64,
    pub upstream_id: String,
    pub allowed_plans: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub created_at: i64,
}

/// Why a pattern could not be compiled (the admin API validates, so this means a bad row).
#[derive(Debug, thiserror::Error)]
#[error("route {route}: {reason}")]
pub struct RouteError {
    pub route: String,
    pub reason: String,
}

impl PathMatcher {
    pub fn compile(pattern: &str, match_type: &str) -> Result<Self, String> {
        match match_type {
            "regex" => Regex::new(&format!("^(?:{pattern})$"))
                .map(Self::Regex)
                .map_err(|e| e.to_string()),
            "exact" => Ok(Self::Exact(segments(&canonical_pattern(pattern)))),
            _ => {
                let pattern = canonical_pattern(pattern);
                let pattern = pattern.as_ref();
                Ok(Self::Prefix {
                    open_end: pattern.ends_with('/') && pattern.len() > 1,
                    segments: segments(pattern.trim_end_matches('/')),
                })
            }
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Exact(_) => 3,
            Self::Prefix { .. } => 2,
            Self::Regex(_) => 1,
        }
    }

    /// On a match: the captured parameters and how many bytes of `path` the pattern consumed.
    pub fn matches(&self, path: &str) -> Option<PathMatch> {
        match self {
            Self::Exact(segments) => {
                let (captures, used) = match_segments(segments, path)?;
                (used == path.len()).then_some(PathMatch {
                    captures,
                    matched_len: used,
                })
            }
            Self::Prefix { segments, open_end } => {
                let (captures, used) = match_segments(segments, path)?;
                // Whole segments were consumed, so the rest is empty or starts with `/`.
                let boundary = !*open_end || path[used..].starts_with('/');
                boundary.then_some(PathMatch {
                    captures,
                    matched_len: used,
                })
            }
            Self::Regex(regex) => {
                let caps = regex.captures(path)?;
                let mut captures = Vec::new();
                for (index, name) in regex.capture_names().enumerate().skip(1) {
                    if let Some(value) = caps.get(index) {
                        captures.push(Capture {
                            name: name.map(str::to_owned),
                            index,
                            value: value.as_str().to_owned(),
                        });
                    }
                }
                Some(PathMatch {
                    captures,
                    matched_len: path.len(),
                })
            }
        }
    }
}

/// Requests are matched on their canonical path (`super::path`), so a literal pattern is
/// compared in the same form: `/a/%7Eb` matches the request `/a/~b` (and `/a/%7eb`). A pattern
/// with no canonical form is kept as written (no request path can equal it).
fn canonical_pattern(pattern: &str) -> std::borrow::Cow<'_, str> {
    super::path::canonical_path(pattern).unwrap_or(std::borrow::Cow::Borrowed(pattern))
}

fn segments(pattern: &str) -> Vec<Segment> {
    pattern
        .split('/')
        .skip(1)
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !name.is_empty() => Segment::Param(name.to_owned()),
                _ => Segment::Literal(s.to_owned()),
            },
        )
        .collect()
}

/// Matches `/seg/seg…` against the start of `path`; returns captures and the bytes consumed.
fn match_segments(segments: &[Segment], path: &str) -> Option<(Vec<Capture>, usize)> {
    if segments.is_empty()
        || (segments.len() == 1 && segments[0] == Segment::Literal(String::new()))
    {
        // The pattern `/`: every path starts with it.
        return path.starts_with('/').then(|| (Vec::new(), 0));
    }
    let mut used = 0;
    let mut captures = Vec::new();
    for (position, segment) in segments.iter().enumerate() {
        let rest = path.get(used..)?.strip_prefix('/')?;
        let end = rest.find('/').unwrap_or(rest.len());
        let value = &rest[..end];
        match segment {
            Segment::Literal(literal) => {
                if value != literal {
                    return None;
                }
            }
            Segment::Param(name) => {
                if value.is_empty() {
                    return None;
                }
                captures.push(Capture {
                    name: Some(name.clone()),
                    index: position + 1,
                    value: value.to_owned(),
                });
            }
        }
        used += 1 + end;
    }
    Some((captures, used))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub name: Option<String>,
    pub index: usize,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMatch {
    pub captures: Vec<Capture>,
    pub matched_len: usize,
}

/// The outcome of looking a request up in the table.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a Arc<Route>, PathMatch),
    /// Some route matches host and path, none the method; holds the methods that would.
    MethodNotAllowed(Vec<String>),
    NotFound,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Orders routes by the precedence of §2 once, so lookup takes the first that matches.
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(b.host.specificity().cmp(&a.host.specificity()))
                .then(b.path.rank().cmp(&a.path.rank()))
                .then(b.path_pattern.len().cmp(&a.path_pattern.len()))
                .then(a.created_at.cmp(&b.created_at))
                .then(a.id.cmp(&b.id))
        });
        Self {
            routes: routes.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn lookup(&self, method: &str, host: &str, path: &str) -> Lookup<'_> {
        let mut allowed: Vec<String> = Vec::new();
        let mut path_matched = false;
        for route in &self.routes {
            if !route.host.matches(host) {
                continue;
            }
            let Some(found) = route.path.matches(path) else {
                continue;
            };
            if route.methods.is_empty() || route.methods.iter().any(|m| m == method) {
                return Lookup::Found(route, found);
            }
            path_matched = true;
            for m in &route.methods {
                if !allowed.contains(m) {
                    allowed.push(m.clone());
                }
            }
        }
        if path_matched {
            Lookup::MethodNotAllowed(allowed)
        } else {
            Lookup::NotFound
        }
    }
}

/// The path sent upstream (proxy.md §6): rewrite template, else strip the matched prefix,
/// else the request path; for prefix routes the unmatched remainder follows a rewrite.
pub fn forwarded_path(route: &Route, path: &str, found: &PathMatch) -> String {
    let remainder = &path[found.matched_len.min(path.len())..];
    let forwarded = if let Some(template) = &route.path_rewrite {
        let mut out = substitute(template, &found.captures);
        if matches!(route.path, PathMatcher::Prefix { .. }) {
            if out.ends_with('/') && remainder.starts_with('/') {
                out.pop();
            }
            out.push_str(remainder);
        }
        out
    } else if route.strip_path {
        remainder.to_owned()
    } else {
        path.to_owned()
    };
    if forwarded.is_empty() {
        "/".to_owned()
    } else if forwarded.starts_with('/') {
        forwarded
    } else {
        format!("/{forwarded}")
    }
}

/// `{name}`, `${name}` and `$1` substitutions; unknown names become empty.
fn substitute(template: &str, captures: &[Capture]) -> String {
    let by_name = |name: &str| {
        captures
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
            .map(|c| c.value.as_str())
            .unwrap_or("")
    };
    let by_index = |index: usize| {
        captures
            .iter()
            .find(|c| c.index == index)
            .map(|c| c.value.as_str())
            .unwrap_or("")
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(position) = rest.find(['{', '$']) {
        out.push_str(&rest[..position]);
        rest = &rest[position..];
        if let Some(after) = rest.strip_prefix("${")
            && let Some(end) = after.find('}')
        {
            out.push_str(by_name(&after[..end]));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('{')
            && let Some(end) = after.find('}')
        {
            out.push_str(by_name(&after[..end]));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('$')
            && let digits = after.chars().take_while(char::is_ascii_digit).count()
            && digits > 0
        {
            out.push_str(by_index(after[..digits].parse().unwrap_or(0)));
            rest = &after[digits..];
        } else {
            out.push_str(&rest[..1]);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, pattern: &str, match_type: &str) -> Route {
        Route {
            id: id.into(),
            name: id.into(),
            methods: Vec::new(),
            path_pattern: pattern.into(),
            path: PathMatcher::compile(pattern, match_type).unwrap(),
            host: HostMatcher::Any,
            strip_path: false,
            path_rewrite: None,
            auth_required: true,
            rate_limit_override: None,
            priority: 0,
            upstream_id: "ups".into(),
            allowed_plans: Vec::new(),
            allowed_groups: Vec::new(),
            created_at: 0,
        }
    }

    fn found(table: &RouteTable, method: &str, path: &str) -> Option<String> {
        match table.lookup(method, "api.example.com", path) {
            Lookup::Found(route, _) => Some(route.id.clone()),
            _ => None,
        }
    }

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        let table = RouteTable::new(vec![route("v1", "/v1", "prefix")]);
        assert_eq!(found(&table, "GET", "/v1").as_deref(), Some("v1"));
        assert_eq!(found(&table, "GET", "/v1/x").as_deref(), Some("v1"));
        assert_eq!(found(&table, "GET", "/v10"), None);
        let slash = RouteTable::new(vec![route("s", "/v1/", "prefix")]);
        assert_eq!(found(&slash, "GET", "/v1/x").as_deref(), Some("s"));
        let root = RouteTable::new(vec![route("root", "/", "prefix")]);
        assert_eq!(
            found(&root, "GET", "/anything/at/all").as_deref(),
            Some("root")
        );
    }

    #[test]
    fn params_match_one_non_empty_segment() {
        let table = RouteTable::new(vec![route("u", "/users/{id}", "exact")]);
        assert_eq!(found(&table, "GET", "/users/7").as_deref(), Some("u"));
        assert_eq!(found(&table, "GET", "/users/"), None);
        assert_eq!(found(&table, "GET", "/users/7/x"), None);
    }

    #[test]
    fn precedence_prefers_priority_then_exact_then_longer() {
        let mut high = route("high", "/", "prefix");
        high.priority = 5;
        let table = RouteTable::new(vec![
            route("short", "/api", "prefix"),
            route("long", "/api/users", "prefix"),
            route("exact", "/api/users", "exact"),
        ]);
        assert_eq!(found(&table, "GET", "/api/users").as_deref(), Some("exact"));
        assert_eq!(
            found(&table, "GET", "/api/users/1").as_deref(),
            Some("long")
        );
        assert_eq!(found(&table, "GET", "/api/x").as_deref(), Some("short"));
        let table = RouteTable::new(vec![route("exact", "/api", "exact"), high]);
        assert_eq!(found(&table, "GET", "/api").as_deref(), Some("high"));
    }

    #[test]
    fn method_mismatch_is_reported_with_the_allowed_methods() {
        let mut get_only = route("g", "/x", "exact");
        get_only.methods = vec!["GET".into()];
        let table = RouteTable::new(vec![get_only]);
        assert!(matches!(table.lookup("GET", "h", "/x"), Lookup::Found(..)));
        match table.lookup("POST", "h", "/x") {
            Lookup::MethodNotAllowed(allowed) => assert_eq!(allowed, vec!["GET".to_owned()]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(table.lookup("HEAD", "h", "/y"), Lookup::NotFound));
    }

    #[test]
    fn literal_patterns_are_compared_in_canonical_form() {
        let table = RouteTable::new(vec![route("t", "/a/%7eb", "exact")]);
        assert_eq!(found(&table, "GET", "/a/~b").as_deref(), Some("t"));
        let table = RouteTable::new(vec![route("p", "//v1/./x/", "prefix")]);
        assert_eq!(found(&table, "GET", "/v1/x/y").as_deref(), Some("p"));
        assert_eq!(found(&table, "GET", "/v1/x"), None);
    }

    #[test]
    fn wildcard_host_matches_exactly_one_label() {
        let host = HostMatcher::Wildcard(".example.com".into());
        assert!(host.matches("a.example.com"));
        assert!(host.matches("A.Example.COM"));
        assert!(!host.matches("a.b.example.com"));
        assert!(!host.matches("example.com"));
    }

    #[test]
    fn strip_and_rewrite_build_the_forwarded_path() {
        let mut strip = route("s", "/api", "prefix");
        strip.strip_path = true;
        let m = strip.path.matches("/api/users/7").unwrap();
        assert_eq!(forwarded_path(&strip, "/api/users/7", &m), "/users/7");
        let m = strip.path.matches("/api").unwrap();
        assert_eq!(forwarded_path(&strip, "/api", &m), "/");

        let mut rewrite = route("r", "/users/{id}", "prefix");
        rewrite.path_rewrite = Some("/v2/people/{id}".into());
        let m = rewrite.path.matches("/users/7/orders").unwrap();
        assert_eq!(
            forwarded_path(&rewrite, "/users/7/orders", &m),
            "/v2/people/7/orders"
        );

        let mut regex = route("x", r"/items/(?P<item>\d+)/(\w+)", "regex");
        regex.path_rewrite = Some("/i/${item}/$2".into());
        let m = regex.path.matches("/items/42/detail").unwrap();
        assert_eq!(
            forwarded_path(&regex, "/items/42/detail", &m),
            "/i/42/detail"
        );
        assert!(regex.path.matches("/items/x/detail").is_none());
    }
}
