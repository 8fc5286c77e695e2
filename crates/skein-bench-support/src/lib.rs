//! What Skein's benchmarks share, so each compares like with like: exporters that discard
//! what they are given (Skein's [`DiscardActivities`] and opentelemetry_sdk's
//! [`DiscardSpans`]), the "recorded, 4 tags + 1 event" workload on both sides
//! ([`skein_recorded_activity`], [`otel_recorded_span`]), and [`median_ns`] to read criterion's results back for
//! the ratio tables the benchmarks print. Its own `benches/pipeline.rs` runs Skein against its
//! peers, each through its real export path (`cargo bench -p skein-bench-support --bench
//! pipeline`), kept here so that the core
//! crate's tests (and Miri) build without the peers. Not published; only benchmarks depend on
//! it.

use std::hint::black_box;
use std::path::Path;

use opentelemetry::trace::{Span as _, Tracer};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use skein::{Activity, ActivityEvent, ActivityKind, ActivitySource, Tag};
use skein_export::{ActivityExporter, ExportError};

/// Skein's side: every finished activity goes through the pipeline to this, and no further.
pub struct DiscardActivities;

impl ActivityExporter for DiscardActivities {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        black_box(batch);
        Ok(())
    }
}

/// The OpenTelemetry SDK's side: the same, for its processors.
#[derive(Debug)]
pub struct DiscardSpans;

impl SpanExporter for DiscardSpans {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        drop(black_box(batch));
        std::future::ready(Ok(()))
    }
}

/// One activity with 4 typed tags and 1 event, from `source` (which must have a listener);
/// dropping it stops it.
pub fn skein_recorded_activity(source: &'static ActivitySource) -> Activity {
    let a = source.start_activity("op", ActivityKind::Internal).unwrap();
    a.add_tags([
        Tag::new("str", "value"),
        Tag::new("int", 42i64),
        Tag::new("bool", true),
        Tag::new("float", 1.5),
    ])
    .add_event(ActivityEvent::new("event"));
    a
}

/// The same through the SDK's tracer: one span with 4 typed attributes and 1 event.
pub fn otel_recorded_span(tracer: &impl Tracer) {
    let mut span = tracer.start("op");
    span.set_attributes([
        KeyValue::new("str", "value"),
        KeyValue::new("int", 42i64),
        KeyValue::new("bool", true),
        KeyValue::new("float", 1.5),
    ]);
    span.add_event("event", vec![]);
    span.end();
}

/// The median (ns) criterion stored for `group/function` under its output directory `dir`.
pub fn median_ns(dir: &Path, group: &str, function: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(group).join(function).join("new/estimates.json")).ok()?;
    let median = &text[text.find("\"median\"")?..];
    let point = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    point[..point.find([',', '}'])?].trim().parse().ok()
}
