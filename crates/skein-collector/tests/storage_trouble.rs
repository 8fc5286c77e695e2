//! Storage trouble that may pass is answered "retry later" (HTTP 503 + Retry-After, gRPC
//! UNAVAILABLE + RetryInfo), so OTLP clients retry instead of dropping the batch; and a
//! request refused that way does not count against the spans-per-trace limit when retried.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Another process holds the database's write lock past the store's busy timeout (10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_answered_retry_later_and_the_retry_is_stored_whole() {
    let running = common::start_with(|c| c.limits.max_spans_per_trace = 600).await;
    let path = running.dir.path().join("skein.db");
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked_tx, locked) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        released.recv().unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
    });
    locked.recv().unwrap();

    let body = common::spans_request(0x77, now(), 600, "stalled");
    let grpc_addr = running.collector.otlp_grpc_addr();
    let grpc = tokio::spawn(async move {
        let mut client = TraceServiceClient::connect(format!("http://{grpc_addr}"))
            .await
            .unwrap();
        let request = ExportTraceServiceRequest::decode(&common::spans_request(0x78, now(), 3, "grpc")[..]).unwrap();
        client.export(request).await
    });
    let (status, headers, answer) = running.post("application/x-protobuf", None, body.clone()).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(headers["retry-after"], "1");
    let status = grpc.await.unwrap().expect_err("refused while locked");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    {
        use tonic_types::StatusExt;
        assert!(
            status.get_details_retry_info().is_some(),
            "RetryInfo tells when to retry"
        );
    }

    release.send(()).unwrap();
    holder.join().unwrap();
    // The client retries the same request: all 600 spans are stored, none "over the limit".
    let (status, _, answer) = running.post("application/x-protobuf", None, body).await;
    assert_eq!(status, 200);
    let answer = ExportTraceServiceResponse::decode(&answer[..]).unwrap();
    assert!(
        answer.partial_success.as_ref().is_none_or(|p| p.rejected_spans == 0),
        "{answer:?}"
    );
    running.trace(&"77".repeat(16), 600).await;
    running.collector.shutdown().await;
}

/// A gRPC message over the size limit is RESOURCE_EXHAUSTED, not OUT_OF_RANGE (which the
/// OTLP specification makes retryable: a compliant exporter would resend it forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_grpc_message_is_resource_exhausted() {
    let running = common::start_with(|c| c.limits.max_body_bytes = 64 << 10).await;
    let mut client = TraceServiceClient::connect(format!("http://{}", running.collector.otlp_grpc_addr()))
        .await
        .unwrap();
    let request = ExportTraceServiceRequest::decode(&common::bulky_spans_request(0x79, now(), 500)[..]).unwrap();
    assert!(request.encoded_len() > 64 << 10);
    let status = client.export(request).await.expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    // A message within the limit still goes through on the same connection.
    let small = ExportTraceServiceRequest::decode(&common::spans_request(0x7a, now(), 2, "small")[..]).unwrap();
    client.export(small).await.unwrap();
    running.trace(&"7a".repeat(16), 2).await;
    running.collector.shutdown().await;
}

/// A data directory that cannot be used is a typed error naming it, with the file system's
/// error as its source.
#[test]
fn an_unusable_data_directory_is_a_typed_error_keeping_its_cause() {
    use skein_collector::store::{Store, StoreConfig, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let config = StoreConfig {
        data_dir: file.join("data"),
        queue_requests: 16,
        retention: std::time::Duration::from_secs(3600),
        max_disk_bytes: 1 << 30,
    };
    let Err(error) = Store::open(config, &|_| {}) else {
        panic!("a data directory under a file opened")
    };
    assert!(
        matches!(&error, StoreError::DataDir { path, .. } if path.ends_with("data")),
        "{error:?}"
    );
    assert!(!error.is_transient());
    let source = std::error::Error::source(&error).expect("the io error is kept");
    assert!(source.to_string().contains("Not a directory"), "{source:?}");
    assert!(error.to_string().contains("not-a-directory"), "{error}");
}
