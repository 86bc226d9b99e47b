//! Query parameters (jsonapi.md §5–10): parsed once, checked against the resource's schema.

use std::collections::{BTreeMap, BTreeSet};

use tollgate_domain::{
    Role, Timestamp,
    query::{Cond, ListQuery, SortKey},
    resources,
    schema::ResourceSchema,
};

use crate::http::error::{ApiError, ErrorCode};

/// Which parameter families an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Families {
    /// GET of a collection: everything.
    Collection,
    /// GET of one resource, POST, PATCH: `include` and `fields`.
    Single,
    /// Paginated linkage: `page[*]` only.
    PageOnly,
    /// DELETE and actions: nothing.
    Nothing,
}

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;
pub const MAX_INCLUDE_DEPTH: usize = 2;

#[derive(Debug, Clone)]
pub struct Params {
    pub include: Vec<Vec<String>>,
    pub fields: BTreeMap<String, BTreeSet<String>>,
    pub sort: Vec<SortKey>,
    pub cond: Cond,
    pub page_number: u64,
    pub page_size: u64,
    /// Every parameter but `page[*]`, decoded, in request order (for pagination links).
    pub passthrough: Vec<(String, String)>,
}

impl Params {
    pub fn list_query(&self) -> ListQuery {
        ListQuery {
            cond: self.cond.clone(),
            sort: self.sort.clone(),
            offset: (self.page_number - 1).saturating_mul(self.page_size),
            limit: self.page_size,
        }
    }

    /// Whether a member of `type_name` survives the sparse fieldset.
    pub fn shows(&self, type_name: &str, member: &str) -> bool {
        self.fields
            .get(type_name)
            .is_none_or(|set| set.contains(member))
    }
}

fn bad_param(name: &str, detail: impl Into<String>) -> ApiError {
    ApiError::invalid_query_parameter(name, detail)
}

/// `filter[x]` → `("filter", Some("x"), "")`, `filter[id][]` → `("filter", Some("id"), "[]")`.
fn split_name(name: &str) -> (&str, Option<&str>, &str) {
    match name.find('[') {
        None => (name, None, ""),
        Some(open) => {
            let family = &name[..open];
            let rest = &name[open + 1..];
            match rest.find(']') {
                Some(close) => (family, Some(&rest[..close]), &rest[close + 1..]),
                None => (name, None, "?"),
            }
        }
    }
}

