//! Real clients into a real collector: Skein's OTLP/HTTP and gRPC exporters, raw HTTP with
//! JSON and gzip, and every kind of bad input.

mod common;

use std::io::Write as _;
use std::time::Duration;

use prost::Message;
use skein::*;
use skein_export::otlp::{OtlpGrpcExporter, OtlpHttpExporter, Protocol};
use skein_export::{BatchConfig, ExportPipeline, Resource};

fn pipeline(
    source: &'static ActivitySource,
    exporter: impl skein_export::ActivityExporter,
) -> skein_export::ExportGuard {
    ExportPipeline::new()
        .with_sources([source.name()])
        .batch(exporter, BatchConfig::default())
        .install()
}

#[derive(Debug)]
struct CardDeclined;
impl std::fmt::Display for CardDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}
impl std::error::Error for CardDeclined {}

/// A small trace with every kind of field; returns (trace id, linked trace id).
fn make_trace(source: &'static ActivitySource) -> (String, String) {
    let other = source
        .start_activity("connection setup", ActivityKind::Internal)
        .unwrap();
    let other_context = other.context();
    drop(other);
    let _ = Activity::set_current(None);
    let root = source.start_activity("GET /checkout", ActivityKind::Server).unwrap();
    root.add_tag("http.request.method", "GET")
        .add_tag("http.response.status_code", 200)
        .add_tag("enduser.tier", "gold")
        .add_tag("ratio", 0.25)
        .add_tag("flags", TagValue::StrArray(vec!["a".into(), "b".into()]));
    root.set_trace_state(TraceState::parse("vendor=1").unwrap());
    {
        let child = source
            .start_activity_with(
                "charge card",
                ActivityKind::Client,
                ActivityStartOptions {
                    links: vec![ActivityLink::new(other_context.clone()).with_tags([Tag::new("link.kind", "setup")])],
                    ..Default::default()
                },
            )
            .unwrap();
        child.add_event(ActivityEvent::new("retry").with_tags([Tag::new("attempt", 2)]));
        child.add_exception(&CardDeclined);
        child.set_status(ActivityStatusCode::Error, Some("card declined"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = root.trace_id().to_hex();
    drop(root);
    (id, other_context.trace_id.to_hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skein_http_exporter_round_trips_every_field() {
    static SOURCE: ActivitySource = ActivitySource::new("collector.test.http").with_version("1.2.3");
    let running = common::start().await;
    let exporter = OtlpHttpExporter::new(
        &format!("http://{}/v1/traces", running.collector.otlp_http_addr()),
        Protocol::HttpProtobuf,
        Resource::new("checkout").with("deployment.environment.name", "test"),
    )
    .unwrap();
    let guard = pipeline(&SOURCE, exporter);
    let (trace_id, linked) = tokio::task::spawn_blocking(|| make_trace(&SOURCE)).await.unwrap();
    tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(10)).unwrap())
        .await
        .unwrap();

    let trace = running.trace(&trace_id, 2).await;
    let root = common::span(&trace, "GET /checkout");
    assert_eq!(root["kind"], "server");
    assert_eq!(root["service"], "checkout");
    assert_eq!(root["parent_span_id"], "");
    assert_eq!(root["trace_state"], "vendor=1");
    assert_eq!(root["attributes"]["http.request.method"], "GET");
    assert_eq!(root["attributes"]["http.response.status_code"], 200);
    assert_eq!(root["attributes"]["ratio"], 0.25);
    assert_eq!(root["attributes"]["flags"], serde_json::json!(["a", "b"]));
    assert_eq!(root["resource"]["service.name"], "checkout");
    assert_eq!(root["resource"]["deployment.environment.name"], "test");
    assert_eq!(root["scope"]["name"], "collector.test.http");
    assert_eq!(root["scope"]["version"], "1.2.3");
    let child = common::span(&trace, "charge card");
    assert_eq!(child["kind"], "client");
    assert_eq!(child["parent_span_id"], root["span_id"]);
    assert_eq!(child["status"]["code"], "error");
    assert_eq!(child["status"]["message"], "card declined");
    assert!(child["duration_nano"].as_u64().unwrap() >= 20_000_000);
    let events = child["events"].as_array().unwrap();
    assert_eq!(events[0]["name"], "retry");
    assert_eq!(events[0]["attributes"]["attempt"], 2);
    assert_eq!(events[1]["name"], "exception");
    assert_eq!(events[1]["attributes"]["exception.message"], "card declined");
    let links = child["links"].as_array().unwrap();
    assert_eq!(links[0]["trace_id"], linked);
    assert_eq!(links[0]["attributes"]["link.kind"], "setup");

    // The linked span knows who links to it: a count with the trace, the spans a page at a time.
    let other = running.trace(&linked, 1).await;
    let setup = common::span(&other, "connection setup");
    assert_eq!(
        other["linked_from"],
        serde_json::json!([{ "span_id": setup["span_id"], "count": 1 }])
    );
    let (status, page) = running
        .get(&format!(
            "/api/v1/traces/{linked}/linked_from?span={}",
            setup["span_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["next"], serde_json::Value::Null);
    let linking = &page["links"][0];
    assert_eq!(linking["trace_id"], trace_id.as_str());
    assert_eq!(linking["span_id"], child["span_id"]);
    assert_eq!(linking["service"], "checkout");
    assert_eq!(linking["name"], "charge card");
    assert_eq!(linking["start_unix_nano"], child["start_unix_nano"]);

    // Search, services, operations.
    let has = |id: String| {
        move |v: &serde_json::Value| {
            v["traces"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["trace_id"] == id))
        }
    };
    let found = running
        .search_until(
            "/api/v1/traces?service=checkout&attr=enduser.tier=gold&min_duration=15ms",
            has(trace_id.clone()),
        )
        .await;
    let ids: Vec<&str> = found["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&trace_id.as_str()), "{found:#}");
    let summary = found["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trace_id"] == trace_id)
        .unwrap();
    assert_eq!(summary["root_name"], "GET /checkout");
    assert_eq!(summary["root_service"], "checkout");
    assert_eq!(summary["span_count"], 2);
    assert_eq!(summary["error_count"], 1);
    let (_, none) = running
        .get("/api/v1/traces?service=checkout&attr=enduser.tier=silver")
        .await;
    assert!(none["traces"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["trace_id"] != trace_id));
    let (_, slow) = running.get("/api/v1/traces?service=checkout&min_duration=5s").await;
    assert!(slow["traces"].as_array().unwrap().is_empty());
    // A trace-level search reads the trace summaries, which trail the spans by a moment.
    running
        .search_until("/api/v1/traces?errors=true", has(trace_id.clone()))
        .await;
    let (_, services) = running.get("/api/v1/services").await;
    assert_eq!(services["services"], serde_json::json!(["checkout"]));
    let (_, ops) = running.get("/api/v1/operations?service=checkout").await;
    let names: Vec<&str> = ops["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"charge card") && names.contains(&"GET /checkout"),
        "{ops}"
    );
    // The Jaeger-compatible API.
    let (_, jaeger) = running.get(&format!("/api/traces/{trace_id}")).await;
    let jt = &jaeger["data"][0];
    assert_eq!(jt["traceID"], trace_id);
    let jspans = jt["spans"].as_array().unwrap();
    let jchild = jspans.iter().find(|s| s["operationName"] == "charge card").unwrap();
    let jroot = jspans.iter().find(|s| s["operationName"] == "GET /checkout").unwrap();
    let has_tag = |span: &serde_json::Value, key: &str, value: serde_json::Value| {
        span["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == key && t["value"] == value)
    };
    assert!(has_tag(jchild, "span.kind", "client".into()));
    assert!(has_tag(jchild, "otel.status_code", "ERROR".into()));
    assert!(has_tag(jchild, "error", true.into()));
    assert!(has_tag(jroot, "http.response.status_code", 200.into()));
    let refs = jchild["references"].as_array().unwrap();
    assert_eq!(refs[0]["refType"], "CHILD_OF");
    assert_eq!(refs[0]["spanID"], jroot["spanID"]);
    assert_eq!(refs[1]["refType"], "FOLLOWS_FROM");
    assert_eq!(refs[1]["traceID"], linked);
    assert!(jchild["duration"].as_u64().unwrap() >= 20_000, "microseconds");
    assert_eq!(jchild["logs"][0]["fields"][0]["value"], "retry");
    let process = &jt["processes"][jchild["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "checkout");
    let (_, jsearch) = running
        .get("/api/traces?service=checkout&tags=%7B%22enduser.tier%22%3A%22gold%22%7D&minDuration=15ms&limit=20")
        .await;
    assert!(
        jsearch["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["traceID"] == trace_id),
        "{jsearch}"
    );
    let (_, jservices) = running.get("/api/services").await;
    assert_eq!(jservices["data"], serde_json::json!(["checkout"]));
    let (_, jops) = running.get("/api/operations?service=checkout&spanKind=client").await;
    assert_eq!(
        jops["data"],
        serde_json::json!([{"name": "charge card", "spanKind": "client"}])
    );
    let (_, legacy_ops) = running.get("/api/services/checkout/operations").await;
    assert!(legacy_ops["data"].as_array().unwrap().contains(&"charge card".into()));
    let (_, v3) = running.get(&format!("/api/v3/traces/{trace_id}")).await;
    let resource_spans = v3["result"]["resourceSpans"].as_array().unwrap();
    assert!(!resource_spans.is_empty());
    assert_eq!(
        resource_spans[0]["scopeSpans"][0]["scope"]["name"],
        "collector.test.http"
    );
    let (_, v3services) = running.get("/api/v3/services").await;
    assert_eq!(v3services["services"], serde_json::json!(["checkout"]));
    let (_, v3search) = running
        .get("/api/v3/traces?query.service_name=checkout&query.attributes.enduser.tier=gold")
        .await;
    assert!(!v3search["result"]["resourceSpans"].as_array().unwrap().is_empty());

    let (_, stats) = running.get("/api/v1/stats").await;
    let charge = stats["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "charge card")
        .unwrap();
    assert_eq!(charge["calls"], 1);
    assert_eq!(charge["errors"], 1);
    assert!(charge["p50_nano"].as_u64().unwrap() >= 19_000_000, "{charge}");
    running.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skein_grpc_exporter_is_received_too() {
    static SOURCE: ActivitySource = ActivitySource::new("collector.test.grpc");
    let running = common::start().await;
    let exporter = OtlpGrpcExporter::new(
        &format!("http://{}", running.collector.otlp_grpc_addr()),
        Resource::new("payments"),
    )
    .unwrap()
    .with_gzip(true);
    let guard = pipeline(&SOURCE, exporter);
    let (trace_id, _) = tokio::task::spawn_blocking(|| make_trace(&SOURCE)).await.unwrap();
    tokio::task::spawn_blocking(move || guard.shutdown(Duration::from_secs(10)).unwrap())
        .await
        .unwrap();
    let trace = running.trace(&trace_id, 2).await;
    assert_eq!(common::span(&trace, "charge card")["service"], "payments");
    running.collector.shutdown().await;
}

fn one_span_request(
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    name: &str,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("raw".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id,
                    span_id,
                    name: name.into(),
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: 1_700_000_000_100_000_000,
                    attributes: vec![KeyValue {
                        key: "big".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("x".repeat(100_000))),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_gzip_partial_success_and_bad_input() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    let running = common::start_with(|c| {
        c.limits.max_body_bytes = 1 << 20;
        c.limits.max_attribute_bytes = 1000;
    })
    .await;
    let good_id = vec![0x11; 16];

    // JSON in, JSON out; an over-long value is cut, not refused.
    let json = serde_json::to_vec(&one_span_request(good_id.clone(), vec![0x22; 8], "json span")).unwrap();
    let (status, headers, body) = running.post("application/json", None, json).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("cut to 1000 bytes"),
        "{answer}"
    );
    let trace = running.trace(&"11".repeat(16), 1).await;
    assert_eq!(
        common::span(&trace, "json span")["attributes"]["big"]
            .as_str()
            .unwrap()
            .len(),
        1000
    );

    // Gzip protobuf with one span of a wrong id length: partially rejected.
    let mut request = one_span_request(good_id.clone(), vec![0x33; 8], "gzip span");
    let mut bad = request.resource_spans[0].scope_spans[0].spans[0].clone();
    bad.span_id = vec![1, 2, 3];
    bad.name = "short id".into();
    request.resource_spans[0].scope_spans[0].spans.push(bad);
    let (status, headers, body) = running
        .post("application/x-protobuf", Some("gzip"), gzip(&request.encode_to_vec()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(&body[..]).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 1);
    let trace = running.trace(&"11".repeat(16), 2).await;
    common::span(&trace, "gzip span");
    assert!(trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["name"] != "short id"));

    // Refused whole, with a google.rpc.Status body in the request's format, nothing stored.
    let stored_before = running.get("/api/v1/status").await.1["spans_stored_since_start"].clone();
    let garbage = running
        .post("application/x-protobuf", None, vec![0xff, 0xff, 0xff, 0x07, 0x01])
        .await;
    assert_eq!(garbage.0, 400);
    let status_body = tonic_types::Status::decode(&garbage.2[..]).unwrap();
    assert_eq!(status_body.code, 3);
    assert!(status_body.message.contains("protobuf"), "{}", status_body.message);
    let full = one_span_request(good_id.clone(), vec![0x44; 8], "truncated").encode_to_vec();
    let truncated = running
        .post("application/x-protobuf", None, full[..full.len() / 2].to_vec())
        .await;
    assert_eq!(truncated.0, 400);
    let invalid_json = running
        .post("application/json", None, b"{\"resourceSpans\": [".to_vec())
        .await;
    assert_eq!(invalid_json.0, 400);
    let json_status: serde_json::Value = serde_json::from_slice(&invalid_json.2).unwrap();
    assert_eq!(json_status["code"], 3);
    assert_eq!(running.post("text/plain", None, b"hello".to_vec()).await.0, 415);
    assert_eq!(
        running.post("application/json", Some("br"), b"{}".to_vec()).await.0,
        415
    );
    let bomb = gzip(&vec![0u8; 8 << 20]);
    assert!(bomb.len() < 1 << 20);
    assert_eq!(running.post("application/x-protobuf", Some("gzip"), bomb).await.0, 413);
    assert_eq!(
        running.post("application/x-protobuf", None, vec![0u8; 2 << 20]).await.0,
        413
    );
    assert_eq!(
        running
            .post("application/x-protobuf", Some("gzip"), b"not gzip".to_vec())
            .await
            .0,
        400
    );
    let stored_after = running.get("/api/v1/status").await.1["spans_stored_since_start"].clone();
    assert_eq!(stored_before, stored_after, "nothing stored from refused requests");

    // Still serving.
    let ok = one_span_request(vec![0x55; 16], vec![0x66; 8], "after the storm").encode_to_vec();
    assert_eq!(running.post("application/x-protobuf", None, ok).await.0, 200);
    running.trace(&"55".repeat(16), 1).await;

    // Query API errors are explained.
    assert_eq!(running.get("/api/v1/traces/nothex").await.0, 400);
    assert_eq!(running.get(&format!("/api/v1/traces/{}", "77".repeat(16))).await.0, 404);
    let (status, body) = running.get("/api/v1/traces?min_duration=soon").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("min_duration"));
    running.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_tokens_are_enforced_and_public_addresses_need_them() {
    let running = common::start_with(|c| {
        c.api_key = Some("ingest-secret".into());
        c.query_token = Some("query-secret".into());
    })
    .await;
    let body = one_span_request(vec![0x12; 16], vec![0x34; 8], "keyed").encode_to_vec();
    let url = format!("http://{}/v1/traces", running.collector.otlp_http_addr());
    let client = reqwest::Client::new();
    let without = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 401);
    let with = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("authorization", "Bearer ingest-secret")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    assert_eq!(running.get("/api/v1/services").await.0, 401);
    assert_eq!(running.get("/api/v1/services?token=query-secret").await.0, 200);
    running.collector.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.ui = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let refused = skein_collector::Collector::start(config).await.err().expect("refused");
    assert!(refused.to_string().contains("--query-token"), "{refused}");
}

/// opentelemetry-rust's OTLP exporter, over each transport.
async fn otel_sdk_round_trip(protocol: opentelemetry_otlp::Protocol) {
    use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer as _, TracerProvider as _};
    use opentelemetry::KeyValue;
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
    let running = common::start().await;
    let http = running.collector.otlp_http_addr();
    let grpc = running.collector.otlp_grpc_addr();
    let trace_id = tokio::task::spawn_blocking(move || {
        let exporter = match protocol {
            opentelemetry_otlp::Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("http://{grpc}"))
                .with_compression(opentelemetry_otlp::Compression::Gzip)
                .build(),
            other => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(other)
                .with_endpoint(format!("http://{http}/v1/traces"))
                .build(),
        }
        .unwrap();
        let rt = (protocol == opentelemetry_otlp::Protocol::Grpc).then(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        });
        let _enter = rt.as_ref().map(|r| r.enter());
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("otel-sdk")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("sdk-test");
        let mut parent = tracer.start("sdk parent");
        parent.set_attribute(KeyValue::new("sdk.attr", 42));
        let cx = opentelemetry::Context::current_with_span(parent);
        let mut child = tracer.start_with_context("sdk child", &cx);
        child.add_event("sdk event", vec![KeyValue::new("k", "v")]);
        child.set_status(Status::error("sdk failure"));
        child.end();
        let trace_id = cx.span().span_context().trace_id().to_string();
        cx.span().end();
        if let Some(rt) = &rt {
            rt.block_on(async { provider.shutdown().unwrap() });
        } else {
            provider.shutdown().unwrap();
        }
        trace_id
    })
    .await
    .unwrap();
    let trace = running.trace(&trace_id, 2).await;
    let parent = common::span(&trace, "sdk parent");
    assert_eq!(parent["service"], "otel-sdk");
    assert_eq!(parent["attributes"]["sdk.attr"], 42);
    assert_eq!(parent["scope"]["name"], "sdk-test");
    let child = common::span(&trace, "sdk child");
    assert_eq!(child["parent_span_id"], parent["span_id"]);
    assert_eq!(child["status"]["code"], "error");
    assert_eq!(child["status"]["message"], "sdk failure");
    assert_eq!(child["events"][0]["attributes"]["k"], "v");
    // The same trace through the Jaeger API, as Grafana's Jaeger data source reads it.
    let (status, jaeger) = running.get(&format!("/api/traces/{trace_id}")).await;
    assert_eq!(status, 200);
    let spans = jaeger["data"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let child = spans.iter().find(|s| s["operationName"] == "sdk child").unwrap();
    assert_eq!(child["references"][0]["refType"], "CHILD_OF");
    let process = &jaeger["data"][0]["processes"][child["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "otel-sdk");
    let (_, services) = running.get("/api/services").await;
    assert!(
        services["data"].as_array().unwrap().iter().any(|s| s == "otel-sdk"),
        "{services}"
    );
    running.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_otlp_over_http_protobuf() {
    otel_sdk_round_trip(opentelemetry_otlp::Protocol::HttpBinary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_otlp_over_http_json() {
    otel_sdk_round_trip(opentelemetry_otlp::Protocol::HttpJson).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_otlp_over_grpc() {
    otel_sdk_round_trip(opentelemetry_otlp::Protocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_past_the_per_trace_limit_are_rejected() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    let running = common::start_with(|c| c.limits.max_spans_per_trace = 3).await;
    let mut request = one_span_request(vec![0x99; 16], vec![1; 8], "s1");
    let template = request.resource_spans[0].scope_spans[0].spans[0].clone();
    for i in 2..=5u8 {
        let mut span = template.clone();
        span.span_id = vec![i; 8];
        span.name = format!("s{i}");
        request.resource_spans[0].scope_spans[0].spans.push(span);
    }
    let (status, _, body) = running
        .post("application/x-protobuf", None, request.encode_to_vec())
        .await;
    assert_eq!(status, 200);
    let answer = ExportTraceServiceResponse::decode(&body[..]).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("reached 3 spans"),
        "{}",
        partial.error_message
    );
    let trace = running.trace(&"99".repeat(16), 3).await;
    assert_eq!(trace["spans"].as_array().unwrap().len(), 3);
    running.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_streams_new_trace_summaries() {
    let running = common::start().await;
    let mut feed = reqwest::get(running.api("/api/v1/live")).await.unwrap();
    assert_eq!(feed.headers()["content-type"], "text/event-stream");
    let body = common::spans_request(0x42, 1_700_000_000_000_000_000, 4, "live span");
    assert_eq!(running.post_protobuf(body).await, 200);
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), feed.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("event: trace\ndata: "), "{text}");
    let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
    let summary: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(summary["trace_id"], "42".repeat(16));
    assert_eq!(summary["span_count"], 4);
    running.collector.shutdown().await;
}

/// Issue: an empty key or token turned authentication off (an empty `x-api-key:` header was
/// accepted); `bearer` in lower case was refused; a client without the key learnt from a 415
/// which content types are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_secrets_refuse_to_start_and_keys_are_checked_first() {
    for (key, token) in [(Some(""), None), (None, Some("")), (Some("  "), Some("t"))] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path());
        config.api_key = key.map(str::to_owned);
        config.query_token = token.map(str::to_owned);
        let refused = skein_collector::Collector::start(config).await.err().expect("refused");
        assert!(refused.to_string().contains("is empty"), "{refused}");
    }

    let running = common::start_with(|c| {
        c.api_key = Some("ingest-secret".into());
        c.query_token = Some("query-secret".into());
    })
    .await;
    let body = one_span_request(vec![0x13; 16], vec![0x35; 8], "keyed").encode_to_vec();
    let url = format!("http://{}/v1/traces", running.collector.otlp_http_addr());
    let client = reqwest::Client::new();
    let post = |content_type: &'static str, auth: Option<(&'static str, &'static str)>| {
        let mut request = client
            .post(&url)
            .header("content-type", content_type)
            .body(body.clone());
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post("application/x-protobuf", Some(("x-api-key", ""))).await, 401);
    assert_eq!(
        post("text/plain", None).await,
        401,
        "unauthenticated before unsupported"
    );
    assert_eq!(post("text/plain", Some(("x-api-key", "ingest-secret"))).await, 415);
    assert_eq!(
        post(
            "application/x-protobuf",
            Some(("authorization", "bearer ingest-secret"))
        )
        .await,
        200
    );
    let query = |auth: &'static str| {
        let request = client
            .get(running.api("/api/v1/services"))
            .header("authorization", auth);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(query("BEARER query-secret").await, 200);
    assert_eq!(query("Bearer query-secre").await, 401);
    assert_eq!(query("Bearer ").await, 401);
    running.collector.shutdown().await;
}
