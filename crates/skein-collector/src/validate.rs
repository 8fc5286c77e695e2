//! What the receiver keeps of a decoded request, for every signal and every way in (OTLP/HTTP
//! in protobuf or JSON, gRPC, the dashboard's import): the rules that make "accepted" mean
//! "the store can hold it and read it back".
//!
//! * **Ids**: a span needs a 16-byte trace id and an 8-byte span id, not all zero; a log
//!   record's ids, when present, have those lengths. Others are rejected (partial success).
//! * **Times**: the store keeps times as signed 64-bit nanoseconds, so a span or log record
//!   stamped at or after 2^63 ns (2262-04-11) is rejected, never stored as a negative time.
//! * **Nesting**: a value (attribute, log body) nests at most [`MAX_VALUE_NESTING`] levels of
//!   arrays and maps. Stored data is read with protobuf's limit of 100 nested messages, which
//!   that depth keeps within in every container (see the tests); JSON, which the receiver
//!   decodes to any depth, is held to the same rule. A span or record with a deeper value is
//!   rejected whole (and all of a resource's or scope's spans when theirs is too deep).
//! * **Strings**: every string — attribute keys and values at any depth, byte values, span,
//!   event, scope and resource fields, status messages, trace states, schema URLs, log
//!   attributes — is cut to `max_attribute_bytes` (log bodies to `max_log_body_bytes`), on a
//!   character boundary, and the cuts are counted in the answer.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::receiver::{Limits, Refusal};

/// Levels of arrays and maps a value may nest (an array of strings is one level).
pub const MAX_VALUE_NESTING: usize = 30;

/// The latest time the store holds: `i64::MAX` nanoseconds after 1970.
pub const LATEST_TIME: u64 = i64::MAX as u64;

/// What validation kept and rejected.
pub struct Validated<T> {
    pub request: T,
    pub rejected: i64,
    pub message: String,
}

/// Adds a sentence to a partial-success message.
pub(crate) fn add_note(message: &mut String, note: &str) {
    if !message.is_empty() {
        message.push_str("; ");
    }
    message.push_str(note);
}

