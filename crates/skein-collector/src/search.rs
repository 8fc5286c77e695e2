//! Exact trace search over the stored frames, without decompressing their spans.
//!
//! Each frame gets two small indexes beside its spans, built on the receiving thread:
//!
//! * its **terms** (held in memory for every frame, read back at start): the hashes of its
//!   services, span names, attribute keys and `key=value` pairs, each with the longest
//!   duration of a span carrying it. A search keeps only the frames that hold every term it
//!   asks for (and, with a minimum duration, a span that long for each), so a value that
//!   occurs nowhere costs a few microseconds per thousand frames and reads nothing.
//! * its **span columns** (compressed, read only for the frames kept): per span its trace,
//!   service, name, scope, kind, status, start and duration, and per `key=value` pair the spans
//!   carrying it (a posting list). One span must satisfy every condition, as in Jaeger; the
//!   lists are intersected and the columns checked, with the strings compared exactly (hashes
//!   only choose frames, so a hash collision cannot produce a wrong answer).
//!
//! A key with more than [`VALUES_PER_KEY`] distinct values in a frame (ids, URLs, amounts)
//! would make the in-memory terms grow with the data: its values go into the frame's Bloom
//! filter instead (kept on disk), and a search for one of them in such a frame reads its
//! spans. Frames written by an earlier version have no indexes and are read the same way.
//!
//! Frames are visited newest first (by their latest span start) and the search stops once the
//! next frame cannot hold a trace newer than the `limit`-th found: a trace's start is at or
//! before any of its spans' starts, so the answer is exactly the newest matching traces.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::bloom::Bloom;
use crate::model::{self, TraceSummary};

/// Distinct values of one key in one frame that are indexed exactly; past this the key's
/// values go into the frame's Bloom filter.
pub const VALUES_PER_KEY: usize = 256;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The term "a span of service `s`".
pub(crate) fn term_service(s: &str) -> u64 {
    fnv(fnv(FNV_OFFSET, b"s\0"), s.as_bytes())
}

/// The term "a span named `s`".
pub(crate) fn term_name(s: &str) -> u64 {
    fnv(fnv(FNV_OFFSET, b"n\0"), s.as_bytes())
}

/// The term "attribute `k` = `v`" (on the span, its resource, its events or its links).
pub(crate) fn term_attribute(k: &str, v: &str) -> u64 {
    fnv(fnv(fnv(fnv(FNV_OFFSET, b"a\0"), k.as_bytes()), b"\0"), v.as_bytes())
}

/// The term "has attribute `k`".
pub(crate) fn term_key(k: &str) -> u64 {
    fnv(fnv(FNV_OFFSET, b"k\0"), k.as_bytes())
}

/// Calls `f` with an attribute value as text (as searches compare it: the value's JSON text
/// for non-strings), without allocating for strings, integers and booleans.
pub(crate) fn with_text<R>(value: Option<&AnyValue>, f: impl FnOnce(&str) -> R) -> R {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => f(s),
        Some(any_value::Value::BoolValue(b)) => f(if *b { "true" } else { "false" }),
        Some(any_value::Value::IntValue(i)) => {
            use std::io::Write;
            let mut buf = [0u8; 24];
            let mut rest = &mut buf[..];
            let _ = write!(rest, "{i}");
            let len = 24 - rest.len();
            f(std::str::from_utf8(&buf[..len]).unwrap_or_default())
        }
        _ => f(&model::any_value_text(value)),
    }
}

/// Hashing for maps keyed by terms and trace ids, which are well-spread already: one
/// multiply-fold instead of SipHash on every span's every attribute.
#[derive(Default)]
pub(crate) struct SpreadHasher(u64);

impl std::hash::Hasher for SpreadHasher {
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv(self.0 ^ FNV_OFFSET, bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n as u64) ^ ((n >> 64) as u64).rotate_left(29);
    }
}

type SpreadMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<SpreadHasher>>;

/// True if an attribute of the span, its resource, its events or its links is `found`: the
/// places a search looks.
pub(crate) fn carries_attribute(span: &Span, resource: Option<&Resource>, found: &dyn Fn(&KeyValue) -> bool) -> bool {
    span.attributes.iter().any(found)
        || resource.is_some_and(|r| r.attributes.iter().any(found))
        || span.events.iter().any(|e| e.attributes.iter().any(found))
        || span.links.iter().any(|l| l.attributes.iter().any(found))
}

