//! Skein against its peers, each through its real export path into a sink that counts what
//! it receives: Skein through `skein_export::ExportPipeline` (the pipeline
//! `skein_export::init()` installs), opentelemetry_sdk 0.33 through its `BatchSpanProcessor`,
//! fastrace 0.7 through its global collector, and `tracing` 0.1 through tracing-opentelemetry
//! 0.34 (on its defaults, and with location, thread and busy/idle recording off) or Skein's
//! `SkeinLayer`. Same queue (2,048, the specification's default, then 65,536) and batch (512)
//! sizes wherever a system has them; fastrace has none: a thread whose fixed channel to its
//! collector is full keeps the rest in an unbounded buffer of its own, so it never drops and
//! its memory grows instead.
//!
//! Each scenario runs interleaved rounds: every system in turn (the order rotating) does the
//! same work for about 100 ms after its background threads have gone quiet (flushed, then a
//! pause), and the table shows the median of its rounds, the ratio of Skein's to each peer's,
//! and delivered / created for every system over all its rounds. A system that delivered less
//! than 99% of what it created is marked, and a ratio involving it does not count.
//!
//! Run: `cargo bench -p skein-bench-support --bench pipeline` (`SKEIN_BENCH_ROUNDS=n` for more
//! or fewer rounds than 11; `SKEIN_BENCH_QUICK=1` for the default queue only;
//! `SKEIN_BENCH_ONLY=tree,bridge` for only the scenarios named: `nobody`, `sampled_out`,
//! `recorded`, `tree`, `bridge`, `throughput`; `SKEIN_BENCH_SYSTEMS=skein` for only the systems
//! whose names start with one of those given, as when profiling one).

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};
use skein::{Activity, ActivityKind, ActivitySource, AlwaysOffSampler};
use skein_bench_support::{otel_recorded_span, skein_recorded_activity};
use skein_export::{ActivityExporter, BatchConfig, ExportError, ExportGuard, ExportPipeline};
use tracing_subscriber::layer::SubscriberExt;

const BATCH: usize = 512;
const DEFAULT_QUEUE: usize = 2048;
const LARGE_QUEUE: usize = 65_536;
/// How long one system's round lasts, about.
const ROUND: Duration = Duration::from_millis(100);
/// The pause after a flush, for background threads to go back to sleep.
const SETTLE: Duration = Duration::from_millis(30);

// ---- counting sinks ---------------------------------------------------------------------------

/// Counts what reaches it; shared by a system's sink and the harness.
#[derive(Clone, Default)]
struct Count(Arc<AtomicU64>);

impl Count {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl ActivityExporter for Count {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        self.0.fetch_add(black_box(batch).len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Debug)]
struct CountSpans(Arc<AtomicU64>);

impl SpanExporter for CountSpans {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(black_box(batch));
        std::future::ready(Ok(()))
    }
}

struct CountRecords(Arc<AtomicU64>);

impl fastrace::collector::Reporter for CountRecords {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        self.0.fetch_add(spans.len() as u64, Ordering::Relaxed);
        drop(black_box(spans));
    }
}

static FASTRACE_DELIVERED: std::sync::LazyLock<Count> = std::sync::LazyLock::new(Count::default);
/// Spans the harness makes to flush fastrace (not counted as delivered).
static FASTRACE_FLUSH_SPANS: AtomicU64 = AtomicU64::new(0);

/// fastrace never drops: a thread whose channel to the collector is full keeps the rest in an
/// unbounded buffer of its own, sent along with its next span. So the harness sends one (on
/// the thread that made the others) before asking the collector to flush.
fn fastrace_flush() {
    loop {
        let before = FASTRACE_DELIVERED.get();
        drop(fastrace::Span::root("flush", fastrace::prelude::SpanContext::random()));
        FASTRACE_FLUSH_SPANS.fetch_add(1, Ordering::Relaxed);
        fastrace::flush();
        // Only the flush span itself arrived: nothing was left behind.
        if FASTRACE_DELIVERED.get() <= before + 1 {
            return;
        }
    }
}

