//! Turning a received request into what the writer stores, on the receiving thread: the
//! spans regrouped into compressed frames with their Bloom filters, and the per-trace,
//! per-minute and per-operation figures they add. The single writer thread then only runs
//! SQLite statements, so receiving scales with the cores and the writer never encodes.
//!
//! A frame holds spans of one request only, each of its resources and scopes once, and is
//! bounded in size: it closes at [`FRAME_SPANS`] spans (once they outweigh the resources and
//! scopes copied into it, so a large resource is not copied once per thousand small spans) or
//! at [`FRAME_SPAN_BYTES`] of spans. Every frame is thus at most about its request's size, and
//! one that would still be over [`MAX_FRAME_BYTES`] (the reader's limit) refuses its request:
//! what is written can always be read.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;

use crate::histogram::Histogram;
use crate::model;
use crate::search::{IndexBuilder, ResourceTerms};
use crate::store::StoreError;

/// Most spans per compressed frame, when they outweigh its resources and scopes: small
/// enough that reading one trace decompresses little.
pub const FRAME_SPANS: usize = 1024;

/// A frame closes once its spans take this many bytes, however few they are.
pub const FRAME_SPAN_BYTES: usize = 8 << 20;

/// The largest frame (and frame index) the store writes, encoded: what its reader accepts.
/// Requests are at most 64 MiB (see `Limits`), and a frame holds a part of one request with
/// each of its resources and scopes once, so no accepted request comes near it.
pub const MAX_FRAME_BYTES: usize = 256 << 20;

/// One compressed frame, ready to insert.
pub(crate) struct PreparedFrame {
    pub min_start: u64,
    pub max_start: u64,
    pub span_count: usize,
    /// Bloom filter of the values of keys with too many to index (see [`crate::search`]).
    pub filter: Vec<u8>,
    pub data: Vec<u8>,
    /// The frame's search terms and compressed span columns (see [`crate::search`]).
    pub search_terms: Vec<u8>,
    pub search_spans: Vec<u8>,
    /// The frame's traces in the order of its span columns.
    pub trace_ids: Vec<[u8; 16]>,
    /// The Bloom filter of the frame's trace ids (see [`crate::trace_index`]).
    pub trace_filter: Vec<u8>,
    /// The links of the frame's spans to spans of other traces.
    pub links: Vec<LinkRow>,
}

/// A span's link to a span of another trace, as the linked trace's "linked from" shows it.
pub(crate) struct LinkRow {
    pub target: [u8; 16],
    /// All zeros when the link names no (valid) span.
    pub target_span: [u8; 8],
    pub source: [u8; 16],
    pub source_span: [u8; 8],
    pub start: u64,
    pub service: String,
    pub name: String,
}

/// What one request adds to a trace's summary.
#[derive(Default)]
pub(crate) struct TraceDelta {
    pub start: u64,
    pub end: u64,
    pub spans: u64,
    pub errors: u64,
    pub root: Option<(String, String)>,
    pub services: Vec<String>,
}

/// Calls, errors and durations of one operation in one minute.
#[derive(Default)]
pub(crate) struct MinuteDelta {
    pub count: u64,
    pub errors: u64,
    pub histogram: Histogram,
}

/// What the writer needs to count calls between services.
pub(crate) struct EdgeSpan {
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    /// Index into [`Prepared::services`].
    pub service: usize,
    pub start: u64,
    pub error: bool,
}

/// A request made ready for the writer.
#[derive(Default)]
pub struct Prepared {
    pub(crate) frames: Vec<PreparedFrame>,
    pub(crate) traces: HashMap<[u8; 16], TraceDelta>,
    pub(crate) minutes: HashMap<(i64, String, String), MinuteDelta>,
    pub(crate) operations: HashSet<(String, String, i32)>,
    pub(crate) services: Vec<String>,
    pub(crate) edge_spans: Vec<EdgeSpan>,
    pub(crate) spans: u64,
}

/// The position of `name` in `names`, added at the end if new (a few services per request:
/// a scan beats a map).
pub(crate) fn number_of(names: &mut Vec<String>, name: &str) -> usize {
    match names.iter().position(|s| s == name) {
        Some(i) => i,
        None => {
            names.push(name.to_owned());
            names.len() - 1
        }
    }
}

impl Prepared {
    /// A resource's service name and its number in [`Prepared::services`].
    fn service_of(&mut self, rs: &ResourceSpans) -> (String, usize) {
        let service = model::service_name(rs.resource.as_ref());
        let index = number_of(&mut self.services, &service);
        (service, index)
    }
}