/// A trace search.
#[derive(Clone, Debug)]
pub struct SearchQuery {
    /// With span conditions, a matching span starts in `[start_min, start_max]`; without, the
    /// trace does.
    pub start_min: u64,
    pub start_max: u64,
    pub service: Option<String>,
    pub operation: Option<String>,
    /// `key=value` pairs, all required, on attributes of one span: its own, its resource's,
    /// its events' or its links'.
    pub attributes: Vec<(String, String)>,
    /// Attribute keys, all required with any value, on the same places as `attributes`.
    pub attribute_keys: Vec<String>,
    /// `key != value`, `key > number`, `key < number`: the span has the attribute, with a
    /// value other than `value`, or a number above or below `number` (on the same places).
    pub comparisons: Vec<Comparison>,
    /// `key=value` pairs no span of a matching trace may carry (on the same places): the
    /// traces without them.
    pub excluded: Vec<(String, String)>,
    /// The span's kind (OTLP number), if asked for.
    pub kind: Option<i32>,
    /// The span's status code (OTLP number: 1 ok, 2 error), if asked for.
    pub status_code: Option<i32>,
    /// The span's instrumentation scope name, if asked for.
    pub scope_name: Option<String>,
    pub min_duration_nano: Option<u64>,
    pub max_duration_nano: Option<u64>,
    pub errors_only: bool,
    pub limit: usize,
    /// Which matching traces come first (and which `limit` are kept).
    pub order: SearchOrder,
}

/// An attribute compared with a value other than by equality.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub key: String,
    pub op: CompareOp,
    pub value: String,
}

/// How a [`Comparison`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompareOp {
    /// Any other value (as text).
    NotEqual,
    /// A number above (the attribute's text read as a number; others never match).
    Greater,
    /// A number below.
    Less,
}

impl Comparison {
    /// True if an attribute value (as text) satisfies the comparison.
    pub fn holds(&self, text: &str) -> bool {
        match self.op {
            CompareOp::NotEqual => text != self.value,
            CompareOp::Greater | CompareOp::Less => {
                match (text.trim().parse::<f64>(), self.value.trim().parse::<f64>()) {
                    (Ok(a), Ok(b)) if self.op == CompareOp::Greater => a > b,
                    (Ok(a), Ok(b)) => a < b,
                    _ => false,
                }
            }
        }
    }
}

/// The order of search results, over every matching trace in the time range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SearchOrder {
    /// Latest start first.
    #[default]
    Newest,
    /// Longest trace first.
    Slowest,
    /// Most spans first.
    MostSpans,
}

impl SearchOrder {
    /// The order a summary sorts by, largest first (ties: newest first, then by trace id).
    pub fn key(self, s: &TraceSummary) -> (u64, u64) {
        match self {
            SearchOrder::Newest => (s.start_unix_nano, 0),
            SearchOrder::Slowest => (s.duration_nano, s.start_unix_nano),
            SearchOrder::MostSpans => (s.span_count, s.start_unix_nano),
        }
    }

    /// Sorts summaries in this order.
    pub fn sort(self, summaries: &mut [TraceSummary]) {
        summaries.sort_by(|a, b| self.key(b).cmp(&self.key(a)).then_with(|| a.trace_id.cmp(&b.trace_id)));
    }
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            start_min: 0,
            start_max: u64::MAX >> 1,
            service: None,
            operation: None,
            attributes: Vec::new(),
            attribute_keys: Vec::new(),
            comparisons: Vec::new(),
            excluded: Vec::new(),
            kind: None,
            status_code: None,
            scope_name: None,
            min_duration_nano: None,
            max_duration_nano: None,
            errors_only: false,
            limit: 20,
            order: SearchOrder::Newest,
        }
    }
}

/// A term a frame must hold for a search, and the key whose overflow would hide it.
struct Required {
    term: u64,
    overflow_key: Option<u64>,
}

impl SearchQuery {
    /// True if only trace-level conditions are asked for (no span has to be looked at).
    pub fn is_trace_level(&self) -> bool {
        self.service.is_none()
            && self.operation.is_none()
            && self.attributes.is_empty()
            && self.attribute_keys.is_empty()
            && self.comparisons.is_empty()
            && self.kind.is_none()
            && self.status_code.is_none()
            && self.scope_name.is_none()
    }

    fn required(&self) -> Vec<Required> {
        let mut out = Vec::new();
        if let Some(s) = &self.service {
            out.push(Required {
                term: term_service(s),
                overflow_key: None,
            });
        }
        if let Some(o) = &self.operation {
            out.push(Required {
                term: term_name(o),
                overflow_key: None,
            });
        }
        for (k, v) in &self.attributes {
            out.push(Required {
                term: term_attribute(k, v),
                overflow_key: Some(term_key(k)),
            });
        }
        for c in &self.comparisons {
            out.push(Required {
                term: term_key(&c.key),
                overflow_key: None,
            });
        }
        for k in &self.attribute_keys {
            out.push(Required {
                term: term_key(k),
                overflow_key: None,
            });
        }
        out
    }