// ---- the systems' pipelines --------------------------------------------------------------------

fn skein_pipeline(source: &ActivitySource, queue: usize, sampled: bool) -> (ExportGuard, Count) {
    let count = Count::default();
    let mut pipeline = ExportPipeline::new().with_sources([source.name()]);
    if !sampled {
        pipeline = pipeline.with_sampler(AlwaysOffSampler);
    }
    let guard = pipeline
        .batch(
            count.clone(),
            BatchConfig {
                max_queue_size: queue,
                max_export_batch_size: BATCH,
                ..BatchConfig::default()
            },
        )
        .install();
    (guard, count)
}

fn otel_provider(queue: usize, sampled: bool) -> (SdkTracerProvider, Count) {
    let count = Count::default();
    let processor = BatchSpanProcessor::builder(CountSpans(count.0.clone()))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(queue)
                .with_max_export_batch_size(BATCH)
                .build(),
        )
        .build();
    let mut builder = SdkTracerProvider::builder().with_span_processor(processor);
    if !sampled {
        builder = builder.with_sampler(Sampler::AlwaysOff);
    }
    (builder.build(), count)
}

// ---- the harness ------------------------------------------------------------------------------

/// One system in one scenario.
struct System {
    name: &'static str,
    /// Does `n` iterations of the scenario's work.
    run: Box<dyn FnMut(u64)>,
    /// Exports what is queued and waits for it.
    flush: Box<dyn FnMut()>,
    /// What reached the sink so far.
    delivered: Box<dyn Fn() -> u64>,
    /// Spans made per iteration (0 where nothing is recorded).
    created_per_iteration: u64,
}

struct Measured {
    name: &'static str,
    median_ns: f64,
    created: u64,
    delivered: u64,
}

impl Measured {
    fn delivered_share(&self) -> Option<f64> {
        (self.created > 0).then(|| self.delivered as f64 / self.created as f64)
    }

    fn counts(&self) -> bool {
        self.delivered_share().is_none_or(|share| share >= 0.99)
    }
}

fn rounds() -> usize {
    std::env::var("SKEIN_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(11)
}

/// Interleaved rounds of every system; medians, created and delivered.
fn measure(mut systems: Vec<System>) -> Vec<Measured> {
    if let Ok(only) = std::env::var("SKEIN_BENCH_SYSTEMS") {
        systems.retain(|s| only.split(',').any(|prefix| s.name.starts_with(prefix.trim())));
    }
    // Iterations per round: what a first short run says fills `ROUND`.
    let mut iterations = Vec::new();
    let mut created = vec![0u64; systems.len()];
    // What earlier scenarios left queued is delivered before counting starts.
    for system in systems.iter_mut() {
        settle(system);
    }
    let delivered_before: Vec<u64> = systems.iter().map(|s| (s.delivered)()).collect();
    for (i, system) in systems.iter_mut().enumerate() {
        (system.flush)();
        // A short probe sizes a warm-up round of about `ROUND`, which sizes the measured
        // rounds: sized from the probe alone, a hiccup during its fraction of a millisecond
        // made every round of that system short, and short rounds weigh each round's start
        // (caches and pools left cold by the other systems) more.
        let mut seconds_per_iteration = |n: u64| {
            let started = Instant::now();
            (system.run)(n);
            created[i] += n * system.created_per_iteration;
            started.elapsed().as_secs_f64() / n as f64
        };
        let filling_a_round =
            |per_iteration: f64| ((ROUND.as_secs_f64() / per_iteration) as u64).clamp(1_000, 5_000_000);
        let warm_up = filling_a_round(seconds_per_iteration(2_000));
        iterations.push(filling_a_round(seconds_per_iteration(warm_up)));
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); systems.len()];
    let count = systems.len();
    for round in 0..rounds() {
        for k in 0..count {
            let i = (k + round) % count;
            let system = &mut systems[i];
            (system.flush)();
            std::thread::sleep(SETTLE);
            let n = iterations[i];
            let started = Instant::now();
            (system.run)(n);
            let elapsed = started.elapsed();
            created[i] += n * system.created_per_iteration;
            samples[i].push(elapsed.as_nanos() as f64 / n as f64);
        }
    }
    systems
        .iter_mut()
        .zip(samples)
        .enumerate()
        .map(|(i, (system, mut samples))| {
            settle(system);
            samples.sort_by(f64::total_cmp);
            Measured {
                name: system.name,
                median_ns: samples[samples.len() / 2],
                created: created[i],
                delivered: (system.delivered)() - delivered_before[i],
            }
        })
        .collect()
}

