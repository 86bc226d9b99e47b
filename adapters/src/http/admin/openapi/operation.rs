//! One operation: its parameters, body, responses and operation id.

use super::*;

pub(super) fn json_body(schema: &str) -> ContentBuilder {
    ContentBuilder::new().schema(Some(reference(schema)))
}

pub(super) fn ok(
    status: &str,
    description: &str,
    schema: Option<&str>,
) -> (String, RefOr<utoipa::openapi::Response>) {
    let response = ResponseBuilder::new().description(description);
    let response = match schema {
        Some(schema) => response.content(JSONAPI, json_body(schema).build()),
        None => response,
    };
    (status.to_owned(), RefOr::T(response.build()))
}

pub(super) fn error_response() -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description("A JSON:API error document.")
            .content(JSONAPI, json_body("ErrorDocument").build())
            .build(),
    )
}

pub(super) struct Op {
    summary: String,
    tag: String,
    params: Vec<Parameter>,
    body: Option<String>,
    responses: Vec<(String, RefOr<utoipa::openapi::Response>)>,
    public: bool,
}

impl Op {
    pub(super) fn new(tag: &str, summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            tag: tag.to_owned(),
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            public: false,
        }
    }
    pub(super) fn params(mut self, params: Vec<Parameter>) -> Self {
        self.params = params;
        self
    }
    pub(super) fn body(mut self, schema: &str) -> Self {
        self.body = Some(schema.to_owned());
        self
    }
    pub(super) fn returns(mut self, status: &str, description: &str, schema: Option<&str>) -> Self {
        self.responses.push(ok(status, description, schema));
        self
    }
    pub(super) fn public(mut self) -> Self {
        self.public = true;
        self
    }
    pub(super) fn build(self, operation_id: String) -> Operation {
        let mut op = OperationBuilder::new()
            .operation_id(Some(operation_id))
            .summary(Some(self.summary))
            .tag(self.tag)
            .parameters(Some(self.params));
        if let Some(body) = self.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(JSONAPI, json_body(&body).build())
                    .build(),
            ));
        }
        for (status, response) in self.responses {
            op = op.response(status, response);
        }
        op = op.response("default", error_response());
        if self.public {
            op = op.securities(Some([SecurityRequirement::default()]));
        }
        op.build()
    }
}

/// Adds one operation; the operation id is `method` + path.
pub(super) fn add(paths: PathsBuilder, path: &str, method: HttpMethod, op: Op) -> PathsBuilder {
    let verb = match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Patch => "patch",
        HttpMethod::Delete => "delete",
        HttpMethod::Put => "put",
        _ => "other",
    };
    let id = format!(
        "{verb}{}",
        path.replace(['{', '}'], "")
            .split(['/', '-'])
            .filter(|p| !p.is_empty())
            .map(|p| p.replace('.', "_"))
            .map(|p| format!("_{p}"))
            .collect::<String>()
    );
    paths.path(path, PathItem::new(method, op.build(id)))
}