    /// Span-level conditions: one span must satisfy all of them (as in Jaeger), starting in
    /// the time range. Durations and errors apply to that span.
    pub fn matches_span(&self, span: &Span, resource: Option<&Resource>, scope: Option<&InstrumentationScope>) -> bool {
        if span.start_time_unix_nano < self.start_min || span.start_time_unix_nano > self.start_max {
            return false;
        }
        if self.kind.is_some_and(|k| k != span.kind) {
            return false;
        }
        if self
            .status_code
            .is_some_and(|c| span.status.as_ref().map_or(0, |s| s.code) != c)
        {
            return false;
        }
        if let Some(name) = &self.scope_name {
            if scope.is_none_or(|s| &s.name != name) {
                return false;
            }
        }
        if let Some(s) = &self.service {
            if &model::service_name(resource) != s {
                return false;
            }
        }
        if let Some(o) = &self.operation {
            if &span.name != o {
                return false;
            }
        }
        let duration = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano);
        if self.min_duration_nano.is_some_and(|m| duration < m) || self.max_duration_nano.is_some_and(|m| duration > m)
        {
            return false;
        }
        if self.errors_only && !model::is_error(span) {
            return false;
        }
        let anywhere = |found: &dyn Fn(&KeyValue) -> bool| carries_attribute(span, resource, found);
        self.attributes
            .iter()
            .all(|(k, v)| anywhere(&|kv| &kv.key == k && with_text(kv.value.as_ref(), |t| t == v)))
            && self.attribute_keys.iter().all(|k| anywhere(&|kv| &kv.key == k))
            && self
                .comparisons
                .iter()
                .all(|c| anywhere(&|kv| kv.key == c.key && with_text(kv.value.as_ref(), |t| c.holds(t))))
    }

    /// Trace-level conditions, for searches without span conditions.
    pub fn matches_trace(&self, s: &TraceSummary) -> bool {
        if s.start_unix_nano < self.start_min || s.start_unix_nano > self.start_max {
            return false;
        }
        if self.min_duration_nano.is_some_and(|m| s.duration_nano < m)
            || self.max_duration_nano.is_some_and(|m| s.duration_nano > m)
        {
            return false;
        }
        !(self.errors_only && s.error_count == 0)
    }
}

/// A frame's span columns and posting lists, as stored (protobuf, then zstd).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FrameIndex {
    /// The frame's trace ids, 16 bytes each, in first-seen order.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_ids: Vec<u8>,
    #[prost(string, repeated, tag = "2")]
    pub services: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub names: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub scopes: Vec<String>,
    /// Per span, in frame order: its trace (index into `trace_ids`), …
    #[prost(uint32, repeated, tag = "5")]
    pub span_trace: Vec<u32>,
    #[prost(uint32, repeated, tag = "6")]
    pub span_service: Vec<u32>,
    #[prost(uint32, repeated, tag = "7")]
    pub span_name: Vec<u32>,
    #[prost(uint32, repeated, tag = "8")]
    pub span_scope: Vec<u32>,
    /// … its kind and status code (kind + 8 × code), …
    #[prost(uint32, repeated, tag = "9")]
    pub span_flags: Vec<u32>,
    /// … its start (after `min_start`) and its duration.
    #[prost(uint64, repeated, tag = "10")]
    pub span_start: Vec<u64>,
    #[prost(uint64, repeated, tag = "11")]
    pub span_duration: Vec<u64>,
    #[prost(message, repeated, tag = "12")]
    pub postings: Vec<Posting>,
    /// Keys whose values are in the Bloom filter only (each with a key posting).
    #[prost(string, repeated, tag = "13")]
    pub overflow_keys: Vec<String>,
    #[prost(uint64, tag = "14")]
    pub min_start: u64,
}

/// The spans carrying one `key=value` pair (or, without a value, the key of an overflowing
/// key): the first span's position, then the gaps. With `lengths`, each position starts a
/// run of that many consecutive spans (a resource's attribute is carried by all of its
/// spans in the frame: one run, not one entry per span); without, each is one span.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Posting {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
    #[prost(uint32, repeated, tag = "3")]
    pub gaps: Vec<u32>,
    #[prost(uint32, repeated, tag = "4")]
    pub lengths: Vec<u32>,
}

impl Posting {
    /// The spans listed, in order, none at or past `spans` (the frame's span count: damaged
    /// runs cannot make more).
    pub fn positions(&self, spans: usize) -> Vec<u32> {
        let starts = positions(&self.gaps);
        if self.lengths.is_empty() {
            return starts.into_iter().filter(|&s| (s as usize) < spans).collect();
        }
        let mut out = Vec::new();
        for (start, length) in starts.into_iter().zip(self.lengths.iter().copied()) {
            let end = (start as usize).saturating_add(length as usize).min(spans);
            out.extend(start..end as u32);
        }
        out
    }
}

/// A frame's terms as stored (and held in memory): sorted hashes, the longest duration of a
/// span carrying each (microseconds, rounded up), and the keys that overflowed.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FrameTermsData {
    #[prost(fixed64, repeated, tag = "1")]
    pub terms: Vec<u64>,
    #[prost(uint32, repeated, tag = "2")]
    pub max_micros: Vec<u32>,
    #[prost(fixed64, repeated, tag = "3")]
    pub overflow: Vec<u64>,
    #[prost(uint64, tag = "4")]
    pub min_start: u64,
    #[prost(uint64, tag = "5")]
    pub max_start: u64,
    #[prost(uint32, tag = "6")]
    pub span_count: u32,
}

fn micros_up(nanos: u64) -> u32 {
    nanos.div_ceil(1000).min(u64::from(u32::MAX)) as u32
}

