//! Server overhead: a hello-world axum handler without tracing, with Skein's `TraceLayer` and
//! a recording export pipeline, and with tower-http's `TraceLayer` + tracing-opentelemetry
//! doing the equivalent (parent extracted from `traceparent`, the same semantic-convention
//! fields, the route, the status code, spans batched to an exporter that discards them).
//! Requests go through the router in-process, so the figures are the instrumentation's cost,
//! not the network's.
//!
//! ```sh
//! cargo bench -p skein-http --bench server
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::routing::get;
use axum::Router;
use criterion::Criterion;
use http_body_util::BodyExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use skein_bench_support::{median_ns, DiscardActivities, DiscardSpans};
use skein_export::{BatchConfig, ExportPipeline};
use tower_service::Service;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const GROUP: &str = "axum hello world";
const BARE: &str = "no tracing";
const SKEIN: &str = "skein TraceLayer";
const PEER: &str = "tower-http + tracing-opentelemetry";

fn hello() -> Router {
    Router::new().route("/hello/{name}", get(|| async { "hello" }))
}

fn request() -> http::Request<Body> {
    http::Request::get("/hello/world")
        .header("host", "shop.example:8080")
        .header("user-agent", "bench/1.0")
        .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .body(Body::empty())
        .unwrap()
}

fn run(rt: &tokio::runtime::Runtime, router: &mut Router) {
    rt.block_on(async {
        let response = router.call(request()).await.unwrap();
        black_box(response.into_body().collect().await.unwrap());
    });
}

struct Headers<'a>(&'a http::HeaderMap);
impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// tower-http's TraceLayer made to record what Skein's layer records.
fn peer_router() -> Router {
    use tower_http::trace::TraceLayer;
    let propagator = TraceContextPropagator::new();
    let layer = TraceLayer::new_for_http()
        .make_span_with(move |request: &http::Request<Body>| {
            let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
            let route = route.unwrap_or_default();
            let host = request.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
            let (address, port) = host.split_once(':').unwrap_or((host, ""));
            let span = tracing::info_span!(
                "HTTP request",
                otel.name = %format_args!("{} {}", request.method(), route),
                otel.kind = "server",
                http.request.method = %request.method(),
                url.path = request.uri().path(),
                url.scheme = "http",
                server.address = address,
                server.port = port.parse::<i64>().unwrap_or_default(),
                user_agent.original = request.headers().get("user-agent").and_then(|h| h.to_str().ok()).unwrap_or_default(),
                network.protocol.version = "1.1",
                http.route = route.as_str(),
                http.response.status_code = tracing::field::Empty,
            );
            let parent = propagator.extract(&Headers(request.headers()));
            let _ = span.set_parent(parent);
            span
        })
        .on_response(|response: &http::Response<Body>, _latency: Duration, span: &tracing::Span| {
            span.record("http.response.status_code", response.status().as_u16());
        });
    hello().layer(layer)
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-http");
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let export = ExportPipeline::new()
        .with_sources(["skein.http.server"])
        .batch(DiscardActivities, BatchConfig::default())
        .install();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(DiscardSpans).build())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let mut group = c.benchmark_group(GROUP);
    let mut bare = hello();
    group.bench_function(BARE, |b| b.iter(|| run(&rt, &mut bare)));
    let mut skein = hello().layer(skein_http::TraceLayer::new());
    group.bench_function(SKEIN, |b| b.iter(|| run(&rt, &mut skein)));
    let mut peer = peer_router();
    group.bench_function(PEER, |b| b.iter(|| run(&rt, &mut peer)));
    group.finish();
    c.final_summary();

    let dropped = export.dropped_count();
    let _ = export.shutdown(Duration::from_secs(5));
    let _ = provider.shutdown();
    let (Some(bare), Some(ours), Some(theirs)) = (
        median_ns(&dir, GROUP, BARE),
        median_ns(&dir, GROUP, SKEIN),
        median_ns(&dir, GROUP, PEER),
    ) else {
        return;
    };
    println!();
    println!("Server overhead per request (median, µs):");
    println!("  {BARE:<36} {:>8.2}", bare / 1000.0);
    println!("  {SKEIN:<36} {:>8.2}  (+{:.2})", ours / 1000.0, (ours - bare) / 1000.0);
    println!(
        "  {PEER:<36} {:>8.2}  (+{:.2})",
        theirs / 1000.0,
        (theirs - bare) / 1000.0
    );
    let ratio = (ours - bare) / (theirs - bare);
    let verdict = if ratio <= 0.25 { "meets" } else { "MISSES" };
    println!("  added cost skein / peer = {ratio:.3} (bar <= 0.25) {verdict}");
    println!("  skein pipeline dropped {dropped} activities");
}
