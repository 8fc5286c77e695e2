//! The OTLP/HTTP exporter against a real receiver on loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use skein::*;
use skein_export::otlp::{OtlpHttpExporter, Protocol};
use skein_export::{BatchConfig, ExportPipeline, Resource};

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn rich_activity(source: &'static ActivitySource) -> (Activity, ActivityContext) {
    let parent = ActivityContext::parse(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        Some("vendor=v1"),
    )
    .unwrap();
    let linked =
        ActivityContext::parse("00-11111111111111111111111111111111-2222222222222222-01", Some("l=1")).unwrap();
    let activity = source
        .start_activity_with(
            "GET /orders/{id}",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Context(parent.clone()),
                tags: vec![Tag::new("http.request.method", "GET")],
                links: vec![ActivityLink::new(linked.clone()).with_tags([Tag::new("link.reason", "connection")])],
                ..Default::default()
            },
        )
        .expect("sampled");
    activity
        .add_tag("s", "text")
        .add_tag("i", 42i64)
        .add_tag("b", true)
        .add_tag("f", 2.5)
        .add_tag("sa", vec!["x", "y"])
        .add_tag("ia", vec![1i64, 2])
        .add_tag("ba", vec![true, false])
        .add_tag("fa", vec![0.5, 1.5])
        .add_baggage("secret.baggage", "never exported")
        .add_event(ActivityEvent::new("cache miss").with_tags([Tag::new("cache.key", "k1")]))
        .set_status(ActivityStatusCode::Error, Some("payment declined"));
    (activity, linked)
}

fn round_trip(protocol: Protocol, gzip: bool, source: &'static ActivitySource) {
    let (addr, received) = common::start_receiver();
    let exporter = OtlpHttpExporter::new(
        &format!("http://{addr}/v1/traces"),
        protocol,
        Resource::new("orders").with("deployment.environment", "test"),
    )
    .unwrap()
    .with_gzip(gzip)
    .with_header("x-api-key", "secret")
    .unwrap();
    let guard = common::pipeline(source, exporter);
    let (activity, linked) = rich_activity(source);
    let (trace_id, span_id) = (activity.trace_id(), activity.span_id());
    drop(activity);
    guard.force_flush(Duration::from_secs(10)).unwrap();

    let requests = received.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(received.gzip.lock().unwrap()[0], gzip);
    assert_eq!(received.api_keys.lock().unwrap()[0].as_deref(), Some("secret"));
    let rs = &requests[0].resource_spans[0];
    let resource = &rs.resource.as_ref().unwrap().attributes;
    assert!(matches!(attr(resource, "service.name"), Some(Value::StringValue(s)) if s == "orders"));
    assert!(matches!(attr(resource, "deployment.environment"), Some(Value::StringValue(s)) if s == "test"));
    assert!(matches!(attr(resource, "telemetry.sdk.name"), Some(Value::StringValue(s)) if s == "skein"));
    let scope = rs.scope_spans[0].scope.as_ref().unwrap();
    assert_eq!(scope.name, source.name());
    assert_eq!(scope.version, "3.1.4");
    assert!(matches!(attr(&scope.attributes, "scope.tag"), Some(Value::StringValue(s)) if s == "yes"));

    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.trace_id, trace_id.to_bytes());
    assert_eq!(span.span_id, span_id.to_bytes());
    assert_eq!(
        span.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap().to_bytes()
    );
    assert_eq!(span.trace_state, "vendor=v1");
    assert_eq!(span.name, "GET /orders/{id}");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.flags & 0xff, 0x01, "recorded");
    assert_eq!(span.flags & 0x300, 0x300, "the parent is known to be remote");
    assert!(
        span.end_time_unix_nano > span.start_time_unix_nano && span.start_time_unix_nano > 1_600_000_000_000_000_000
    );
    let a = &span.attributes;
    assert!(matches!(attr(a, "http.request.method"), Some(Value::StringValue(s)) if s == "GET"));
    assert!(matches!(attr(a, "s"), Some(Value::StringValue(s)) if s == "text"));
    assert!(matches!(attr(a, "i"), Some(Value::IntValue(42))));
    assert!(matches!(attr(a, "b"), Some(Value::BoolValue(true))));
    assert!(matches!(attr(a, "f"), Some(Value::DoubleValue(f)) if *f == 2.5));
    let array = |key| match attr(a, key) {
        Some(Value::ArrayValue(v)) => v.values.iter().map(|x| x.value.clone().unwrap()).collect::<Vec<_>>(),
        other => panic!("{key}: {other:?}"),
    };
    assert_eq!(
        array("sa"),
        [Value::StringValue("x".into()), Value::StringValue("y".into())]
    );
    assert_eq!(array("ia"), [Value::IntValue(1), Value::IntValue(2)]);
    assert_eq!(array("ba"), [Value::BoolValue(true), Value::BoolValue(false)]);
    assert_eq!(array("fa"), [Value::DoubleValue(0.5), Value::DoubleValue(1.5)]);
    assert!(attr(a, "secret.baggage").is_none(), "baggage is not exported");
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "cache miss");
    assert!(span.events[0].time_unix_nano >= span.start_time_unix_nano);
    assert!(matches!(attr(&span.events[0].attributes, "cache.key"), Some(Value::StringValue(s)) if s == "k1"));
    let link = &span.links[0];
    assert_eq!(link.trace_id, linked.trace_id.to_bytes());
    assert_eq!(link.span_id, linked.span_id.to_bytes());
    assert_eq!(link.trace_state, "l=1");
    assert_eq!(link.flags & 0x300, 0x300);
    assert!(matches!(attr(&link.attributes, "link.reason"), Some(Value::StringValue(s)) if s == "connection"));
    let status = span.status.as_ref().unwrap();
    assert_eq!(status.code, 2);
    assert_eq!(status.message, "payment declined");
    guard.shutdown(Duration::from_secs(5)).unwrap();
}