/// One distinct `key=value` pair while a frame fills: the runs of spans carrying it.
struct Building {
    key: String,
    value: String,
    /// Where each run starts, in order; `lengths` stays empty while every run is one span.
    starts: Vec<u32>,
    lengths: Vec<u32>,
    max_duration: u64,
}

impl Building {
    /// Adds the spans `first..end` (at or after those added so far).
    fn add(&mut self, first: u32, end: u32) {
        let last_end = match (self.starts.last(), self.lengths.last()) {
            (Some(&s), Some(&l)) => Some(s + l),
            (Some(&s), None) => Some(s + 1),
            _ => None,
        };
        if last_end.is_some_and(|e| e >= first) {
            // Touches the last run: it grows.
            let Some(e) = last_end else { return };
            if end > e {
                self.lengths.resize(self.starts.len(), 1);
                if let Some(l) = self.lengths.last_mut() {
                    *l += end - e;
                }
            }
            return;
        }
        self.starts.push(first);
        if end - first > 1 || !self.lengths.is_empty() {
            self.lengths.resize(self.starts.len() - 1, 1);
            self.lengths.push(end - first);
        }
    }

    /// Every span listed, in order.
    fn spans(&self) -> Vec<u32> {
        if self.lengths.is_empty() {
            return self.starts.clone();
        }
        self.starts
            .iter()
            .zip(&self.lengths)
            .flat_map(|(&s, &l)| s..s + l)
            .collect()
    }
}

/// A frame's indexes while it fills (one per open frame, on the receiving thread).
#[derive(Default)]
pub(crate) struct IndexBuilder {
    index: FrameIndex,
    traces: SpreadMap<u128, u32>,
    services: HashMap<String, u32>,
    names: HashMap<String, u32>,
    scopes: HashMap<String, u32>,
    pairs: SpreadMap<u64, Building>,
    /// Service and name terms with their longest span.
    plain_terms: SpreadMap<u64, u64>,
    min_start: u64,
    max_start: u64,
}

fn number(map: &mut HashMap<String, u32>, list: &mut Vec<String>, s: &str) -> u32 {
    if let Some(&n) = map.get(s) {
        return n;
    }
    let n = list.len() as u32;
    map.insert(s.to_owned(), n);
    list.push(s.to_owned());
    n
}

/// A resource's attributes as they are indexed, worked out once per resource.
pub(crate) struct ResourceTerms {
    service: String,
    pairs: Vec<(u64, String, String)>,
}

impl ResourceTerms {
    /// The resource's service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn new(service: &str, resource: Option<&Resource>) -> Self {
        let pairs = resource
            .iter()
            .flat_map(|r| &r.attributes)
            .map(|kv| {
                let value = with_text(kv.value.as_ref(), str::to_owned);
                (term_attribute(&kv.key, &value), kv.key.clone(), value)
            })
            .collect();
        ResourceTerms {
            service: service.to_owned(),
            pairs,
        }
    }
}

impl IndexBuilder {
    pub fn new() -> Self {
        IndexBuilder {
            min_start: u64::MAX,
            ..Default::default()
        }
    }

    /// Adds the spans `first..end` as carrying `key=value`, the longest lasting `duration`.
    fn add_pair(&mut self, term: u64, key: &str, value: &str, (first, end): (u32, u32), duration: u64) {
        let entry = self.pairs.entry(term).or_insert_with(|| Building {
            key: key.to_owned(),
            value: value.to_owned(),
            starts: Vec::new(),
            lengths: Vec::new(),
            max_duration: 0,
        });
        entry.add(first, end);
        entry.max_duration = entry.max_duration.max(duration);
    }

    /// The position the next span added will have.
    pub fn next_position(&self) -> u32 {
        self.index.span_trace.len() as u32
    }

