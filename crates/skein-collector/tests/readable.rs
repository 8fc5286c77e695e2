//! Anything the receiver accepts, the store reads back whole (issue 30, items 1 and 2): frames
//! hold each resource and scope once and are bounded in size, the reader's limit follows from
//! the writer's, and a frame that cannot be read is set aside at start-up instead of stopping it.

mod common;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, TracesData};
use proptest::prelude::*;
use prost::Message;

use common::otlp::{attribute, now, resource, string};

/// The stored OTLP data of a trace, as the download gives it.
async fn download(running: &common::Running, trace_id: &str) -> (u16, TracesData) {
    let response = reqwest::get(running.api(&format!("/api/v1/traces/{trace_id}/otlp")))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Issue 30, item 1: one resource with 7 × 14,000-character attributes and 1,024 one-span
/// scopes (a 165 KB request) became a frame over the reader's 64 MiB limit: acknowledged,
/// then its trace, download and Jaeger view answered 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_resource_over_many_scopes_is_stored_once_per_frame_and_reads_back() {
    let running = common::start().await;
    let mut big = resource("wide");
    for i in 0..7 {
        big.attributes
            .push(attribute(&format!("big.{i}"), string(&"r".repeat(14_000))));
    }
    let t = now();
    let scopes: Vec<ScopeSpans> = (0..1024u64)
        .map(|i| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: format!("scope {i}"),
                ..Default::default()
            }),
            spans: vec![Span {
                trace_id: vec![0x71; 16],
                span_id: (i + 1).to_be_bytes().to_vec(),
                name: "one".into(),
                start_time_unix_nano: t + i,
                end_time_unix_nano: t + i + 1000,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(big),
            scope_spans: scopes,
            ..Default::default()
        }],
    };
    let body = request.encode_to_vec();
    assert!(body.len() < 200_000, "{}", body.len());
    let before = running.collector.store().disk_bytes().unwrap();
    assert_eq!(running.post_protobuf(body.clone()).await, 200);
    let id = "71".repeat(16);
    let trace = running.trace(&id, 1024).await;
    assert_eq!(trace["spans"].as_array().unwrap().len(), 1024);
    let (status, data) = download(&running, &id).await;
    assert_eq!(status, 200);
    assert_eq!(data.resource_spans.iter().flat_map(|r| &r.scope_spans).count(), 1024);
    let (status, jaeger) = running.get(&format!("/api/traces/{id}")).await;
    assert_eq!(status, 200, "{jaeger}");
    assert_eq!(jaeger["data"][0]["spans"].as_array().unwrap().len(), 1024);
    // The store grew by about the request, not by a copy of the resource per scope (100 MB).
    running.collector.store().checkpoint().unwrap();
    let grown = running.collector.store().disk_bytes().unwrap().saturating_sub(before);
    assert!(
        grown < 4 * body.len() as u64 + (1 << 20),
        "{grown} bytes for a {}-byte request",
        body.len()
    );
    running.collector.shutdown().await;
}

/// A random value: strings, numbers, bytes, arrays and maps, up to `depth` levels.
fn value(depth: u32) -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        ".{0,40}".prop_map(any_value::Value::StringValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<f64>()
            .prop_filter("JSON keeps finite doubles", |d| d.is_finite())
            .prop_map(any_value::Value::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(any_value::Value::BytesValue),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    leaf.prop_recursive(depth, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|values| any_value::Value::ArrayValue(ArrayValue { values })),
            proptest::collection::vec(("[a-z.]{1,8}", inner), 0..4).prop_map(|pairs| {
                any_value::Value::KvlistValue(KeyValueList {
                    values: pairs.into_iter().map(|(k, v)| attribute(&k, v)).collect(),
                })
            }),
        ]
        .prop_map(|v| AnyValue { value: Some(v) })
    })
}

/// Attributes with random keys and values; now and then a long string or a deep value.
fn attributes() -> impl Strategy<Value = Vec<opentelemetry_proto::tonic::common::v1::KeyValue>> {
    let long = (1usize..40_000).prop_map(|n| string(&"v".repeat(n)));
    let deep = (25usize..40).prop_map(|levels| {
        let mut v = string("bottom");
        for _ in 0..levels {
            v = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })),
            };
        }
        v
    });
    proptest::collection::vec(
        ("[a-z.]{1,12}", prop_oneof![8 => value(4), 1 => long, 1 => deep]).prop_map(|(k, v)| attribute(&k, v)),
        0..6,
    )
}

