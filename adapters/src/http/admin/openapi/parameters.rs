//! Query parameters: sparse fieldsets, `include`, and the filters, sort and pages of a
//! collection.

use super::*;

pub(super) fn query(name: &str, schema: RefOr<Schema>, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

/// `fields[type]` for the type and every type it can include, and `include`.
pub(super) fn fields_and_include(schema: Option<&ResourceSchema>) -> Vec<Parameter> {
    let Some(schema) = schema else {
        return vec![
            query(
                "fields[TYPE]",
                string(),
                "Sparse fieldset: comma-separated members of type TYPE to render (e.g. `fields[users]=email,name`).",
            ),
            query(
                "include",
                string(),
                "Comma-separated relationship paths to include (at most two levels deep).",
            ),
        ];
    };
    let mut types = vec![schema.type_name];
    for rel in schema.relationships {
        if !types.contains(&rel.target) {
            types.push(rel.target);
        }
    }
    let mut params: Vec<Parameter> = types
        .into_iter()
        .map(|type_name| {
            query(
                &format!("fields[{type_name}]"),
                string(),
                &format!("Sparse fieldset: comma-separated members of `{type_name}` to render."),
            )
        })
        .collect();
    params.push(query(
        "include",
        string(),
        &format!(
            "Comma-separated relationship paths to include (at most two levels deep). \
             Relationships of this type: {}.",
            rel_names(schema)
        ),
    ));
    params
}

pub(super) fn list_parameters(schema: &ResourceSchema) -> Vec<Parameter> {
    let mut sorts: Vec<String> = ["created_at", "updated_at"]
        .into_iter()
        .chain(schema.sorts.iter().copied())
        .flat_map(|s| [s.to_owned(), format!("-{s}")])
        .collect();
    sorts.dedup();
    let mut params = vec![
        query(
            "page[number]",
            ty(Type::Integer).minimum(Some(1.0)).into(),
            "Page number, from 1.",
        ),
        query(
            "page[size]",
            ty(Type::Integer)
                .minimum(Some(1.0))
                .maximum(Some(MAX_PAGE_SIZE as f64))
                .into(),
            "Page size.",
        ),
        query(
            "sort",
            ty(Type::String).into(),
            &format!(
                "Comma-separated sort fields, `-` for descending. Allowed: {}.",
                sorts.join(", ")
            ),
        ),
        query("filter[id]", string(), "Comma-separated ids (at most 100)."),
        query(
            "filter[created_after]",
            ty(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
                .into(),
            "Created at or after this RFC 3339 time.",
        ),
        query(
            "filter[created_before]",
            ty(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
                .into(),
            "Created before this RFC 3339 time.",
        ),
    ];
    if !schema.search.is_empty() {
        params.push(query(
            "filter[q]",
            ty(Type::String)
                .min_length(Some(1))
                .max_length(Some(100))
                .into(),
            &format!("Case-insensitive search in {}.", schema.search.join(", ")),
        ));
    }
    for filter in schema.filters {
        let (param_schema, description) = match filter.kind {
            tollgate_domain::schema::FilterKind::Attr(_, AttrType::Enum(values)) => (
                ty(Type::String).into(),
                format!("Comma-separated values (any of): {}.", values.join(", ")),
            ),
            tollgate_domain::schema::FilterKind::Attr(..) => {
                (string(), "Comma-separated values (any of).".to_owned())
            }
            tollgate_domain::schema::FilterKind::ToOne(_)
            | tollgate_domain::schema::FilterKind::ToOneThroughOwner { .. } => (
                string(),
                "Comma-separated ids of the related resource; `none` = no linkage.".to_owned(),
            ),
            tollgate_domain::schema::FilterKind::Custom(_) => (string(), "Filter.".to_owned()),
        };
        params.push(query(
            &format!("filter[{}]", filter.name),
            param_schema,
            &description,
        ));
    }
    params.extend(fields_and_include(Some(schema)));
    params
}
