//! The dashboard: a single-page web UI embedded in the binary (no Node toolchain to build or
//! run it), served beside the query API it reads. Every path that is not an API or asset path
//! answers with the page, so deep links (`/traces/{id}?span=…`) work on reload.
//!
//! The page, its scripts (native ES modules: `app.js` and those under `ui/js/`) and its style
//! sheet are plain files under `ui/`; charts, the dependency map and the virtualised waterfall
//! are drawn by the scripts themselves (SVG and DOM), so nothing is vendored.

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const THEME_JS: &str = include_str!("../ui/theme.js");
/// The modules `app.js` imports, by their path under `/ui/js/`.
const MODULES: &[(&str, &str)] = &[
    ("api.js", include_str!("../ui/js/api.js")),
    ("dom.js", include_str!("../ui/js/dom.js")),
    ("format.js", include_str!("../ui/js/format.js")),
    ("router.js", include_str!("../ui/js/router.js")),
    ("suggest.js", include_str!("../ui/js/suggest.js")),
    ("trace-model.js", include_str!("../ui/js/trace-model.js")),
    ("pages/compare.js", include_str!("../ui/js/pages/compare.js")),
    ("pages/logs.js", include_str!("../ui/js/pages/logs.js")),
    ("pages/services.js", include_str!("../ui/js/pages/services.js")),
    ("pages/trace.js", include_str!("../ui/js/pages/trace.js")),
    ("pages/traces.js", include_str!("../ui/js/pages/traces.js")),
];
const APP_CSS: &str = include_str!("../ui/app.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Assets change with the binary; revalidation is cheap on loopback.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn page(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        let message = format!("no API route {}", uri.path());
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": message }))).into_response();
    }
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// The page and its assets; every other path answers with the page (client-side routes).
pub fn router() -> Router {
    Router::new()
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/theme.js",
            get(|| async { asset("text/javascript; charset=utf-8", THEME_JS) }),
        )
        .route(
            "/ui/js/{*module}",
            get(|axum::extract::Path(module): axum::extract::Path<String>| async move {
                match MODULES.iter().find(|(path, _)| *path == module) {
                    Some((_, body)) => asset("text/javascript; charset=utf-8", body),
                    None => (StatusCode::NOT_FOUND, "no such module").into_response(),
                }
            }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .fallback(get(page))
}