/// Parses and checks the raw query string for `schema` at an endpoint of `families`.
pub fn parse(
    raw: &str,
    schema: &'static ResourceSchema,
    families: Families,
    role: Role,
    now: Timestamp,
) -> Result<Params, ApiError> {
    let mut params = Params {
        include: Vec::new(),
        fields: BTreeMap::new(),
        sort: Vec::new(),
        cond: Cond::True,
        page_number: 1,
        page_size: DEFAULT_PAGE_SIZE,
        passthrough: Vec::new(),
    };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut id_filter: Vec<String> = Vec::new();
    let mut filters: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let (name, value) = (name.into_owned(), value.into_owned());
        let (family, inner, tail) = split_name(&name);
        let repeatable = name == "filter[id][]";
        let known = matches!(
            (family, inner, tail),
            ("include" | "sort", None, "")
                | ("fields" | "filter", Some(_), "")
                | ("filter", Some("id"), "[]")
                | ("page", Some("number" | "size"), "")
        );
        if !known {
            return Err(bad_param(
                &name,
                format!("{name} is not a supported query parameter"),
            ));
        }
        let allowed = match families {
            Families::Collection => true,
            Families::Single => matches!(family, "include" | "fields"),
            Families::PageOnly => family == "page",
            Families::Nothing => false,
        };
        if !allowed {
            return Err(bad_param(
                &name,
                format!("{name} is not supported on this endpoint"),
            ));
        }
        if !repeatable && !seen.insert(name.clone()) {
            return Err(bad_param(&name, format!("{name} is given more than once")));
        }
        if family != "page" {
            params.passthrough.push((name.clone(), value.clone()));
        }
        match (family, inner) {
            ("include", _) => params.include = parse_include(schema, &value, role)?,
            ("fields", Some(type_name)) => {
                let members = parse_fields(&name, type_name, &value, role)?;
                params.fields.insert(type_name.to_owned(), members);
            }
            ("sort", _) => params.sort = parse_sort(schema, &value)?,
            ("filter", Some("id")) if repeatable => id_filter.push(value),
            ("filter", Some(key)) => {
                if !schema.has_filter(key) {
                    return Err(ApiError::parameter(
                        ErrorCode::InvalidFilter,
                        &name,
                        format!("{key} is not a filter of {}", schema.type_name),
                    ));
                }
                let values = if key == "q" {
                    vec![value]
                } else {
                    value.split(',').map(str::to_owned).collect()
                };
                filters.push((key.to_owned(), values));
            }
            ("page", Some(which)) => {
                let number = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1 && (which == "number" || *n <= MAX_PAGE_SIZE))
                    .ok_or_else(|| {
                        ApiError::parameter(
                            ErrorCode::InvalidPageParameter,
                            &name,
                            if which == "size" {
                                format!("page[size] must be an integer from 1 to {MAX_PAGE_SIZE}")
                            } else {
                                "page[number] must be an integer of at least 1".to_owned()
                            },
                        )
                    })?;
                if which == "number" {
                    params.page_number = number;
                } else {
                    params.page_size = number;
                }
            }
            _ => {}
        }
    }
    if !id_filter.is_empty() {
        if filters.iter().any(|(k, _)| k == "id") {
            return Err(bad_param(
                "filter[id][]",
                "filter[id] and filter[id][] cannot be combined",
            ));
        }
        filters.push(("id".into(), id_filter));
    }
    for (key, values) in filters {
        let parameter = format!("filter[{key}]");
        let cond = schema
            .filter(&key, &values, now)
            .map_err(|detail| ApiError::invalid_filter(parameter, detail))?;
        params.cond = params.cond.and(cond);
    }
    if params.sort.is_empty() {
        params.sort.push(SortKey {
            column: "created_at".into(),
            descending: true,
        });
    }
    let descending = params.sort.last().is_some_and(|k| k.descending);
    params.sort.push(SortKey {
        column: "id".into(),
        descending,
    });
    Ok(params)
}

fn parse_include(
    schema: &'static ResourceSchema,
    value: &str,
    role: Role,
) -> Result<Vec<Vec<String>>, ApiError> {
    let invalid =
        |detail: String| ApiError::parameter(ErrorCode::InvalidInclude, "include", detail);
    let mut paths = Vec::new();
    for path in value.split(',') {
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.len() > MAX_INCLUDE_DEPTH {
            return Err(invalid(format!(
                "{path} is deeper than {MAX_INCLUDE_DEPTH}"
            )));
        }
        let mut current = schema;
        for segment in &segments {
            let rel = current
                .relationship(segment)
                .filter(|r| role == Role::Admin || !r.private)
                .ok_or_else(|| {
                    invalid(format!(
                        "{segment} is not a relationship of {}",
                        current.type_name
                    ))
                })?;
            current = resources::by_type(rel.target)
                .map(|r| r.schema())
                .ok_or_else(|| invalid(format!("{segment} cannot be included")))?;
        }
        paths.push(segments);
    }
    Ok(paths)
}

fn parse_fields(
    name: &str,
    type_name: &str,
    value: &str,
    role: Role,
) -> Result<BTreeSet<String>, ApiError> {
    let invalid = |detail: String| ApiError::parameter(ErrorCode::InvalidFields, name, detail);
    let schema = resources::by_type(type_name)
        .map(|r| r.schema())
        .ok_or_else(|| invalid(format!("{type_name} is not a resource type")))?;
    let mut members = BTreeSet::new();
    for member in value.split(',').filter(|m| !m.is_empty()) {
        if !schema.has_member(member, role) {
            return Err(invalid(format!("{member} is not a member of {type_name}")));
        }
        members.insert(member.to_owned());
    }
    Ok(members)
}

