//! Bad or unusual input gets a clear answer (never a panic, never a silent misreading):
//! times that overflow, JSON as deep as protobuf allows, and Jaeger's dependencies as Jaeger
//! answers them.

mod common;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;

use common::otlp::{now, resource_spans, span, string};

/// Issue: an attribute value nested 30 deep was refused as OTLP JSON (serde_json stops at 128
/// levels) while the same request in protobuf was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_as_deep_as_protobuf_is_accepted_and_deeper_is_refused_clearly() {
    let running = common::start().await;
    let mut value = string("bottom");
    for level in 0..30 {
        value = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: format!("level{level}"),
                    value: Some(value),
                    ..Default::default()
                }],
            })),
        };
    }
    let mut deep = span(0x31, 1, None, SpanKind::Internal, now());
    deep.attributes.push(KeyValue {
        key: "deep".into(),
        value: Some(value),
        ..Default::default()
    });
    let request = ExportTraceServiceRequest {
        resource_spans: vec![resource_spans("deep", vec![deep])],
    };
    let (status, _, _) = running
        .post("application/x-protobuf", None, request.encode_to_vec())
        .await;
    assert_eq!(status, 200, "protobuf");
    let mut as_json = request.clone();
    as_json.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0x32; 16];
    let (status, _, body) = running
        .post("application/json", None, serde_json::to_vec(&as_json).unwrap())
        .await;
    assert_eq!(status, 200, "JSON: {}", String::from_utf8_lossy(&body));
    running.trace(&"32".repeat(16), 1).await;

    let absurd = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, _, body) = running.post("application/json", None, absurd.into_bytes()).await;
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("nested"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    running.collector.shutdown().await;
}

/// Issue: time parameters that overflow (a year 99999999999999, microseconds past 2554) made
/// the query handlers panic instead of answering 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_that_overflow_are_bad_requests() {
    let running = common::start().await;
    for path in [
        "/api/v1/traces?start=99999999999999-01-01T00:00:00Z",
        "/api/v1/traces?end=18446744073709551616",
        "/api/v1/stats?start=2554-12-31T23:59:59Z",
        "/api/traces?service=x&start=99999999999999999",
        "/api/traces?service=x&end=18446744073709552",
        "/api/dependencies?endTs=99999999999999999",
        "/api/dependencies?lookback=99999999999999999",
    ] {
        let (status, body) = running.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    assert_eq!(running.get("/api/v1/traces?start=2026-01-01T00:00:00.5Z").await.0, 200);
    running.collector.shutdown().await;
}

/// Jaeger's `/api/dependencies` looks back 24 hours unless told otherwise (it looked back one
/// hour) and keeps the edges of `service` when given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_dependencies_default_to_a_day_and_filter_by_service() {
    let running = common::start().await;
    let ten_hours_ago = now() - 10 * 3600 * 1_000_000_000;
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans("web", vec![span(0x41, 1, None, SpanKind::Client, ten_hours_ago)]),
            resource_spans(
                "api",
                vec![span(0x41, 2, Some(1), SpanKind::Server, ten_hours_ago + 100)],
            ),
            resource_spans("other", vec![span(0x42, 3, None, SpanKind::Client, ten_hours_ago)]),
            resource_spans(
                "db",
                vec![span(0x42, 4, Some(3), SpanKind::Server, ten_hours_ago + 100)],
            ),
        ],
    };
    assert_eq!(running.post_protobuf(request.encode_to_vec()).await, 200);
    let edges = |body: &serde_json::Value| -> Vec<String> {
        let mut edges: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}->{}", e["parent"].as_str().unwrap(), e["child"].as_str().unwrap()))
            .collect();
        edges.sort();
        edges
    };
    let mut all = Vec::new();
    for _ in 0..100 {
        all = edges(&running.get("/api/dependencies").await.1);
        if all.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(all, ["other->db", "web->api"]);
    assert_eq!(
        edges(&running.get("/api/dependencies?service=api").await.1),
        ["web->api"]
    );
    let hour_ms = 3_600_000;
    assert!(edges(&running.get(&format!("/api/dependencies?lookback={hour_ms}")).await.1).is_empty());
    running.collector.shutdown().await;
}