    /// Adds a span (with a 16-byte trace id) of the given resource and scope. The resource's
    /// attributes are added once for all its spans in the frame, by [`Self::add_resource`].
    pub fn add(
        &mut self,
        span: &Span,
        trace_id: &[u8; 16],
        resource: &ResourceTerms,
        scope: Option<&InstrumentationScope>,
    ) {
        let position = self.next_position();
        let next_trace = self.traces.len() as u32;
        let trace = *self.traces.entry(u128::from_le_bytes(*trace_id)).or_insert_with(|| {
            self.index.trace_ids.extend_from_slice(trace_id);
            next_trace
        });
        let duration = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano);
        self.min_start = self.min_start.min(span.start_time_unix_nano);
        self.max_start = self.max_start.max(span.start_time_unix_nano);
        let service = number(&mut self.services, &mut self.index.services, &resource.service);
        let name = number(&mut self.names, &mut self.index.names, &span.name);
        let scope = number(&mut self.scopes, &mut self.index.scopes, scope.map_or("", |s| &s.name));
        let status = span.status.as_ref().map_or(0, |s| s.code).clamp(0, 7) as u32;
        self.index.span_trace.push(trace);
        self.index.span_service.push(service);
        self.index.span_name.push(name);
        self.index.span_scope.push(scope);
        self.index.span_flags.push(span.kind.clamp(0, 7) as u32 + 8 * status);
        self.index.span_start.push(span.start_time_unix_nano);
        self.index.span_duration.push(duration);
        for term in [term_service(&resource.service), term_name(&span.name)] {
            let longest = self.plain_terms.entry(term).or_default();
            *longest = (*longest).max(duration);
        }
        let events = span.events.iter().flat_map(|e| &e.attributes);
        let links = span.links.iter().flat_map(|l| &l.attributes);
        for kv in span.attributes.iter().chain(events).chain(links) {
            with_text(kv.value.as_ref(), |value| {
                self.add_pair(
                    term_attribute(&kv.key, value),
                    &kv.key,
                    value,
                    (position, position + 1),
                    duration,
                );
            });
        }
    }

    /// Adds a resource's attributes as carried by the spans `first..end` (its spans in the
    /// frame, added one after the other), the longest lasting `longest`: one run per pair,
    /// however many spans and attributes the resource has.
    pub fn add_resource(&mut self, resource: &ResourceTerms, (first, end): (u32, u32), longest: u64) {
        if first >= end {
            return;
        }
        for (term, key, value) in &resource.pairs {
            self.add_pair(*term, key, value, (first, end), longest);
        }
    }

    /// The finished indexes: the terms (to store and hold in memory), the compressed span
    /// columns, the Bloom filter of overflowing values, and the trace ids in index order.
    pub fn finish(mut self) -> Result<FinishedIndex, std::io::Error> {
        let span_count = self.index.span_trace.len() as u32;
        let min_start = if span_count == 0 { 0 } else { self.min_start };
        for start in &mut self.index.span_start {
            *start -= min_start;
        }
        self.index.min_start = min_start;
        // Pairs by key, to find the keys with too many values.
        let mut by_key: HashMap<String, Vec<Building>> = HashMap::new();
        for (_, pair) in self.pairs.drain() {
            by_key.entry(pair.key.clone()).or_default().push(pair);
        }
        let mut terms: Vec<(u64, u32)> = self
            .plain_terms
            .iter()
            .map(|(&term, &longest)| (term, micros_up(longest)))
            .collect();
        let mut overflow = Vec::new();
        let mut overflow_terms = Vec::new();
        for (key, mut pairs) in by_key {
            let key_term = term_key(&key);
            let longest = pairs.iter().map(|p| p.max_duration).max().unwrap_or(0);
            terms.push((key_term, micros_up(longest)));
            if pairs.len() > VALUES_PER_KEY {
                let mut spans: Vec<u32> = pairs.iter().flat_map(Building::spans).collect();
                spans.sort_unstable();
                spans.dedup();
                overflow_terms.extend(pairs.iter().map(|p| term_attribute(&p.key, &p.value)));
                overflow.push(key_term);
                self.index.postings.push(Posting {
                    key: key.clone(),
                    value: None,
                    gaps: gaps(&spans),
                    lengths: Vec::new(),
                });
                self.index.overflow_keys.push(key);
                continue;
            }
            pairs.sort_by(|a, b| a.value.cmp(&b.value));
            for pair in pairs {
                terms.push((term_attribute(&pair.key, &pair.value), micros_up(pair.max_duration)));
                self.index.postings.push(Posting {
                    gaps: gaps(&pair.starts),
                    lengths: pair.lengths,
                    key: pair.key,
                    value: Some(pair.value),
                });
            }
        }
        terms.sort_unstable();
        terms.dedup_by_key(|t| t.0);
        overflow.sort_unstable();
        let mut bloom = Bloom::with_capacity(overflow_terms.len());
        for term in overflow_terms {
            bloom.insert(term);
        }
        let trace_ids = self
            .index
            .trace_ids
            .chunks_exact(16)
            .map(|c| c.try_into().expect("16 bytes"))
            .collect();
        let terms = FrameTermsData {
            terms: terms.iter().map(|t| t.0).collect(),
            max_micros: terms.iter().map(|t| t.1).collect(),
            overflow,
            min_start,
            max_start: self.max_start,
            span_count,
        };
        let raw = prost::Message::encode_to_vec(&self.index);
        Ok(FinishedIndex {
            spans_raw_bytes: raw.len(),
            min_start,
            max_start: self.max_start,
            terms: prost::Message::encode_to_vec(&terms),
            spans: crate::compress::compress(&raw)?,
            filter: bloom.into_bytes(),
            trace_ids,
        })
    }
}

fn gaps(sorted: &[u32]) -> Vec<u32> {
    let mut last = 0;
    sorted
        .iter()
        .map(|&s| {
            let gap = s - last;
            last = s;
            gap
        })
        .collect()
}

fn positions(gaps: &[u32]) -> Vec<u32> {
    let mut at = 0u32;
    gaps.iter()
        .map(|&g| {
            at = at.saturating_add(g);
            at
        })
        .collect()
}

