//! A trace whose spans arrive on both sides of a restart is still one trace with one summary.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use skein_collector::Collector;

/// `count` spans of trace `[0xcc; 16]`, with span ids from `first_id` on.
fn spans(first_id: u64, count: u64, start: u64) -> Vec<u8> {
    let mut request =
        ExportTraceServiceRequest::decode(&common::spans_request(0xcc, start, count, "step")[..]).unwrap();
    for (i, span) in request.resource_spans[0].scope_spans[0].spans.iter_mut().enumerate() {
        span.span_id = (first_id + i as u64).to_be_bytes().to_vec();
    }
    request.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_after_a_restart_join_their_trace_and_its_summary() {
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let dir = tempfile::tempdir().unwrap();
    let first = Collector::start(common::config(dir.path())).await.unwrap();
    let (status, _, _) = common::post_to(
        first.otlp_http_addr(),
        "application/x-protobuf",
        None,
        spans(1, 2, start),
    )
    .await;
    assert_eq!(status, 200);
    first.shutdown().await;

    let collector = Collector::start(common::config(dir.path())).await.unwrap();
    let running = common::Running { collector, dir };
    // Later spans, one of them starting earlier than the first two.
    assert_eq!(running.post_protobuf(spans(10, 3, start - 5_000_000)).await, 200);
    let trace_id = "cc".repeat(16);
    let trace = running.trace(&trace_id, 5).await;
    assert_eq!(trace["spans"].as_array().unwrap().len(), 5);
    let found = running
        .search_until("/api/v1/traces?limit=10", |v| v["traces"][0]["span_count"] == 5)
        .await;
    let traces = found["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "{found}");
    assert_eq!(traces[0]["trace_id"], trace_id);
    assert_eq!(traces[0]["start_unix_nano"], start - 5_000_000);
    assert_eq!(traces[0]["duration_nano"], 5_000_000 + 1_000_000);
    running.collector.shutdown().await;
}
