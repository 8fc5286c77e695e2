//! Turning a received request into what the writer stores, on the receiving thread: the
//! spans regrouped into compressed frames with their Bloom filters, and the per-trace,
//! per-minute and per-operation figures they add. The single writer thread then only runs
//! SQLite statements, so receiving scales with the cores and the writer never encodes.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;

use crate::histogram::Histogram;
use crate::model;
use crate::search::{IndexBuilder, ResourceTerms};
use crate::store::{StoreError, FRAME_SPANS};

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
    index: IndexBuilder,
    links: Vec<LinkRow>,
}

impl OpenFrame {
    fn new() -> Self {
        OpenFrame {
            resource_spans: Vec::new(),
            span_count: 0,
            index: IndexBuilder::new(),
            links: Vec::new(),
        }
    }

    fn close(self) -> Result<PreparedFrame, StoreError> {
        let index = self
            .index
            .finish()
            .map_err(|e| StoreError::storage("cannot compress a frame's index", e))?;
        let raw = TracesData {
            resource_spans: self.resource_spans,
        }
        .encode_to_vec();
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
        for ss in rs.scope_spans {
            let ScopeSpans {
                scope,
                spans,
                schema_url,
            } = ss;
            let mut spans = spans.into_iter().peekable();
            while spans.peek().is_some() {
                let room = FRAME_SPANS - frame.span_count;
                let mut chunk: Vec<Span> = Vec::with_capacity(room.min(spans.len()));
                for span in spans.by_ref().take(room) {
                    index_span(&span, &resource_terms, scope.as_ref(), &mut frame);
                    chunk.push(span);
                }
                frame.span_count += chunk.len();
                frame.resource_spans.push(ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: scope.clone(),
                        spans: chunk,
                        schema_url: schema_url.clone(),
                    }],
                    schema_url: rs.schema_url.clone(),
                });
                if frame.span_count == FRAME_SPANS {
                    prepared
                        .frames
                        .push(std::mem::replace(&mut frame, OpenFrame::new()).close()?);
                }
            }
        }
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
    scope: Option<&opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
    frame: &mut OpenFrame,
) {
    // (Requests are validated: every span has a 16-byte trace id.)
    let Ok(trace_id) = <[u8; 16]>::try_from(&span.trace_id[..]) else {
        return;
    };
    frame.index.add(span, &trace_id, resource, scope);
    for link in &span.links {
        if let Ok(target) = <[u8; 16]>::try_from(&link.trace_id[..]) {
            if target != trace_id {
                frame.links.push(LinkRow {
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
