//! Ingest, disk and query figures for the collector, against a real collector on loopback.
//!
//! ```sh
//! cargo bench -p skein-collector --bench store                      # 1 million spans
//! SKEIN_BENCH_SPANS=10000000 cargo bench -p skein-collector --bench store
//! ```
//!
//! `SKEIN_BENCH_CLIENTS` sets the number of concurrent clients (default 4);
//! `SKEIN_BENCH_INGEST_ONLY=1` stops after ingest (for profiling it).
//!
//! Batches of 512 realistic spans (10 attributes, 1 event; traces of 8 spans across 5
//! services) are posted as OTLP/HTTP protobuf by 4 concurrent loopback clients; each counts
//! once acknowledged (committed). Then: bytes per stored span, trace-by-id latency (p50/p99
//! over 1000 random traces), a search by service + attribute + minimum duration returning 20
//! traces, and the service and operation lists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use skein_collector::{Collector, CollectorConfig};

const BATCH: u64 = 512;
const TRACE_SPANS: u64 = 8;
const SERVICES: [&str; 5] = ["storefront", "orders", "payments", "catalog", "shipping"];

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// A little random-looking but reproducible number.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn trace_id(t: u64) -> Vec<u8> {
    let mut id = mix(t).to_be_bytes().to_vec();
    id.extend_from_slice(&(t + 1).to_be_bytes());
    id
}

