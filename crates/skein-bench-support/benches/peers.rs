//! Skein against its peers, in one process: opentelemetry_sdk 0.33, fastrace 0.7, and
//! tracing 0.1 (+ tracing-opentelemetry 0.34). Each scenario does the same work with every
//! library; criterion measures, and the end prints a table of medians and ratios with the
//! bars from the core issue.
//!
//! Run: `cargo bench -p skein-bench-support --bench peers` (add `-- --quick` for a rough pass).

use std::borrow::Cow;
use std::cell::RefCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::Criterion;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
use skein::{
    Activity, ActivityContext, ActivityCreationOptions, ActivityKind, ActivityListener, ActivitySamplingResult,
    ActivitySource,
};
use skein_bench_support::{median_ns, otel_recorded_span, skein_recorded_activity, DiscardSpans};
use tracing_subscriber::layer::SubscriberExt;

// ---- skein listeners ------------------------------------------------------------------------

/// Declines everything its sources make.
struct Decline;
impl ActivityListener for Decline {
    fn should_listen_to(&self, s: &ActivitySource) -> bool {
        s.name() == "bench.declined"
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::None
    }
}

/// Records everything and queues each stopped activity for a background thread: activities
/// collect in a per-thread batch of 64 that goes through a bounded channel (dropped and
/// counted when it is full). The background thread hands processed batches back, and the
/// producing thread releases them: memory is freed where it was allocated, so the allocator
/// never contends between the two threads.
struct Queue {
    tx: SyncSender<Vec<Activity>>,
    returned: Mutex<Receiver<Vec<Activity>>>,
    dropped: AtomicU64,
}

const BATCH: usize = 64;

thread_local! {
    static PENDING: RefCell<Vec<Activity>> = RefCell::new(Vec::with_capacity(BATCH));
}

impl Queue {
    fn start() -> Arc<Queue> {
        let (tx, rx) = sync_channel::<Vec<Activity>>(32);
        let (back_tx, back_rx) = sync_channel::<Vec<Activity>>(32);
        std::thread::spawn(move || loop {
            loop {
                match rx.try_recv() {
                    Ok(batch) => {
                        let _ = back_tx.try_send(black_box(batch));
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        });
        Arc::new(Queue {
            tx,
            returned: Mutex::new(back_rx),
            dropped: AtomicU64::new(0),
        })
    }
}

impl ActivityListener for Queue {
    fn should_listen_to(&self, s: &ActivitySource) -> bool {
        s.name() == "bench.recorded"
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
    fn on_stopped(&self, activity: &Activity) {
        self.on_stopped_owned(activity.clone());
    }
    fn keeps_stopped_activities(&self) -> bool {
        true
    }
    fn wants_started_activities(&self) -> bool {
        false
    }
    fn on_stopped_owned(&self, activity: Activity) {
        // Captured by reference: the closure then takes one pointer, not the activity itself.
        let mut activity = Some(activity);
        PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            pending.extend(activity.take());
            if pending.len() == BATCH {
                let batch = std::mem::take(&mut *pending);
                // The next batch reuses a buffer: a dropped batch's, else a returned one's.
                let mut buffer = match self.tx.try_send(batch) {
                    Ok(()) => None,
                    Err(TrySendError::Full(batch)) | Err(TrySendError::Disconnected(batch)) => {
                        self.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        Some(batch)
                    }
                };
                if let Ok(returned) = self.returned.try_lock() {
                    while let Ok(batch) = returned.try_recv() {
                        if buffer.is_none() {
                            buffer = Some(batch);
                        }
                    }
                }
                let mut buffer = buffer.unwrap_or_else(|| Vec::with_capacity(BATCH));
                buffer.clear();
                *pending = buffer;
            }
        });
    }
}

static NOBODY: ActivitySource = ActivitySource::new("bench.nobody");
static DECLINED: ActivitySource = ActivitySource::new("bench.declined");
static RECORDED: ActivitySource = ActivitySource::new("bench.recorded");

// ---- peers' plumbing --------------------------------------------------------------------------

fn otel_batch_provider() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(DiscardSpans).build())
        .build()
}