/// A random request: resources (some large), scopes, spans of a few traces; times now and
/// then at the ends of the range; ids now and then unusable.
fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let span = (
        0u8..4,
        any::<u64>(),
        prop_oneof![8 => Just(None), 1 => Just(Some(1u64 << 63)), 1 => Just(Some(0u64))],
        attributes(),
        proptest::collection::vec(attributes(), 0..3),
        ".{0,30}",
    )
        .prop_map(|(trace, id, time, attributes, events, name)| {
            let start = time.unwrap_or_else(now);
            Span {
                trace_id: if trace == 3 && id % 7 == 0 {
                    vec![0; 16]
                } else {
                    vec![0x80 + trace; 16]
                },
                span_id: id.max(1).to_be_bytes().to_vec(),
                name,
                start_time_unix_nano: start,
                end_time_unix_nano: start.saturating_add(1000),
                attributes,
                events: events
                    .into_iter()
                    .map(|attributes| span::Event {
                        name: "e".into(),
                        time_unix_nano: start,
                        attributes,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        });
    let scope =
        (".{0,20}", attributes(), proptest::collection::vec(span, 0..40)).prop_map(|(name, attributes, spans)| {
            ScopeSpans {
                scope: Some(InstrumentationScope {
                    name,
                    attributes,
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }
        });
    let resource_spans = ("[a-z]{1,8}", attributes(), proptest::collection::vec(scope, 0..30)).prop_map(
        |(service, attributes, scope_spans)| {
            let mut r = resource(&service);
            r.attributes.extend(attributes);
            ResourceSpans {
                resource: Some(r),
                scope_spans,
                ..Default::default()
            }
        },
    );
    proptest::collection::vec(resource_spans, 1..4)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// A span with its trace and span ids and its resource and scope, encoded.
type Kept = (Vec<u8>, Vec<u8>, Span, Vec<u8>, Vec<u8>);

/// Every span the receiver keeps, with its resource and scope, keyed by (trace, span).
fn kept(request: ExportTraceServiceRequest) -> Vec<Kept> {
    let mut out = Vec::new();
    for rs in request.resource_spans {
        for ss in rs.scope_spans {
            for span in ss.spans {
                out.push((
                    span.trace_id.clone(),
                    span.span_id.clone(),
                    span,
                    rs.resource.as_ref().map(Message::encode_to_vec).unwrap_or_default(),
                    ss.scope.as_ref().map(Message::encode_to_vec).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// What the receiver accepts reads back whole: every kept span (after the receiver's cuts
    /// and rejections, which `validate_traces` applies here as it does there) is in its trace's
    /// download, equal field for field, with its resource and scope; also after a restart.
    #[test]
    fn accepted_requests_read_back_whole(request in request(), as_json in any::<bool>()) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let running = common::start().await;
            let limits = skein_collector::receiver::Limits::default();
            let expected = skein_collector::validate::validate_traces(request.clone(), &limits)
                .unwrap_or_else(|_| panic!("valid"));
            let (status, _, body) = if as_json {
                running.post("application/json", None, serde_json::to_vec(&request).unwrap()).await
            } else {
                running.post("application/x-protobuf", None, request.encode_to_vec()).await
            };
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let expected = kept(expected.request);
            let running = {
                let common::Running { collector, dir } = running;
                collector.shutdown().await;
                common::Running { collector: skein_collector::Collector::start(common::config(dir.path())).await.unwrap(), dir }
            };
            let mut traces: Vec<&Vec<u8>> = expected.iter().map(|e| &e.0).collect();
            traces.sort();
            traces.dedup();
            for trace in traces {
                let (status, data) = download(&running, &skein_collector::model::hex(trace)).await;
                assert_eq!(status, 200);
                let got = kept(ExportTraceServiceRequest { resource_spans: data.resource_spans });
                for want in expected.iter().filter(|e| &e.0 == trace) {
                    let found = got.iter().find(|g| g.1 == want.1);
                    let found = found.unwrap_or_else(|| panic!("span {:?} of {:?} missing", want.1, trace));
                    assert_eq!(&found.2, &want.2, "the span reads back as accepted");
                    assert_eq!(&found.3, &want.3, "its resource");
                    assert_eq!(&found.4, &want.4, "its scope");
                }
            }
            running.collector.shutdown().await;
        });
    }
}
