//! The `{name}` path parameters of every path template.

use super::*;

/// Declares every `{name}` of each path template as a required path parameter.
pub(super) fn declare_path_parameters(paths: &mut Paths) {
    for (path, item) in paths.paths.iter_mut() {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        if names.is_empty() {
            continue;
        }
        let parameters = names
            .into_iter()
            .map(|name| {
                let description = match name {
                    "id" => "Id of the resource.",
                    "rel" => "Name of a relationship of the type.",
                    "did" => "Id of the delivery.",
                    _ => "Path segment.",
                };
                let schema = match (name, rels_of_path(path)) {
                    ("rel", Some(rels)) if !rels.is_empty() => {
                        ty(Type::String).enum_values(Some(rels)).into()
                    }
                    _ => string(),
                };
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(schema))
                    .description(Some(description))
                    .build()
            })
            .map(RefOr::T)
            .collect();
        item.parameters = Some(parameters);
    }
}

/// The relationship names of the type behind `/api/{path}/...`.
pub(super) fn rels_of_path(path: &str) -> Option<Vec<&'static str>> {
    let segment = path.strip_prefix("/api/")?.split('/').next()?;
    let rules = domain_resources::ALL
        .into_iter()
        .chain(domain_resources::READ_ONLY)
        .find(|r| r.schema().path == segment)?;
    Some(
        rules
            .schema()
            .relationships
            .iter()
            .map(|r| r.name)
            .collect(),
    )
}
