//! A real OTLP/HTTP receiver for the tests: axum on 127.0.0.1, protobuf and JSON by
//! content type, gzip bodies, scripted failures.
#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;

#[derive(Default)]
pub struct Received {
    pub requests: Mutex<Vec<ExportTraceServiceRequest>>,
    pub content_types: Mutex<Vec<String>>,
    pub gzip: Mutex<Vec<bool>>,
    pub api_keys: Mutex<Vec<Option<String>>>,
    pub attempts: AtomicUsize,
    /// Answer this many requests with 503 (and `Retry-After: 0`) before accepting.
    pub fail_first: AtomicUsize,
    /// Wait this many milliseconds before answering.
    pub delay_ms: AtomicUsize,
}

impl Received {
    pub fn spans(&self) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.iter().cloned())
            .collect()
    }
}

async fn receive(state: Arc<Received>, headers: HeaderMap, body: Bytes) -> axum::response::Response {
    state.attempts.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay as u64)).await;
    }
    if state
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], "try later").into_response();
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let raw = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).is_err() {
            return (StatusCode::BAD_REQUEST, "bad gzip").into_response();
        }
        out
    } else {
        body.to_vec()
    };
    let request = match content_type.as_str() {
        "application/x-protobuf" => ExportTraceServiceRequest::decode(&raw[..]).ok(),
        "application/json" => serde_json::from_slice(&raw).ok(),
        _ => return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "").into_response(),
    };
    let Some(request) = request else {
        return (StatusCode::BAD_REQUEST, "undecodable").into_response();
    };
    state.requests.lock().unwrap().push(request);
    state.content_types.lock().unwrap().push(content_type.clone());
    state.gzip.lock().unwrap().push(gzip);
    state.api_keys.lock().unwrap().push(
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    );
    let response = ExportTraceServiceResponse { partial_success: None };
    if content_type == "application/json" {
        (
            [("content-type", "application/json")],
            serde_json::to_vec(&response).unwrap(),
        )
            .into_response()
    } else {
        ([("content-type", "application/x-protobuf")], response.encode_to_vec()).into_response()
    }
}

/// Runs `serve` with a listener on an ephemeral loopback port, on its own runtime thread, for
/// the rest of the process; returns the address.
pub fn serve_on_loopback<F>(serve: impl FnOnce(tokio::net::TcpListener) -> F + Send + 'static) -> SocketAddr
where
    F: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener).await;
        });
    });
    rx.recv().unwrap()
}

/// Starts a receiver on an ephemeral port; it runs until the process ends.
pub fn start_receiver() -> (SocketAddr, Arc<Received>) {
    let state = Arc::new(Received::default());
    let app_state = state.clone();
    let addr = serve_on_loopback(move |listener| async move {
        let app = Router::new().route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: Bytes| receive(app_state.clone(), headers, body)),
        );
        axum::serve(listener, app).await.unwrap();
    });
    (addr, state)
}

/// A batch pipeline exporting `source`'s activities with `exporter`.
pub fn pipeline(
    source: &'static skein::ActivitySource,
    exporter: impl skein_export::ActivityExporter,
) -> skein_export::ExportGuard {
    skein_export::ExportPipeline::new()
        .with_sources([source.name()])
        .batch(exporter, skein_export::BatchConfig::default())
        .install()
}

/// An address nothing listens on.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// An OTLP/HTTP protobuf exporter for the receiver at `addr`.
pub fn http_exporter(addr: SocketAddr) -> skein_export::otlp::OtlpHttpExporter {
    skein_export::otlp::OtlpHttpExporter::new(
        &format!("http://{addr}/v1/traces"),
        skein_export::otlp::Protocol::HttpProtobuf,
        skein_export::Resource::new("svc"),
    )
    .unwrap()
}
