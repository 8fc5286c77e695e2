//! The export pipeline against opentelemetry_sdk's BatchSpanProcessor with the
//! opentelemetry-otlp HTTP exporter, both sending to the same loopback OTLP/HTTP sink:
//!
//! 1. producer side (criterion): a recorded activity with 4 tags and 1 event, queued for export;
//! 2. throughput: 2 producer threads for a few seconds, spans per second that arrive at the sink,
//!    with the drops of each.
//!
//! Run: `cargo bench -p skein-export --bench export`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use criterion::Criterion;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use skein::ActivitySource;
use skein_bench_support::{median_ns, otel_recorded_span, skein_recorded_activity};
use skein_export::otlp::{OtlpHttpExporter, Protocol};
use skein_export::{BatchConfig, ExportGuard, ExportPipeline, Resource};

static SOURCE: ActivitySource = ActivitySource::new("bench.export");

/// Counts the spans that arrive.
fn start_sink() -> (SocketAddr, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().route(
                "/v1/traces",
                post(move |body: Bytes| {
                    let counter = counter.clone();
                    async move {
                        counter.fetch_add(count_spans(&body), Ordering::Relaxed);
                        ""
                    }
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.recv().unwrap(), received)
}

/// Reads a varint at `*at`, advancing it.
fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The length-delimited fields numbered `field` of one protobuf message.
fn submessages(buf: &[u8], field: u64) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let Some(key) = varint(buf, &mut at) else { break };
        let skip = match key & 7 {
            0 => varint(buf, &mut at).map(|_| 0),
            1 => Some(8),
            5 => Some(4),
            2 => varint(buf, &mut at).map(|n| n as usize),
            _ => None,
        };
        let Some(skip) = skip else { break };
        if key & 7 == 2 && key >> 3 == field {
            out.push(&buf[at..(at + skip).min(buf.len())]);
        }
        at += skip;
    }
    out
}

/// Counts the spans in an OTLP request without decoding it, so the sink costs both libraries
/// little and the same.
fn count_spans(request: &[u8]) -> u64 {
    submessages(request, 1)
        .into_iter()
        .flat_map(|resource_spans| submessages(resource_spans, 2))
        .map(|scope_spans| submessages(scope_spans, 2).len() as u64)
        .sum()
}

fn skein_pipeline(addr: SocketAddr) -> ExportGuard {
    let exporter = OtlpHttpExporter::new(
        &format!("http://{addr}/v1/traces"),
        Protocol::HttpProtobuf,
        Resource::new("bench"),
    )
    .unwrap();
    ExportPipeline::new()
        .with_sources([SOURCE.name()])
        .batch(exporter, BatchConfig::default())
        .install()
}

fn otel_provider(addr: SocketAddr) -> SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("http://{addr}/v1/traces"))
        .build()
        .unwrap();
    SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .build()
}

fn producer_side(c: &mut Criterion, sink: SocketAddr) {
    let mut group = c.benchmark_group("producer_recorded_4tags_1event");
    let guard = skein_pipeline(sink);
    group.bench_function("skein", |b| b.iter(|| drop(skein_recorded_activity(&SOURCE))));
    drop(guard);
    let provider = otel_provider(sink);
    let tracer = provider.tracer("bench");
    group.bench_function("opentelemetry_sdk", |b| {
        b.iter(|| otel_recorded_span(black_box(&tracer)))
    });
    group.finish();
    let _ = provider.shutdown();
}

/// Runs two producer threads for `duration`; returns (produced, delivered) span counts.
fn throughput(
    duration: Duration,
    make: impl Fn() + Send + Sync + 'static,
    flush: impl FnOnce(),
    delivered: &AtomicU64,
) -> (u64, u64) {
    let before = delivered.load(Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let make = Arc::new(make);
    let produced = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (stop, make, produced) = (stop.clone(), make.clone(), produced.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        make();
                    }
                    n += 64;
                }
                produced.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    flush();
    // Let the last responses be counted.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = delivered.load(Ordering::Relaxed);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = delivered.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    (
        produced.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed) - before,
    )
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-export");
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let (sink, delivered) = start_sink();
    producer_side(&mut c, sink);
    c.final_summary();

    let seconds = 3;
    let guard = Arc::new(skein_pipeline(sink));
    let g = guard.clone();
    let (skein_made, skein_arrived) = throughput(
        Duration::from_secs(seconds),
        || drop(skein_recorded_activity(&SOURCE)),
        move || {
            let _ = g.force_flush(Duration::from_secs(10));
        },
        &delivered,
    );
    let skein_dropped = guard.dropped_count();
    drop(guard);

    let provider = otel_provider(sink);
    let tracer = provider.tracer("bench");
    let (otel_made, otel_arrived) = throughput(
        Duration::from_secs(seconds),
        move || otel_recorded_span(&tracer),
        || {
            let _ = provider.force_flush();
        },
        &delivered,
    );

    println!();
    println!("Producer side, median ns per recorded activity (4 tags + 1 event), OTLP/HTTP to loopback:");
    let ours = median_ns(&dir, "producer_recorded_4tags_1event", "skein");
    let theirs = median_ns(&dir, "producer_recorded_4tags_1event", "opentelemetry_sdk");
    if let (Some(ours), Some(theirs)) = (ours, theirs) {
        let ratio = ours / theirs;
        println!(
            "  skein {ours:.1}  opentelemetry_sdk {theirs:.1}  ratio {ratio:.3} (bar <= 0.25) {}",
            if ratio <= 0.25 { "meets" } else { "MISSES" }
        );
    }
    let per_s = |n: u64| n as f64 / seconds as f64;
    println!("Throughput, 2 producer threads for {seconds} s, spans/s arriving at the sink:");
    println!(
        "  skein {:.0}/s (made {skein_made}, dropped {skein_dropped})",
        per_s(skein_arrived)
    );
    println!(
        "  opentelemetry_sdk {:.0}/s (made {otel_made}, dropped {})",
        per_s(otel_arrived),
        otel_made.saturating_sub(otel_arrived)
    );
    if otel_arrived > 0 {
        let ratio = skein_arrived as f64 / otel_arrived as f64;
        println!(
            "  ratio {ratio:.2}x (bar >= 3) {}",
            if ratio >= 3.0 { "meets" } else { "MISSES" }
        );
    }
}