pub(crate) fn minute_of(nanos: u64) -> i64 {
    (nanos / 60_000_000_000) as i64
}

/// A frame being filled.
struct OpenFrame {
    resource_spans: Vec<ResourceSpans>,
    span_count: usize,
    /// Encoded bytes of its spans, and of the resources and scopes copied into it.
    span_bytes: usize,
    header_bytes: usize,
    index: IndexBuilder,
    links: Vec<LinkRow>,
    /// Where the current resource's spans began in this frame, and the longest of them.
    resource_first: u32,
    resource_longest: u64,
}

impl OpenFrame {
    fn new() -> Self {
        OpenFrame {
            resource_spans: Vec::new(),
            span_count: 0,
            span_bytes: 0,
            header_bytes: 0,
            index: IndexBuilder::new(),
            links: Vec::new(),
            resource_first: 0,
            resource_longest: 0,
        }
    }

    /// Starts a resource's spans in this frame (its resource held once here).
    fn begin_resource(&mut self, resource: &Option<Resource>, schema_url: &str) {
        self.header_bytes += resource.as_ref().map_or(0, Message::encoded_len) + schema_url.len();
        self.resource_spans.push(ResourceSpans {
            resource: resource.clone(),
            scope_spans: Vec::new(),
            schema_url: schema_url.to_owned(),
        });
        self.resource_first = self.index.next_position();
        self.resource_longest = 0;
    }

    /// Starts a scope's spans under the current resource.
    fn begin_scope(&mut self, scope: &Option<InstrumentationScope>, schema_url: &str) {
        self.header_bytes += scope.as_ref().map_or(0, Message::encoded_len) + schema_url.len();
        if let Some(rs) = self.resource_spans.last_mut() {
            rs.scope_spans.push(ScopeSpans {
                scope: scope.clone(),
                spans: Vec::new(),
                schema_url: schema_url.to_owned(),
            });
        }
    }

    /// Adds a span under the current scope.
    fn add_span(&mut self, span: Span, resource: &ResourceTerms) {
        let Some(ss) = self.resource_spans.last_mut().and_then(|rs| rs.scope_spans.last_mut()) else {
            return;
        };
        index_span(&span, resource, ss.scope.as_ref(), &mut self.index, &mut self.links);
        self.resource_longest = self
            .resource_longest
            .max(span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano));
        self.span_bytes += span.encoded_len();
        self.span_count += 1;
        ss.spans.push(span);
    }

    /// Indexes the current resource's attributes for its spans in this frame.
    fn end_resource(&mut self, resource: &ResourceTerms) {
        let range = (self.resource_first, self.index.next_position());
        self.index.add_resource(resource, range, self.resource_longest);
    }

    /// True when the frame should close before taking another span.
    fn is_full(&self) -> bool {
        self.span_bytes >= FRAME_SPAN_BYTES || (self.span_count >= FRAME_SPANS && self.span_bytes >= self.header_bytes)
    }

    fn close(mut self) -> Result<PreparedFrame, StoreError> {
        for rs in &mut self.resource_spans {
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        self.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
        let index = self
            .index
            .finish()
            .map_err(|e| StoreError::storage("cannot compress a frame's index", e))?;
        let raw = TracesData {
            resource_spans: self.resource_spans,
        }
        .encode_to_vec();
        if raw.len() > MAX_FRAME_BYTES || index.spans_raw_bytes > MAX_FRAME_BYTES {
            return Err(StoreError::Unstorable(format!(
                "the request makes a frame of {} bytes, over the {MAX_FRAME_BYTES} the store reads",
                raw.len().max(index.spans_raw_bytes)
            )));
        }
        let data = crate::compress::compress(&raw).map_err(|e| StoreError::storage("cannot compress a frame", e))?;
        Ok(PreparedFrame {
            min_start: index.min_start,
            max_start: index.max_start,
            span_count: self.span_count,
            filter: index.filter,
            data,
            search_terms: index.terms,
            search_spans: index.spans,
            trace_filter: crate::trace_index::frame_filter(index.trace_ids.iter()),
            trace_ids: index.trace_ids,
            links: self.links,
        })
    }
}