/// Flushes until nothing more arrives: some collectors (fastrace's) deliver after their
/// flush returns.
fn settle(system: &mut System) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = (system.delivered)();
    loop {
        (system.flush)();
        std::thread::sleep(SETTLE);
        let now = (system.delivered)();
        if now == last || Instant::now() > deadline {
            return;
        }
        last = now;
    }
}

/// A bar: Skein's system over a peer's, at most this.
struct Bar {
    ours: &'static str,
    theirs: &'static str,
    at_most: f64,
}

const fn bar(ours: &'static str, theirs: &'static str, at_most: f64) -> Bar {
    Bar { ours, theirs, at_most }
}

fn report(title: &str, results: &[Measured], bars: &[Bar], verdicts: &mut Vec<String>) {
    println!();
    println!("{title}");
    println!(
        "  {:<28} {:>12} {:>22}   delivered / created",
        "system", "median ns", "skein / system"
    );
    let Some(skein) = results.first() else {
        return;
    };
    for r in results {
        let ratio = if std::ptr::eq(r, skein) {
            String::new()
        } else {
            format!("{:.3}", skein.median_ns / r.median_ns)
        };
        let delivered = match r.delivered_share() {
            None => "(nothing recorded)".to_owned(),
            Some(share) => format!(
                "{} / {} ({:.2}%){}",
                r.delivered,
                r.created,
                share * 100.0,
                if r.counts() { "" } else { "  UNDER 99%: does not count" }
            ),
        };
        println!("  {:<28} {:>12.1} {:>22}   {delivered}", r.name, r.median_ns, ratio);
    }
    for bar in bars {
        let find = |name| results.iter().find(|r| r.name == name);
        let (Some(ours), Some(theirs)) = (find(bar.ours), find(bar.theirs)) else {
            continue;
        };
        let ratio = ours.median_ns / theirs.median_ns;
        let verdict = if !ours.counts() || !theirs.counts() {
            "DOES NOT COUNT (a system delivered under 99%)"
        } else if ratio <= bar.at_most {
            "meets"
        } else {
            "MISSES"
        };
        let line = format!(
            "{title}: {} / {} = {ratio:.3} (bar <= {}) {verdict}",
            bar.ours, bar.theirs, bar.at_most
        );
        println!("  bar: {line}");
        verdicts.push(line);
    }
}

// ---- the work ---------------------------------------------------------------------------------

static NOBODY: ActivitySource = ActivitySource::new("bench.pipeline.nobody");
static DECLINED: ActivitySource = ActivitySource::new("bench.pipeline.declined");
static RECORDED: ActivitySource = ActivitySource::new("bench.pipeline.recorded");
static STOPPED: ActivitySource = ActivitySource::new("bench.pipeline.stopped");
static TREE: ActivitySource = ActivitySource::new("bench.pipeline.tree");
static THROUGHPUT: ActivitySource = ActivitySource::new("bench.pipeline.throughput");

