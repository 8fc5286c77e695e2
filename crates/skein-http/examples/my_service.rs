//! The README's "your own service": an axum service exporting spans and logs over OTLP, with
//! a custom activity, an instrumented reqwest client and `tracing` log lines on its traces.
//!
//! ```sh
//! cargo run --release -p skein-cli -- dashboard &
//! OTEL_SERVICE_NAME=shop OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!     cargo run -p skein-http --example my_service
//! curl http://127.0.0.1:8080/checkout
//! ```

use std::net::SocketAddr;

use axum::{routing::get, Router};
use skein::{ActivityKind, ActivitySource, FutureExt};
use tracing_subscriber::{filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt};

static SOURCE: ActivitySource = ActivitySource::new("shop.checkout");

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _export = skein_export::init()?; // spans and logs; OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, …
    tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(skein_tracing::layer()) // `tracing` spans become activities, events OTLP logs
        .init();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(skein_http::SkeinMiddleware) // Client activities, traceparent/baggage injected
        .build();
    let app = Router::new()
        .route(
            "/checkout",
            get(move || async move {
                tracing::info!(cart.items = 3, "checkout started"); // a log line on this trace
                let rule = SOURCE.start_activity("evaluate discount rule", ActivityKind::Internal);
                async { /* … */ }.in_activity(rule).await;
                match client.get("http://127.0.0.1:8081/stock").send().await {
                    Ok(_) => "ok",
                    Err(e) => {
                        tracing::warn!(error = %e, "stock service unavailable");
                        "stock unavailable"
                    }
                }
            }),
        )
        .layer(skein_http::TraceLayer::new()); // Server activities continuing the caller's trace
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    // ConnectInfo hands each connection's peer to TraceLayer (`client.address`, `client.port`).
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
