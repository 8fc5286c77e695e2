//! Moving activity contexts and baggage across process boundaries.
//!
//! A [`DistributedContextPropagator`] writes the current activity into outgoing message
//! headers and reads a parent back from incoming ones. The [`DefaultPropagator`] speaks W3C
//! (`traceparent`, `tracestate`, `baggage`) for W3C activities and `Request-Id` +
//! `Correlation-Context` for hierarchical ones, and accepts either on extract. Bad headers are
//! never an error: they mean "no parent", and the activity starts a new trace.
//!
//! ```
//! use std::collections::HashMap;
//! use skein::propagation::{self, DistributedContextPropagator};
//! use skein::Activity;
//!
//! let outgoing = Activity::new("client call").start();
//! outgoing.add_baggage("tier", "gold");
//! let mut headers = HashMap::new();
//! propagation::current().inject(Some(&outgoing), &mut headers);
//! assert!(headers["traceparent"].starts_with("00-"));
//! assert_eq!(headers["baggage"], "tier=gold");
//!
//! // On the receiving side:
//! let incoming = propagation::current().extract(&headers);
//! assert_eq!(incoming.parent_id.as_deref(), outgoing.id().as_deref());
//! assert_eq!(incoming.baggage, [("tier".to_owned(), "gold".to_owned())]);
//! ```

mod baggage;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use baggage::{
    format_baggage, format_correlation_context, parse_baggage, parse_correlation_context, percent_decode,
    percent_encode, BaggageMember, BaggageProperty, BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS,
};

use crate::activity::{Activity, ActivityIdFormat};
use crate::context::parse_traceparent;
use crate::hierarchical::REQUEST_ID_MAX_LENGTH;
use crate::source::{ActivityParent, ActivityStartOptions};

/// The W3C parent header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C trace state header.
pub const TRACESTATE: &str = "tracestate";
/// The W3C baggage header.
pub const BAGGAGE: &str = "baggage";
/// The hierarchical parent header.
pub const REQUEST_ID: &str = "Request-Id";
/// The hierarchical baggage header.
pub const CORRELATION_CONTEXT: &str = "Correlation-Context";

/// Writes headers into an outgoing carrier.
pub trait PropagatorSetter {
    /// Sets `name` (replacing an earlier value of the same name).
    fn set(&mut self, name: &str, value: String);
}

/// Reads headers from an incoming carrier. Names are matched case-insensitively.
pub trait PropagatorGetter {
    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str>;

    /// Every value of `name` (headers such as `tracestate` and `baggage` may repeat).
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.get(name).into_iter().collect()
    }

    /// True if `name` appears more than once.
    fn is_repeated(&self, name: &str) -> bool {
        self.get_all(name).len() > 1
    }
}

impl PropagatorSetter for HashMap<String, String> {
    fn set(&mut self, name: &str, value: String) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name));
        self.insert(name.to_owned(), value);
    }
}

impl PropagatorGetter for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        match HashMap::get(self, name) {
            Some(v) => Some(v),
            None => self
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
        }
    }
}

impl PropagatorSetter for Vec<(String, String)> {
    fn set(&mut self, name: &str, value: String) {
        self.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.push((name.to_owned(), value));
    }
}

impl PropagatorGetter for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[cfg(feature = "http")]
impl PropagatorSetter for http::HeaderMap {
    fn set(&mut self, name: &str, value: String) {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
            http::HeaderValue::from_str(&value),
        ) else {
            return;
        };
        self.insert(name, value);
    }
}

#[cfg(feature = "http")]
impl PropagatorGetter for http::HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        http::HeaderMap::get(self, name).and_then(|v| v.to_str().ok())
    }
    fn get_all(&self, name: &str) -> Vec<&str> {
        http::HeaderMap::get_all(self, name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }
    fn is_repeated(&self, name: &str) -> bool {
        http::HeaderMap::get_all(self, name).iter().nth(1).is_some()
    }
}