/// A frame's finished indexes.
pub(crate) struct FinishedIndex {
    /// [`FrameTermsData`], encoded.
    pub terms: Vec<u8>,
    /// [`FrameIndex`], encoded and compressed.
    pub spans: Vec<u8>,
    /// Its size before compression.
    pub spans_raw_bytes: usize,
    /// Bloom filter of the values of overflowing keys.
    pub filter: Vec<u8>,
    /// The frame's traces in index order.
    pub trace_ids: Vec<[u8; 16]>,
    /// The earliest and latest span start.
    pub min_start: u64,
    pub max_start: u64,
}

/// Sorted term hashes and, for each, the longest span carrying it.
type Terms = (Box<[u64]>, Box<[u32]>);

/// One frame as searches see it in memory.
struct FrameEntry {
    frame_id: i64,
    min_start: u64,
    max_start: u64,
    span_count: u32,
    /// Sorted term hashes with the longest span of each (µs, rounded up); `None` for a
    /// frame without indexes (read in full when its time matches).
    terms: Option<Terms>,
    overflow: Box<[u64]>,
}

/// What a search needs to do with a frame.
#[derive(Debug, PartialEq)]
pub(crate) enum Candidate {
    /// Evaluate its span columns.
    Indexed(i64),
    /// Test its Bloom filter, then read its spans (a wanted value may be among its
    /// overflowing ones).
    Overflowing(i64),
    /// Read its spans (written without indexes).
    Unindexed(i64),
}

/// Every stored frame's terms, in frame id order.
#[derive(Default)]
pub(crate) struct SearchIndex {
    frames: Vec<FrameEntry>,
}

impl SearchIndex {
    /// Adds a frame's stored terms; damaged terms leave the frame to be read in full.
    pub fn add(&mut self, frame_id: i64, terms: Option<&[u8]>, fallback: (u64, u64, u32)) {
        let decoded = terms.and_then(|t| <FrameTermsData as prost::Message>::decode(t).ok());
        let entry = match decoded {
            Some(d) if d.terms.len() == d.max_micros.len() => FrameEntry {
                frame_id,
                min_start: d.min_start,
                max_start: d.max_start,
                span_count: d.span_count,
                terms: Some((d.terms.into(), d.max_micros.into())),
                overflow: d.overflow.into(),
            },
            _ => FrameEntry {
                frame_id,
                min_start: fallback.0,
                max_start: fallback.1,
                span_count: fallback.2,
                terms: None,
                overflow: Box::new([]),
            },
        };
        self.frames.push(entry);
    }

    /// Forgets the frames retention deleted.
    pub fn remove(&mut self, deleted: &std::collections::HashSet<i64>) {
        self.frames.retain(|f| !deleted.contains(&f.frame_id));
    }

    /// Spans in all frames.
    pub fn span_count(&self) -> u64 {
        self.frames.iter().map(|f| u64::from(f.span_count)).sum()
    }

    /// Memory held, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.frames
            .iter()
            .map(|f| {
                std::mem::size_of::<FrameEntry>()
                    + f.terms.as_ref().map_or(0, |t| t.0.len() * 12)
                    + f.overflow.len() * 8
            })
            .sum()
    }

    /// The indexed frames with spans in `[from, to]`, newest first.
    pub fn frames_between(&self, from: u64, to: u64) -> Vec<i64> {
        let mut found: Vec<(u64, i64)> = self
            .frames
            .iter()
            .filter(|f| f.terms.is_some() && f.max_start >= from && f.min_start <= to)
            .map(|f| (f.max_start, f.frame_id))
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(*f));
        found.into_iter().map(|(_, id)| id).collect()
    }

    /// The frames that may hold a span matching `query`, with their latest span start, newest
    /// first.
    pub fn candidates(&self, query: &SearchQuery) -> Vec<(u64, Candidate)> {
        let required = query.required();
        let min_micros = query.min_duration_nano.map(|m| m / 1000);
        let mut out = Vec::new();
        for f in &self.frames {
            if f.max_start < query.start_min || f.min_start > query.start_max {
                continue;
            }
            let Some((terms, longest)) = &f.terms else {
                out.push((f.max_start, Candidate::Unindexed(f.frame_id)));
                continue;
            };
            let mut overflowing = false;
            let held = required.iter().all(|r| {
                let found = terms.binary_search(&r.term).ok().map(|i| longest[i]);
                let found = match (found, r.overflow_key) {
                    (Some(l), _) => Some(l),
                    (None, Some(key)) if f.overflow.binary_search(&key).is_ok() => {
                        overflowing = true;
                        terms.binary_search(&key).ok().map(|i| longest[i])
                    }
                    _ => None,
                };
                // `longest` is rounded up, so a frame is only skipped if no span is long enough.
                found.is_some_and(|l| min_micros.is_none_or(|m| u64::from(l) >= m))
            });
            if held {
                let candidate = if overflowing {
                    Candidate::Overflowing(f.frame_id)
                } else {
                    Candidate::Indexed(f.frame_id)
                };
                out.push((f.max_start, candidate));
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.0));
        out
    }
}

