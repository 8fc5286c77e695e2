//! Ingest, disk, memory, restart and query figures for the collector, measured as a user gets
//! them: a real collector on loopback, data sent over OTLP/HTTP protobuf by concurrent
//! clients, and every query sent over HTTP to the Jaeger and native JSON APIs.
//!
//! ```sh
//! cargo bench -p skein-collector --bench store                        # 1 million spans
//! SKEIN_BENCH_SPANS=10000000 cargo bench -p skein-collector --bench store
//! ```
//!
//! `SKEIN_BENCH_CLIENTS` sets the number of concurrent clients (default 4),
//! `SKEIN_BENCH_QUERIES` the queries per kind (default 50), `SKEIN_BENCH_DIR` keeps the store
//! in that directory (default: a temporary one), `SKEIN_BENCH_INGEST_ONLY=1` stops after ingest.
//!
//! The data: traces of 8 spans across 5 services and 8 operations, with random 128-bit trace
//! ids and random span ids, spread over the last 48 hours of real time; every span has 10
//! attributes (one of them `tenant`, taking 100 values, each in about 1% of traces; another
//! a per-user id with 10,000 values) and 1 event; about 1% of spans last over a second and
//! 2% are errors. Clients send batches of 512 spans made from 128 templates, each copy with
//! new random ids and its own times.
//! The collector runs in this process, so the memory figure includes the clients' (small).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use skein_collector::{Collector, CollectorConfig};

const BATCH: u64 = 512;
const TRACE_SPANS: u64 = 8;
const SERVICES: [&str; 5] = ["storefront", "orders", "payments", "catalog", "shipping"];
/// The 8 operations, each with the service that serves it.
const OPERATIONS: [(&str, usize); 8] = [
    ("GET /checkout", 0),
    ("GET /cart", 0),
    ("POST /orders", 1),
    ("GET /orders/{id}", 1),
    ("POST /payments", 2),
    ("GET /catalog/{sku}", 3),
    ("SELECT products", 3),
    ("POST /shipments", 4),
];
const TENANTS: u64 = 100;
/// Data covers this much time before now.
const SPREAD: u64 = 48 * 3600 * 1_000_000_000;

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

#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Times in a template start here: far from any other 8 bytes of a batch, so they can be
/// found and moved.
const TEMPLATE_TIME: u64 = 1 << 60;
/// Batches are made from this many templates.
const TEMPLATES: u64 = 128;

