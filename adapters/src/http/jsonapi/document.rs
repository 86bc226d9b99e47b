//! Documents: the one builder of every response document's top level (`jsonapi`, `links`),
//! and request documents (jsonapi.md §2, §4, §11, §12): envelope checks with precise pointers,
//! then a [`WriteInput`] for the use case.

use serde_json::{Map, Value, json};
use tollgate_domain::service::{Identifier, RelInput, WriteInput};

use crate::http::error::{ApiError, ErrorCode};

/// Where every response document's `links.describedby` points.
pub const DESCRIBED_BY: &str = "/docs/openapi.json";

/// The top level of a response document: `{"jsonapi": {"version": "1.1"}}` first, then the
/// members in the order they are added.
#[derive(Debug, Clone)]
pub struct Document(Map<String, Value>);

impl Default for Document {
    fn default() -> Self {
        Self::new()
    }
}

impl Document {
    pub fn new() -> Self {
        let mut top = Map::new();
        top.insert("jsonapi".into(), json!({"version": "1.1"}));
        Self(top)
    }

    /// Adds (or replaces) one top-level member.
    pub fn member(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    /// `links`: `self`, `related` when given, `describedby`, then `extra` (pagination).
    pub fn links(self, self_href: impl Into<String>, related: Option<String>) -> Self {
        self.links_with(self_href, related, Map::new())
    }

    pub fn links_with(
        self,
        self_href: impl Into<String>,
        related: Option<String>,
        extra: Map<String, Value>,
    ) -> Self {
        let mut links = Map::new();
        links.insert("self".into(), Value::String(self_href.into()));
        if let Some(related) = related {
            links.insert("related".into(), Value::String(related));
        }
        links.insert("describedby".into(), Value::String(DESCRIBED_BY.into()));
        links.extend(extra);
        self.member("links", Value::Object(links))
    }

    pub fn build(self) -> Value {
        Value::Object(self.0)
    }
}

/// What the endpoint expects in `data`.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// POST: no `id`.
    Create { type_name: &'a str },
    /// PATCH: `id` equal to the URL's.
    Update { type_name: &'a str, id: &'a str },
    /// Auth bodies: a fixed type, no id.
    Fixed { type_name: &'a str },
}

fn invalid(pointer: &str, detail: impl Into<String>) -> ApiError {
    ApiError::invalid_document(pointer, detail)
}

/// Parses JSON (400 `INVALID_JSON`) and checks the top level: an object with `data`.
pub fn parse_top(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(invalid("", "a JSON:API document is required"));
    }
    let value: Value = serde_json::from_slice(body).map_err(ApiError::invalid_json)?;
    let Value::Object(top) = value else {
        return Err(invalid("", "the document must be a JSON object"));
    };
    for key in top.keys() {
        match key.as_str() {
            "data" | "meta" | "jsonapi" => {}
            "included" => return Err(invalid("/included", "included is not allowed in a request")),
            other => {
                return Err(invalid(
                    &format!("/{other}"),
                    format!("{other} is not allowed at the top level"),
                ));
            }
        }
    }
    Ok(top)
}

/// A resource object of a write request → the use case's input.
pub fn parse_resource(body: &[u8], expect: Expect<'_>) -> Result<WriteInput, ApiError> {
    let mut top = parse_top(body)?;
    let data = match top.remove("data") {
        Some(Value::Object(data)) => data,
        Some(_) => return Err(invalid("/data", "data must be a resource object")),
        None => return Err(invalid("", "data is required")),
    };
    for key in data.keys() {
        if !matches!(
            key.as_str(),
            "type" | "id" | "lid" | "attributes" | "relationships" | "links" | "meta"
        ) {
            return Err(invalid(
                &format!("/data/{key}"),
                format!("{key} is not a member of a resource object"),
            ));
        }
    }
    let type_name = match data.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(invalid("/data/type", "type must be a string")),
        None => return Err(invalid("/data/type", "type is required")),
    };
    if let Some(lid) = data.get("lid")
        && !lid.is_string()
    {
        return Err(invalid("/data/lid", "lid must be a string"));
    }
    let attributes = match data.get("attributes") {
        None => Vec::new(),
        Some(Value::Object(attrs)) => attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(_) => return Err(invalid("/data/attributes", "attributes must be an object")),
    };
    let relationships = match data.get("relationships") {
        None => Vec::new(),
        Some(Value::Object(rels)) => rels
            .iter()
            .map(|(name, rel)| {
                let pointer = format!("/data/relationships/{name}");
                match rel {
                    Value::Object(obj) => match obj.get("data") {
                        Some(linkage) => Ok((
                            name.clone(),
                            parse_linkage(linkage, &format!("{pointer}/data"))?,
                        )),
                        None => Err(invalid(&pointer, "a relationship needs data")),
                    },
                    _ => Err(invalid(&pointer, "a relationship must be an object")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(invalid(
                "/data/relationships",
                "relationships must be an object",
            ));
        }
    };
    let id = data.get("id");
    match expect {
        Expect::Create { type_name: wanted } | Expect::Fixed { type_name: wanted } => {
            if id.is_some() {
                return Err(ApiError::pointer(
                    ErrorCode::ClientIdNotAllowed,
                    "/data/id",
                    "ids are assigned by the server",
                ));
            }
            if type_name != wanted {
                return Err(type_mismatch(wanted, type_name));
            }
        }
        Expect::Update {
            type_name: wanted,
            id: url_id,
        } => {
            let id = match id {
                Some(Value::String(id)) => id,
                Some(_) => return Err(invalid("/data/id", "id must be a string")),
                None => return Err(invalid("/data/id", "id is required")),
            };
            if type_name != wanted {
                return Err(type_mismatch(wanted, type_name));
            }
            if id != url_id {
                return Err(ApiError::pointer(
                    ErrorCode::IdMismatch,
                    "/data/id",
                    "data.id must equal the id in the URL",
                ));
            }
        }
    }
    Ok(WriteInput {
        attributes,
        relationships,
    })
}

fn type_mismatch(wanted: &str, got: &str) -> ApiError {
    ApiError::type_mismatch(
        "/data/type",
        format!("this endpoint takes {wanted}, not {got}"),
    )
}

/// A relationship-endpoint body: `{"data": linkage}`.
pub fn parse_linkage_document(body: &[u8]) -> Result<RelInput, ApiError> {
    let mut top = parse_top(body)?;
    match top.remove("data") {
        Some(linkage) => parse_linkage(&linkage, "/data"),
        None => Err(invalid("", "data is required")),
    }
}

/// `null`, `{type,id}` or an array of them.
pub fn parse_linkage(value: &Value, pointer: &str) -> Result<RelInput, ApiError> {
    match value {
        Value::Null => Ok(RelInput::One(None)),
        Value::Object(_) => Ok(RelInput::One(Some(parse_identifier(value, pointer)?))),
        Value::Array(items) => Ok(RelInput::Many(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_identifier(item, &format!("{pointer}/{i}")))
                .collect::<Result<_, _>>()?,
        )),
        _ => Err(invalid(
            pointer,
            "linkage must be null, a resource identifier or an array of them",
        )),
    }
}

fn parse_identifier(value: &Value, pointer: &str) -> Result<Identifier, ApiError> {
    let Value::Object(obj) = value else {
        return Err(invalid(pointer, "a resource identifier must be an object"));
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "type" | "id" | "lid" | "meta") {
            return Err(invalid(
                &format!("{pointer}/{key}"),
                format!("{key} is not a member of a resource identifier"),
            ));
        }
    }
    let type_name = match obj.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            return Err(invalid(
                &format!("{pointer}/type"),
                "a resource identifier needs a string type",
            ));
        }
    };
    let id = match (obj.get("id"), obj.get("lid")) {
        (Some(Value::String(id)), _) => id.clone(),
        (None, Some(Value::String(_))) => {
            return Err(ApiError::pointer(
                ErrorCode::RelatedNotFound,
                pointer,
                "a local id (lid) refers to nothing in this request",
            ));
        }
        _ => {
            return Err(invalid(
                &format!("{pointer}/id"),
                "a resource identifier needs a string id",
            ));
        }
    };
    let meta = match obj.get("meta") {
        None => None,
        Some(meta @ Value::Object(_)) => Some(meta.clone()),
        Some(_) => {
            return Err(invalid(
                &format!("{pointer}/meta"),
                "meta must be an object",
            ));
        }
    };
    Ok(Identifier {
        type_name,
        id,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str, expect: Expect<'_>) -> (&'static str, Option<crate::http::error::Source>) {
        let err = parse_resource(body.as_bytes(), expect).expect_err(body);
        (err.code(), err.errors[0].source.clone())
    }

    const CREATE: Expect<'static> = Expect::Create { type_name: "plans" };

    #[test]
    fn envelope_errors_point_at_the_culprit() {
        use crate::http::error::Source::Pointer;
        assert_eq!(code("{", CREATE), ("INVALID_JSON", None));
        assert_eq!(
            code("[]", CREATE),
            ("INVALID_DOCUMENT", Some(Pointer("".into())))
        );
        assert_eq!(
            code("{}", CREATE),
            ("INVALID_DOCUMENT", Some(Pointer("".into())))
        );
        assert_eq!(
            code(r#"{"data":[]}"#, CREATE),
            ("INVALID_DOCUMENT", Some(Pointer("/data".into())))
        );
        assert_eq!(
            code(r#"{"data":{}}"#, CREATE),
            ("INVALID_DOCUMENT", Some(Pointer("/data/type".into())))
        );
        assert_eq!(
            code(r#"{"data":{"type":"plans"},"included":[]}"#, CREATE).0,
            "INVALID_DOCUMENT"
        );
        assert_eq!(
            code(r#"{"data":{"type":"plans","id":"x"}}"#, CREATE),
            ("CLIENT_ID_NOT_ALLOWED", Some(Pointer("/data/id".into())))
        );
        assert_eq!(
            code(r#"{"data":{"type":"users"}}"#, CREATE),
            ("TYPE_MISMATCH", Some(Pointer("/data/type".into())))
        );
        assert_eq!(
            code(r#"{"data":{"type":"plans","lid":5}}"#, CREATE),
            ("INVALID_DOCUMENT", Some(Pointer("/data/lid".into())))
        );
        let update = Expect::Update {
            type_name: "plans",
            id: "pln_1",
        };
        assert_eq!(
            code(r#"{"data":{"type":"plans"}}"#, update),
            ("INVALID_DOCUMENT", Some(Pointer("/data/id".into())))
        );
        assert_eq!(
            code(r#"{"data":{"type":"plans","id":"pln_2"}}"#, update),
            ("ID_MISMATCH", Some(Pointer("/data/id".into())))
        );
        assert_eq!(
            code(
                r#"{"data":{"type":"plans","relationships":{"x":{"data":5}}}}"#,
                CREATE
            ),
            (
                "INVALID_DOCUMENT",
                Some(Pointer("/data/relationships/x/data".into()))
            )
        );
    }

    #[test]
    fn keeps_attribute_order_and_linkage() {
        let input = parse_resource(
            br#"{"data":{"type":"plans","lid":"a","attributes":{"z":1,"a":2},"relationships":{"users":{"data":[{"type":"users","id":"usr_1"}]}}}}"#,
            CREATE,
        )
        .unwrap();
        assert_eq!(input.attributes[0].0, "z");
        assert!(
            matches!(&input.relationships[0].1, RelInput::Many(items) if items[0].id == "usr_1")
        );
    }
}