impl FrameIndex {
    /// The spans listed under every posting `wanted` accepts, in order, each once.
    fn spans_of_postings(&self, wanted: impl Fn(&Posting) -> bool) -> Vec<u32> {
        let mut spans: Vec<u32> = self
            .postings
            .iter()
            .filter(|p| wanted(p))
            .flat_map(|p| p.positions(self.span_trace.len()))
            .collect();
        spans.sort_unstable();
        spans.dedup();
        spans
    }

    /// The positions (into `trace_ids`) of the traces with a span matching `query`, in the
    /// order of their latest matching span, newest first; `None` if the frame's spans must be
    /// read (a wanted value's key overflowed here).
    pub fn matching_traces(&self, query: &SearchQuery) -> Option<Vec<(u64, u32)>> {
        let count = self.span_trace.len();
        let columns = [
            self.span_service.len(),
            self.span_name.len(),
            self.span_scope.len(),
            self.span_flags.len(),
            self.span_start.len(),
            self.span_duration.len(),
        ];
        if columns.iter().any(|&c| c != count) || self.trace_ids.len() % 16 != 0 {
            return None; // damaged: the spans decide
        }
        let find = |list: &[String], wanted: &Option<String>| match wanted {
            None => Ok(None),
            Some(w) => list.iter().position(|s| s == w).map(|p| Some(p as u32)).ok_or(()),
        };
        let (Ok(service), Ok(name), Ok(scope)) = (
            find(&self.services, &query.service),
            find(&self.names, &query.operation),
            find(&self.scopes, &query.scope_name),
        ) else {
            return Some(Vec::new());
        };
        let mut lists: Vec<Vec<u32>> = Vec::new();
        for (k, v) in &query.attributes {
            if self.overflow_keys.iter().any(|o| o == k) {
                return None;
            }
            match self
                .postings
                .iter()
                .find(|p| &p.key == k && p.value.as_deref() == Some(v.as_str()))
            {
                Some(p) => lists.push(p.positions(count)),
                None => return Some(Vec::new()),
            }
        }
        for c in &query.comparisons {
            // Values of an overflowing key are not listed here: the spans decide.
            if self.overflow_keys.contains(&c.key) {
                return None;
            }
            let spans = self.spans_of_postings(|p| p.key == c.key && p.value.as_deref().is_some_and(|v| c.holds(v)));
            if spans.is_empty() {
                return Some(Vec::new());
            }
            lists.push(spans);
        }
        for k in &query.attribute_keys {
            let spans = self.spans_of_postings(|p| &p.key == k);
            if spans.is_empty() {
                return Some(Vec::new());
            }
            lists.push(spans);
        }
        lists.sort_by_key(Vec::len);
        let mut spans: Vec<u32> = match lists.first() {
            Some(first) => first.clone(),
            None => (0..count as u32).collect(),
        };
        for list in lists.iter().skip(1) {
            spans.retain(|s| list.binary_search(s).is_ok());
        }
        let mut found: HashMap<u32, u64> = HashMap::new();
        for s in spans {
            let s = s as usize;
            if s >= count {
                continue;
            }
            let start = self.min_start.saturating_add(self.span_start[s]);
            let duration = self.span_duration[s];
            let (kind, status) = ((self.span_flags[s] % 8) as i32, (self.span_flags[s] / 8) as i32);
            let matched = start >= query.start_min
                && start <= query.start_max
                && service.is_none_or(|x| x == self.span_service[s])
                && name.is_none_or(|x| x == self.span_name[s])
                && scope.is_none_or(|x| x == self.span_scope[s])
                && query.kind.is_none_or(|k| k == kind)
                && query.status_code.is_none_or(|c| c == status)
                && query.min_duration_nano.is_none_or(|m| duration >= m)
                && query.max_duration_nano.is_none_or(|m| duration <= m)
                && (!query.errors_only || status == 2);
            if matched {
                let latest = found.entry(self.span_trace[s]).or_default();
                *latest = (*latest).max(start);
            }
        }
        let mut out: Vec<(u64, u32)> = found.into_iter().map(|(t, start)| (start, t)).collect();
        out.sort_by(|a, b| b.cmp(a));
        Some(out)
    }

    /// Adds this frame's attributes to `seen`: for its spans in `[from, to]` (of `service`, if
    /// given), the spans carrying each key and each `key=value` (`None` for values of keys
    /// with too many to list).
    pub fn count_attributes(&self, from: u64, to: u64, service: Option<&str>, seen: &mut AttributeCounts) {
        let count = self.span_start.len();
        if self.span_service.len() != count {
            return;
        }
        let wanted_service = match service {
            Some(name) => match self.services.iter().position(|s| s == name) {
                Some(n) => Some(n as u32),
                None => return,
            },
            None => None,
        };
        let included: Vec<bool> = (0..count)
            .map(|i| {
                let start = self.min_start.saturating_add(self.span_start[i]);
                start >= from && start <= to && wanted_service.is_none_or(|s| s == self.span_service[i])
            })
            .collect();
        let spans = included.iter().filter(|&&i| i).count() as u64;
        if spans == 0 {
            return;
        }
        seen.spans += spans;
        // A key's spans: the union of its values' (a span has a key once).
        let mut by_key: HashMap<&str, Vec<u32>> = HashMap::new();
        for p in &self.postings {
            let on: Vec<u32> = p
                .positions(count)
                .into_iter()
                .filter(|&s| included.get(s as usize).copied().unwrap_or(false))
                .collect();
            if on.is_empty() {
                continue;
            }
            match &p.value {
                Some(v) => *seen.values.entry((p.key.clone(), Some(v.clone()))).or_default() += on.len() as u64,
                None => *seen.values.entry((p.key.clone(), None)).or_default() += on.len() as u64,
            }
            by_key.entry(&p.key).or_default().extend(on);
        }
        for (key, mut on) in by_key {
            on.sort_unstable();
            on.dedup();
            *seen.keys.entry(key.to_owned()).or_default() += on.len() as u64;
        }
    }

