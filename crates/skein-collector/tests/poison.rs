//! Requests that are valid OTLP but that the store could not hold or read back are refused at
//! the door (issue 30): values nested deeper than stored data can be decoded, times past
//! 2^63 ns; every string is cut to the attribute limit; query bounds take the whole u64 range.
//! Each is followed by a restart on the same store, which must open and serve.

mod common;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::{span::Event, span::Link, span::SpanKind, Status};
use prost::Message;

use common::otlp::{attribute, logs, now, record, span, string, traces};

/// An array value `levels` deep.
fn arrays(levels: usize) -> AnyValue {
    let mut value = string("bottom");
    for _ in 0..levels {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![value] })),
        };
    }
    value
}

/// A map value `levels` deep.
fn maps(levels: usize) -> AnyValue {
    let mut value = string("bottom");
    for _ in 0..levels {
        value = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![attribute("k", value)],
            })),
        };
    }
    value
}

/// The partial success of an OTLP/HTTP JSON answer: (rejected, message).
fn json_partial(body: &[u8]) -> (i64, String) {
    let answer: serde_json::Value = serde_json::from_slice(body).unwrap();
    let partial = &answer["partialSuccess"];
    let rejected = match &partial["rejectedSpans"] {
        serde_json::Value::String(s) => s.parse().unwrap(),
        other => other.as_i64().unwrap_or(0),
    };
    (rejected, partial["errorMessage"].as_str().unwrap_or("").to_owned())
}

/// Restarts the collector on the same store and checks it opens and answers a search.
async fn restart(running: common::Running) -> common::Running {
    let common::Running { collector, dir } = running;
    collector.shutdown().await;
    let collector = skein_collector::Collector::start(common::config(dir.path()))
        .await
        .expect("the store opens after the request");
    let running = common::Running { collector, dir };
    assert_eq!(running.get("/api/v1/traces?start=0").await.0, 200);
    running
}

