//! Every kind of export failure reaches the application's error handler, typed, with its
//! source. One test: the handler is process-wide.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use common::{closed_port, http_exporter, serve_on_loopback};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
use prost::Message;
use skein::logs::{self, LogRecord, Severity};
use skein::{ActivityKind, ActivitySource};
use skein_export::otlp::{OtlpHttpExporter, Protocol};
use skein_export::{BatchConfig, ExportError, ExportPipeline, LogExporter, LogPipeline, Resource, Signal};

static REJECTED: ActivitySource = ActivitySource::new("error_hook.rejected");
static REFUSED: ActivitySource = ActivitySource::new("error_hook.refused");

/// Takes its time, so that a one-slot queue overflows.
struct Slow;
impl LogExporter for Slow {
    fn export(&mut self, _: &[LogRecord]) -> Result<(), ExportError> {
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    }
}

#[test]
fn every_kind_of_failure_reaches_the_error_handler() {
    let seen: Arc<Mutex<Vec<ExportError>>> = Arc::default();
    let sink = seen.clone();
    skein_export::set_error_handler(move |e| sink.lock().unwrap().push(e.clone()));

    // A backend that refuses spans (400) and accepts logs only in part.
    let addr = serve_on_loopback(|listener| async move {
        let partial = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "records older than the retention".into(),
            }),
        };
        let app = Router::new()
            .route(
                "/v1/traces",
                post(|| async { (axum::http::StatusCode::BAD_REQUEST, "bad spans") }),
            )
            .route(
                "/v1/logs",
                post(move || {
                    let body = partial.encode_to_vec();
                    async move { ([("content-type", "application/x-protobuf")], body) }
                }),
            );
        axum::serve(listener, app).await.unwrap();
    });

    // Rejected for good.
    let spans = ExportPipeline::new()
        .with_sources([REJECTED.name()])
        .batch(http_exporter(addr), BatchConfig::default())
        .install();
    drop(REJECTED.start_activity("refused", ActivityKind::Internal));
    spans.force_flush(Duration::from_secs(5)).unwrap();
    drop(spans);

    // Unavailable: nothing listens; the connection error is kept as the source.
    let down = ExportPipeline::new()
        .with_sources([REFUSED.name()])
        .batch(
            http_exporter(closed_port()).with_timeout(Duration::from_millis(300)),
            BatchConfig::default(),
        )
        .install();
    drop(REFUSED.start_activity("unreachable", ActivityKind::Internal));
    down.force_flush(Duration::from_secs(5)).unwrap();
    drop(down);

    // Accepted in part, and a queue too small for the burst.
    let partly = LogPipeline::new(
        OtlpHttpExporter::new(
            &format!("http://{addr}/v1/logs"),
            Protocol::HttpProtobuf,
            Resource::new("svc"),
        )
        .unwrap(),
    )
    .install();
    let small = LogPipeline::new(Slow)
        .with_batch_config(BatchConfig {
            max_queue_size: 1,
            max_export_batch_size: 1,
            ..BatchConfig::for_logs()
        })
        .install();
    for i in 0..20 {
        logs::emit(LogRecord::new(Severity::WARN, format!("line {i}")).with_scope("error_hook"));
    }
    partly.force_flush(Duration::from_secs(5)).unwrap();
    small.force_flush(Duration::from_secs(5)).unwrap();
    assert!(small.dropped_count() > 0);
    drop(partly);
    drop(small);
    skein_export::clear_error_handler();

    let seen = seen.lock().unwrap();
    let port = addr.port().to_string();
    assert!(
        seen.iter()
            .any(|e| matches!(e, ExportError::Rejected { endpoint, message }
            if endpoint.contains(&port) && message.contains("400") && message.contains("bad spans"))),
        "{seen:#?}"
    );
    let unavailable = seen
        .iter()
        .find(|e| matches!(e, ExportError::Unavailable { .. }))
        .unwrap_or_else(|| panic!("{seen:#?}"));
    assert!(std::error::Error::source(unavailable).is_some(), "{unavailable:?}");
    assert!(unavailable.is_transient());
    assert!(
        seen.iter().any(
            |e| matches!(e, ExportError::PartiallyRejected { signal: Signal::Logs, rejected: 2, message, .. }
            if message.contains("retention"))
        ),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, ExportError::QueueFull { signal: Signal::Logs, dropped } if *dropped > 0)),
        "{seen:#?}"
    );
}
