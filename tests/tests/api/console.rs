//! The admin console: `/` serves its page and its two assets from the binary, each with the
//! console's Content-Security-Policy and the right content type, and the page references exactly
//! the assets that are served (so a rename in the build cannot leave a page without its script).

use reqwest::StatusCode;
use tollgate_tests::spawn_app;

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

async fn fetch(app: &tollgate_tests::TestApp, path: &str) -> (String, String) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-security-policy"].to_str().unwrap(),
        CSP,
        "{path}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    let content_type = headers["content-type"].to_str().unwrap().to_owned();
    (content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn the_root_serves_the_console_and_its_assets() {
    let app = spawn_app().await;
    let (content_type, html) = fetch(&app, "/").await;
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(
        !html.contains("<script>") && !html.contains("<style"),
        "no inline script or style: {html}"
    );
    assert!(html.contains(r#"src="/console/console.js""#), "{html}");
    assert!(html.contains(r#"href="/console/console.css""#), "{html}");

    let (content_type, js) = fetch(&app, "/console/console.js").await;
    assert_eq!(content_type, "text/javascript; charset=utf-8");
    assert!(js.contains("/api/auth/login"), "the script speaks the API");

    let (content_type, css) = fetch(&app, "/console/console.css").await;
    assert_eq!(content_type, "text/css; charset=utf-8");
    assert!(css.contains("body{"), "{css}");
}

#[tokio::test]
async fn the_console_paths_answer_only_get_and_the_api_stays_where_it_was() {
    let app = spawn_app().await;
    let response = app.client.post(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");

    let response = app
        .client
        .get(app.url("/console/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "/docs is still served");
    app.get("/api/auth/me").await.expect(200);
}
