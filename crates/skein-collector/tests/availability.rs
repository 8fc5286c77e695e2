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
    assert!(
        buffer[..read].starts_with(b"HTTP/1.1"),
        "{}",
        String::from_utf8_lossy(&buffer[..read])
    );
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
    slow.write_all(
        b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 100\r\n\r\n12",
    )
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

    let collector = skein_collector::Collector::start(common::config(dir.path()))
        .await
        .unwrap();
    assert!(
        collector.store().trace(&[0x5a; 16]).unwrap().is_some(),
        "acknowledged before stopping"
    );
    collector.shutdown().await;
}

/// Issue: with no header-read timeout, idle timeout or connection cap, 1,100 idle or
/// byte-a-minute connections exhausted file descriptors and every request timed out. Now each
/// listener caps its connections and closes the ones that send nothing, send their headers
/// too slowly or trickle a body, so good requests get through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_cannot_take_it_offline() {
    const CAP: usize = 16;
    let running = common::start_with(|c| {
        c.connections.max_connections = CAP;
        c.connections.header_read_timeout = Duration::from_millis(800);
        c.connections.request_timeout = Duration::from_secs(2);
    })
    .await;
    let (http, grpc, ui) = (
        running.collector.otlp_http_addr(),
        running.collector.otlp_grpc_addr(),
        running.collector.ui_addr(),
    );
    // More than the cap on every listener: silent ones, and ones sending a header a byte at
    // a time.
    let mut attackers = Vec::new();
    for addr in [http, grpc, ui] {
        for i in 0..CAP + 8 {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                continue;
            };
            if i % 2 == 0 {
                let _ = stream
                    .write_all(b"POST /v1/traces HTTP/1.1\r\nhost: x\r\nx-slow: ")
                    .await;
            }
            attackers.push((addr, i, stream));
        }
    }
    let trickle = tokio::spawn(async move {
        // Headers in time, then a body a byte at a time: cut off by the request timeout.
        let mut stream = TcpStream::connect(http).await.unwrap();
        stream
            .write_all(b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: 1000\r\n\r\n")
            .await
            .unwrap();
        for _ in 0..40 {
            if stream.write_all(b"x").await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408")
    });

    // Once the header-read timeout has passed, the silent and slow connections are closed...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut open = Vec::new();
    for (addr, i, stream) in &mut attackers {
        let mut buffer = [0u8; 256];
        // EOF, a reset or an error answer: the server let go.
        if tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer))
            .await
            .is_err()
        {
            open.push((*addr, *i));
        }
    }
    assert!(open.is_empty(), "still open: {open:?}");
    // ...and good requests on every listener get through.
    let body = common::spans_request(0x61, 1_700_000_000_000_000_000, 2, "good");
    assert_eq!(running.post_protobuf(body).await, 200);
    assert_eq!(running.get("/api/v1/services").await.0, 200);
    let mut client =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(format!(
            "http://{grpc}"
        ))
        .await
        .unwrap();
    use prost::Message;
    let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
        &common::spans_request(0x62, 1_700_000_000_000_000_000, 2, "good grpc")[..],
    )
    .unwrap();
    client.export(request).await.unwrap();
    assert!(trickle.await.unwrap(), "the trickled body was cut off");
    running.trace(&"62".repeat(16), 2).await;
    running.collector.shutdown().await;
}