    /// True if a span of the trace at `position` carries `key=value`; `None` if the key's
    /// values are not listed here (the spans must say).
    pub fn trace_carries(&self, position: u32, key: &str, value: &str) -> Option<bool> {
        if self.overflow_keys.iter().any(|k| k == key) {
            return None;
        }
        Some(
            self.postings
                .iter()
                .filter(|p| p.key == key && p.value.as_deref() == Some(value))
                .flat_map(|p| p.positions(self.span_trace.len()))
                .any(|s| self.span_trace.get(s as usize) == Some(&position)),
        )
    }

    /// The position of a trace in this frame.
    pub fn position_of(&self, trace_id: &[u8; 16]) -> Option<u32> {
        self.trace_ids
            .chunks_exact(16)
            .position(|c| c == trace_id)
            .map(|p| p as u32)
    }

    /// The trace id at a position.
    pub fn trace_id(&self, position: u32) -> Option<[u8; 16]> {
        let at = position as usize * 16;
        self.trace_ids.get(at..at + 16).map(|b| b.try_into().expect("16 bytes"))
    }

    /// Decodes stored (compressed) span columns.
    pub fn decode(data: &[u8]) -> Option<FrameIndex> {
        let raw = crate::compress::decompress(data, crate::ingest::MAX_FRAME_BYTES).ok()?;
        <FrameIndex as prost::Message>::decode(&raw[..]).ok()
    }
}

/// Attribute keys and values counted over frames (see [`FrameIndex::count_attributes`]).
#[derive(Debug, Default)]
pub struct AttributeCounts {
    /// Spans looked at.
    pub spans: u64,
    /// Spans carrying each key.
    pub keys: HashMap<String, u64>,
    /// Spans carrying each `key=value`; `(key, None)`: spans with values not listed (the key
    /// has too many).
    pub values: HashMap<(String, Option<String>), u64>,
}

/// The summary row of each of a frame's traces (in [`FrameIndex`] order), as stored: the
/// differences between consecutive rows.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TraceRows {
    #[prost(sint64, repeated, tag = "1")]
    pub deltas: Vec<i64>,
}

impl TraceRows {
    pub fn encode(rows: &[i64]) -> Vec<u8> {
        let mut last = 0i64;
        let deltas = rows
            .iter()
            .map(|&r| {
                let d = r.wrapping_sub(last);
                last = r;
                d
            })
            .collect();
        prost::Message::encode_to_vec(&TraceRows { deltas })
    }

    /// The rows, or none if damaged.
    pub fn decode(data: &[u8]) -> Vec<i64> {
        let Ok(stored) = <TraceRows as prost::Message>::decode(data) else {
            return Vec::new();
        };
        let mut last = 0i64;
        stored
            .deltas
            .iter()
            .map(|&d| {
                last = last.wrapping_add(d);
                last
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn building() -> Building {
        Building {
            key: "k".into(),
            value: "v".into(),
            starts: Vec::new(),
            lengths: Vec::new(),
            max_duration: 0,
        }
    }

    fn posting(b: &Building) -> Posting {
        Posting {
            key: b.key.clone(),
            value: Some(b.value.clone()),
            gaps: gaps(&b.starts),
            lengths: b.lengths.clone(),
        }
    }

    #[test]
    fn single_spans_stay_one_entry_each_and_runs_are_kept_as_runs() {
        let mut b = building();
        for s in [0, 2, 2, 5] {
            b.add(s, s + 1);
        }
        assert!(b.lengths.is_empty(), "no runs yet: the old format");
        assert_eq!(posting(&b).positions(100), vec![0, 2, 5]);
        // A resource of 1000 spans is one run however many spans it has; touching runs merge.
        b.add(10, 1010);
        b.add(1010, 1020);
        b.add(1020, 1021);
        assert_eq!(b.starts, vec![0, 2, 5, 10]);
        assert_eq!(b.lengths, vec![1, 1, 1, 1011]);
        let expanded = posting(&b).positions(2000);
        assert_eq!(expanded.len(), 3 + 1011);
        assert_eq!(expanded, b.spans());
        // Damaged lengths cannot make spans the frame does not have.
        let mut damaged = posting(&b);
        damaged.lengths[3] = u32::MAX;
        assert_eq!(damaged.positions(50).len(), 3 + 40);
    }
}
