//! Declarative resource descriptions. A resource module states its attributes, relationships,
//! sorts and filters once; the generic use cases and the JSON:API layer enforce them.

use serde_json::{Map, Value, json};

use crate::{
    Role, Timestamp,
    query::{CmpOp, Cond},
};

/// A stored record in its canonical form: column name → JSON value (timestamps as epoch ms).
pub type Row = Map<String, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCreate {
    Required,
    Optional,
    /// Not settable by clients.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUpdate {
    Yes,
    AdminOnly,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    Text { min: usize, max: usize },
    Int { min: i64, max: i64 },
    Bool,
    Enum(&'static [&'static str]),
    Timestamp,
    TextList { max_items: usize },
    Object,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    Null,
    Text(&'static str),
    Int(i64),
    Bool(bool),
    EmptyList,
    EmptyObject,
}

impl Default {
    pub fn value(self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Text(t) => json!(t),
            Self::Int(i) => json!(i),
            Self::Bool(b) => json!(b),
            Self::EmptyList => json!([]),
            Self::EmptyObject => json!({}),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct AttrSpec {
    pub name: &'static str,
    pub ty: AttrType,
    pub nullable: bool,
    pub on_create: OnCreate,
    pub on_update: OnUpdate,
    /// Accepted on input, never rendered (passwords, credentials).
    pub write_only: bool,
    /// Hidden from the `user` role.
    pub private: bool,
    pub default: Default,
}

impl AttrSpec {
    pub const fn new(name: &'static str, ty: AttrType) -> Self {
        Self {
            name,
            ty,
            nullable: false,
            on_create: OnCreate::Optional,
            on_update: OnUpdate::Yes,
            write_only: false,
            private: false,
            default: Default::Null,
        }
    }
    pub const fn text(name: &'static str, min: usize, max: usize) -> Self {
        Self::new(name, AttrType::Text { min, max })
    }
    pub const fn int(name: &'static str, min: i64, max: i64) -> Self {
        Self::new(name, AttrType::Int { min, max })
    }
    pub const fn boolean(name: &'static str) -> Self {
        Self::new(name, AttrType::Bool)
    }
    pub const fn one_of(name: &'static str, values: &'static [&'static str]) -> Self {
        Self::new(name, AttrType::Enum(values))
    }
    pub const fn timestamp(name: &'static str) -> Self {
        Self::new(name, AttrType::Timestamp)
    }
    pub const fn required(mut self) -> Self {
        self.on_create = OnCreate::Required;
        self
    }
    pub const fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }
    pub const fn read_only(mut self) -> Self {
        self.on_create = OnCreate::Never;
        self.on_update = OnUpdate::Never;
        self
    }
    pub const fn create_only(mut self) -> Self {
        self.on_update = OnUpdate::Never;
        self
    }
    pub const fn admin_only(mut self) -> Self {
        self.on_update = OnUpdate::AdminOnly;
        self
    }
    pub const fn write_only(mut self) -> Self {
        self.write_only = true;
        self
    }
    pub const fn private(mut self) -> Self {
        self.private = true;
        self
    }
    pub const fn default(mut self, default: Default) -> Self {
        self.default = default;
        self
    }
}

/// The two timestamps every resource carries.
pub const CREATED_AT: AttrSpec = AttrSpec::timestamp("created_at").read_only();
pub const UPDATED_AT: AttrSpec = AttrSpec::timestamp("updated_at").read_only();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToMany {
    /// Targets whose `column` holds this resource's id.
    Reverse { column: &'static str },
    /// Targets linked through a join table (`own` = this id, `other` = target id).
    Join {
        table: &'static str,
        own: &'static str,
        other: &'static str,
        /// A join column rendered as `meta.role` on each identifier.
        role_column: Option<&'static str>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    ToOne {
        column: &'static str,
        nullable: bool,
    },
    ToMany(ToMany),
}

#[derive(Debug, Clone, Copy)]
pub struct RelSpec {
    pub name: &'static str,
    /// Type (and table) of the related resources.
    pub target: &'static str,
    pub kind: RelKind,
    pub on_create: OnCreate,
    pub on_update: OnUpdate,
    pub private: bool,
}

impl RelSpec {
    pub const fn to_one(name: &'static str, target: &'static str, column: &'static str) -> Self {
        Self {
            name,
            target,
            kind: RelKind::ToOne {
                column,
                nullable: false,
            },
            on_create: OnCreate::Never,
            on_update: OnUpdate::Never,
            private: false,
        }
    }
    pub const fn to_many(name: &'static str, target: &'static str, via: ToMany) -> Self {
        Self {
            name,
            target,
            kind: RelKind::ToMany(via),
            on_create: OnCreate::Never,
            on_update: OnUpdate::Never,
            private: false,
        }
    }
    pub const fn nullable(mut self) -> Self {
        if let RelKind::ToOne { column, .. } = self.kind {
            self.kind = RelKind::ToOne {
                column,
                nullable: true,
            };
        }
        self
    }
    pub const fn writable(mut self, on_create: OnCreate, on_update: OnUpdate) -> Self {
        self.on_create = on_create;
        self.on_update = on_update;
        self
    }
    pub const fn private(mut self) -> Self {
        self.private = true;
        self
    }
    pub fn is_to_many(&self) -> bool {
        matches!(self.kind, RelKind::ToMany(_))
    }
}

/// How a `filter[name]` value is read.
#[derive(Debug, Clone, Copy)]
pub enum FilterKind {
    /// Exact match on a column; comma list = OR.
    Attr(&'static str, AttrType),
    /// Linkage equals the id (`none` = null).
    ToOne(&'static str),
    /// Like `ToOne`, and the rows must also belong to the related rows' owners (`owner IN
    /// (SELECT owner FROM table WHERE id IN …)`): the same rows, found through the owner's
    /// index where the linkage column has none.
    ToOneThroughOwner {
        column: &'static str,
        table: &'static str,
        owner: &'static str,
    },
    /// Anything else: a function from the raw values to a condition.
    Custom(fn(&[String], Timestamp) -> Result<Cond, String>),
}

#[derive(Debug, Clone, Copy)]
pub struct FilterSpec {
    pub name: &'static str,
    pub kind: FilterKind,
}

impl FilterSpec {
    pub const fn attr(spec: AttrSpec) -> Self {
        Self {
            name: spec.name,
            kind: FilterKind::Attr(spec.name, spec.ty),
        }
    }
    pub const fn to_one(name: &'static str, column: &'static str) -> Self {
        Self {
            name,
            kind: FilterKind::ToOne(column),
        }
    }
    pub const fn to_one_through_owner(
        name: &'static str,
        column: &'static str,
        table: &'static str,
        owner: &'static str,
    ) -> Self {
        Self {
            name,
            kind: FilterKind::ToOneThroughOwner {
                column,
                table,
                owner,
            },
        }
    }
    pub const fn custom(
        name: &'static str,
        f: fn(&[String], Timestamp) -> Result<Cond, String>,
    ) -> Self {
        Self {
            name,
            kind: FilterKind::Custom(f),
        }
    }
}

#[derive(Debug)]
pub struct ResourceSchema {
    /// JSON:API `type`, also the table name.
    pub type_name: &'static str,
    /// Path segment under `/api` (`api-keys`).
    pub path: &'static str,
    pub id_prefix: &'static str,
    /// Deleted rows keep a `deleted_at` and vanish from the API.
    pub soft_delete: bool,
    pub attributes: &'static [AttrSpec],
    pub relationships: &'static [RelSpec],
    /// Sortable attributes besides `created_at` and `updated_at`.
    pub sorts: &'static [&'static str],
    /// Filters besides `id`, `created_after`, `created_before` (and `q` where `search` is set).
    pub filters: &'static [FilterSpec],
    /// Columns `filter[q]` searches; empty = no `q` filter.
    pub search: &'static [&'static str],
}

pub const MAX_ID_FILTER: usize = 100;

impl ResourceSchema {
    pub fn attribute(&self, name: &str) -> Option<&'static AttrSpec> {
        self.attributes
            .iter()
            .chain([&CREATED_AT, &UPDATED_AT])
            .find(|a| a.name == name)
    }

    /// All attributes, the two timestamps last.
    pub fn all_attributes(&self) -> impl Iterator<Item = &'static AttrSpec> {
        self.attributes.iter().chain([&CREATED_AT, &UPDATED_AT])
    }

    pub fn relationship(&self, name: &str) -> Option<&'static RelSpec> {
        self.relationships.iter().find(|r| r.name == name)
    }

