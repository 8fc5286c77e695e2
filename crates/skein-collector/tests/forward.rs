//! Forwarding to an upstream that is down at first: nothing is lost, and once the upstream
//! (another collector) is up, everything arrives.

mod common;

use std::time::Duration;

fn request(trace: u8) -> Vec<u8> {
    common::spans_request(trace, 1_700_000_000_000_000_000, 1, &format!("forwarded {trace}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_for_a_down_upstream_and_arrive_when_it_is_back() {
    // An address for the upstream, free for now.
    let upstream_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let front = common::start_with(|c| c.forward = Some(format!("http://{upstream_addr}"))).await;
    for t in 1..=5u8 {
        let status = front.post_protobuf(request(t)).await;
        assert_eq!(status, 200, "the front accepts while the upstream is down");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, status) = front.get("/api/v1/status").await;
    assert_eq!(status["forwarding"]["forwarded_requests"], 0, "{status}");
    assert!(status["forwarding"]["queued_bytes"].as_u64().unwrap() > 0, "{status}");

    let upstream = common::start_with(|c| c.otlp_http = upstream_addr).await;
    for t in 1..=5u8 {
        let trace = upstream.trace(&format!("{t:02x}").repeat(16), 1).await;
        assert_eq!(
            common::span(&trace, &format!("forwarded {t}"))["name"],
            format!("forwarded {t}")
        );
    }
    let (_, status) = front.get("/api/v1/status").await;
    assert_eq!(status["forwarding"]["forwarded_requests"], 5, "{status}");
    assert_eq!(status["forwarding"]["dropped_requests"], 0);
    front.collector.shutdown().await;
    upstream.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let one = request(1).len() as u64;
    let front = common::start_with(|c| {
        c.forward = Some(format!("http://{down}"));
        c.forward_buffer_bytes = one * 3;
    })
    .await;
    for t in 1..=5u8 {
        assert_eq!(front.post_protobuf(request(t)).await, 200);
    }
    let (_, status) = front.get("/api/v1/status").await;
    assert_eq!(status["forwarding"]["dropped_requests"], 2, "{status}");
    assert_eq!(status["forwarding"]["queued_bytes"], one * 3);
    front.collector.shutdown().await;
}