static SCOPE_TAGS: [Tag; 1] = [Tag::new_static_str("scope.tag", "yes")];

#[test]
fn every_field_round_trips_over_http_protobuf() {
    static SOURCE: ActivitySource = ActivitySource::new("test.http.protobuf")
        .with_version("3.1.4")
        .with_tags(&SCOPE_TAGS);
    round_trip(Protocol::HttpProtobuf, false, &SOURCE);
}

#[test]
fn every_field_round_trips_over_http_json_with_gzip() {
    static SOURCE: ActivitySource = ActivitySource::new("test.http.json")
        .with_version("3.1.4")
        .with_tags(&SCOPE_TAGS);
    round_trip(Protocol::HttpJson, true, &SOURCE);
}

#[test]
fn unrecorded_activities_are_not_exported() {
    static SOURCE: ActivitySource = ActivitySource::new("test.http.unrecorded");
    let (addr, received) = common::start_receiver();
    let exporter = common::http_exporter(addr);
    let guard = common::pipeline(&SOURCE, exporter);
    // Child of an unsampled remote parent: kept for propagation only.
    let a = SOURCE
        .start_activity_with(
            "propagation only",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
                ..Default::default()
            },
        )
        .expect("created for propagation");
    assert!(!a.recorded());
    // Its child follows it (the pipeline's parent-based sampler, answered without asking).
    let child = SOURCE
        .start_activity("child of propagation only", ActivityKind::Internal)
        .expect("created for propagation");
    assert!(!child.recorded() && !child.is_all_data_requested());
    assert_eq!(child.trace_id(), a.trace_id());
    drop(child);
    drop(a);
    let recorded = SOURCE.start_activity("recorded", ActivityKind::Internal).unwrap();
    let child = SOURCE
        .start_activity("child of recorded", ActivityKind::Internal)
        .unwrap();
    assert!(child.recorded() && child.is_all_data_requested());
    drop(child);
    drop(recorded);
    guard.force_flush(Duration::from_secs(10)).unwrap();
    let names: Vec<String> = received.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["child of recorded", "recorded"]);
}