    /// Whether `name` is an attribute or relationship a sparse fieldset may name.
    pub fn has_member(&self, name: &str, role: Role) -> bool {
        self.attribute(name)
            .is_some_and(|a| !a.write_only && (role == Role::Admin || !a.private))
            || self
                .relationship(name)
                .is_some_and(|r| role == Role::Admin || !r.private)
    }

    pub fn is_sortable(&self, name: &str) -> bool {
        name == "created_at" || name == "updated_at" || self.sorts.contains(&name)
    }

    /// Turns one `filter[name]=values` into a condition; `Err` carries the reason.
    pub fn filter(&self, name: &str, values: &[String], now: Timestamp) -> Result<Cond, String> {
        match name {
            "id" => {
                if values.is_empty() || values.len() > MAX_ID_FILTER {
                    return Err(format!("between 1 and {MAX_ID_FILTER} ids"));
                }
                Ok(Cond::is_in("id", values.iter().map(|v| json!(v)).collect()))
            }
            "created_after" | "created_before" => {
                let [one] = values else {
                    return Err("one RFC 3339 timestamp".into());
                };
                let at = Timestamp::parse_rfc3339(one)
                    .ok_or_else(|| format!("{one:?} is not an RFC 3339 timestamp"))?;
                let op = if name == "created_after" {
                    CmpOp::Ge
                } else {
                    CmpOp::Lt
                };
                Ok(Cond::cmp("created_at", op, at.millis()))
            }
            "q" if !self.search.is_empty() => {
                let text = values.join(",");
                let len = text.chars().count();
                if !(1..=100).contains(&len) {
                    return Err("q must be 1 to 100 characters".into());
                }
                Ok(Cond::Search(
                    self.search.iter().map(|c| (*c).to_owned()).collect(),
                    text.to_lowercase(),
                ))
            }
            _ => {
                let spec = self
                    .filters
                    .iter()
                    .find(|f| f.name == name)
                    .ok_or_else(|| format!("unknown filter {name}"))?;
                match spec.kind {
                    FilterKind::Attr(column, ty) => {
                        let parsed = values
                            .iter()
                            .map(|v| filter_value(ty, v))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Cond::is_in(column, parsed))
                    }
                    FilterKind::ToOne(column) | FilterKind::ToOneThroughOwner { column, .. } => {
                        let (none, ids): (Vec<_>, Vec<_>) =
                            values.iter().partition(|v| v.as_str() == "none");
                        let mut any = Vec::new();
                        if !none.is_empty() {
                            any.push(Cond::is_null(column));
                        }
                        if !ids.is_empty() {
                            let ids: Vec<Value> = ids.iter().map(|v| json!(v)).collect();
                            let linked = Cond::is_in(column, ids.clone());
                            any.push(match spec.kind {
                                FilterKind::ToOneThroughOwner { table, owner, .. } => {
                                    linked.and(Cond::InSelect {
                                        column: owner.to_owned(),
                                        table: table.to_owned(),
                                        select: owner.to_owned(),
                                        cond: Box::new(Cond::is_in("id", ids)),
                                    })
                                }
                                _ => linked,
                            });
                        }
                        Ok(if any.len() == 1 {
                            any.remove(0)
                        } else {
                            Cond::Any(any)
                        })
                    }
                    FilterKind::Custom(f) => f(values, now),
                }
            }
        }
    }

    /// Whether `filter[name]` exists on this type.
    pub fn has_filter(&self, name: &str) -> bool {
        matches!(name, "id" | "created_after" | "created_before")
            || (name == "q" && !self.search.is_empty())
            || self.filters.iter().any(|f| f.name == name)
    }

    /// The attributes a caller of `role` sees, in declaration order, in wire form.
    pub fn render_attributes(&self, row: &Row, role: Role) -> Map<String, Value> {
        self.all_attributes()
            .filter(|a| !a.write_only && (role == Role::Admin || !a.private))
            .map(|a| {
                let raw = row.get(a.name).cloned().unwrap_or(Value::Null);
                (a.name.to_owned(), to_wire(a.ty, raw))
            })
            .collect()
    }

    /// Linkage of a to-one relationship, read from the row.
    pub fn to_one_linkage(&self, rel: &RelSpec, row: &Row) -> Value {
        match rel.kind {
            RelKind::ToOne { column, .. } => match row.get(column) {
                Some(Value::String(id)) => json!({"type": rel.target, "id": id}),
                _ => Value::Null,
            },
            RelKind::ToMany(_) => Value::Null,
        }
    }

    /// The resource as a webhook payload shows it: attributes plus to-one linkage, no links.
    pub fn public_object(&self, row: &Row) -> Value {
        let relationships: Map<String, Value> = self
            .relationships
            .iter()
            .filter(|r| !r.is_to_many())
            .map(|r| {
                (
                    r.name.to_owned(),
                    json!({"data": self.to_one_linkage(r, row)}),
                )
            })
            .collect();
        json!({
            "type": self.type_name,
            "id": row.get("id").cloned().unwrap_or(Value::Null),
            "attributes": self.render_attributes(row, Role::Admin),
            "relationships": relationships,
        })
    }
}