/// One batch as a template: 64 traces of 8 spans, grouped by service as SDKs send them, with
/// `slice` nanoseconds between its first and last trace. Every batch sent is a copy with new
/// random ids and its own times written in (making each batch from scratch would charge the
/// collector's two cores with the load generator's allocations).
fn template(slice: u64, rng: &mut Rng) -> Vec<u8> {
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let traces = BATCH / TRACE_SPANS;
    for t in 0..traces {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&rng.next().to_le_bytes());
        trace_id[8..].copy_from_slice(&rng.next().to_le_bytes());
        let start = TEMPLATE_TIME + t * slice / traces + rng.next() % (slice / traces).max(1);
        let tenant = format!("tenant-{}", rng.next() % TENANTS);
        let user = format!("user-{}", rng.next() % 10_000);
        let root_id = rng.next().to_le_bytes().to_vec();
        for i in 0..TRACE_SPANS {
            let r = rng.next();
            let (name, service) = OPERATIONS[if i == 0 { (r % 2) as usize } else { (r % 8) as usize }];
            // Mostly milliseconds; about 1% of spans over a second.
            let duration = if r % 100 == 0 {
                1_000_000_000 + (r >> 8) % 4_000_000_000
            } else {
                200_000 + (r >> 8) % 300_000_000
            };
            let error = (r >> 40) % 50 == 0;
            let offset = if i == 0 { 0 } else { 1_000 + (r >> 20) % 5_000_000 };
            by_service[service].push(Span {
                trace_id: trace_id.to_vec(),
                span_id: if i == 0 {
                    root_id.clone()
                } else {
                    rng.next().to_le_bytes().to_vec()
                },
                parent_span_id: if i == 0 { Vec::new() } else { root_id.clone() },
                name: name.into(),
                kind: if i == 0 {
                    span::SpanKind::Server as i32
                } else {
                    span::SpanKind::Client as i32
                },
                start_time_unix_nano: start + offset,
                end_time_unix_nano: start + offset + duration,
                attributes: vec![
                    kv(
                        "http.request.method",
                        s(if name.starts_with("GET") { "GET" } else { "POST" }),
                    ),
                    kv("http.route", s(name.split(' ').nth(1).unwrap_or("/"))),
                    kv(
                        "http.response.status_code",
                        any_value::Value::IntValue(if error { 503 } else { 200 }),
                    ),
                    kv("server.address", s(format!("{}.internal", SERVICES[service]))),
                    kv("server.port", any_value::Value::IntValue(8443)),
                    kv("network.protocol.version", s("1.1")),
                    kv("enduser.id", s(user.as_str())),
                    kv("tenant", s(tenant.as_str())),
                    kv("customer.tier", s(["gold", "silver", "bronze"][(r % 3) as usize])),
                    kv(
                        "order.total",
                        any_value::Value::DoubleValue((r % 100_000) as f64 / 100.0),
                    ),
                ],
                events: vec![span::Event {
                    time_unix_nano: start + offset + duration / 2,
                    name: "cache lookup".into(),
                    attributes: vec![kv("cache.hit", any_value::Value::BoolValue(r % 3 != 0))],
                    ..Default::default()
                }],
                status: error.then(|| Status {
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
                        kv("host.name", s(format!("node-{i}"))),
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

/// Where a template's ids and times are, to write new ones in.
struct Template {
    body: Vec<u8>,
    /// Offsets of each trace id (16 bytes) and of each span id (8 bytes: a root's id is also
    /// its children's parent id), grouped by the value they hold.
    trace_ids: Vec<Vec<usize>>,
    span_ids: Vec<Vec<usize>>,
    /// Offsets of every time (fixed64).
    times: Vec<usize>,
}

impl Template {
    fn new(body: Vec<u8>) -> Self {
        let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        #[derive(Clone, Copy)]
        enum What {
            Trace(usize),
            Span(usize),
            Time,
        }
        let mut wanted: std::collections::HashMap<u64, What> = std::collections::HashMap::new();
        let (mut traces, mut spans) = (0, 0);
        for span in request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            let key = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
            if let std::collections::hash_map::Entry::Vacant(e) = wanted.entry(key(&span.trace_id)) {
                e.insert(What::Trace(traces));
                traces += 1;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = wanted.entry(key(&span.span_id)) {
                e.insert(What::Span(spans));
                spans += 1;
            }
            wanted.insert(span.start_time_unix_nano, What::Time);
            wanted.insert(span.end_time_unix_nano, What::Time);
            for event in &span.events {
                wanted.insert(event.time_unix_nano, What::Time);
            }
        }
        let mut template = Template {
            trace_ids: vec![Vec::new(); traces],
            span_ids: vec![Vec::new(); spans],
            times: Vec::new(),
            body: Vec::new(),
        };
        for at in 0..body.len().saturating_sub(7) {
            match wanted.get(&u64::from_le_bytes(body[at..at + 8].try_into().unwrap())) {
                Some(What::Trace(i)) => template.trace_ids[*i].push(at),
                Some(What::Span(i)) => template.span_ids[*i].push(at),
                Some(What::Time) => template.times.push(at),
                None => {}
            }
        }
        template.body = body;
        template
    }

    /// A copy with new random ids, its first trace starting at `start`; returns the body and
    /// its first trace's id.
    fn make(&self, start: u64, rng: &mut Rng) -> (Vec<u8>, [u8; 16]) {
        let mut body = self.body.clone();
        let mut first = [0u8; 16];
        for (i, offsets) in self.trace_ids.iter().enumerate() {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next().to_le_bytes());
            id[8..].copy_from_slice(&rng.next().to_le_bytes());
            if i == 0 {
                first = id;
            }
            for &at in offsets {
                body[at..at + 16].copy_from_slice(&id);
            }
        }
        for offsets in &self.span_ids {
            let id = rng.next().to_le_bytes();
            for &at in offsets {
                body[at..at + 8].copy_from_slice(&id);
            }
        }
        for &at in &self.times {
            let time = u64::from_le_bytes(body[at..at + 8].try_into().unwrap());
            body[at..at + 8].copy_from_slice(&(time - TEMPLATE_TIME + start).to_le_bytes());
        }
        (body, first)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config(dir: &std::path::Path) -> CollectorConfig {
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    CollectorConfig {
        data_dir: dir.to_path_buf(),
        otlp_grpc: any,
        otlp_http: any,
        ui: any,
        retention: Duration::from_secs(30 * 24 * 3600),
        max_disk_bytes: 1 << 40,
        ..CollectorConfig::default()
    }
}

/// One kind of query: the Jaeger API's path and the native API's, made from a query number.
struct Kind {
    name: &'static str,
    jaeger: Box<dyn Fn(u64, u64, u64) -> String>,
    native: Box<dyn Fn(u64, u64, u64) -> String>,
}

fn kinds() -> Vec<Kind> {
    let hour = 3_600_000_000_000u64;
    let week = 7 * 24 * hour;
    // (query number, now, lookback) → path; a service and a tenant vary with the number.
    let service = |n: u64| SERVICES[(n % 5) as usize];
    let operation = |n: u64| OPERATIONS[(n % 8) as usize];
    let tenant = |n: u64| format!("tenant-{}", (n * 37) % TENANTS);
    let jaeger = |q: String, now: u64, lookback: u64| {
        format!(
            "/api/traces?{q}&start={}&end={}&limit=20",
            (now - lookback) / 1000,
            now / 1000
        )
    };
    let native =
        |q: String, now: u64, lookback: u64| format!("/api/v1/traces?{q}&start={}&end={now}&limit=20", now - lookback);
    let tags = |t: String| format!("tags=%7B%22tenant%22%3A%22{t}%22%7D");
    vec![
        Kind {
            name: "service, last hour",
            jaeger: Box::new(move |n, now, _| jaeger(format!("service={}", service(n)), now, hour)),
            native: Box::new(move |n, now, _| native(format!("service={}", service(n)), now, hour)),
        },
        Kind {
            name: "service + operation, last hour",
            jaeger: Box::new(move |n, now, _| {
                let (op, svc) = operation(n);
                jaeger(
                    format!("service={}&operation={}", SERVICES[svc], op.replace(' ', "%20")),
                    now,
                    hour,
                )
            }),
            native: Box::new(move |n, now, _| {
                let (op, svc) = operation(n);
                native(
                    format!("service={}&operation={}", SERVICES[svc], op.replace(' ', "%20")),
                    now,
                    hour,
                )
            }),
        },
        Kind {
            name: "service + tenant (1%), last hour",
            jaeger: Box::new(move |n, now, _| jaeger(format!("service={}&{}", service(n), tags(tenant(n))), now, hour)),
            native: Box::new(move |n, now, _| {
                native(format!("service={}&attr=tenant%3D{}", service(n), tenant(n)), now, hour)
            }),
        },
        Kind {
            name: "service + tenant + minDuration 1s, last hour",
            jaeger: Box::new(move |n, now, _| {
                jaeger(
                    format!("service={}&{}&minDuration=1s", service(n), tags(tenant(n))),
                    now,
                    hour,
                )
            }),
            native: Box::new(move |n, now, _| {
                native(
                    format!("service={}&attr=tenant%3D{}&min_duration=1s", service(n), tenant(n)),
                    now,
                    hour,
                )
            }),
        },
        Kind {
            name: "value that matches nothing, 7 days",
            jaeger: Box::new(move |n, now, _| {
                jaeger(
                    format!("service={}&{}", service(n), tags("tenant-none".into())),
                    now,
                    week,
                )
            }),
            native: Box::new(move |n, now, _| {
                native(format!("service={}&attr=tenant%3Dtenant-none", service(n)), now, week)
            }),
        },
        Kind {
            name: "errors only, last hour",
            jaeger: Box::new(move |n, now, _| {
                jaeger(
                    format!("service={}&tags=%7B%22error%22%3A%22true%22%7D", service(n)),
                    now,
                    hour,
                )
            }),
            native: Box::new(move |_, now, _| native("errors=true".into(), now, hour)),
        },
        Kind {
            name: "service + tenant, 7 days",
            jaeger: Box::new(move |n, now, _| jaeger(format!("service={}&{}", service(n), tags(tenant(n))), now, week)),
            native: Box::new(move |n, now, _| {
                native(format!("service={}&attr=tenant%3D{}", service(n), tenant(n)), now, week)
            }),
        },
    ]
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> (Duration, serde_json::Value) {
    let started = Instant::now();
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    let took = started.elapsed();
    assert!(status.is_success(), "{path}: {status} {body}");
    (took, body)
}

fn main() {
    let total: u64 = env("SKEIN_BENCH_SPANS", 1_000_000);
    let clients: usize = env("SKEIN_BENCH_CLIENTS", 4);
    let per_kind: u64 = env("SKEIN_BENCH_QUERIES", 50);
    let batches = total / BATCH;
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("SKEIN_BENCH_DIR").map_or_else(|| temp.path().to_path_buf(), Into::into);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let collector = rt.block_on(Collector::start(config(&dir))).unwrap();
    let now = now_nanos();
    println!(
        "ingesting {} spans in {batches} batches of {BATCH} from {clients} clients over OTLP/HTTP protobuf",
        batches * BATCH
    );
    let slice = SPREAD / batches.max(1);
    let mut rng = Rng(now);
    let templates: Arc<Vec<Template>> = Arc::new(
        (0..TEMPLATES)
            .map(|_| Template::new(template(slice, &mut rng)))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let url = format!("http://{}/v1/traces", collector.otlp_http_addr());
    let started = Instant::now();
    let kept_ids: Vec<[u8; 16]> = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut lanes = Vec::new();
        for lane in 0..clients {
            let (client, url, next, templates) = (client.clone(), url.clone(), next.clone(), templates.clone());
            lanes.push(tokio::spawn(async move {
                let mut rng = Rng(now ^ (lane as u64).wrapping_mul(0x1234_5678_9abc_def1));
                let mut ids = Vec::new();
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches {
                        return ids;
                    }
                    let start = now - SPREAD + b * slice;
                    let (body, first) = templates[(b % TEMPLATES) as usize].make(start, &mut rng);
                    if b % 97 == 0 {
                        ids.push(first);
                    }
                    let body = bytes::Bytes::from(body);
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
                        // 503 + Retry-After: the store is busy; a real exporter backs off too.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }));
        }
        // The rate over each tenth shows whether ingest holds up as the store grows.
        let progress = tokio::spawn({
            let next = next.clone();
            async move {
                let tenth = (batches / 10).max(1);
                let (mut mark, mut at) = (0u64, Instant::now());
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let done = next.load(Ordering::Relaxed).min(batches);
                    if done >= mark + tenth {
                        let rate = ((done - mark) * BATCH) as f64 / at.elapsed().as_secs_f64();
                        println!(
                            "  {:>6.2} M spans sent, {rate:>7.0} spans/s over the last tenth",
                            (done * BATCH) as f64 / 1e6
                        );
                        (mark, at) = (done, Instant::now());
                    }
                }
            }
        });
        let mut ids = Vec::new();
        for lane in lanes {
            ids.extend(lane.await.unwrap());
        }
        progress.abort();
        ids
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
        "disk: {:.0} MB = {:.1} bytes per span (bar <= 120); search terms in memory {:.1} MB, trace-id filters {:.1} MB",
        bytes as f64 / 1e6,
        bytes as f64 / spans as f64,
        store.search_index_memory_bytes() as f64 / 1e6,
        store.trace_index_memory_bytes() as f64 / 1e6,
    );
    let (rss, peak) = rss_mb();
    println!("memory after ingest: RSS {rss:.0} MB, peak {peak:.0} MB (bar <= 512)");
    drop(store);
    if std::env::var_os("SKEIN_BENCH_INGEST_ONLY").is_some() {
        rt.block_on(collector.shutdown());
        return;
    }
    let base = format!("http://{}", collector.ui_addr());
    rt.block_on(async {
        let client = reqwest::Client::new();
        // Trace by id, both APIs.
        for (api, path) in [("jaeger", "/api/traces/"), ("native", "/api/v1/traces/")] {
            let mut latencies = Vec::new();
            for (i, id) in kept_ids.iter().cycle().take(200).enumerate() {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                let (took, body) = get(&client, &base, &format!("{path}{hex}")).await;
                latencies.push(took);
                if i == 0 {
                    let found = body.to_string().matches("\"spanID\"").count()
                        + body.to_string().matches("\"span_id\"").count();
                    assert!(found >= TRACE_SPANS as usize, "trace {hex}: {body}");
                }
            }
            if std::env::var_os("SKEIN_BENCH_OUTLIERS").is_some() {
                let mut slowest: Vec<(usize, &Duration)> = latencies.iter().enumerate().collect();
                slowest.sort_by_key(|(_, d)| std::cmp::Reverse(**d));
                println!("  slowest by-id queries (position, time): {:?}", &slowest[..4]);
            }
            latencies.sort();
            println!(
                "{:<48} {api:<6} p50 {:>7.2} ms  p99 {:>7.2} ms  (bar p99 <= 10 ms)",
                "trace by id",
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99))
            );
        }
        let now = now_nanos();
        for kind in kinds() {
            for (api, path) in [("jaeger", &kind.jaeger), ("native", &kind.native)] {
                let mut latencies = Vec::new();
                let mut found = 0usize;
                for n in 0..per_kind {
                    let (took, body) = get(&client, &base, &path(n, now, 0)).await;
                    latencies.push(took);
                    found += body
                        .get("data")
                        .or_else(|| body.get("traces"))
                        .and_then(|d| d.as_array())
                        .map_or(0, Vec::len);
                }
                latencies.sort();
                println!(
                    "{:<48} {api:<6} p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.1} traces per answer; bar p99 <= 200 ms)",
                    kind.name,
                    ms(percentile(&latencies, 0.5)),
                    ms(percentile(&latencies, 0.99)),
                    found as f64 / per_kind as f64
                );
            }
        }
        let mut lists = Vec::new();
        for n in 0..per_kind {
            let started = Instant::now();
            get(&client, &base, "/api/services").await;
            get(
                &client,
                &base,
                &format!("/api/services/{}/operations", SERVICES[(n % 5) as usize]),
            )
            .await;
            get(&client, &base, "/api/v1/services").await;
            get(&client, &base, "/api/v1/operations").await;
            lists.push(started.elapsed() / 4);
        }
        lists.sort();
        println!(
            "{:<48} both   p50 {:>7.2} ms  p99 {:>7.2} ms  (bar <= 50 ms)",
            "services / operations lists",
            ms(percentile(&lists, 0.5)),
            ms(percentile(&lists, 0.99))
        );
    });
    let (rss, peak) = rss_mb();
    println!("memory after queries: RSS {rss:.0} MB, peak {peak:.0} MB");
    rt.block_on(collector.shutdown());
    // Restart on the same store: how long until it answers a search.
    let started = Instant::now();
    let collector = rt.block_on(Collector::start(config(&dir))).unwrap();
    let opened = started.elapsed();
    let base = format!("http://{}", collector.ui_addr());
    rt.block_on(async {
        let client = reqwest::Client::new();
        let now = now_nanos();
        get(&client, &base, &(kinds()[2].native)(1, now, 0)).await;
    });
    println!(
        "restart: open {:.2} s, first search answered after {:.2} s (bar < 5 s)",
        opened.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    rt.block_on(collector.shutdown());
}
