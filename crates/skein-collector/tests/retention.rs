//! Retention by age runs in the background and its evictions show in the status API; queries
//! keep answering while spans stream in.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn request(trace: u8, start: u64, spans: u64) -> Vec<u8> {
    common::spans_request(trace, start, spans, "work")
}

async fn send(running: &common::Running, body: Vec<u8>) {
    assert_eq!(running.post_protobuf(body).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_traces_are_evicted_and_counted() {
    let running = common::start_with(|c| {
        c.retention = Duration::from_secs(3600);
        c.retention_interval = Duration::from_millis(200);
    })
    .await;
    let day = 24 * 3600 * 1_000_000_000u64;
    send(&running, request(0xaa, now() - 2 * day, 3)).await;
    send(&running, request(0xbb, now(), 2)).await;
    let old = "aa".repeat(16);
    let fresh = "bb".repeat(16);
    for _ in 0..100 {
        if running.get(&format!("/api/v1/traces/{old}")).await.0 == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(running.get(&format!("/api/v1/traces/{old}")).await.0, 404, "evicted");
    running.trace(&fresh, 2).await;
    let (_, status) = running.get("/api/v1/status").await;
    assert_eq!(status["evicted"]["spans"], 3, "{status}");
    assert_eq!(status["evicted"]["traces"], 1, "{status}");
    assert!(status["oldest_kept_unix_nano"].as_u64().unwrap() > now() - day);
    let (_, found) = running.get("/api/v1/traces?limit=100").await;
    assert!(found["traces"].as_array().unwrap().iter().all(|t| t["trace_id"] != old));
    running.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_while_spans_stream_in() {
    let running = common::start().await;
    let start = now();
    let writer = {
        let addr = running.collector.otlp_http_addr();
        tokio::spawn(async move {
            for t in 1..=60u8 {
                let body = request(t, start + u64::from(t), 50);
                let (status, _, _) = common::post_to(addr, "application/x-protobuf", None, body).await;
                assert_eq!(status, 200);
            }
        })
    };
    let mut answered = 0;
    while !writer.is_finished() {
        let (status, body) = running.get("/api/v1/traces?limit=20").await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = running.get("/api/v1/services").await;
        assert_eq!(status, 200);
        answered += 1;
    }
    writer.await.unwrap();
    assert!(answered > 0);
    for t in [1u8, 30, 60] {
        running.trace(&format!("{t:02x}").repeat(16), 50).await;
    }
    running.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_evicts_the_oldest_first() {
    let running = common::start_with(|c| {
        c.retention_interval = Duration::from_millis(200);
    })
    .await;
    // Fill with old data, then learn the size and allow a little less than it.
    let base = now() - 3600 * 1_000_000_000;
    for t in 1..=40u8 {
        send(&running, request(t, base + u64::from(t) * 1_000_000_000, 200)).await;
    }
    running.trace(&"28".repeat(16), 200).await;
    running.collector.store().checkpoint().unwrap();
    let full = running.collector.store().disk_bytes().unwrap();
    let dir = running.dir.path().to_path_buf();
    running.collector.shutdown().await;

    let mut config = common::config(&dir);
    config.max_disk_bytes = full * 3 / 4;
    config.retention_interval = Duration::from_millis(200);
    let collector = skein_collector::Collector::start(config).await.unwrap();
    let store = collector.store().clone();
    for _ in 0..100 {
        if store.trace(&[1; 16]).unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.trace(&[1; 16]).unwrap().is_none(), "the oldest trace went first");
    assert!(store.trace(&[40; 16]).unwrap().is_some(), "the newest stays");
    let evicted = collector
        .store()
        .counters
        .traces_evicted
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..40).contains(&evicted), "some, not all, traces evicted: {evicted}");
    collector.shutdown().await;
}
