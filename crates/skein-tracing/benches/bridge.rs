//! A `tracing` span with 2 fields and 1 event, recorded through the Skein bridge into a batch
//! export pipeline, against the same span through tracing-opentelemetry 0.34 into
//! opentelemetry_sdk's batch processor (both exporters discard), in one run; and the bridge
//! with no listener for the span's target.
//!
//! ```sh
//! cargo bench -p skein-tracing --bench bridge
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use skein_bench_support::{median_ns, DiscardActivities, DiscardSpans};
use skein_export::{BatchConfig, ExportPipeline};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

const GROUP: &str = "tracing span, 2 fields + 1 event";
const SKEIN: &str = "skein bridge, recorded";
const UNHEARD: &str = "skein bridge, no listener for the target";
const PEER: &str = "tracing-opentelemetry + batch processor";

fn recorded_span(order: u64) {
    let span = tracing::info_span!(target: "shop", "checkout", order.id = order, customer.tier = "gold");
    let _entered = span.enter();
    tracing::info!(target: "shop", items = 3, "order accepted");
}

fn unheard_span(order: u64) {
    let span = tracing::info_span!(target: "unheard", "checkout", order.id = order, customer.tier = "gold");
    let _entered = span.enter();
    tracing::info!(target: "unheard", items = 3, "order accepted");
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-tracing");
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let export = ExportPipeline::new()
        .with_sources(["shop"])
        .batch(DiscardActivities, BatchConfig::default())
        .install();
    let skein = Dispatch::new(tracing_subscriber::registry().with(skein_tracing::SkeinLayer::new()));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(DiscardSpans).build())
        .build();
    let peer = Dispatch::new(
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
    );

    let mut group = c.benchmark_group(GROUP);
    tracing::dispatcher::with_default(&skein, || {
        let mut n = 0u64;
        group.bench_function(SKEIN, |b| {
            b.iter(|| {
                n += 1;
                recorded_span(n)
            })
        });
        group.bench_function(UNHEARD, |b| b.iter(|| unheard_span(black_box(7))));
    });
    tracing::dispatcher::with_default(&peer, || {
        let mut n = 0u64;
        group.bench_function(PEER, |b| {
            b.iter(|| {
                n += 1;
                recorded_span(n)
            })
        });
    });
    group.finish();
    c.final_summary();

    let dropped = export.dropped_count();
    let _ = export.shutdown(Duration::from_secs(5));
    let _ = provider.shutdown();
    let (Some(ours), Some(unheard), Some(theirs)) = (
        median_ns(&dir, GROUP, SKEIN),
        median_ns(&dir, GROUP, UNHEARD),
        median_ns(&dir, GROUP, PEER),
    ) else {
        return;
    };
    println!();
    println!("{GROUP} (median, ns):");
    println!("  {SKEIN:<42} {ours:>9.1}");
    println!("  {UNHEARD:<42} {unheard:>9.1}");
    println!("  {PEER:<42} {theirs:>9.1}");
    let ratio = ours / theirs;
    let verdict = if ratio <= 1.0 / 3.0 { "meets" } else { "MISSES" };
    println!("  skein / peer = {ratio:.3} (bar <= 0.333) {verdict}");
    println!("  skein pipeline dropped {dropped} activities");
}
