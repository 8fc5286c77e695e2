//! The export pipeline does not trace itself: spans that the exporter's libraries (h2, tonic,
//! hyper) open while sending are not recorded and exported, even with `SkeinLayer` installed
//! globally and a pipeline that listens to every source. Before the fix each export made
//! `h2` and `tonic` activities, which the next export sent, which made more (a feedback loop).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use skein_export::otlp::OtlpGrpcExporter;
use skein_export::{BatchConfig, ExportPipeline, Resource};
use tracing_subscriber::layer::SubscriberExt;

/// Received (scope name, span name) pairs.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<(String, String)>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            for scope_spans in resource_spans.scope_spans {
                let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
                for span in scope_spans.spans {
                    received.push((scope.clone(), span.name));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[test]
fn spans_opened_while_exporting_are_not_exported() {
    // The sink runs on a thread of its own that records nothing either (its h2 spans are the
    // server side, which is not what this test is about).
    let sink = Sink::default();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let server_sink = sink.clone();
    std::thread::spawn(move || {
        let _quiet = skein::suppress_instrumentation();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(server_sink))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv().unwrap();

    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(skein_tracing::SkeinLayer::new()))
        .unwrap();
    let exporter = OtlpGrpcExporter::new(&format!("http://{addr}"), Resource::new("loop-test")).unwrap();
    // Every source, the exporter's libraries' targets included.
    let guard = ExportPipeline::new().batch(exporter, BatchConfig::default()).install();

    for round in 0..3 {
        let span = tracing::info_span!("app work", round);
        span.in_scope(|| tracing::info!("working"));
        drop(span);
        guard.force_flush(Duration::from_secs(10)).unwrap();
    }
    guard.shutdown(Duration::from_secs(10)).unwrap();

    let received = sink.0.lock().unwrap().clone();
    let app: Vec<_> = received.iter().filter(|(_, name)| name == "app work").collect();
    assert_eq!(app.len(), 3, "{received:?}");
    let others: Vec<_> = received.iter().filter(|(_, name)| name != "app work").collect();
    assert!(others.is_empty(), "the exporter's own spans were exported: {others:?}");
}
