//! A real upstream HTTP server on 127.0.0.1 for proxy tests: it echoes what it received, and
//! can answer slowly, with any status, or as a Server-Sent-Events stream held open by the test.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

#[derive(Default)]
pub struct UpstreamState {
    pub hits: AtomicUsize,
    pub healthy: AtomicBool,
    /// Lets the SSE stream send its second event.
    pub release: Notify,
}

pub struct Upstream {
    pub url: String,
    pub state: Arc<UpstreamState>,
}

impl Upstream {
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub async fn start() -> Self {
        let state = Arc::new(UpstreamState {
            healthy: AtomicBool::new(true),
            ..UpstreamState::default()
        });
        let shared = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = listener.local_addr().expect("port").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/sse", web::get().to(sse))
                .route("/health", web::get().to(health))
                .route("/slow/{ms}", web::to(slow))
                .route("/status/{code}", web::to(status))
                .default_service(web::to(echo))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }
}

fn describe(req: &HttpRequest, body: &[u8]) -> Value {
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        headers.insert(
            name.as_str().to_owned(),
            json!(value.to_str().unwrap_or_default()),
        );
    }
    json!({
        "method": req.method().as_str(),
        "path": req.path(),
        "query": req.query_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(body),
        "body_len": body.len(),
    })
}

async fn echo(req: HttpRequest, body: Bytes, state: web::Data<UpstreamState>) -> HttpResponse {
    state.hits.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok()
        .insert_header(("X-Upstream", "echo"))
        .insert_header(("X-RateLimit-Limit", "999999"))
        .json(describe(&req, &body))
}

async fn slow(path: web::Path<u64>, state: web::Data<UpstreamState>) -> HttpResponse {
    state.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(path.into_inner())).await;
    HttpResponse::Ok().json(json!({"slow": true}))
}

async fn status(path: web::Path<u16>, state: web::Data<UpstreamState>) -> HttpResponse {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let code = actix_web::http::StatusCode::from_u16(path.into_inner())
        .unwrap_or(actix_web::http::StatusCode::IM_A_TEAPOT);
    HttpResponse::build(code).json(json!({"upstream_error": code.as_u16()}))
}

async fn health(state: web::Data<UpstreamState>) -> HttpResponse {
    if state.healthy.load(Ordering::SeqCst) {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::ServiceUnavailable().finish()
    }
}

/// One event now, the second only when the test releases it.
async fn sse(state: web::Data<UpstreamState>) -> HttpResponse {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let state = state.into_inner();
    let events = futures_util::stream::unfold(0_u8, move |step| {
        let state = state.clone();
        async move {
            match step {
                0 => Some((Ok::<_, actix_web::Error>(Bytes::from("data: one\n\n")), 1)),
                1 => {
                    state.release.notified().await;
                    Some((Ok(Bytes::from("data: two\n\n")), 2))
                }
                _ => None,
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(events)
}
