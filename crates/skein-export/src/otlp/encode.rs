//! OTLP protobuf written straight from activities: the exporter's hot path. Building the
//! `opentelemetry-proto` structs first would cost a dozen allocations per span; this writes the
//! same bytes (field for field what [`super::request`] builds, checked by the tests that decode
//! it with prost) into reused buffers.

use std::collections::HashMap;

use skein::{Activity, ActivityStatusCode, Tag, TagValue};

use crate::Resource;

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(out, field, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// A proto3 string: omitted when empty.
fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        bytes(out, field, value.as_bytes());
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(out, field, FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed32(out: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(out, field, FIXED32);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn uint(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(out, field, VARINT);
        varint(out, value);
    }
}

/// Reusable buffers for nested messages, one per nesting level in use.
#[derive(Default)]
pub(crate) struct Encoder {
    spare: Vec<Vec<u8>>,
    scopes: Vec<Vec<u8>>,
}

impl Encoder {
    /// Writes a length-delimited submessage whose body `body` produces.
    fn message(&mut self, out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Self, &mut Vec<u8>)) {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        body(self, &mut buf);
        bytes(out, field, &buf);
        self.spare.push(buf);
    }

    fn any_value(&mut self, out: &mut Vec<u8>, value: &TagValue) {
        // Members of a oneof are written even when they hold the default value.
        match value {
            TagValue::Str(s) => bytes(out, 1, s.as_bytes()),
            TagValue::Bool(b) => {
                key(out, 2, VARINT);
                varint(out, u64::from(*b));
            }
            TagValue::I64(i) => {
                key(out, 3, VARINT);
                varint(out, *i as u64);
            }
            TagValue::F64(f) => {
                key(out, 4, FIXED64);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            TagValue::StrArray(v) => self.array(out, v.iter().map(|s| TagValue::from(s.clone()))),
            TagValue::BoolArray(v) => self.array(out, v.iter().map(|b| TagValue::Bool(*b))),
            TagValue::I64Array(v) => self.array(out, v.iter().map(|i| TagValue::I64(*i))),
            TagValue::F64Array(v) => self.array(out, v.iter().map(|f| TagValue::F64(*f))),
        }
    }

    fn array(&mut self, out: &mut Vec<u8>, values: impl Iterator<Item = TagValue>) {
        self.message(out, 5, |enc, array| {
            for value in values {
                enc.message(array, 1, |enc, any| enc.any_value(any, &value));
            }
        });
    }

    /// Repeated `KeyValue`s in field `field`.
    fn attributes(&mut self, out: &mut Vec<u8>, field: u32, tags: &[Tag]) {
        for tag in tags {
            self.message(out, field, |enc, kv| {
                string(kv, 1, &tag.key);
                enc.message(kv, 2, |enc, any| enc.any_value(any, &tag.value));
            });
        }
    }

    fn span(&mut self, out: &mut Vec<u8>, activity: &Activity) {
        bytes(out, 1, &activity.trace_id().to_bytes());
        bytes(out, 2, &activity.span_id().to_bytes());
        string(out, 3, activity.trace_state().header());
        let parent = activity.parent_span_id();
        if parent.is_valid() {
            bytes(out, 4, &parent.to_bytes());
        }
        let kind = super::kind(activity.kind()) as u64;
        let flags = u32::from(activity.trace_flags().bits()) | super::remote_flags(activity.has_remote_parent());
        activity.with_data(|data| {
            string(out, 5, data.display_name().unwrap_or(activity.operation_name()));
            uint(out, 6, kind);
            fixed64(out, 7, data.start_time_unix_nanos());
            fixed64(out, 8, data.end_time_unix_nanos());
            self.attributes(out, 9, data.tags());
            for event in data.events() {
                self.message(out, 11, |enc, e| {
                    fixed64(e, 1, event.timestamp.unix_nanos());
                    string(e, 2, &event.name);
                    enc.attributes(e, 3, &event.tags);
                });
            }
            for link in data.links() {
                self.message(out, 13, |enc, l| {
                    bytes(l, 1, &link.context.trace_id.to_bytes());
                    bytes(l, 2, &link.context.span_id.to_bytes());
                    string(l, 3, link.context.trace_state.header());
                    enc.attributes(l, 4, &link.tags);
                    fixed32(
                        l,
                        6,
                        u32::from(link.context.trace_flags.bits()) | super::remote_flags(link.context.is_remote),
                    );
                });
            }
            let (code, message) = match data.status() {
                ActivityStatusCode::Unset => (0, ""),
                ActivityStatusCode::Ok => (1, ""),
                ActivityStatusCode::Error => (2, data.status_description().unwrap_or_default()),
            };
            self.message(out, 15, |_, s| {
                string(s, 2, message);
                uint(s, 3, code);
            });
            fixed32(out, 16, flags);
        });
    }

    /// An `ExportTraceServiceRequest` for `activities`, appended to `out`.
    pub(crate) fn request(&mut self, out: &mut Vec<u8>, resource: &Resource, activities: &[Activity]) {
        let mut index: HashMap<(&str, Option<&str>), usize> = HashMap::new();
        let mut scopes = std::mem::take(&mut self.scopes);
        let mut used = 0;
        for activity in activities {
            let source = activity.source();
            let i = *index.entry((source.name(), source.version())).or_insert_with(|| {
                if scopes.len() == used {
                    scopes.push(Vec::new());
                }
                let scope = &mut scopes[used];
                scope.clear();
                // ScopeSpans.scope (InstrumentationScope)
                let mut body = Vec::new();
                string(&mut body, 1, source.name());
                string(&mut body, 2, source.version().unwrap_or_default());
                self.attributes(&mut body, 3, source.tags());
                bytes(scope, 1, &body);
                used += 1;
                used - 1
            });
            let mut span = self.spare.pop().unwrap_or_default();
            span.clear();
            self.span(&mut span, activity);
            bytes(&mut scopes[i], 2, &span);
            self.spare.push(span);
        }
        // ExportTraceServiceRequest.resource_spans (ResourceSpans)
        let mut resource_spans = self.spare.pop().unwrap_or_default();
        resource_spans.clear();
        self.message(&mut resource_spans, 1, |enc, r| {
            enc.attributes(r, 1, resource.attributes())
        });
        for scope in &scopes[..used] {
            bytes(&mut resource_spans, 2, scope);
        }
        bytes(out, 1, &resource_spans);
        self.spare.push(resource_spans);
        self.scopes = scopes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    use skein::*;

    #[test]
    fn matches_the_struct_mapping_byte_for_byte_after_decoding() {
        static A: ActivitySource = ActivitySource::new("encode.a").with_version("1");
        static B: ActivitySource = ActivitySource::new("encode.b");
        let exporter = crate::InMemoryExporter::default();
        let guard = crate::ExportPipeline::new()
            .with_sources(["encode.*"])
            .simple(exporter.clone())
            .install();
        {
            let root = A.start_activity("root", ActivityKind::Server).unwrap();
            root.add_tags([
                Tag::new("s", "x"),
                Tag::new("b", false),
                Tag::new("i", -7i64),
                Tag::new("f", 0.0),
                Tag::new("arr", vec![1i64, 0]),
            ]);
            root.add_event(ActivityEvent::new("e").with_tags([Tag::new("k", "v")]));
            root.add_link(ActivityLink::new(
                ActivityContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Some("a=1")).unwrap(),
            ));
            root.set_status(ActivityStatusCode::Error, Some("bad"));
            let _child = B.start_activity("child", ActivityKind::Client).unwrap();
        }
        drop(guard);
        let activities = exporter.finished();
        let resource = Resource::new("svc");
        let mut bytes = Vec::new();
        Encoder::default().request(&mut bytes, &resource, &activities);
        let decoded = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        assert_eq!(decoded, crate::otlp::request(&resource, &activities));
    }
}