/// The attribute values every system records (`skein_recorded_activity`, `otel_recorded_span`
/// and `fastrace_recorded`): one string, one integer, one boolean, one float (fastrace takes
/// strings only: the same values, written out, without allocating).
fn skein_recorded(source: &'static ActivitySource, explicit_stop: bool) {
    let activity = skein_recorded_activity(source);
    if explicit_stop {
        activity.stop();
    }
}

fn fastrace_recorded() {
    let root = fastrace::Span::root("op", fastrace::prelude::SpanContext::random());
    root.add_properties(|| {
        [
            ("str", Cow::Borrowed("value")),
            ("int", Cow::Borrowed("42")),
            ("bool", Cow::Borrowed("true")),
            ("float", Cow::Borrowed("1.5")),
        ]
    });
    root.add_event(fastrace::Event::new("event"));
}

fn fastrace_system(name: &'static str, created_per_iteration: u64, mut work: impl FnMut() + 'static) -> System {
    System {
        name,
        run: Box::new(move |n| {
            for _ in 0..n {
                work();
            }
        }),
        flush: Box::new(fastrace_flush),
        delivered: Box::new(|| FASTRACE_DELIVERED.get() - FASTRACE_FLUSH_SPANS.load(Ordering::Relaxed)),
        created_per_iteration,
    }
}

fn skein_system(
    name: &'static str,
    guard: ExportGuard,
    count: Count,
    created_per_iteration: u64,
    mut work: impl FnMut() + 'static,
) -> System {
    let guard = Arc::new(guard);
    let flushing = guard.clone();
    System {
        name,
        run: Box::new(move |n| {
            let _keep = &guard;
            for _ in 0..n {
                work();
            }
        }),
        flush: Box::new(move || {
            let _ = flushing.force_flush(Duration::from_secs(30));
        }),
        delivered: Box::new(move || count.get()),
        created_per_iteration,
    }
}

fn otel_system(
    name: &'static str,
    provider: SdkTracerProvider,
    count: Count,
    created_per_iteration: u64,
    mut work: impl FnMut() + 'static,
) -> System {
    System {
        name,
        run: Box::new(move |n| {
            for _ in 0..n {
                work();
            }
        }),
        flush: Box::new(move || {
            let _ = provider.force_flush();
        }),
        delivered: Box::new(move || count.get()),
        created_per_iteration,
    }
}

/// A system whose whole round runs inside `dispatch`.
fn dispatched(mut system: System, dispatch: tracing::Dispatch) -> System {
    let mut run = system.run;
    system.run = Box::new(move |n| tracing::dispatcher::with_default(&dispatch, || run(n)));
    system
}

fn otel_layer(tracer: opentelemetry_sdk::trace::SdkTracer, lean: bool) -> tracing::Dispatch {
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    let layer = if lean {
        layer
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
    } else {
        layer
    };
    tracing::Dispatch::new(tracing_subscriber::registry().with(layer))
}

// ---- scenarios --------------------------------------------------------------------------------

fn no_listener(verdicts: &mut Vec<String>) {
    let systems = vec![
        System {
            name: "skein",
            run: Box::new(|n| {
                for _ in 0..n {
                    drop(black_box(NOBODY.start_activity("op", ActivityKind::Internal)));
                }
            }),
            flush: Box::new(|| {}),
            delivered: Box::new(|| 0),
            created_per_iteration: 0,
        },
        System {
            // No subscriber at all in this thread or process.
            name: "tracing (no subscriber)",
            run: Box::new(|n| {
                for _ in 0..n {
                    let span = tracing::info_span!("op");
                    let _entered = black_box(&span).enter();
                }
            }),
            flush: Box::new(|| {}),
            delivered: Box::new(|| 0),
            created_per_iteration: 0,
        },
    ];
    let results = measure(systems);
    report(
        "no listener / no subscriber",
        &results,
        &[bar("skein", "tracing (no subscriber)", 2.0)],
        verdicts,
    );
}

