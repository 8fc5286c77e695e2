//! A full disk: new data is refused with 503 + Retry-After (so exporters retry), queries keep
//! answering, and the collector starts on a full disk, read-only, instead of exiting. The disk
//! is a small tmpfs mounted for the test (root only, as CI runs; elsewhere the test says so
//! and does nothing).

mod common;

use std::process::Command;
use std::time::Duration;

struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn small_disk(dir: &std::path::Path) -> Option<Mounted> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mounted(dir.to_path_buf()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_data_with_503_keeps_answering_and_starts_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_disk) = small_disk(dir.path()) else {
        eprintln!("full_disk: cannot mount a tmpfs here (not root?); skipped");
        assert!(std::env::var("CI").is_err(), "CI runs as root and must run this test");
        return;
    };
    let mut config = common::config(dir.path());
    config.retention_interval = Duration::from_secs(3600);
    let collector = skein_collector::Collector::start(config.clone()).await.unwrap();
    let http = collector.otlp_http_addr();
    let base = 1_700_000_000_000_000_000u64;
    let mut stored = Vec::new();
    let mut refused = None;
    for t in 1..=255u8 {
        let body = common::bulky_spans_request(t, base + u64::from(t) * 1_000_000, 100);
        let (status, headers, answer) = common::post_to(http, "application/x-protobuf", None, body).await;
        match status {
            200 => stored.push(t),
            503 => {
                assert_eq!(headers["retry-after"], "1");
                refused = Some(String::from_utf8_lossy(&answer).into_owned());
                break;
            }
            other => panic!("trace {t}: {other} {}", String::from_utf8_lossy(&answer)),
        }
    }
    let refused = refused.expect("the 4 MiB disk filled up");
    assert!(!stored.is_empty());
    eprintln!("full_disk: {} requests stored, then: {refused}", stored.len());
    // Queries still answer, acknowledged data included.
    let ui = collector.ui_addr();
    let get = |path: String| async move {
        let response = reqwest::get(format!("http://{ui}{path}")).await.unwrap();
        (
            response.status().as_u16(),
            response.json::<serde_json::Value>().await.unwrap_or_default(),
        )
    };
    let first = format!("{:02x}", stored[0]).repeat(16);
    assert_eq!(get(format!("/api/v1/traces/{first}")).await.0, 200);
    assert_eq!(get("/api/v1/traces?limit=5".into()).await.0, 200);
    collector.shutdown().await;

    // Starting again on the full disk: read-only, queries answered, data refused with 503.
    let collector = skein_collector::Collector::start(config)
        .await
        .expect("starts on a full disk");
    let ui = collector.ui_addr();
    let response = reqwest::get(format!("http://{ui}/api/v1/traces/{first}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let status: serde_json::Value = reqwest::get(format!("http://{ui}/api/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        status["read_only"].as_str().is_some_and(|why| why.contains("full")),
        "{status}"
    );
    let body = common::bulky_spans_request(0xfe, base, 100);
    let (status, headers, _) = common::post_to(collector.otlp_http_addr(), "application/x-protobuf", None, body).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    collector.shutdown().await;
}
