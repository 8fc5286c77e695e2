//! The test service of the W3C Trace Context test suite (github.com/w3c/trace-context,
//! `test/`), built on skein-http: `POST /test` takes a JSON array of `{"url", "arguments"}`
//! and POSTs each `arguments` to its `url`, inside the server activity of the request, so the
//! suite sees what Skein propagates.
//!
//! ```sh
//! OTEL_TRACES_EXPORTER=none cargo run -p skein-http --example w3c_test_service   # 127.0.0.1:5000
//! SPEC_LEVEL=2 STRICT_LEVEL=2 python test.py http://127.0.0.1:5000/test            # in the suite's test/
//! ```

use std::net::SocketAddr;

use axum::routing::post;
use axum::{Json, Router};
use reqwest_middleware::ClientWithMiddleware;

/// The service: `POST /test`, traced by `TraceLayer`, calling back with `SkeinMiddleware`.
pub fn router() -> Router {
    let client: ClientWithMiddleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(skein_http::SkeinMiddleware)
        .build();
    Router::new()
        .route(
            "/test",
            post(move |Json(calls): Json<serde_json::Value>| {
                let client = client.clone();
                async move {
                    for call in calls.as_array().into_iter().flatten() {
                        let Some(url) = call["url"].as_str() else { continue };
                        let body = serde_json::to_vec(&call["arguments"]).unwrap_or_default();
                        let sent = client
                            .post(url)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await;
                        if let Err(e) = sent {
                            eprintln!("callback to {url} failed: {e}");
                        }
                    }
                    "ok"
                }
            }),
        )
        .layer(skein_http::TraceLayer::new())
}

#[allow(dead_code)] // the integration test includes this file for `router`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _export = skein_export::init()?;
    let addr: SocketAddr = std::env::var("W3C_TEST_SERVICE_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:5000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("W3C Trace Context test service on http://{addr}/test");
    axum::serve(listener, router()).await?;
    Ok(())
}