fn parse_sort(schema: &ResourceSchema, value: &str) -> Result<Vec<SortKey>, ApiError> {
    let mut keys = Vec::new();
    for field in value.split(',') {
        let (descending, name) = match field.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, field),
        };
        if !schema.is_sortable(name) {
            return Err(ApiError::parameter(
                ErrorCode::InvalidSort,
                "sort",
                format!("{name:?} is not sortable on {}", schema.type_name),
            ));
        }
        keys.push(SortKey {
            column: name.to_owned(),
            descending,
        });
    }
    Ok(keys)
}

/// `page[number]=2` style, with brackets percent-encoded as a URI-reference requires.
pub fn encode_pair(name: &str, value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b',');
    format!(
        "{}={}",
        percent_encoding::utf8_percent_encode(name, SET),
        percent_encoding::utf8_percent_encode(value, SET)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_domain::resources::users;

    fn users_query(raw: &str) -> Result<Params, ApiError> {
        parse(
            raw,
            &users::SCHEMA,
            Families::Collection,
            Role::Admin,
            Timestamp::from_millis(0),
        )
    }

    fn failing(raw: &str) -> (&'static str, Option<crate::http::error::Source>) {
        let err = users_query(raw).expect_err(raw);
        (err.code(), err.errors[0].source.clone())
    }

    #[test]
    fn defaults_to_newest_first_with_id_tiebreak() {
        let params = users_query("").unwrap();
        assert_eq!(params.sort.len(), 2);
        assert!(params.sort[0].descending && params.sort[1].descending);
        assert_eq!((params.page_number, params.page_size), (1, 20));
    }

    #[test]
    fn rejects_each_bad_family_with_its_parameter() {
        use crate::http::error::Source::Parameter;
        assert_eq!(
            failing("foo=1"),
            ("INVALID_QUERY_PARAMETER", Some(Parameter("foo".into())))
        );
        assert_eq!(failing("page[offset]=1").0, "INVALID_QUERY_PARAMETER");
        assert_eq!(failing("sort=name&sort=email").0, "INVALID_QUERY_PARAMETER");
        assert_eq!(
            failing("page[size]=101"),
            (
                "INVALID_PAGE_PARAMETER",
                Some(Parameter("page[size]".into()))
            )
        );
        assert_eq!(failing("page[number]=0").0, "INVALID_PAGE_PARAMETER");
        assert_eq!(
            failing("sort=password"),
            ("INVALID_SORT", Some(Parameter("sort".into())))
        );
        assert_eq!(
            failing("filter[nope]=1"),
            ("INVALID_FILTER", Some(Parameter("filter[nope]".into())))
        );
        assert_eq!(failing("filter[status]=sleeping").0, "INVALID_FILTER");
        assert_eq!(failing("include=plan.users.plan").0, "INVALID_INCLUDE");
        assert_eq!(failing("include=nothing").0, "INVALID_INCLUDE");
        assert_eq!(
            failing("fields[users]=password"),
            ("INVALID_FIELDS", Some(Parameter("fields[users]".into())))
        );
        assert_eq!(failing("fields[things]=a").0, "INVALID_FIELDS");
    }

    #[test]
    fn accepts_the_react_admin_id_list() {
        let params = users_query("filter[id][]=usr_01JD0R8D2S4F6H8K0M2P4R6T8V&filter[id][]=usr_01JD0R8D2S4F6H8K0M2P4R6T8W").unwrap();
        assert!(matches!(params.cond, Cond::In(ref c, ref v) if c == "id" && v.len() == 2));
    }

    #[test]
    fn encodes_brackets_in_links() {
        assert_eq!(encode_pair("page[number]", "2"), "page%5Bnumber%5D=2");
        assert_eq!(
            encode_pair("sort", "-created_at,name"),
            "sort=-created_at,name"
        );
    }
}
