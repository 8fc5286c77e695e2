//! What the query API returns, in JSON: spans flattened with their resource and scope, and
//! trace summaries for search results.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span};
use serde::Serialize;
use serde_json::{Map, Value};

/// Lowercase hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Parses a lowercase or uppercase hex id of exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// An attribute value as JSON (arrays and maps kept, bytes as hex).
pub fn any_value_json(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any_value_json(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attributes_json(&kv.values)),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
        Some(any_value::Value::StringValueStrindex(i)) => Value::from(*i),
    }
}

/// An attribute value as text, for `key=value` filters.
pub fn any_value_text(value: Option<&AnyValue>) -> String {
    match any_value_json(value) {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Attributes as a JSON object (later duplicates win).
pub fn attributes_json(attributes: &[KeyValue]) -> Map<String, Value> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), any_value_json(kv.value.as_ref())))
        .collect()
}

/// `service.name` of a resource, `unknown_service` when absent (as the SDKs default).
pub fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .map(|kv| any_value_text(kv.value.as_ref()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// OTLP span kind as a word.
pub fn kind_name(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind).unwrap_or(span::SpanKind::Unspecified) {
        span::SpanKind::Unspecified => "unspecified",
        span::SpanKind::Internal => "internal",
        span::SpanKind::Server => "server",
        span::SpanKind::Client => "client",
        span::SpanKind::Producer => "producer",
        span::SpanKind::Consumer => "consumer",
    }
}

/// OTLP status code as a word.
pub fn status_name(code: i32) -> &'static str {
    match status::StatusCode::try_from(code).unwrap_or(status::StatusCode::Unset) {
        status::StatusCode::Unset => "unset",
        status::StatusCode::Ok => "ok",
        status::StatusCode::Error => "error",
    }
}

/// True if a span failed.
pub fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == status::StatusCode::Error as i32)
}

/// One span with everything needed to show it.
#[derive(Clone, Debug, Serialize)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: &'static str,
    pub service: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub duration_nano: u64,
    pub status: StatusView,
    pub trace_state: String,
    pub flags: u32,
    pub attributes: Map<String, Value>,
    pub dropped_attributes_count: u32,
    pub events: Vec<EventView>,
    pub dropped_events_count: u32,
    pub links: Vec<LinkView>,
    pub dropped_links_count: u32,
    pub resource: Map<String, Value>,
    pub scope: ScopeView,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    pub code: &'static str,
    pub message: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventView {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Map<String, Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LinkView {
    pub trace_id: String,
    pub span_id: String,
    pub trace_state: String,
    pub attributes: Map<String, Value>,
    pub flags: u32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ScopeView {
    pub name: String,
    pub version: String,
    pub attributes: Map<String, Value>,
}

impl SpanView {
    /// Flattens a span with its resource and scope.
    pub fn new(span: &Span, resource: Option<&Resource>, scope: Option<&InstrumentationScope>) -> Self {
        let status = span.status.as_ref();
        SpanView {
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_span_id: hex(&span.parent_span_id),
            name: span.name.clone(),
            kind: kind_name(span.kind),
            service: service_name(resource),
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
            duration_nano: span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano),
            status: StatusView {
                code: status_name(status.map_or(0, |s| s.code)),
                message: status.map(|s| s.message.clone()).unwrap_or_default(),
            },
            trace_state: span.trace_state.clone(),
            flags: span.flags,
            attributes: attributes_json(&span.attributes),
            dropped_attributes_count: span.dropped_attributes_count,
            events: span
                .events
                .iter()
                .map(|e| EventView {
                    name: e.name.clone(),
                    time_unix_nano: e.time_unix_nano,
                    attributes: attributes_json(&e.attributes),
                })
                .collect(),
            dropped_events_count: span.dropped_events_count,
            links: span
                .links
                .iter()
                .map(|l| LinkView {
                    trace_id: hex(&l.trace_id),
                    span_id: hex(&l.span_id),
                    trace_state: l.trace_state.clone(),
                    attributes: attributes_json(&l.attributes),
                    flags: l.flags,
                })
                .collect(),
            dropped_links_count: span.dropped_links_count,
            resource: resource.map(|r| attributes_json(&r.attributes)).unwrap_or_default(),
            scope: scope
                .map(|s| ScopeView {
                    name: s.name.clone(),
                    version: s.version.clone(),
                    attributes: attributes_json(&s.attributes),
                })
                .unwrap_or_default(),
        }
    }
}

/// A search result: one trace at a glance.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TraceSummary {
    pub trace_id: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub duration_nano: u64,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub span_count: u64,
    pub error_count: u64,
    pub services: Vec<String>,
}

/// A stored log record.
#[derive(Clone, Debug, Serialize)]
pub struct LogView {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub service: String,
    pub severity_number: i32,
    pub severity_text: String,
    pub body: Value,
    pub attributes: Map<String, Value>,
    pub trace_id: String,
    pub span_id: String,
    pub resource: Map<String, Value>,
    pub scope: ScopeView,
}

/// The number of spans linking to one span.
#[derive(Clone, Debug, Serialize)]
pub struct LinkedFromCount {
    pub span_id: String,
    pub count: u64,
}

/// A span of another trace that links to a span.
#[derive(Clone, Debug, Serialize)]
pub struct LinkingSpan {
    pub trace_id: String,
    pub span_id: String,
    pub service: String,
    pub name: String,
    pub start_unix_nano: u64,
}

/// A whole trace.
#[derive(Clone, Debug, Serialize)]
pub struct TraceView {
    pub trace_id: String,
    pub spans: Vec<SpanView>,
    /// How many spans of other traces link to each of this trace's spans (a span id of all
    /// zeros: links that name no span); the spans themselves come a page at a time.
    pub linked_from: Vec<LinkedFromCount>,
    pub logs: Vec<LogView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_lengths_and_digits() {
        let id = [0x0a, 0xf7, 0x65, 0x19];
        assert_eq!(hex(&id), "0af76519");
        assert_eq!(parse_hex::<4>("0af76519"), Some(id));
        assert_eq!(parse_hex::<4>("0AF76519"), Some(id));
        assert_eq!(parse_hex::<4>("0af7651"), None);
        assert_eq!(parse_hex::<4>("0af7651g"), None);
        assert_eq!(parse_hex::<4>("0af7651é"), None);
    }
}