fn sampled_out(queue: usize, verdicts: &mut Vec<String>) {
    let (guard, count) = skein_pipeline(&DECLINED, queue, false);
    let (provider, otel_count) = otel_provider(queue, false);
    let tracer = provider.tracer("bench");
    let systems = vec![
        skein_system("skein", guard, count, 0, || {
            drop(black_box(DECLINED.start_activity("op", ActivityKind::Internal)))
        }),
        otel_system("opentelemetry_sdk", provider, otel_count, 0, move || {
            let mut span = tracer.start("op");
            span.end();
        }),
        fastrace_system("fastrace", 0, || {
            let root = fastrace::Span::root("op", fastrace::prelude::SpanContext::random().sampled(false));
            drop(black_box(root));
        }),
    ];
    let results = measure(systems);
    report(
        &format!("sampled out (queue {queue})"),
        &results,
        &[bar("skein", "opentelemetry_sdk", 0.10)],
        verdicts,
    );
}

fn recorded(queue: usize, verdicts: &mut Vec<String>) {
    let (guard, count) = skein_pipeline(&RECORDED, queue, true);
    let (stop_guard, stop_count) = skein_pipeline(&STOPPED, queue, true);
    let (provider, otel_count) = otel_provider(queue, true);
    let tracer = provider.tracer("bench");
    let systems = vec![
        skein_system("skein", guard, count, 1, || skein_recorded(&RECORDED, false)),
        skein_system("skein (explicit stop())", stop_guard, stop_count, 1, || {
            skein_recorded(&STOPPED, true)
        }),
        otel_system("opentelemetry_sdk", provider, otel_count, 1, move || {
            otel_recorded_span(&tracer)
        }),
        fastrace_system("fastrace", 1, fastrace_recorded),
    ];
    let results = measure(systems);
    report(
        &format!("recorded, 4 tags + 1 event (queue {queue})"),
        &results,
        &[
            bar("skein", "opentelemetry_sdk", 0.20),
            bar("skein (explicit stop())", "opentelemetry_sdk", 0.20),
            bar("skein", "fastrace", 0.5),
        ],
        verdicts,
    );
}

fn tree(queue: usize, verdicts: &mut Vec<String>) {
    let (guard, count) = skein_pipeline(&TREE, queue, true);
    let (provider, otel_count) = otel_provider(queue, true);
    let tracer = provider.tracer("bench");
    let systems = vec![
        skein_system("skein", guard, count, 11, || {
            let root = TREE.start_activity("root", ActivityKind::Server);
            for _ in 0..10 {
                drop(black_box(TREE.start_activity("child", ActivityKind::Internal)));
            }
            drop(root);
        }),
        otel_system("opentelemetry_sdk", provider, otel_count, 11, move || {
            tracer.in_span("root", |_| {
                for _ in 0..10 {
                    tracer.in_span("child", |cx| drop(black_box(cx)));
                }
            })
        }),
        fastrace_system("fastrace", 11, || {
            let root = fastrace::Span::root("root", fastrace::prelude::SpanContext::random());
            let _parent = root.set_local_parent();
            for _ in 0..10 {
                drop(black_box(fastrace::local::LocalSpan::enter_with_local_parent("child")));
            }
        }),
    ];
    let results = measure(systems);
    report(
        &format!("root + 10 children through the current context (queue {queue})"),
        &results,
        &[bar("skein", "opentelemetry_sdk", 0.25)],
        verdicts,
    );
}

/// A `tracing` span with 2 fields and 1 event inside it.
fn tracing_work() {
    let span = tracing::info_span!("checkout", order.id = 42i64, customer = "gold");
    let _entered = span.enter();
    tracing::info!("event");
}