/// What was read from an incoming carrier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtractedContext {
    /// The parent id: a valid W3C `traceparent`, or a `Request-Id`.
    pub parent_id: Option<String>,
    /// The W3C trace state that came with a `traceparent`.
    pub trace_state: Option<String>,
    /// Baggage in .NET's order: the last member of the header first (see
    /// [`DistributedContextPropagator::extract_baggage`]).
    pub baggage: Vec<(String, String)>,
}

impl ExtractedContext {
    /// Start options with this parent (or the current activity when there is none).
    pub fn start_options(&self) -> ActivityStartOptions<'_> {
        ActivityStartOptions {
            parent: self
                .parent_id
                .as_deref()
                .map_or(ActivityParent::Current, ActivityParent::Id),
            trace_state: self.trace_state.as_deref(),
            ..Default::default()
        }
    }

    /// Adds the baggage to `activity` so that its `baggage()` lists it in header order (each
    /// `add_baggage` goes first, and the extracted list is last-first).
    pub fn apply_baggage(&self, activity: &Activity) {
        for (k, v) in &self.baggage {
            activity.add_baggage(k.clone(), v.clone());
        }
    }
}

/// Injects and extracts activity contexts and baggage (.NET `DistributedContextPropagator`).
pub trait DistributedContextPropagator: Send + Sync {
    /// The header names this propagator may write.
    fn fields(&self) -> &'static [&'static str];

    /// Writes `activity`'s context and baggage into `carrier`.
    fn inject(&self, activity: Option<&Activity>, carrier: &mut dyn PropagatorSetter);

    /// Reads the parent id and trace state. Invalid headers yield `None`.
    fn extract_trace_id_and_state(&self, carrier: &dyn PropagatorGetter) -> (Option<String>, Option<String>);

    /// Reads the baggage. Invalid members are skipped. As .NET's propagators, the list is in
    /// reverse header order, so that calling `add_baggage` (which prepends) for each item in
    /// turn leaves an activity's baggage in header order.
    fn extract_baggage(&self, carrier: &dyn PropagatorGetter) -> Vec<(String, String)>;

    /// Reads everything at once.
    fn extract(&self, carrier: &dyn PropagatorGetter) -> ExtractedContext {
        let (parent_id, trace_state) = self.extract_trace_id_and_state(carrier);
        ExtractedContext {
            parent_id,
            trace_state,
            baggage: self.extract_baggage(carrier),
        }
    }
}

/// A usable `Request-Id`: visible ASCII, at most 1024 characters.
fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= REQUEST_ID_MAX_LENGTH && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn joined(carrier: &dyn PropagatorGetter, name: &str) -> Option<String> {
    let values = carrier.get_all(name);
    (!values.is_empty()).then(|| values.join(","))
}

fn extract_standard(carrier: &dyn PropagatorGetter) -> (Option<String>, Option<String>) {
    // Two `traceparent` headers name two parents: neither can be trusted (W3C: treat as
    // invalid), as ASP.NET Core does by joining them into one unparsable value.
    let repeated = carrier.is_repeated(TRACEPARENT);
    if let Some(tp) = carrier.get(TRACEPARENT).map(str::trim).filter(|_| !repeated) {
        if parse_traceparent(tp).is_ok() {
            let ts = joined(carrier, TRACESTATE).filter(|ts| crate::TraceState::parse(ts).is_ok());
            return (Some(tp.to_owned()), ts);
        }
    }
    match carrier.get(REQUEST_ID).map(str::trim) {
        Some(id) if valid_request_id(id) => (Some(id.to_owned()), None),
        _ => (None, None),
    }
}

fn extract_standard_baggage(carrier: &dyn PropagatorGetter) -> Vec<(String, String)> {
    let mut in_header_order = match joined(carrier, BAGGAGE) {
        Some(b) => parse_baggage(&b).into_iter().map(|m| (m.key, m.value)).collect(),
        None => joined(carrier, CORRELATION_CONTEXT)
            .map(|c| parse_correlation_context(&c))
            .unwrap_or_default(),
    };
    in_header_order.reverse();
    in_header_order
}