/// Canonical → wire: timestamps become RFC 3339 strings.
pub fn to_wire(ty: AttrType, raw: Value) -> Value {
    match (ty, &raw) {
        (AttrType::Timestamp, Value::Number(n)) => n
            .as_i64()
            .map(|ms| json!(Timestamp::from_millis(ms).to_string()))
            .unwrap_or(raw),
        _ => raw,
    }
}

/// Checks a client-supplied attribute value and brings it to canonical form
/// (strings trimmed, timestamps as epoch milliseconds). `Err` is the 422 detail.
pub fn coerce(spec: &AttrSpec, value: &Value) -> Result<Value, String> {
    let name = spec.name;
    if value.is_null() {
        return if spec.nullable {
            Ok(Value::Null)
        } else {
            Err(format!("{name} must not be null"))
        };
    }
    match spec.ty {
        AttrType::Text { min, max } => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("{name} must be a string"))?
                .trim();
            let len = text.chars().count();
            if len < min || len > max {
                return Err(if min == 0 {
                    format!("{name} must be at most {max} characters")
                } else {
                    format!("{name} must be {min} to {max} characters")
                });
            }
            Ok(json!(text))
        }
        AttrType::Int { min, max } => {
            let n = value
                .as_i64()
                .filter(|_| value.is_i64() || value.is_u64())
                .ok_or_else(|| format!("{name} must be an integer"))?;
            if n < min || n > max {
                return Err(format!("{name} must be between {min} and {max}"));
            }
            Ok(json!(n))
        }
        AttrType::Bool => value
            .as_bool()
            .map(|b| json!(b))
            .ok_or_else(|| format!("{name} must be true or false")),
        AttrType::Enum(allowed) => match value.as_str() {
            Some(v) if allowed.contains(&v) => Ok(json!(v)),
            _ => Err(format!("{name} must be one of {}", allowed.join(", "))),
        },
        AttrType::Timestamp => value
            .as_str()
            .and_then(Timestamp::parse_rfc3339)
            .map(|t| json!(t.millis()))
            .ok_or_else(|| format!("{name} must be an RFC 3339 timestamp")),
        AttrType::TextList { max_items } => {
            let items = value
                .as_array()
                .ok_or_else(|| format!("{name} must be an array of strings"))?;
            if items.len() > max_items {
                return Err(format!("{name} takes at most {max_items} entries"));
            }
            items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(|s| json!(s.trim()))
                        .ok_or_else(|| format!("{name} must be an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        AttrType::Object => {
            if value.is_object() {
                Ok(value.clone())
            } else {
                Err(format!("{name} must be an object"))
            }
        }
    }
}

