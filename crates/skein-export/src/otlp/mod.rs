//! OTLP: the mapping from activities to OpenTelemetry's protocol, and the exporters that send it.

mod encode;
mod grpc;
mod http;

pub use grpc::OtlpGrpcExporter;
pub use http::{OtlpHttpExporter, Protocol};

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use skein::{Activity, ActivityKind, ActivityStatusCode, Tag, TagValue};

use crate::Resource;

/// OTLP span flag: the remoteness of the parent (or linked) context is known.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
/// OTLP span flag: the parent (or linked) context is remote.
const CONTEXT_IS_REMOTE: u32 = 0x200;

fn any_value(value: &TagValue) -> AnyValue {
    use any_value::Value;
    let value = match value {
        TagValue::Str(s) => Value::StringValue(s.to_string()),
        TagValue::Bool(b) => Value::BoolValue(*b),
        TagValue::I64(i) => Value::IntValue(*i),
        TagValue::F64(f) => Value::DoubleValue(*f),
        TagValue::StrArray(v) => array(v.iter().map(|s| Value::StringValue(s.to_string()))),
        TagValue::BoolArray(v) => array(v.iter().map(|b| Value::BoolValue(*b))),
        TagValue::I64Array(v) => array(v.iter().map(|i| Value::IntValue(*i))),
        TagValue::F64Array(v) => array(v.iter().map(|f| Value::DoubleValue(*f))),
    };
    AnyValue { value: Some(value) }
}

fn array(values: impl Iterator<Item = any_value::Value>) -> any_value::Value {
    any_value::Value::ArrayValue(ArrayValue {
        values: values.map(|v| AnyValue { value: Some(v) }).collect(),
    })
}

/// OTLP attributes from tags.
pub fn attributes(tags: &[Tag]) -> Vec<KeyValue> {
    tags.iter()
        .map(|t| KeyValue {
            key: t.key.to_string(),
            value: Some(any_value(&t.value)),
            ..Default::default()
        })
        .collect()
}

fn kind(kind: ActivityKind) -> span::SpanKind {
    match kind {
        ActivityKind::Internal => span::SpanKind::Internal,
        ActivityKind::Server => span::SpanKind::Server,
        ActivityKind::Client => span::SpanKind::Client,
        ActivityKind::Producer => span::SpanKind::Producer,
        ActivityKind::Consumer => span::SpanKind::Consumer,
    }
}

fn remote_flags(is_remote: bool) -> u32 {
    CONTEXT_HAS_IS_REMOTE | if is_remote { CONTEXT_IS_REMOTE } else { 0 }
}

/// The OTLP span for a stopped activity. Baggage is not part of a span and is not exported.
pub fn span(activity: &Activity) -> Span {
    let parent_span_id = activity.parent_span_id();
    let mut span = Span {
        trace_id: activity.trace_id().to_bytes().to_vec(),
        span_id: activity.span_id().to_bytes().to_vec(),
        trace_state: activity.trace_state().header().to_owned(),
        parent_span_id: if parent_span_id.is_valid() {
            parent_span_id.to_bytes().to_vec()
        } else {
            Vec::new()
        },
        flags: u32::from(activity.trace_flags().bits()) | remote_flags(activity.has_remote_parent()),
        name: activity.display_name(),
        kind: kind(activity.kind()) as i32,
        ..Default::default()
    };
    activity.with_data(|data| {
        span.start_time_unix_nano = data.start_time_unix_nanos();
        span.end_time_unix_nano = data.end_time_unix_nanos();
        span.attributes = attributes(data.tags());
        span.events = data
            .events()
            .iter()
            .map(|e| span::Event {
                time_unix_nano: e.timestamp.unix_nanos(),
                name: e.name.to_string(),
                attributes: attributes(&e.tags),
                dropped_attributes_count: 0,
            })
            .collect();
        span.links = data
            .links()
            .iter()
            .map(|l| span::Link {
                trace_id: l.context.trace_id.to_bytes().to_vec(),
                span_id: l.context.span_id.to_bytes().to_vec(),
                trace_state: l.context.trace_state.header().to_owned(),
                attributes: attributes(&l.tags),
                dropped_attributes_count: 0,
                flags: u32::from(l.context.trace_flags.bits()) | remote_flags(l.context.is_remote),
            })
            .collect();
        let (code, message) = match data.status() {
            ActivityStatusCode::Unset => (status::StatusCode::Unset, String::new()),
            ActivityStatusCode::Ok => (status::StatusCode::Ok, String::new()),
            ActivityStatusCode::Error => (
                status::StatusCode::Error,
                data.status_description().unwrap_or_default().to_owned(),
            ),
        };
        span.status = Some(Status {
            message,
            code: code as i32,
        });
    });
    span
}

/// One export request: the resource, then one scope per activity source.
pub fn request(resource: &Resource, activities: &[Activity]) -> ExportTraceServiceRequest {
    let mut scopes: Vec<ScopeSpans> = Vec::new();
    let mut index: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    for activity in activities {
        let source = activity.source();
        let i = *index.entry((source.name(), source.version())).or_insert_with(|| {
            scopes.push(ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: source.name().to_owned(),
                    version: source.version().unwrap_or_default().to_owned(),
                    attributes: attributes(source.tags()),
                    dropped_attributes_count: 0,
                }),
                spans: Vec::new(),
                schema_url: String::new(),
            });
            scopes.len() - 1
        });
        scopes[i].spans.push(span(activity));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource {
                attributes: attributes(resource.attributes()),
                ..Default::default()
            }),
            scope_spans: scopes,
            schema_url: String::new(),
        }],
    }
}
