//! The README's "your own service in a dozen lines": an axum service exporting over OTLP,
//! with a custom activity and an instrumented reqwest client.
//!
//! ```sh
//! cargo run --release -p skein-cli -- dashboard &
//! OTEL_SERVICE_NAME=shop OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!     cargo run -p skein-http --example my_service
//! curl http://127.0.0.1:8080/checkout
//! ```

use axum::{routing::get, Router};
use skein::{ActivityKind, ActivitySource, FutureExt};

static SOURCE: ActivitySource = ActivitySource::new("shop.checkout");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _export = skein_export::init()?; // OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, …
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(skein_http::SkeinMiddleware) // Client activities, traceparent/baggage injected
        .build();
    let app = Router::new()
        .route(
            "/checkout",
            get(move || async move {
                let rule = SOURCE.start_activity("evaluate discount rule", ActivityKind::Internal);
                async { /* … */ }.in_activity(rule).await;
                let stock = client.get("http://127.0.0.1:8081/stock").send().await;
                if stock.is_ok() {
                    "ok"
                } else {
                    "stock unavailable"
                }
            }),
        )
        .layer(skein_http::TraceLayer::new()); // Server activities continuing the caller's trace
    axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8080").await?, app).await?;
    Ok(())
}
