//! The paths every resource type shares: collection, one resource, relationships.

use super::*;

pub(super) fn writable_paths(mut paths: PathsBuilder, schema: &ResourceSchema) -> PathsBuilder {
    let p = schema.path;
    let name = type_name_pascal(schema.type_name);
    let tag = p;
    paths = add(
        paths,
        &format!("/api/{p}"),
        HttpMethod::Get,
        Op::new(tag, format!("List {p}"))
            .params(list_parameters(schema))
            .returns(
                "200",
                "A page of resources.",
                Some(&format!("{name}CollectionDocument")),
            ),
    );
    paths = add(
        paths,
        &format!("/api/{p}"),
        HttpMethod::Post,
        Op::new(tag, format!("Create one of {p}"))
            .params(fields_and_include(Some(schema)))
            .body(&format!("{name}CreateRequest"))
            .returns("201", "Created.", Some(&format!("{name}Document"))),
    );
    paths = one_paths(paths, schema, true);
    paths
}

pub(super) fn read_only_paths(mut paths: PathsBuilder, schema: &ResourceSchema) -> PathsBuilder {
    let p = schema.path;
    let name = type_name_pascal(schema.type_name);
    if p != "webhook-deliveries" {
        paths = add(
            paths,
            &format!("/api/{p}"),
            HttpMethod::Get,
            Op::new(p, format!("List {p}"))
                .params(list_parameters(schema))
                .returns(
                    "200",
                    "A page of resources.",
                    Some(&format!("{name}CollectionDocument")),
                ),
        );
    }
    one_paths(paths, schema, false)
}

pub(super) fn rel_names(schema: &ResourceSchema) -> String {
    schema
        .relationships
        .iter()
        .map(|r| r.name)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn one_paths(
    mut paths: PathsBuilder,
    schema: &ResourceSchema,
    writable: bool,
) -> PathsBuilder {
    let p = schema.path;
    let name = type_name_pascal(schema.type_name);
    let one = format!("/api/{p}/{{id}}");
    paths = add(
        paths,
        &one,
        HttpMethod::Get,
        Op::new(p, format!("Fetch one of {p}"))
            .params(fields_and_include(Some(schema)))
            .returns("200", "The resource.", Some(&format!("{name}Document"))),
    );
    let linkage = format!("/api/{p}/{{id}}/relationships/{{rel}}");
    let related = format!("/api/{p}/{{id}}/{{rel}}");
    let rels = rel_names(schema);
    paths = add(
        paths,
        &linkage,
        HttpMethod::Get,
        Op::new(p, format!("Linkage of a relationship ({rels})")).returns(
            "200",
            "The linkage.",
            Some("LinkageDocument"),
        ),
    );
    paths = add(
        paths,
        &related,
        HttpMethod::Get,
        Op::new(p, format!("Related resources of a relationship ({rels})"))
            .params(
                [
                    query(
                        "page[number]",
                        ty(Type::Integer).minimum(Some(1.0)).into(),
                        "Page number (to-many relationships).",
                    ),
                    query(
                        "page[size]",
                        ty(Type::Integer)
                            .minimum(Some(1.0))
                            .maximum(Some(MAX_PAGE_SIZE as f64))
                            .into(),
                        "Page size (to-many relationships).",
                    ),
                    query("sort", string(), "Sort fields (to-many relationships)."),
                ]
                .into_iter()
                .chain(fields_and_include(None))
                .collect(),
            )
            .returns(
                "200",
                "The related resource or resources.",
                Some("AnyDocument"),
            ),
    );
    if !writable {
        return paths;
    }
    paths = add(
        paths,
        &one,
        HttpMethod::Patch,
        Op::new(p, format!("Update one of {p}"))
            .params(fields_and_include(Some(schema)))
            .body(&format!("{name}UpdateRequest"))
            .returns(
                "200",
                "The updated resource.",
                Some(&format!("{name}Document")),
            ),
    );
    paths = add(
        paths,
        &one,
        HttpMethod::Delete,
        Op::new(p, format!("Delete one of {p}")).returns("204", "Deleted.", None),
    );
    paths = add(
        paths,
        &linkage,
        HttpMethod::Patch,
        Op::new(p, "Replace the linkage of a writable relationship")
            .body("LinkageRequest")
            .returns("200", "The new linkage.", Some("LinkageDocument"))
            .returns("204", "Replaced.", None),
    );
    if p == "groups" {
        paths = add(
            paths,
            &linkage,
            HttpMethod::Post,
            Op::new(p, "Add members (`members` relationship)")
                .body("LinkageRequest")
                .returns("200", "The new linkage.", Some("LinkageDocument"))
                .returns("204", "Added.", None),
        );
        paths = add(
            paths,
            &linkage,
            HttpMethod::Delete,
            Op::new(p, "Remove members (`members` relationship)")
                .body("LinkageRequest")
                .returns("200", "The new linkage.", Some("LinkageDocument"))
                .returns("204", "Removed.", None),
        );
    }
    paths
}