fn otel_off_provider() -> SdkTracerProvider {
    SdkTracerProvider::builder().with_sampler(Sampler::AlwaysOff).build()
}

struct NoopReporter;
impl fastrace::collector::Reporter for NoopReporter {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        drop(black_box(spans));
    }
}

// ---- scenarios ------------------------------------------------------------------------------

const NO_LISTENER: &str = "no_listener";
const SAMPLED_OUT: &str = "sampled_out";
const RECORDED_4_TAGS_1_EVENT: &str = "recorded_4tags_1event";
const ROOT_AND_10_CHILDREN: &str = "root_and_10_children";

const SKEIN: &str = "skein";
const OTEL: &str = "opentelemetry_sdk";
const FASTRACE: &str = "fastrace";
const TRACING: &str = "tracing";
const TRACING_OTEL: &str = "tracing+otel";

fn no_listener(c: &mut Criterion) {
    let mut g = c.benchmark_group(NO_LISTENER);
    g.bench_function(SKEIN, |b| {
        b.iter(|| drop(black_box(NOBODY.start_activity("op", ActivityKind::Internal))))
    });
    // tracing with no subscriber at all (this runs before any subscriber exists).
    g.bench_function(TRACING, |b| {
        b.iter(|| {
            let span = tracing::info_span!("op");
            let _entered = black_box(&span).enter();
        })
    });
    let noop = opentelemetry::global::tracer("bench");
    g.bench_function(OTEL, |b| {
        b.iter(|| {
            let mut span = noop.start("op");
            span.end();
        })
    });
    g.finish();
}

fn sampled_out(c: &mut Criterion) {
    let _decline = ActivitySource::add_activity_listener(Decline);
    let mut g = c.benchmark_group(SAMPLED_OUT);
    g.bench_function(SKEIN, |b| {
        b.iter(|| drop(black_box(DECLINED.start_activity("op", ActivityKind::Internal))))
    });
    let provider = otel_off_provider();
    let tracer = provider.tracer("bench");
    g.bench_function(OTEL, |b| {
        b.iter(|| {
            let mut span = tracer.start("op");
            span.end();
        })
    });
    g.bench_function(FASTRACE, |b| {
        b.iter(|| {
            let root = fastrace::Span::root("op", fastrace::prelude::SpanContext::random().sampled(false));
            drop(black_box(root));
        })
    });
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function(TRACING_OTEL, |b| {
            b.iter(|| {
                let span = tracing::info_span!("op");
                let _entered = black_box(&span).enter();
            })
        });
    });
    g.finish();
    let _ = provider.shutdown();
}

fn recorded(c: &mut Criterion, queue: &Arc<Queue>) {
    let mut g = c.benchmark_group(RECORDED_4_TAGS_1_EVENT);
    let _listener = ActivitySource::add_activity_listener(queue.clone());
    g.bench_function(SKEIN, |b| b.iter(|| skein_recorded_activity(&RECORDED)));
    let provider = otel_batch_provider();
    let tracer = provider.tracer("bench");
    g.bench_function(OTEL, |b| b.iter(|| otel_recorded_span(&tracer)));
    g.bench_function(FASTRACE, |b| {
        b.iter(|| {
            let root = fastrace::Span::root("op", fastrace::prelude::SpanContext::random());
            root.add_properties(|| {
                [
                    ("str", Cow::Borrowed("value")),
                    ("int", Cow::Owned(42i64.to_string())),
                    ("bool", Cow::Owned(true.to_string())),
                    ("float", Cow::Owned(1.5f64.to_string())),
                ]
            });
            root.add_event(fastrace::Event::new("event"));
        })
    });
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function(TRACING_OTEL, |b| {
            b.iter(|| {
                let span = tracing::info_span!("op", str = "value", int = 42i64, bool = true, float = 1.5);
                let _entered = span.enter();
                tracing::info!("event");
            })
        });
    });
    g.finish();
    let _ = provider.shutdown();
}

