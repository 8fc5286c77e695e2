//! OTLP: the mapping from activities to OpenTelemetry's protocol, and the exporters that send it.

mod encode;
mod grpc;
mod http;

pub use grpc::OtlpGrpcExporter;
pub use http::{OtlpHttpExporter, Protocol};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as ProtoLogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use skein::logs::LogRecord;
use skein::{Activity, ActivityKind, ActivityStatusCode, Tag, TagValue};

use crate::{Resource, ShutdownNotice};

/// The OTLP exporters' timeout when neither they nor their pipeline were given one.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Retries of retryable failures: exponential backoff with jitter, within the export timeout,
/// and none once the pipeline is shutting down.
#[derive(Clone, Debug)]
pub(crate) struct Retry {
    /// The longest one export may take, retries included.
    pub(crate) timeout: Duration,
    /// Set by the exporter's owner (`OTEL_EXPORTER_OTLP_TIMEOUT`): the pipeline does not cap it.
    explicit: bool,
    pub(crate) backoff: Backoff,
    pub(crate) notice: Option<ShutdownNotice>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            timeout: DEFAULT_TIMEOUT,
            explicit: false,
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            notice: None,
        }
    }
}

/// How often a retry wait looks whether the pipeline is shutting down.
const SHUTDOWN_POLL: Duration = Duration::from_millis(25);

impl Retry {
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.explicit = true;
    }

    /// The pipeline's export timeout: caps the default, not a timeout set explicitly.
    pub(crate) fn cap_timeout(&mut self, timeout: Duration) {
        if !self.explicit {
            self.timeout = DEFAULT_TIMEOUT.min(timeout);
        }
    }

    fn shutting_down(&self) -> bool {
        self.notice.as_ref().is_some_and(ShutdownNotice::is_set)
    }

    /// Waits before retry number `attempt` (0-based) — the server's delay if it gave one —
    /// and says whether to retry: not past `deadline`, and not once shutting down (checked
    /// while waiting too).
    pub(crate) async fn wait(&self, attempt: u32, server_delay: Option<Duration>, deadline: Instant) -> bool {
        let wait = server_delay.unwrap_or_else(|| self.backoff.delay(attempt));
        if self.shutting_down() || Instant::now() + wait >= deadline {
            return false;
        }
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            tokio::time::sleep(left.min(SHUTDOWN_POLL)).await;
            if self.shutting_down() {
                return false;
            }
        }
    }
}

/// Exponential backoff with jitter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based), with ±50% jitter.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        let jitter = 0.5 + (skein::SpanId::random().to_u64() % 1000) as f64 / 1000.0;
        base.mul_f64(jitter)
    }
}

/// An error and its sources, one line (`connection error: Connection refused (os error 111)`).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

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

/// The OTLP log record for a record.
pub fn log_record(record: &LogRecord) -> ProtoLogRecord {
    ProtoLogRecord {
        time_unix_nano: record.timestamp.unix_nanos(),
        observed_time_unix_nano: record.observed_timestamp.unix_nanos(),
        severity_number: i32::from(record.severity.number()),
        severity_text: record.severity_text.to_string(),
        body: record.body.as_ref().map(|b| AnyValue {
            value: Some(any_value::Value::StringValue(b.to_string())),
        }),
        attributes: attributes(&record.attributes),
        dropped_attributes_count: 0,
        flags: u32::from(record.trace_flags.bits()),
        trace_id: if record.trace_id.is_valid() {
            record.trace_id.to_bytes().to_vec()
        } else {
            Vec::new()
        },
        span_id: if record.span_id.is_valid() {
            record.span_id.to_bytes().to_vec()
        } else {
            Vec::new()
        },
        event_name: String::new(),
    }
}

/// One logs export request: the resource, then one scope per logger (`tracing` target).
pub fn logs_request(resource: &Resource, records: &[LogRecord]) -> ExportLogsServiceRequest {
    let mut scopes: Vec<ScopeLogs> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for record in records {
        let i = *index.entry(&record.scope).or_insert_with(|| {
            scopes.push(ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: record.scope.to_string(),
                    ..Default::default()
                }),
                log_records: Vec::new(),
                schema_url: String::new(),
            });
            scopes.len() - 1
        });
        scopes[i].log_records.push(log_record(record));
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(ProtoResource {
                attributes: attributes(resource.attributes()),
                ..Default::default()
            }),
            scope_logs: scopes,
            schema_url: String::new(),
        }],
    }
}