/// Prepares a validated request (every span has a 16-byte trace id and an 8-byte span id).
pub fn prepare(request: ExportTraceServiceRequest) -> Result<Prepared, StoreError> {
    let mut prepared = Prepared::default();
    let mut frame = OpenFrame::new();
    for rs in request.resource_spans {
        let (service, service_index) = prepared.service_of(&rs);
        let resource_terms = ResourceTerms::new(&service, rs.resource.as_ref());
        summarize(&rs, &service, service_index, &mut prepared);
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = rs;
        frame.begin_resource(&resource, &schema_url);
        for ss in scope_spans {
            frame.begin_scope(&ss.scope, &ss.schema_url);
            for span in ss.spans {
                if frame.is_full() {
                    frame.end_resource(&resource_terms);
                    prepared
                        .frames
                        .push(std::mem::replace(&mut frame, OpenFrame::new()).close()?);
                    frame.begin_resource(&resource, &schema_url);
                    frame.begin_scope(&ss.scope, &ss.schema_url);
                }
                frame.add_span(span, &resource_terms);
            }
        }
        frame.end_resource(&resource_terms);
    }
    if frame.span_count > 0 {
        prepared.frames.push(frame.close()?);
    }
    Ok(prepared)
}

/// A span's search index entries, trace and links, into its frame.
fn index_span(
    span: &Span,
    resource: &ResourceTerms,
    scope: Option<&InstrumentationScope>,
    index: &mut IndexBuilder,
    links: &mut Vec<LinkRow>,
) {
    // (Requests are validated: every span has a 16-byte trace id.)
    let Ok(trace_id) = <[u8; 16]>::try_from(&span.trace_id[..]) else {
        return;
    };
    index.add(span, &trace_id, resource, scope);
    for link in &span.links {
        if let Ok(target) = <[u8; 16]>::try_from(&link.trace_id[..]) {
            if target != trace_id {
                links.push(LinkRow {
                    target,
                    target_span: <[u8; 8]>::try_from(&link.span_id[..]).unwrap_or_default(),
                    source: trace_id,
                    source_span: <[u8; 8]>::try_from(&span.span_id[..]).unwrap_or_default(),
                    start: span.start_time_unix_nano,
                    service: resource.service().to_owned(),
                    name: span.name.clone(),
                });
            }
        }
    }
}

/// [`summarize`] for a stored resource (when figures are rebuilt after a crash).
pub(crate) fn summarize_resource(rs: &ResourceSpans, prepared: &mut Prepared) {
    let (service, index) = prepared.service_of(rs);
    summarize(rs, &service, index, prepared);
}

/// The per-trace, per-minute and per-operation figures of one resource's spans (keys are
/// borrowed while counting and copied once per distinct key).
fn summarize(rs: &ResourceSpans, service: &str, service_index: usize, prepared: &mut Prepared) {
    let mut minutes: HashMap<(i64, &str), MinuteDelta> = HashMap::new();
    let mut operations: HashSet<(&str, i32)> = HashSet::new();
    for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
        let Ok(trace_id) = <[u8; 16]>::try_from(&span.trace_id[..]) else {
            continue;
        };
        let Ok(span_id) = <[u8; 8]>::try_from(&span.span_id[..]) else {
            continue;
        };
        let error = model::is_error(span);
        let duration = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano);
        let delta = prepared.traces.entry(trace_id).or_default();
        if delta.spans == 0 || span.start_time_unix_nano < delta.start {
            delta.start = span.start_time_unix_nano;
        }
        delta.end = delta.end.max(span.end_time_unix_nano);
        delta.spans += 1;
        delta.errors += u64::from(error);
        if span.parent_span_id.is_empty() {
            delta.root = Some((service.to_owned(), span.name.clone()));
        }
        if !delta.services.iter().any(|s| s == service) {
            delta.services.push(service.to_owned());
        }
        let minute = minutes
            .entry((minute_of(span.start_time_unix_nano), &span.name))
            .or_default();
        minute.count += 1;
        minute.errors += u64::from(error);
        minute.histogram.record(duration);
        operations.insert((&span.name, span.kind));
        prepared.edge_spans.push(EdgeSpan {
            span_id,
            parent: <[u8; 8]>::try_from(&span.parent_span_id[..]).ok(),
            service: service_index,
            start: span.start_time_unix_nano,
            error,
        });
        prepared.spans += 1;
    }
    for ((minute, name), delta) in minutes {
        let into = prepared
            .minutes
            .entry((minute, service.to_owned(), name.to_owned()))
            .or_default();
        into.count += delta.count;
        into.errors += delta.errors;
        into.histogram.merge(&delta.histogram);
    }
    for (name, kind) in operations {
        prepared.operations.insert((service.to_owned(), name.to_owned(), kind));
    }
}