fn tree(c: &mut Criterion, queue: &Arc<Queue>) {
    let mut g = c.benchmark_group(ROOT_AND_10_CHILDREN);
    let _listener = ActivitySource::add_activity_listener(queue.clone());
    g.bench_function(SKEIN, |b| {
        b.iter(|| {
            let root = RECORDED.start_activity("root", ActivityKind::Server);
            for _ in 0..10 {
                drop(black_box(RECORDED.start_activity("child", ActivityKind::Internal)));
            }
            drop(root);
        })
    });
    let provider = otel_batch_provider();
    let tracer = provider.tracer("bench");
    g.bench_function(OTEL, |b| {
        b.iter(|| {
            tracer.in_span("root", |_| {
                for _ in 0..10 {
                    tracer.in_span("child", |cx| drop(black_box(cx)));
                }
            })
        })
    });
    g.bench_function(FASTRACE, |b| {
        b.iter(|| {
            let root = fastrace::Span::root("root", fastrace::prelude::SpanContext::random());
            let _parent = root.set_local_parent();
            for _ in 0..10 {
                drop(black_box(fastrace::local::LocalSpan::enter_with_local_parent("child")));
            }
        })
    });
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function(TRACING_OTEL, |b| {
            b.iter(|| {
                let root = tracing::info_span!("root");
                let _root = root.enter();
                for _ in 0..10 {
                    let child = tracing::info_span!("child");
                    drop(black_box(child.enter()));
                }
            })
        });
    });
    g.finish();
    let _ = provider.shutdown();
}

// ---- the table ------------------------------------------------------------------------------

/// (scenario, peer, the most skein may cost relative to that peer)
const BARS: &[(&str, &str, f64)] = &[
    (NO_LISTENER, TRACING, 2.0),
    (SAMPLED_OUT, OTEL, 0.1),
    (RECORDED_4_TAGS_1_EVENT, OTEL, 0.25),
    (RECORDED_4_TAGS_1_EVENT, FASTRACE, 1.0),
    (ROOT_AND_10_CHILDREN, OTEL, 0.25),
];

fn print_table(dir: &Path) {
    let peers = [OTEL, FASTRACE, TRACING, TRACING_OTEL];
    println!();
    println!("Skein against its peers (median ns per operation; ratio = skein / peer)");
    println!(
        "{:<24} {:>10} {:>26} {:>26} {:>26} {:>26}",
        "scenario", SKEIN, OTEL, FASTRACE, TRACING, TRACING_OTEL
    );
    for scenario in [NO_LISTENER, SAMPLED_OUT, RECORDED_4_TAGS_1_EVENT, ROOT_AND_10_CHILDREN] {
        let Some(ours) = median_ns(dir, scenario, SKEIN) else {
            continue;
        };
        let mut line = format!("{scenario:<24} {ours:>10.1}");
        for peer in peers {
            let cell = match median_ns(dir, scenario, peer) {
                Some(theirs) => format!("{theirs:.1} ({:.3}x)", ours / theirs),
                None => "-".to_owned(),
            };
            line.push_str(&format!(" {cell:>26}"));
        }
        println!("{line}");
    }
    println!();
    println!("Bars:");
    for (scenario, peer, bar) in BARS {
        if let (Some(ours), Some(theirs)) = (median_ns(dir, scenario, SKEIN), median_ns(dir, scenario, peer)) {
            let ratio = ours / theirs;
            let verdict = if ratio <= *bar { "meets" } else { "MISSES" };
            println!("  {scenario:<24} skein/{peer:<18} = {ratio:>7.3} (bar <= {bar}) {verdict}");
        }
    }
}

fn main() {
    let dir: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-peers");
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    fastrace::set_reporter(NoopReporter, fastrace::collector::Config::default());
    let queue = Queue::start();

    no_listener(&mut c);
    sampled_out(&mut c);
    recorded(&mut c, &queue);
    tree(&mut c, &queue);

    fastrace::flush();
    c.final_summary();
    print_table(&dir);
    let dropped = queue.dropped.load(Ordering::Relaxed);
    println!("skein queue: {dropped} activities dropped because the consumer fell behind");
}
