//! The OpenAPI description of the usage read endpoints (`/api/usage/summary`, `/series`,
//! `/export`), kept next to their handlers' rules: the enums come from the domain's lists, so
//! the document cannot drift from what the handlers accept.

use tollgate_domain::proxy::usage_report::{EXPORT_COLUMNS, FILTERS, GROUP_BY, INTERVALS, PERIODS};

use super::*;

fn one_of(values: &[&str]) -> RefOr<Schema> {
    ty(Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
}

fn filters() -> impl Iterator<Item = Parameter> {
    FILTERS.iter().map(|name| {
        query(
            &format!("filter[{name}]"),
            ty(Type::String).into(),
            &format!("Only this {name} (comma-separated ids, `none` for anonymous traffic)."),
        )
    })
}

/// The numbers of a summary's totals and of each series point.
fn totals() -> ObjectBuilder {
    tollgate_domain::proxy::usage::TOTAL_FIELDS
        .iter()
        .fold(ty(Type::Object), |o, name| {
            o.property(*name, ty(Type::Integer)).required(*name)
        })
}

fn meta_document(meta: ObjectBuilder) -> RefOr<Schema> {
    ty(Type::Object)
        .property("jsonapi", ty(Type::Object))
        .property("meta", meta)
        .required("meta")
        .into()
}

fn operation(
    id: &str,
    summary: &str,
    params: Vec<Parameter>,
    ok: ResponseBuilder,
) -> utoipa::openapi::path::Operation {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .tag("usage")
        .parameters(Some(params))
        .response("200", ok.build())
        .response(
            "default",
            ResponseBuilder::new()
                .description("A JSON:API error document.")
                .content(
                    JSONAPI,
                    ContentBuilder::new()
                        .schema(Some(RefOr::<Schema>::Ref(Ref::from_schema_name(
                            "ErrorDocument",
                        ))))
                        .build(),
                )
                .build(),
        )
        .build()
}

fn json_response(description: &str, schema: RefOr<Schema>) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(JSONAPI, ContentBuilder::new().schema(Some(schema)).build())
}

/// Adds the usage endpoints.
pub fn paths(paths: PathsBuilder) -> PathsBuilder {
    let period = query(
        "filter[period]",
        one_of(&PERIODS),
        "The period ending now (default `24h`); `month` is the current quota period.",
    );
    let group_by = query(
        "group_by",
        one_of(&GROUP_BY),
        "Grouping (`status`: `2xx` … `5xx`, or the proxy's refusal code).",
    );
    let group_item = totals()
        .property("type", ty(Type::String))
        .property("id", ty(Type::String))
        .required("type");
    let summary_meta = ty(Type::Object)
        .property("period", ty(Type::String))
        .property("from", ty(Type::String))
        .property("to", ty(Type::String))
        .property("group_by", ty(Type::String))
        .property("totals", totals())
        .property("groups", ArrayBuilder::new().items(group_item))
        .required("totals");
    let summary = operation(
        "get_api_usage_summary",
        "Usage totals over a period, grouped as asked (≤ 100 groups, by requests).",
        [period.clone(), group_by.clone()]
            .into_iter()
            .chain(filters())
            .collect(),
        json_response("The summary.", meta_document(summary_meta)),
    );
    let points =
        || ArrayBuilder::new().items(totals().property("at", ty(Type::String)).required("at"));
    let series_meta = ty(Type::Object)
        .property("period", ty(Type::String))
        .property("interval", ty(Type::String))
        .property("from", ty(Type::String))
        .property("to", ty(Type::String))
        .property("points", points())
        .property("group_by", ty(Type::String))
        .property(
            "series",
            ArrayBuilder::new().items(
                ty(Type::Object)
                    .property("type", ty(Type::String))
                    .property("id", ty(Type::String))
                    .property("points", points())
                    .required("points"),
            ),
        )
        .required("points");
    let series = operation(
        "get_api_usage_series",
        "Usage per time bucket, every bucket of the period (zeros filled), oldest first; with \
         group_by also the 20 largest groups' series. At most 1,500 buckets.",
        [
            period,
            query(
                "filter[interval]",
                one_of(&INTERVALS),
                "Bucket length (default `1m` for 1h, `1h` for 24h and 7d, `1d` for 30d and month).",
            ),
            group_by,
        ]
        .into_iter()
        .chain(filters())
        .collect(),
        json_response("The series.", meta_document(series_meta)),
    );
    let row = EXPORT_COLUMNS.iter().fold(ty(Type::Object), |o, name| {
        o.property(*name, ty(Type::Object))
    });
    let export_meta = ty(Type::Object)
        .property("month", ty(Type::String))
        .property("columns", ArrayBuilder::new().items(ty(Type::String)))
        .property("rows", ArrayBuilder::new().items(row));
    let export = operation(
        "get_api_usage_export",
        "Billing export of a month (administrators): per key, user and group, requests counted \
         toward the quota, overage and bytes. Columns: see wiki/usage.md.",
        vec![
            ParameterBuilder::new()
                .name("filter[month]")
                .parameter_in(ParameterIn::Query)
                .required(Required::True)
                .schema(Some(ty(Type::String).pattern(Some("^[0-9]{4}-[0-9]{2}$"))))
                .description(Some("The month, `YYYY-MM` (UTC)."))
                .build(),
            query(
                "format",
                one_of(&["json", "csv"]),
                "`json` (default) or `csv`.",
            ),
        ],
        json_response("The export.", meta_document(export_meta)).content(
            "text/csv",
            ContentBuilder::new().schema(Some(ty(Type::String))).build(),
        ),
    );
    paths
        .path(
            "/api/usage/summary",
            PathItem::new(HttpMethod::Get, summary),
        )
        .path("/api/usage/series", PathItem::new(HttpMethod::Get, series))
        .path("/api/usage/export", PathItem::new(HttpMethod::Get, export))
}