#[test]
fn retryable_failures_are_retried() {
    static SOURCE: ActivitySource = ActivitySource::new("test.http.retry");
    let (addr, received) = common::start_receiver();
    received.fail_first.store(2, std::sync::atomic::Ordering::SeqCst);
    let exporter = common::http_exporter(addr).with_initial_backoff(Duration::from_millis(1));
    let guard = common::pipeline(&SOURCE, exporter);
    drop(SOURCE.start_activity("after two 503s", ActivityKind::Internal));
    guard.force_flush(Duration::from_secs(10)).unwrap();
    assert_eq!(received.attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(received.spans().len(), 1);
}

#[test]
fn a_down_collector_never_blocks_the_application_and_drops_are_counted() {
    static SOURCE: ActivitySource = ActivitySource::new("test.http.down");
    let exporter = OtlpHttpExporter::new(
        &format!("http://{}/v1/traces", common::closed_port()),
        Protocol::HttpProtobuf,
        Resource::new("svc"),
    )
    .unwrap()
    .with_timeout(Duration::from_millis(300));
    let guard = ExportPipeline::new()
        .with_sources([SOURCE.name()])
        .batch(
            exporter,
            BatchConfig {
                max_queue_size: 16,
                max_export_batch_size: 8,
                ..BatchConfig::default()
            },
        )
        .install();
    for i in 0..2_000 {
        drop(SOURCE.start_activity(format!("op{i}"), ActivityKind::Internal));
    }
    assert!(guard.dropped_count() > 0, "the queue overflowed and counted it");
    // The flush reports the backend's absence; shutdown returns.
    let _ = guard.force_flush(Duration::from_secs(5));
    let _ = guard.shutdown(Duration::from_secs(5));
}

#[test]
fn a_slow_collector_costs_the_application_nothing_but_drops() {
    static SOURCE: ActivitySource = ActivitySource::new("test.http.slow");
    let (addr, received) = common::start_receiver();
    received.delay_ms.store(2_000, std::sync::atomic::Ordering::SeqCst);
    let exporter = common::http_exporter(addr).with_timeout(Duration::from_millis(200));
    let guard = ExportPipeline::new()
        .with_sources([SOURCE.name()])
        .batch(
            exporter,
            BatchConfig {
                max_queue_size: 64,
                max_export_batch_size: 16,
                scheduled_delay: Duration::from_millis(10),
                ..BatchConfig::default()
            },
        )
        .install();
    // The export thread is stuck waiting on the collector; the application keeps going and
    // the overflow is counted rather than waited for.
    for i in 0..5_000 {
        drop(SOURCE.start_activity(format!("op{i}"), ActivityKind::Internal));
    }
    assert!(guard.dropped_count() > 0);
    assert!(received.spans().is_empty(), "every request timed out before the answer");
    let _ = guard.shutdown(Duration::from_secs(5));
}

fn export_one_under(label: &str, run: impl FnOnce(Box<dyn FnOnce() + Send>)) {
    static SOURCE: ActivitySource = ActivitySource::new("test.http.runtimes");
    let (addr, received) = common::start_receiver();
    let exporter = common::http_exporter(addr);
    let guard = Arc::new(common::pipeline(&SOURCE, exporter));
    let name = label.to_owned();
    let g = guard.clone();
    run(Box::new(move || {
        drop(SOURCE.start_activity(name, ActivityKind::Internal));
        g.force_flush(Duration::from_secs(10)).unwrap();
    }));
    let names: Vec<String> = received.spans().into_iter().map(|s| s.name).collect();
    assert!(names.contains(&label.to_owned()), "{label}: {names:?}");
}

#[test]
fn exports_with_no_runtime_and_inside_tokio_runtimes() {
    export_one_under("no runtime", |f| f());
    export_one_under("current thread", |f| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { f() })
    });
    export_one_under("multi thread", |f| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { f() })
    });
}