fn filter_value(ty: AttrType, raw: &str) -> Result<Value, String> {
    match ty {
        AttrType::Bool => match raw {
            "true" => Ok(json!(true)),
            "false" => Ok(json!(false)),
            _ => Err(format!("{raw:?} is not true or false")),
        },
        AttrType::Int { .. } => raw
            .parse::<i64>()
            .map(|n| json!(n))
            .map_err(|_| format!("{raw:?} is not an integer")),
        AttrType::Enum(allowed) => {
            if allowed.contains(&raw) {
                Ok(json!(raw))
            } else {
                Err(format!("{raw:?} is not one of {}", allowed.join(", ")))
            }
        }
        AttrType::Timestamp => Timestamp::parse_rfc3339(raw)
            .map(|t| json!(t.millis()))
            .ok_or_else(|| format!("{raw:?} is not an RFC 3339 timestamp")),
        _ => Ok(json!(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coerce_trims_and_counts_scalar_values() {
        let spec = AttrSpec::text("name", 1, 3);
        assert_eq!(coerce(&spec, &json!("  äöü ")), Ok(json!("äöü")));
        assert!(coerce(&spec, &json!("abcd")).is_err());
        assert!(coerce(&spec, &json!("   ")).is_err());
        assert!(coerce(&spec, &json!(5)).is_err());
        assert!(coerce(&spec, &Value::Null).is_err());
    }

    #[test]
    fn coerce_checks_integer_ranges_and_rejects_floats() {
        let spec = AttrSpec::int("n", 0, 10);
        assert_eq!(coerce(&spec, &json!(10)), Ok(json!(10)));
        assert!(coerce(&spec, &json!(11)).is_err());
        assert!(coerce(&spec, &json!(1.5)).is_err());
        assert!(coerce(&spec, &json!("1")).is_err());
    }

    #[test]
    fn timestamps_travel_as_millis_inside_and_rfc3339_outside() {
        let spec = AttrSpec::timestamp("at").nullable();
        let canonical = coerce(&spec, &json!("2025-01-19T10:30:00Z")).unwrap();
        assert_eq!(canonical, json!(1_737_282_600_000_i64));
        assert_eq!(
            to_wire(spec.ty, canonical),
            json!("2025-01-19T10:30:00.000Z")
        );
        assert_eq!(coerce(&spec, &Value::Null), Ok(Value::Null));
    }
}
