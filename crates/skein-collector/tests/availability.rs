//! The collector stays available and stops promptly whatever its clients do.

mod common;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` and reads the start of the answer; the connection stays open.
async fn keep_alive(addr: std::net::SocketAddr, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = [0u8; 512];
    let read = stream.read(&mut buffer).await.unwrap();
    assert!(buffer[..read].starts_with(b"HTTP/1.1"), "{}", String::from_utf8_lossy(&buffer[..read]));
    stream
}

/// Issue: Ctrl-C waited 30 s (three 10 s waits) while idle connections and a live feed were
/// open. Shutdown now closes what is left after a short grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_with_idle_connections_a_live_feed_and_a_slow_client() {
    let running = common::start().await;
    let (http, grpc, ui) = (
        running.collector.otlp_http_addr(),
        running.collector.otlp_grpc_addr(),
        running.collector.ui_addr(),
    );
    let _idle_http = keep_alive(http, "GET /v1/traces HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let _idle_ui = keep_alive(ui, "GET /api/v1/services HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let mut slow = TcpStream::connect(http).await.unwrap();
    slow.write_all(b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 100\r\n\r\n12")
        .await
        .unwrap();
    let _grpc = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut live = reqwest::get(running.api("/api/v1/live")).await.unwrap();
    assert_eq!(live.status(), 200);
    let live_reader = tokio::spawn(async move { while let Ok(Some(_)) = live.chunk().await {} });

    // A span acknowledged just before stopping is stored.
    let body = common::spans_request(0x5a, 1_700_000_000_000_000_000, 3, "last words");
    assert_eq!(running.post_protobuf(body).await, 200);

    let dir = running.dir;
    let started = Instant::now();
    running.collector.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    live_reader.abort();

    let collector = skein_collector::Collector::start(common::config(dir.path())).await.unwrap();
    assert!(collector.store().trace(&[0x5a; 16]).unwrap().is_some(), "acknowledged before stopping");
    collector.shutdown().await;
}
