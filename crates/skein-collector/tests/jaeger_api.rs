//! Jaeger's query API as Jaeger answers it, so Grafana's Jaeger data source and the Jaeger UI
//! read the store without surprises: searches by the tags the view shows (and by event and
//! link attributes), exact trace ids, Go durations, Jaeger 2.x v3 parameters and errors, and
//! the representation of 64-bit ids, bytes, missing services and child-of links.

mod common;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::Value;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn resource_spans(service: Option<&str>, scope: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: service.map(|s| text("service.name", s)).into_iter().collect(),
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: scope.into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn id(high: u64, low: u64) -> Vec<u8> {
    let mut id = high.to_be_bytes().to_vec();
    id.extend(low.to_be_bytes());
    id
}

const T1: u64 = 0x1111; // a 64-bit trace id (high half zero)
const T2: u64 = 0x2222;
const T3: u64 = 0x3333;

fn span(trace: u64, n: u8, parent: Option<u8>, kind: SpanKind, start: u64, name: &str) -> Span {
    Span {
        trace_id: id(0, trace),
        span_id: vec![n; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 2_000_000,
        ..Default::default()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn setup() -> (common::Running, u64) {
    let running = common::start().await;
    let start = now() - 60_000_000_000;
    let mut server = span(T1, 1, None, SpanKind::Server, start, "GET /cart");
    server
        .attributes
        .push(kv("payload", any_value::Value::BytesValue(vec![1, 2, 3])));
    server.events.push(Event {
        name: "cache".into(),
        time_unix_nano: start + 10,
        attributes: vec![text("event.note", "cache miss")],
        ..Default::default()
    });
    server.links.push(Link {
        trace_id: id(0, T2),
        span_id: vec![7; 8],
        attributes: vec![text("opentracing.ref_type", "child_of")],
        ..Default::default()
    });
    let mut failing = span(T1, 2, Some(1), SpanKind::Internal, start + 100, "price rule");
    failing.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "no price".into(),
    });
    let client = span(T2, 7, None, SpanKind::Client, start + 200, "GET /stock");
    let anonymous = span(T3, 9, None, SpanKind::Internal, start + 300, "orphan work");
    let request = ExportTraceServiceRequest {
        resource_spans: vec![
            resource_spans(Some("web"), "web.http", vec![server, failing]),
            resource_spans(Some("web"), "web.client", vec![client]),
            resource_spans(None, "misc", vec![anonymous]),
        ],
    };
    assert_eq!(running.post_protobuf(request.encode_to_vec()).await, 200);
    running.trace(&format!("{:032x}", T1), 2).await;
    running.trace(&format!("{:032x}", T2), 1).await;
    running.trace(&format!("{:032x}", T3), 1).await;
    (running, start)
}

/// Unix seconds as an RFC 3339 time (the civil-from-days algorithm).
fn rfc3339(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn trace_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn tag<'a>(tags: &'a Value, key: &str) -> Option<&'a Value> {
    tags.as_array()?.iter().find(|t| t["key"] == key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_search_and_representation() {
    let (running, _) = setup().await;
    let t1 = format!("{T1:016x}");
    let t2 = format!("{T2:016x}");
    // Searches by the tags the view shows, and by event and link attributes.
    for query in [
        "tags=%7B%22error%22%3A%22true%22%7D",
        "tag=otel.status_code:ERROR",
        "tag=span.kind:server",
        "tag=otel.scope.name:web.http",
        "tag=event.note:cache%20miss",
        "tag=opentracing.ref_type:child_of",
    ] {
        let (status, body) = running.get(&format!("/api/traces?service=web&{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(trace_ids(&body), std::slice::from_ref(&t1), "{query}");
    }
    let (_, body) = running.get("/api/traces?service=web&tag=span.kind:client").await;
    assert_eq!(trace_ids(&body), std::slice::from_ref(&t2));
    // Exactly the trace ids asked for (no service needed then).
    let (status, body) = running.get(&format!("/api/traces?traceID={T1:x}&traceID={t2}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(trace_ids(&body), [t1.clone(), t2.clone()]);
    // Parameters as Jaeger checks them.
    assert_eq!(running.get("/api/traces").await.0, 400, "service is required");
    assert_eq!(running.get("/api/traces?service=web&minDuration=1m30s").await.0, 200);
    assert_eq!(
        running.get("/api/traces?service=web&minDuration=100").await.0,
        400,
        "unitless"
    );
    assert_eq!(
        running
            .get("/api/traces?service=web&minDuration=2s&maxDuration=1s")
            .await
            .0,
        400
    );
    assert_eq!(running.get("/api/traces?service=web&tag=nocolon").await.0, 400);

    // Representation.
    let (_, body) = running.get(&format!("/api/traces/{t1}")).await;
    let trace = &body["data"][0];
    assert_eq!(trace["traceID"], t1, "64-bit ids are 16 hex digits");
    let spans = trace["spans"].as_array().unwrap();
    let server = spans.iter().find(|s| s["operationName"] == "GET /cart").unwrap();
    let payload = tag(&server["tags"], "payload").unwrap();
    assert_eq!(payload["type"], "binary");
    assert_eq!(payload["value"], "AQID");
    assert_eq!(server["references"][0]["refType"], "CHILD_OF", "a child_of link");
    assert_eq!(server["references"][0]["traceID"], t2);
    let failing = spans.iter().find(|s| s["operationName"] == "price rule").unwrap();
    assert_eq!(tag(&failing["tags"], "span.kind").unwrap()["value"], "internal");
    assert_eq!(tag(&failing["tags"], "error").unwrap()["value"], true);
    assert_eq!(failing["references"][0]["refType"], "CHILD_OF");
    let (_, body) = running.get(&format!("/api/traces/{T3:x}")).await;
    let processes = body["data"][0]["processes"].as_object().unwrap();
    assert_eq!(
        processes.values().next().unwrap()["serviceName"],
        "OTLPResourceNoServiceName"
    );
    running.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_parameters_and_errors_as_jaeger_2() {
    let (running, start) = setup().await;
    let (from, to) = (start / 1_000_000_000 - 60, start / 1_000_000_000 + 3600);
    let range = format!(
        "query.startTimeMin={}&query.startTimeMax={}",
        rfc3339(from),
        rfc3339(to)
    );
    let attributes = "%7B%22event.note%22%3A%22cache%20miss%22%7D";
    let (status, body) = running
        .get(&format!(
            "/api/v3/traces?query.serviceName=web&{range}&query.attributes={attributes}&query.searchDepth=5"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let spans: usize = body["result"]["resource_spans"]
        .as_array()
        .or_else(|| body["result"]["resourceSpans"].as_array())
        .unwrap_or_else(|| panic!("{body}"))
        .len();
    assert!(spans >= 1);
    let (status, body) = running
        .get(&format!("/api/v3/traces?query.serviceName=nobody&{range}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["httpCode"], 404, "{body}");
    assert_eq!(body["error"]["message"], "No traces found");
    let (status, body) = running
        .get("/api/v3/traces?query.serviceName=web&query.durationMin=5")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["httpCode"], 400, "{body}");
    let (status, body) = running.get("/api/v3/traces/00000000000000000000000000099999").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["httpCode"], 404, "{body}");
    let (_, body) = running.get("/api/v3/operations?service=web&spanKind=server").await;
    let names: Vec<&str> = body["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["GET /cart"]);
    running.collector.shutdown().await;
}
