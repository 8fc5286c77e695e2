//! Building OTLP requests in tests: strings, resources with a service name, spans, log records.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn string(value: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.into())),
    }
}

pub fn attribute(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// A resource with `service.name` = `service`.
pub fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![attribute("service.name", string(service))],
        ..Default::default()
    }
}

/// One resource of `service` with one (empty) scope holding `spans`.
pub fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(resource(service)),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope::default()),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A span of trace `[trace; 16]` with id `[id; 8]`, named `span {id}`, lasting a millisecond.
pub fn span(trace: u8, id: u8, parent: Option<u8>, kind: SpanKind, start: u64) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: format!("span {id}"),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        ..Default::default()
    }
}

/// A traces request of one service's spans.
pub fn traces(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![resource_spans(service, spans)],
    }
}

/// A logs request of one service's records.
pub fn logs(service: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(service)),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A log record at `time` with a string body, on trace `[trace; 16]` if given.
pub fn record(time: u64, body: &str, trace: Option<u8>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        severity_number: 9,
        body: Some(string(body)),
        trace_id: trace.map(|t| vec![t; 16]).unwrap_or_default(),
        ..Default::default()
    }
}
