//! The OTLP/gRPC exporter against a real tonic receiver on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use skein::*;
use skein_export::otlp::OtlpGrpcExporter;
use skein_export::Resource;
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<ExportTraceServiceRequest>>,
    api_keys: Mutex<Vec<Option<String>>>,
    attempts: AtomicUsize,
    /// Answer this many calls with UNAVAILABLE (with a RetryInfo of 1 ms) first.
    fail_first: AtomicUsize,
}

#[derive(Clone)]
struct Service(Arc<Receiver>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        if self
            .0
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let details = ErrorDetails::with_retry_info(Some(Duration::from_millis(1)));
            return Err(tonic::Status::with_error_details(
                tonic::Code::Unavailable,
                "busy",
                details,
            ));
        }
        let key = request
            .metadata()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.0.api_keys.lock().unwrap().push(key);
        self.0.requests.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn start_receiver() -> (SocketAddr, Arc<Receiver>) {
    let state = Arc::new(Receiver::default());
    let service = Service(state.clone());
    let addr = common::serve_on_loopback(move |listener| async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(service).accept_compressed(tonic::codec::CompressionEncoding::Gzip))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    (addr, state)
}

#[test]
fn exports_over_grpc_with_gzip_headers_and_retry_info() {
    static SOURCE: ActivitySource = ActivitySource::new("test.grpc").with_version("0.9");
    let (addr, received) = start_receiver();
    received.fail_first.store(1, Ordering::SeqCst);
    let exporter = OtlpGrpcExporter::new(&format!("http://{addr}"), Resource::new("grpc-svc"))
        .unwrap()
        .with_gzip(true)
        .with_header("x-api-key", "k1")
        .unwrap()
        .with_initial_backoff(Duration::from_secs(30)); // RetryInfo's 1 ms must win
    let guard = common::pipeline(&SOURCE, exporter);
    let a = SOURCE.start_activity("grpc op", ActivityKind::Client).unwrap();
    a.set_tag("rpc.system", "grpc");
    let (trace_id, span_id) = (a.trace_id(), a.span_id());
    drop(a);
    guard.force_flush(Duration::from_secs(10)).unwrap();
    assert_eq!(
        received.attempts.load(Ordering::SeqCst),
        2,
        "one UNAVAILABLE, then accepted"
    );
    let requests = received.requests.lock().unwrap().clone();
    let rs = &requests[0].resource_spans[0];
    let scope = &rs.scope_spans[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, "test.grpc");
    assert_eq!(scope.scope.as_ref().unwrap().version, "0.9");
    let span = &scope.spans[0];
    assert_eq!(span.name, "grpc op");
    assert_eq!(span.trace_id, trace_id.to_bytes());
    assert_eq!(span.span_id, span_id.to_bytes());
    assert_eq!(received.api_keys.lock().unwrap()[0].as_deref(), Some("k1"));
    guard.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_down_grpc_collector_fails_the_export_without_blocking() {
    static SOURCE: ActivitySource = ActivitySource::new("test.grpc.down");
    // Nothing listens: UNAVAILABLE until the short timeout, and the application never waits.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let exporter = OtlpGrpcExporter::new(&format!("http://{port}"), Resource::new("svc"))
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let guard = common::pipeline(&SOURCE, exporter);
    drop(SOURCE.start_activity("lost", ActivityKind::Internal));
    assert!(
        guard.force_flush(Duration::from_secs(10)).is_ok(),
        "flush completes; the failure is reported once"
    );
    guard.shutdown(Duration::from_secs(5)).unwrap();
}