/// Issue 30, item 3: an `arrayValue` nested 48 deep in OTLP/JSON was accepted, then its trace,
/// every search touching it and the next start answered "does not decode".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_nested_deeper_than_the_store_reads_is_rejected_whole_in_every_way_in() {
    let running = common::start().await;
    let t = now();
    // JSON: a span with a 48-deep array beside a good span of the same trace.
    let mut bad = span(0x41, 1, None, SpanKind::Server, t);
    bad.attributes.push(attribute("deep", arrays(48)));
    let good = span(0x41, 2, Some(1), SpanKind::Internal, t);
    let json = serde_json::to_vec(&traces("deep", vec![bad.clone(), good])).unwrap();
    let (status, _, body) = running.post("application/json", None, json.clone()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (rejected, message) = json_partial(&body);
    assert_eq!(rejected, 1, "{message}");
    assert!(
        message.contains("nests arrays or maps more than 30 levels"),
        "{message}"
    );
    let trace = running.trace(&"41".repeat(16), 1).await;
    assert_eq!(
        trace["spans"].as_array().unwrap().len(),
        1,
        "only the good span is stored"
    );

    // The import (same rules) and protobuf (maps 31 deep in an event, which protobuf itself
    // decodes) and gRPC (a too-deep scope attribute: all of its spans go).
    let import = reqwest::Client::new()
        .post(running.api("/api/v1/import"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&traces("deep", vec![bad])).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(import.status().as_u16(), 200);
    assert_eq!(json_partial(&import.bytes().await.unwrap()).0, 1);
    let mut in_event = span(0x42, 1, None, SpanKind::Server, t);
    in_event.events.push(Event {
        name: "deep".into(),
        attributes: vec![attribute("deep", maps(31))],
        ..Default::default()
    });
    let (status, _, body) = running
        .post(
            "application/x-protobuf",
            None,
            traces("deep", vec![in_event]).encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let answer = ExportTraceServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 1);
    let mut scoped = traces(
        "deep",
        vec![
            span(0x43, 1, None, SpanKind::Server, t),
            span(0x43, 2, Some(1), SpanKind::Server, t),
        ],
    );
    scoped.resource_spans[0].scope_spans[0].scope = Some(InstrumentationScope {
        name: "deep scope".into(),
        attributes: vec![attribute("deep", arrays(31))],
        ..Default::default()
    });
    let mut client = TraceServiceClient::connect(format!("http://{}", running.collector.otlp_grpc_addr()))
        .await
        .unwrap();
    let answer = client.export(scoped).await.unwrap().into_inner();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 2);
    // As deep as allowed is stored and reads back (30 levels of maps in a link).
    let mut deepest = span(0x44, 1, None, SpanKind::Server, t);
    deepest.links.push(Link {
        trace_id: vec![0x45; 16],
        span_id: vec![1; 8],
        attributes: vec![attribute("deep", maps(30))],
        ..Default::default()
    });
    let (status, _, body) = running
        .post(
            "application/json",
            None,
            serde_json::to_vec(&traces("deep", vec![deepest])).unwrap(),
        )
        .await;
    assert_eq!((status, json_partial(&body).0), (200, 0));
    running.trace(&"44".repeat(16), 1).await;

    // Logs: a too-deep body or attribute rejects the record.
    let mut deep_body = record(t, "", None);
    deep_body.body = Some(arrays(31));
    let mut deep_attribute = record(t, "deep attribute", None);
    deep_attribute.attributes.push(attribute("deep", maps(31)));
    let fine = record(t, "fine", None);
    let (status, _, body) = running
        .post_path_protobuf(
            "/v1/logs",
            logs("deep", vec![deep_body, deep_attribute, fine]).encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let answer = ExportLogsServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_log_records, 2);

    let running = restart(running).await;
    assert_eq!(
        running.trace(&"44".repeat(16), 1).await["spans"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, page) = running.get("/api/v1/logs?service=deep").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["logs"].as_array().unwrap().len(), 1);
    running.collector.shutdown().await;
}

/// Issue 30, item 4: a start at or after 2^63 ns was stored as a negative number; a query's
/// `end` of u64::MAX found nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_past_2262_are_rejected_and_query_bounds_take_the_whole_range() {
    let running = common::start().await;
    let t = now();
    let mut future = span(0x51, 1, None, SpanKind::Server, 1 << 63);
    future.end_time_unix_nano = u64::MAX;
    let mut ends_late = span(0x51, 2, None, SpanKind::Server, t);
    ends_late.end_time_unix_nano = 1 << 63;
    let (status, _, body) = running
        .post(
            "application/x-protobuf",
            None,
            traces(
                "clocks",
                vec![future, ends_late, span(0x51, 3, None, SpanKind::Server, t)],
            )
            .encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let partial = ExportTraceServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(partial.error_message.contains("2^63"), "{}", partial.error_message);
    let mut late_log = record(1 << 63, "late", None);
    late_log.observed_time_unix_nano = 1 << 63;
    let (status, _, body) = running
        .post_path_protobuf(
            "/v1/logs",
            logs("clocks", vec![late_log, record(t, "now", Some(0x51))]).encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let answer = ExportLogsServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_log_records, 1);
    running.collector.store().write_summaries().await.unwrap();

    let max = u64::MAX;
    let found = running
        .search_until(&format!("/api/v1/traces?service=clocks&start=0&end={max}"), |b| {
            b["traces"].as_array().is_some_and(|t| t.len() == 1)
        })
        .await;
    assert_eq!(found["traces"][0]["span_count"], 1);
    let (status, page) = running.get(&format!("/api/v1/logs?start=0&end={max}")).await;
    assert_eq!(status, 200);
    assert_eq!(page["logs"].as_array().unwrap().len(), 1, "{page}");
    let (status, v3) = running
        .get(&format!(
            "/api/v3/traces?query.service_name=clocks&query.start_time_min=0&query.start_time_max={max}"
        ))
        .await;
    assert_eq!(status, 200, "{v3}");
    let running = restart(running).await;
    running.trace(&"51".repeat(16), 1).await;
    running.collector.shutdown().await;
}