/// Says in a partial-success message that `count` `what` were cut to `limit` bytes, if any were.
fn note_cut(message: &mut String, count: usize, what: &str, limit: usize) {
    if count > 0 {
        add_note(message, &format!("{count} {what} cut to {limit} bytes"));
    }
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

/// Cuts `s` to at most `max` bytes on a character boundary; true if it was longer.
pub(crate) fn cut_string(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

/// How many levels of arrays and maps `value` nests, counting no further than one past the
/// limit (a deeper value is not walked to its bottom).
fn nesting(value: &AnyValue) -> usize {
    fn walk(value: &AnyValue, level: usize) -> usize {
        if level > MAX_VALUE_NESTING {
            return level;
        }
        match &value.value {
            Some(any_value::Value::ArrayValue(array)) => array
                .values
                .iter()
                .map(|v| walk(v, level + 1))
                .max()
                .unwrap_or(level + 1),
            Some(any_value::Value::KvlistValue(list)) => list
                .values
                .iter()
                .filter_map(|kv| kv.value.as_ref())
                .map(|v| walk(v, level + 1))
                .max()
                .unwrap_or(level + 1),
            _ => level,
        }
    }
    walk(value, 0)
}

/// True if no value of `attributes` nests too deep.
fn shallow(attributes: &[KeyValue]) -> bool {
    attributes
        .iter()
        .filter_map(|kv| kv.value.as_ref())
        .all(|v| nesting(v) <= MAX_VALUE_NESTING)
}

/// Cuts to `max` bytes: counts of attribute values and of other strings (keys) cut.
#[derive(Default)]
struct Cuts {
    values: usize,
    other: usize,
    max: usize,
}

impl Cuts {
    fn new(max: usize) -> Self {
        Cuts {
            max,
            ..Default::default()
        }
    }

    /// A key, name or other string that is not an attribute value.
    fn text(&mut self, s: &mut String) {
        self.other += usize::from(cut_string(s, self.max));
    }

    /// Every string and byte string of a (shallow enough) value, at any depth.
    fn value(&mut self, value: &mut AnyValue) {
        match value.value.as_mut() {
            Some(any_value::Value::StringValue(s)) => self.values += usize::from(cut_string(s, self.max)),
            Some(any_value::Value::BytesValue(b)) if b.len() > self.max => {
                b.truncate(self.max);
                self.values += 1;
            }
            Some(any_value::Value::ArrayValue(array)) => array.values.iter_mut().for_each(|v| self.value(v)),
            Some(any_value::Value::KvlistValue(list)) => self.attributes(&mut list.values),
            _ => {}
        }
    }

    fn attributes(&mut self, attributes: &mut [KeyValue]) {
        for kv in attributes {
            self.text(&mut kv.key);
            if let Some(value) = kv.value.as_mut() {
                self.value(value);
            }
        }
    }

    fn resource(&mut self, resource: &mut Resource) {
        self.attributes(&mut resource.attributes);
    }

    fn scope(&mut self, scope: &mut InstrumentationScope) {
        self.text(&mut scope.name);
        self.text(&mut scope.version);
        self.attributes(&mut scope.attributes);
    }

    fn span(&mut self, span: &mut Span) {
        self.text(&mut span.name);
        self.text(&mut span.trace_state);
        self.attributes(&mut span.attributes);
        if let Some(status) = span.status.as_mut() {
            self.text(&mut status.message);
        }
        for event in &mut span.events {
            self.text(&mut event.name);
            self.attributes(&mut event.attributes);
        }
        for link in &mut span.links {
            self.text(&mut link.trace_state);
            self.attributes(&mut link.attributes);
        }
    }

    /// The cut notes, added to a partial-success message.
    fn note(&self, message: &mut String) {
        note_cut(message, self.values, "attribute values", self.max);
        note_cut(message, self.other, "keys, names and other strings", self.max);
    }
}

/// True if no value of a resource nests too deep.
fn resource_is_shallow(resource: Option<&Resource>) -> bool {
    resource.is_none_or(|r| shallow(&r.attributes))
}

fn scope_is_shallow(scope: Option<&InstrumentationScope>) -> bool {
    scope.is_none_or(|s| shallow(&s.attributes))
}

fn span_is_shallow(span: &Span) -> bool {
    shallow(&span.attributes)
        && span.events.iter().all(|e| shallow(&e.attributes))
        && span.links.iter().all(|l| shallow(&l.attributes))
}

/// Refuses a request with more items (spans or log records) than one request may carry.
fn within_request_limit(total: usize, items: &str, limits: &Limits) -> Result<(), Refusal> {
    if total > limits.max_spans_per_request {
        return Err(Refusal::TooLarge(format!(
            "{total} {items} in one request; the limit is {}",
            limits.max_spans_per_request
        )));
    }
    Ok(())
}

/// Why spans or records were rejected, counted.
#[derive(Default)]
struct Rejections {
    ids: i64,
    times: i64,
    nesting: i64,
}

impl Rejections {
    fn total(&self) -> i64 {
        self.ids + self.times + self.nesting
    }

    fn note(&self, message: &mut String, items: &str, ids: &str) {
        if self.ids > 0 {
            add_note(message, &format!("{} {items} rejected: {ids}", self.ids));
        }
        if self.times > 0 {
            add_note(
                message,
                &format!(
                    "{} {items} rejected: times at or after 2^63 ns (2262-04-11) cannot be stored",
                    self.times
                ),
            );
        }
        if self.nesting > 0 {
            add_note(
                message,
                &format!(
                    "{} {items} rejected: a value nests arrays or maps more than {MAX_VALUE_NESTING} levels deep",
                    self.nesting
                ),
            );
        }
    }
}

/// Rejects spans the store cannot hold (ids, times, nesting) and cuts every string.
pub fn validate_traces(
    mut request: ExportTraceServiceRequest,
    limits: &Limits,
) -> Result<Validated<ExportTraceServiceRequest>, Refusal> {
    let total = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    within_request_limit(total, "spans", limits)?;
    let mut rejected = Rejections::default();
    let mut cuts = Cuts::new(limits.max_attribute_bytes);
    for rs in &mut request.resource_spans {
        let resource_ok = resource_is_shallow(rs.resource.as_ref());
        for ss in &mut rs.scope_spans {
            let scope_ok = resource_ok && scope_is_shallow(ss.scope.as_ref());
            ss.spans.retain(|s| {
                let why = if !(valid_id(&s.trace_id, 16)
                    && valid_id(&s.span_id, 8)
                    && (s.parent_span_id.is_empty() || s.parent_span_id.len() == 8))
                {
                    &mut rejected.ids
                } else if s.start_time_unix_nano > LATEST_TIME || s.end_time_unix_nano > LATEST_TIME {
                    &mut rejected.times
                } else if !scope_ok || !span_is_shallow(s) {
                    &mut rejected.nesting
                } else {
                    return true;
                };
                *why += 1;
                false
            });
            for span in &mut ss.spans {
                cuts.span(span);
            }
            if let Some(scope) = ss.scope.as_mut() {
                cuts.scope(scope);
            }
            cuts.text(&mut ss.schema_url);
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        if let Some(resource) = rs.resource.as_mut() {
            cuts.resource(resource);
        }
        cuts.text(&mut rs.schema_url);
    }
    request.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    let mut message = String::new();
    rejected.note(
        &mut message,
        "spans",
        "trace ids must be 16 bytes and span ids 8 bytes, not all zero",
    );
    cuts.note(&mut message);
    Ok(Validated {
        request,
        rejected: rejected.total(),
        message,
    })
}

/// Rejects log records the store cannot hold (ids, times, nesting) and cuts every string
/// (bodies to their own limit).
pub fn validate_logs(
    mut request: ExportLogsServiceRequest,
    limits: &Limits,
) -> Result<Validated<ExportLogsServiceRequest>, Refusal> {
    let total = request
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum();
    within_request_limit(total, "log records", limits)?;
    let mut rejected = Rejections::default();
    let mut cuts = Cuts::new(limits.max_attribute_bytes);
    let mut bodies = Cuts::new(limits.max_log_body_bytes);
    for rl in &mut request.resource_logs {
        let resource_ok = resource_is_shallow(rl.resource.as_ref());
        for sl in &mut rl.scope_logs {
            let scope_ok = resource_ok && scope_is_shallow(sl.scope.as_ref());
            sl.log_records.retain(|r| {
                let why = if !((r.trace_id.is_empty() || r.trace_id.len() == 16)
                    && (r.span_id.is_empty() || r.span_id.len() == 8))
                {
                    &mut rejected.ids
                } else if r.time_unix_nano > LATEST_TIME || r.observed_time_unix_nano > LATEST_TIME {
                    &mut rejected.times
                } else if !scope_ok
                    || !shallow(&r.attributes)
                    || r.body.as_ref().is_some_and(|b| nesting(b) > MAX_VALUE_NESTING)
                {
                    &mut rejected.nesting
                } else {
                    return true;
                };
                *why += 1;
                false
            });
            for record in &mut sl.log_records {
                cuts.text(&mut record.severity_text);
                cuts.text(&mut record.event_name);
                cuts.attributes(&mut record.attributes);
                if let Some(body) = record.body.as_mut() {
                    bodies.value(body);
                }
            }
            if let Some(scope) = sl.scope.as_mut() {
                cuts.scope(scope);
            }
            cuts.text(&mut sl.schema_url);
        }
        rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
        if let Some(resource) = rl.resource.as_mut() {
            cuts.resource(resource);
        }
        cuts.text(&mut rl.schema_url);
    }
    request.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
    let mut message = String::new();
    rejected.note(&mut message, "log records", "malformed trace or span ids");
    cuts.note(&mut message);
    // Strings inside a body (map keys included) count as the body's cut.
    note_cut(
        &mut message,
        bodies.values + bodies.other,
        "log bodies",
        limits.max_log_body_bytes,
    );
    Ok(Validated {
        request,
        rejected: rejected.total(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, LogsData, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, TracesData};
    use prost::Message;

    /// A value `levels` deep: maps (the most messages per level) or arrays.
    fn deep(levels: usize, maps: bool) -> AnyValue {
        let mut value = AnyValue {
            value: Some(any_value::Value::StringValue("bottom".into())),
        };
        for _ in 0..levels {
            value = AnyValue {
                value: Some(if maps {
                    any_value::Value::KvlistValue(KeyValueList {
                        values: vec![KeyValue {
                            key: "k".into(),
                            value: Some(value),
                            ..Default::default()
                        }],
                    })
                } else {
                    any_value::Value::ArrayValue(ArrayValue { values: vec![value] })
                }),
            };
        }
        value
    }

    fn kv(value: AnyValue) -> Vec<KeyValue> {
        vec![KeyValue {
            key: "deep".into(),
            value: Some(value),
            ..Default::default()
        }]
    }

    /// The deepest place a value can be in stored traces (a link's or event's attribute) and
    /// in stored logs (a record's attribute), holding `value`, encoded as the store keeps them.
    fn stored_with(value: AnyValue) -> (Vec<u8>, Vec<u8>) {
        let span = Span {
            links: vec![span::Link {
                attributes: kv(value.clone()),
                ..Default::default()
            }],
            events: vec![span::Event {
                attributes: kv(value.clone()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let traces = TracesData {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: kv(value.clone()),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        attributes: kv(value.clone()),
                        ..Default::default()
                    }),
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let logs = LogsData {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        attributes: kv(value.clone()),
                        body: Some(value),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        (traces.encode_to_vec(), logs.encode_to_vec())
    }

    #[test]
    fn the_deepest_value_accepted_is_one_the_store_reads_back() {
        for maps in [true, false] {
            let value = deep(MAX_VALUE_NESTING, maps);
            assert_eq!(nesting(&value), MAX_VALUE_NESTING);
            let (traces, logs) = stored_with(value);
            TracesData::decode(&traces[..]).expect("the store reads the deepest accepted trace value");
            LogsData::decode(&logs[..]).expect("the store reads the deepest accepted log value");
        }
        // The limit is not far inside what protobuf allows: maps a few levels deeper do not read.
        let (traces, _) = stored_with(deep(MAX_VALUE_NESTING + 2, true));
        assert!(TracesData::decode(&traces[..]).is_err());
        assert_eq!(
            nesting(&deep(100, false)),
            MAX_VALUE_NESTING + 1,
            "a deep value is not walked to its bottom"
        );
    }

    #[test]
    fn a_string_is_cut_on_a_character_boundary() {
        let mut s = "aé".repeat(3);
        assert!(cut_string(&mut s, 4));
        assert_eq!(s, "aéa");
        assert!(!cut_string(&mut s, 4));
    }
}