fn inject_ids(
    id: &str,
    trace_state: &str,
    baggage: &[(String, String)],
    w3c: bool,
    carrier: &mut dyn PropagatorSetter,
) {
    let items = baggage.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    if w3c {
        carrier.set(TRACEPARENT, id.to_owned());
        if !trace_state.is_empty() {
            carrier.set(TRACESTATE, trace_state.to_owned());
        }
        let header = format_baggage(items);
        if !header.is_empty() {
            carrier.set(BAGGAGE, header);
        }
    } else {
        carrier.set(REQUEST_ID, id.to_owned());
        let header = format_correlation_context(items);
        if !header.is_empty() {
            carrier.set(CORRELATION_CONTEXT, header);
        }
    }
}

const FIELDS: &[&str] = &[TRACEPARENT, TRACESTATE, BAGGAGE, REQUEST_ID, CORRELATION_CONTEXT];

/// W3C headers for W3C activities, `Request-Id` and `Correlation-Context` for hierarchical
/// ones; extraction accepts either (W3C first).
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultPropagator;

impl DistributedContextPropagator for DefaultPropagator {
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn inject(&self, activity: Option<&Activity>, carrier: &mut dyn PropagatorSetter) {
        let Some(activity) = activity else { return };
        let Some(id) = activity.id() else { return };
        let w3c = activity.id_format() == ActivityIdFormat::W3C;
        let trace_state = activity.trace_state();
        inject_ids(&id, trace_state.header(), &activity.baggage(), w3c, carrier);
    }

    fn extract_trace_id_and_state(&self, carrier: &dyn PropagatorGetter) -> (Option<String>, Option<String>) {
        extract_standard(carrier)
    }

    fn extract_baggage(&self, carrier: &dyn PropagatorGetter) -> Vec<(String, String)> {
        extract_standard_baggage(carrier)
    }
}

/// Forwards the context this process *received* (the root activity's parent) unchanged, as a
/// transparent proxy should; local activities do not appear downstream.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassThroughPropagator;

impl DistributedContextPropagator for PassThroughPropagator {
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn inject(&self, activity: Option<&Activity>, carrier: &mut dyn PropagatorSetter) {
        // .NET's pass-through ignores the argument and starts from the current activity.
        let Some(mut root) = Activity::current().or_else(|| activity.cloned()) else {
            return;
        };
        while let Some(parent) = root.parent() {
            root = parent;
        }
        let Some(id) = root.parent_id().or_else(|| root.id()) else {
            return;
        };
        let w3c = parse_traceparent(&id).is_ok();
        inject_ids(&id, root.trace_state().header(), &root.baggage(), w3c, carrier);
    }

    fn extract_trace_id_and_state(&self, carrier: &dyn PropagatorGetter) -> (Option<String>, Option<String>) {
        extract_standard(carrier)
    }

    fn extract_baggage(&self, carrier: &dyn PropagatorGetter) -> Vec<(String, String)> {
        extract_standard_baggage(carrier)
    }
}

/// Writes nothing (extraction works as the default's): for services that must not pass trace
/// context on.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoOutputPropagator;

impl DistributedContextPropagator for NoOutputPropagator {
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }

    fn inject(&self, _: Option<&Activity>, _: &mut dyn PropagatorSetter) {}

    fn extract_trace_id_and_state(&self, carrier: &dyn PropagatorGetter) -> (Option<String>, Option<String>) {
        extract_standard(carrier)
    }

    fn extract_baggage(&self, carrier: &dyn PropagatorGetter) -> Vec<(String, String)> {
        extract_standard_baggage(carrier)
    }
}

fn slot() -> &'static ArcSwap<Box<dyn DistributedContextPropagator>> {
    static CURRENT: std::sync::OnceLock<ArcSwap<Box<dyn DistributedContextPropagator>>> = std::sync::OnceLock::new();
    CURRENT.get_or_init(|| ArcSwap::from_pointee(Box::new(DefaultPropagator)))
}

/// The process-wide propagator the HTTP instrumentation uses (the default one unless set).
pub fn current() -> Arc<Box<dyn DistributedContextPropagator>> {
    slot().load_full()
}

/// Replaces the process-wide propagator.
pub fn set_current(propagator: impl DistributedContextPropagator + 'static) {
    slot().store(Arc::new(Box::new(propagator)));
}