fn bridge(queue: usize, verdicts: &mut Vec<String>) {
    // The bridge's activities come from the source named after the span's target.
    let target = module_path!();
    let count = Count::default();
    let guard = ExportPipeline::new()
        .with_sources([target])
        .batch(
            count.clone(),
            BatchConfig {
                max_queue_size: queue,
                max_export_batch_size: BATCH,
                ..BatchConfig::default()
            },
        )
        .install();
    let skein = tracing::Dispatch::new(tracing_subscriber::registry().with(skein_tracing::layer()));
    let (provider, otel_count) = otel_provider(queue, true);
    let default_layer = otel_layer(provider.tracer("bench"), false);
    let (lean_provider, lean_count) = otel_provider(queue, true);
    let lean_layer = otel_layer(lean_provider.tracer("bench"), true);
    let systems = vec![
        dispatched(skein_system("skein (SkeinLayer)", guard, count, 1, tracing_work), skein),
        dispatched(
            otel_system(
                "tracing-opentelemetry (lean)",
                lean_provider,
                lean_count,
                1,
                tracing_work,
            ),
            lean_layer,
        ),
        dispatched(
            otel_system("tracing-opentelemetry", provider, otel_count, 1, tracing_work),
            default_layer,
        ),
    ];
    let results = measure(systems);
    report(
        &format!("tracing span, 2 fields + 1 event (queue {queue}); lean = location, threads, busy/idle off"),
        &results,
        &[bar("skein (SkeinLayer)", "tracing-opentelemetry (lean)", 0.33)],
        verdicts,
    );
}