/// Batch `b`: 64 traces of 8 spans, grouped by service as an SDK would send them.
fn batch(b: u64, now: u64) -> Vec<u8> {
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    for t in b * (BATCH / TRACE_SPANS)..(b + 1) * (BATCH / TRACE_SPANS) {
        let tid = trace_id(t);
        let start = now - 3_600_000_000_000 + t * 1_000_000;
        for i in 0..TRACE_SPANS {
            let r = mix(t * 16 + i);
            let service = (i as usize) % SERVICES.len();
            let duration = 1_000_000 + r % 400_000_000;
            let route = ["/orders/{id}", "/cart", "/checkout", "/catalog/{sku}", "/pay"][(r % 5) as usize];
            let status = if r % 50 == 0 { 503 } else { 200 };
            by_service[service].push(Span {
                trace_id: tid.clone(),
                span_id: (t * 16 + i + 1).to_be_bytes().to_vec(),
                parent_span_id: if i == 0 {
                    Vec::new()
                } else {
                    (t * 16 + 1).to_be_bytes().to_vec()
                },
                name: format!("{} {route}", if i % 2 == 0 { "GET" } else { "POST" }),
                kind: if i == 0 {
                    span::SpanKind::Server as i32
                } else {
                    span::SpanKind::Client as i32
                },
                start_time_unix_nano: start + i * 1000,
                end_time_unix_nano: start + i * 1000 + duration,
                attributes: vec![
                    kv("http.request.method", s(if i % 2 == 0 { "GET" } else { "POST" })),
                    kv("http.route", s(route)),
                    kv("http.response.status_code", any_value::Value::IntValue(status)),
                    kv("url.scheme", s("https")),
                    kv("server.address", s(format!("{}.internal", SERVICES[service]))),
                    kv("server.port", any_value::Value::IntValue(8443)),
                    kv("network.protocol.version", s("1.1")),
                    kv("enduser.id", s(format!("user-{}", r % 10_000))),
                    kv("customer.tier", s(["gold", "silver", "bronze"][(r % 3) as usize])),
                    kv(
                        "order.total",
                        any_value::Value::DoubleValue((r % 100_000) as f64 / 100.0),
                    ),
                ],
                events: vec![opentelemetry_proto::tonic::trace::v1::span::Event {
                    time_unix_nano: start + i * 1000 + duration / 2,
                    name: "cache lookup".into(),
                    attributes: vec![kv("cache.hit", any_value::Value::BoolValue(r % 3 != 0))],
                    ..Default::default()
                }],
                status: (status >= 500).then(|| Status {
                    code: 2,
                    message: "upstream unavailable".into(),
                }),
                flags: 0x101,
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .enumerate()
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s(SERVICES[i])),
                        kv("service.version", s("1.4.2")),
                        kv("telemetry.sdk.name", s("opentelemetry")),
                        kv("telemetry.sdk.language", s("rust")),
                        kv("host.name", s("node-7")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "skein.http.server".into(),
                        version: "0.1.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let total: u64 = std::env::var("SKEIN_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let batches = total / BATCH;
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let collector = rt
        .block_on(Collector::start(CollectorConfig {
            data_dir: dir.path().to_path_buf(),
            otlp_grpc: any,
            otlp_http: any,
            ui: any,
            ..CollectorConfig::default()
        }))
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // Encoded up front (on all cores): the client's own encoding is not the collector's cost.
    let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                scope.spawn(move || {
                    (0..batches)
                        .filter(|b| b % 2 == w)
                        .map(|b| (b, bytes::Bytes::from(batch(b, now))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(u64, bytes::Bytes)> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        all.sort_by_key(|(b, _)| *b);
        all.into_iter().map(|(_, body)| body).collect()
    }));
    println!("ingesting {} spans in {} batches of {BATCH}", batches * BATCH, batches);
    let next = Arc::new(AtomicU64::new(0));
    let url = format!("http://{}/v1/traces", collector.otlp_http_addr());
    let started = Instant::now();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut lanes = Vec::new();
        let lanes_wanted: usize = std::env::var("SKEIN_BENCH_CLIENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4);
        for _ in 0..lanes_wanted {
            let (client, url, next, bodies) = (client.clone(), url.clone(), next.clone(), bodies.clone());
            lanes.push(tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return;
                    }
                    let body = bodies[b as usize].clone();
                    loop {
                        let response = client
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(body.clone())
                            .send()
                            .await
                            .unwrap();
                        if response.status() == 200 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }));
        }
        // The rate over each million spans shows how ingest holds up as the store grows.
        let progress = tokio::spawn({
            let next = next.clone();
            async move {
                let (mut mark, mut at) = (0u64, Instant::now());
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let done = next.load(Ordering::Relaxed).min(batches) * BATCH;
                    if done >= mark + 1_000_000 {
                        let rate = (done - mark) as f64 / at.elapsed().as_secs_f64();
                        println!(
                            "  {:>5.1} M spans sent, {rate:.0} spans/s over the last interval",
                            done as f64 / 1e6
                        );
                        (mark, at) = (done, Instant::now());
                    }
                }
            }
        });
        for lane in lanes {
            lane.await.unwrap();
        }
        progress.abort();
    });
    let elapsed = started.elapsed();
    let spans = batches * BATCH;
    println!(
        "ingest: {spans} spans in {:.1} s = {:.0} spans/s acknowledged (bar >= 150000)",
        elapsed.as_secs_f64(),
        spans as f64 / elapsed.as_secs_f64()
    );
    let store = collector.store().clone();
    store.checkpoint().unwrap();
    let bytes = store.disk_bytes().unwrap();
    println!(
        "disk: {bytes} bytes = {:.1} bytes per span (bar <= 120)",
        bytes as f64 / spans as f64
    );

    if std::env::var_os("SKEIN_BENCH_INGEST_ONLY").is_some() {
        rt.block_on(collector.shutdown());
        return;
    }
    let traces = spans / TRACE_SPANS;
    let mut latencies = Vec::new();
    for i in 0..1000u64 {
        let t = mix(i) % traces;
        let id: [u8; 16] = trace_id(t).try_into().unwrap();
        let started = Instant::now();
        let trace = store.trace(&id).unwrap().expect("stored");
        latencies.push(started.elapsed());
        assert_eq!(trace.spans.len(), TRACE_SPANS as usize);
    }
    latencies.sort();
    println!(
        "trace by id: p50 {:.2} ms, p99 {:.2} ms (bar p99 < 10 ms)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    let query = skein_collector::store::SearchQuery {
        service: Some("payments".into()),
        attributes: vec![("customer.tier".into(), "gold".into())],
        min_duration_nano: Some(300_000_000),
        limit: 20,
        ..Default::default()
    };
    let mut search = Vec::new();
    let mut found = 0;
    for _ in 0..5 {
        let started = Instant::now();
        found = store.search(&query).unwrap().len();
        search.push(started.elapsed());
    }
    search.sort();
    println!(
        "search service+attribute+min duration: {found} traces, median {:.1} ms (bar < 200 ms)",
        percentile(&search, 0.5).as_secs_f64() * 1e3
    );
    let started = Instant::now();
    let services = store.services().unwrap();
    let operations = store.operations(None).unwrap();
    println!(
        "services ({}) + operations ({}): {:.2} ms (bar < 50 ms)",
        services.len(),
        operations.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    rt.block_on(collector.shutdown());
}