/// Issue 30, item 7: only top-level string attribute values and `service.name` were cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_string_is_cut_to_the_attribute_limit() {
    const MAX: usize = 64;
    let running = common::start_with(|c| c.limits.max_attribute_bytes = MAX).await;
    let long = "x".repeat(1000);
    let t = now();
    let mut s = span(0x61, 1, None, SpanKind::Server, t);
    s.name = long.clone();
    s.trace_state = format!("k={long}");
    s.status = Some(Status {
        code: 2,
        message: long.clone(),
    });
    s.attributes.push(attribute(&format!("key{long}"), string("v")));
    s.attributes.push(attribute(
        "nested",
        AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![maps(1), string(&long)],
            })),
        },
    ));
    s.attributes.push(attribute(
        "bytes",
        AnyValue {
            value: Some(any_value::Value::BytesValue(vec![7; 1000])),
        },
    ));
    s.events.push(Event {
        name: long.clone(),
        attributes: vec![attribute("e", string(&long))],
        ..Default::default()
    });
    s.links.push(Link {
        trace_id: vec![0x62; 16],
        span_id: vec![2; 8],
        trace_state: long.clone(),
        attributes: vec![attribute("l", string(&long))],
        ..Default::default()
    });
    let mut request: ExportTraceServiceRequest = traces("cut", vec![s]);
    request.resource_spans[0].scope_spans[0].scope = Some(InstrumentationScope {
        name: long.clone(),
        version: long.clone(),
        ..Default::default()
    });
    let (status, _, body) = running
        .post("application/x-protobuf", None, request.encode_to_vec())
        .await;
    assert_eq!(status, 200);
    let message = ExportTraceServiceResponse::decode(&body[..])
        .unwrap()
        .partial_success
        .unwrap()
        .error_message;
    assert!(
        message.contains(&format!("attribute values cut to {MAX} bytes")),
        "{message}"
    );
    assert!(
        message.contains(&format!("keys, names and other strings cut to {MAX} bytes")),
        "{message}"
    );

    let trace = running.trace(&"61".repeat(16), 1).await;
    let view = &trace["spans"][0];
    // Every string in the view, keys included, is within the limit (bytes show as hex: 2 a byte).
    fn longest(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::String(s) => s.len(),
            serde_json::Value::Array(items) => items.iter().map(longest).max().unwrap_or(0),
            serde_json::Value::Object(map) => map.iter().map(|(k, v)| k.len().max(longest(v))).max().unwrap_or(0),
            _ => 0,
        }
    }
    let mut view = view.clone();
    let bytes = view["attributes"]["bytes"].as_str().unwrap().len();
    assert_eq!(bytes, 2 * MAX);
    view["attributes"]["bytes"] = serde_json::Value::Null;
    assert!(longest(&view) <= MAX, "{view:#}");

    // Logs: attribute keys and nested values too.
    let mut r = record(t, "short", None);
    r.attributes.push(attribute(&long, maps(1)));
    r.attributes.push(attribute("deep", maps(2)));
    if let Some(any_value::Value::KvlistValue(list)) = r.attributes[1].value.as_mut().and_then(|v| v.value.as_mut()) {
        list.values[0].key = long.clone();
    }
    let (status, _, _) = running
        .post_path_protobuf("/v1/logs", logs("cut", vec![r]).encode_to_vec())
        .await;
    assert_eq!(status, 200);
    let (_, page) = running.get("/api/v1/logs?service=cut").await;
    assert!(longest(&page["logs"][0]["attributes"]) <= MAX, "{page:#}");
    running.collector.shutdown().await;
}