/// Two producer threads making `make` for `duration`, each at a steady `rate` per second if
/// given (a thread that fell behind its schedule by more than a millisecond, having been
/// descheduled, does not make up for it in a burst); returns (made, delivered).
fn produce(
    duration: Duration,
    rate: Option<f64>,
    make: Arc<dyn Fn() + Send + Sync>,
    flush: &mut dyn FnMut(),
    delivered: &dyn Fn() -> u64,
) -> (u64, u64) {
    flush();
    std::thread::sleep(SETTLE);
    let before = delivered();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (stop, make) = (stop.clone(), make.clone());
            std::thread::spawn(move || {
                let chunk = if rate.is_some() { 16 } else { 64 };
                let mut schedule = Instant::now();
                let mut made = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..chunk {
                        make();
                    }
                    made += chunk;
                    if let Some(rate) = rate {
                        schedule += Duration::from_secs_f64(chunk as f64 / rate);
                        let now = Instant::now();
                        match schedule.checked_duration_since(now) {
                            Some(ahead) => std::thread::sleep(ahead),
                            None if now - schedule > Duration::from_millis(1) => schedule = now,
                            None => {}
                        }
                    }
                }
                made
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let made = threads.into_iter().map(|t| t.join().unwrap()).sum();
    flush();
    (made, delivered() - before)
}

fn throughput(verdicts: &mut Vec<String>) {
    let seconds = 3.0;
    let duration = Duration::from_secs_f64(seconds);
    let (guard, count) = skein_pipeline(&THROUGHPUT, DEFAULT_QUEUE, true);
    let guard = Arc::new(guard);
    let flushing = guard.clone();
    let mut skein_flush = move || {
        let _ = flushing.force_flush(Duration::from_secs(30));
    };
    let skein_delivered = move || count.get();
    let (provider, otel_count) = otel_provider(DEFAULT_QUEUE, true);
    let tracer = provider.tracer("bench");
    let flushing = provider.clone();
    let mut otel_flush = move || {
        let _ = flushing.force_flush();
    };
    let otel_delivered = move || otel_count.get();
    let skein_make: Arc<dyn Fn() + Send + Sync> = Arc::new(|| skein_recorded(&THROUGHPUT, false));
    let otel_make: Arc<dyn Fn() + Send + Sync> = Arc::new(move || otel_recorded_span(&tracer));

    let (skein_made, skein_got) = produce(duration, None, skein_make.clone(), &mut skein_flush, &skein_delivered);
    let (otel_made, otel_got) = produce(duration, None, otel_make.clone(), &mut otel_flush, &otel_delivered);
    // A rate the peer sustains: half of what it delivered flat out, per producer thread, and
    // halved again (up to three times) while the peer drops some even at that rate (it can,
    // when the machine is busy): the bar is about a rate the peer can sustain.
    let mut sustained = otel_got as f64 / seconds / 2.0 / 2.0;
    let mut halvings = 0;
    let (otel_paced, otel_paced_got) = loop {
        let (made, got) = produce(
            duration,
            Some(sustained),
            otel_make.clone(),
            &mut otel_flush,
            &otel_delivered,
        );
        if made == got || halvings == 3 {
            break (made, got);
        }
        sustained /= 2.0;
        halvings += 1;
    };
    let (skein_paced, skein_paced_got) = produce(
        duration,
        Some(sustained),
        skein_make,
        &mut skein_flush,
        &skein_delivered,
    );
    drop(guard);
    let _ = provider.shutdown();

    println!();
    println!("throughput: 2 producer threads for {seconds} s, recorded 4 tags + 1 event (queue {DEFAULT_QUEUE})");
    let per_s = |n: u64| n as f64 / seconds;
    println!(
        "  skein               made {skein_made}, delivered {skein_got} ({:.0}/s, {:.2}% of made)",
        per_s(skein_got),
        100.0 * skein_got as f64 / skein_made.max(1) as f64
    );
    println!(
        "  opentelemetry_sdk   made {otel_made}, delivered {otel_got} ({:.0}/s, {:.2}% of made)",
        per_s(otel_got),
        100.0 * otel_got as f64 / otel_made.max(1) as f64
    );
    println!(
        "  at a steady {:.0}/s (half the peer's delivered rate{}): skein made {skein_paced}, dropped {}; opentelemetry_sdk made {otel_paced}, dropped {}",
        sustained * 2.0,
        match halvings {
            0 => String::new(),
            n => format!(", halved {n} more time(s): the peer dropped some at the higher rates"),
        },
        skein_paced - skein_paced_got,
        otel_paced - otel_paced_got
    );
    let ratio = skein_got as f64 / otel_got.max(1) as f64;
    let nothing_dropped = skein_paced == skein_paced_got && otel_paced == otel_paced_got;
    let verdict = if ratio >= 4.0 && nothing_dropped {
        "meets"
    } else {
        "MISSES"
    };
    let line = format!(
        "throughput: skein / opentelemetry_sdk delivered per second = {ratio:.2} (bar >= 4, nothing dropped at a sustained rate: {nothing_dropped}) {verdict}"
    );
    println!("  bar: {line}");
    verdicts.push(line);
}

fn main() {
    // Cargo runs benchmark binaries with `--bench`; nothing else is read from the arguments.
    fastrace::set_reporter(
        CountRecords(FASTRACE_DELIVERED.0.clone()),
        fastrace::collector::Config::default(),
    );
    let quick = std::env::var("SKEIN_BENCH_QUICK").is_ok();
    let queues: &[usize] = if quick {
        &[DEFAULT_QUEUE]
    } else {
        &[DEFAULT_QUEUE, LARGE_QUEUE]
    };
    println!(
        "Skein against its peers through their export paths; medians of {} interleaved rounds of ~{} ms",
        rounds(),
        ROUND.as_millis()
    );
    let only = std::env::var("SKEIN_BENCH_ONLY").ok();
    let runs = |scenario: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|s| s.trim() == scenario))
    };
    let mut verdicts = Vec::new();
    if runs("nobody") {
        no_listener(&mut verdicts);
    }
    for &queue in queues {
        if runs("sampled_out") {
            sampled_out(queue, &mut verdicts);
        }
        if runs("recorded") {
            recorded(queue, &mut verdicts);
        }
        if runs("tree") {
            tree(queue, &mut verdicts);
        }
        if runs("bridge") {
            bridge(queue, &mut verdicts);
        }
    }
    if runs("throughput") {
        throughput(&mut verdicts);
    }
    println!();
    println!("Bars:");
    for line in &verdicts {
        println!("  {line}");
    }
}
