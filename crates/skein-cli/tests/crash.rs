//! `skein dashboard` as a real child process: streams spans into it, kills it with SIGKILL
//! mid-stream, restarts it on the same data directory and finds every acknowledged span.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Dashboard;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn request(n: u64) -> Vec<u8> {
    let mut trace_id = vec![0u8; 16];
    trace_id[8..].copy_from_slice(&(n + 1).to_be_bytes());
    let spans = (0..20u64)
        .map(|i| Span {
            trace_id: trace_id.clone(),
            span_id: (n * 100 + i + 1).to_be_bytes().to_vec(),
            name: format!("span {i}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + n,
            end_time_unix_nano: 1_700_000_000_001_000_000 + n,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn trace_hex(n: u64) -> String {
    format!("{:016x}{:016x}", 0, n + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_span_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let mut dashboard = Dashboard::start(data.path());
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::new();
    let mut senders = Vec::new();
    for lane in 0..4u64 {
        let (client, url, acknowledged) = (client.clone(), dashboard.traces_url(), acknowledged.clone());
        senders.push(tokio::spawn(async move {
            for k in 0.. {
                let n = k * 4 + lane;
                let sent = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(request(n))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acknowledged.lock().unwrap().push(n),
                    Ok(_) => {}
                    Err(_) => return, // the collector is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    dashboard.child.kill().unwrap(); // SIGKILL
    dashboard.child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "only {} requests went through",
        acknowledged.len()
    );
    eprintln!(
        "{} requests of 20 spans acknowledged before SIGKILL",
        acknowledged.len()
    );

    let mut restarted = Dashboard::start(data.path());
    for n in &acknowledged {
        let url = format!("{}/api/v1/traces/{}", restarted.ui, trace_hex(*n));
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged trace {n} is missing after the crash"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["spans"].as_array().unwrap().len(), 20, "trace {n} is incomplete");
    }
    // Summaries (search) are rebuilt for frames stored after their last write.
    for n in acknowledged.iter().rev().take(50) {
        let start = 1_700_000_000_000_000_000u64 + n;
        let url = format!("{}/api/v1/traces?start={start}&end={start}", restarted.ui);
        let found: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        let summary = found["traces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["trace_id"] == trace_hex(*n))
            .unwrap_or_else(|| panic!("trace {n} is not searchable after the crash: {found}"));
        assert_eq!(summary["span_count"], 20, "trace {n}: {summary}");
    }
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}

/// Issue: every connection is a file descriptor, and the default soft limit (1024) let 1,100
/// idle connections exhaust them. `skein dashboard` raises its soft limit to the hard one.
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    // The child inherits a soft limit below the hard one, as on most systems.
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE.set(1024.min(hard), hard).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut dashboard = Dashboard::start(dir.path());
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", dashboard.child.id())).unwrap();
    let _ = dashboard.child.kill();
    let _ = dashboard.child.wait();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Linux process's limits");
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft limit = hard limit: {open_files}");
}
