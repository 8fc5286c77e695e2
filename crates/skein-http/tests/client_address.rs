//! `client.address`/`client.port` and `network.peer.*` on server activities: from the socket
//! where axum hands it over (`into_make_service_with_connect_info`), from `Forwarded` /
//! `X-Forwarded-For` behind a proxy, and what a plain `axum::serve(listener, app)` gives.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::{setup, stopped, tag};
use skein::Activity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn app() -> Router {
    Router::new()
        .route("/who/{case}", get(|| async { "ok" }))
        .layer(skein_http::TraceLayer::new())
}

/// Sends `GET path` with `headers` over a connection of its own; returns the client's port.
async fn get_from(addr: SocketAddr, path: &str, headers: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let port = stream.local_addr().unwrap().port();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    port
}

async fn server_activity(path: &str) -> Activity {
    for _ in 0..500 {
        if let Some(found) = stopped()
            .into_iter()
            .find(|a| a.tag("url.path").is_some_and(|p| p.to_string() == path))
        {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no server activity for {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_address_and_port_from_the_socket_or_the_proxy_headers() {
    setup();
    // axum with ConnectInfo: the socket's peer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let with_info = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app().into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap()
    });
    let port = get_from(with_info, "/who/socket", "").await;
    let socket = server_activity("/who/socket").await;
    assert_eq!(tag(&socket, "client.address"), "127.0.0.1");
    assert_eq!(tag(&socket, "client.port"), port.to_string());
    assert_eq!(tag(&socket, "network.peer.address"), "127.0.0.1");
    assert_eq!(tag(&socket, "network.peer.port"), port.to_string());

    // Behind a proxy: the client the first proxy saw; the peer is still the proxy.
    let port = get_from(
        with_info,
        "/who/proxied",
        "forwarded: for=\"[2001:db8::17]:4711\";proto=https\r\n",
    )
    .await;
    let proxied = server_activity("/who/proxied").await;
    assert_eq!(tag(&proxied, "client.address"), "2001:db8::17");
    assert_eq!(tag(&proxied, "client.port"), "4711");
    assert_eq!(tag(&proxied, "network.peer.port"), port.to_string());

    // A plain `axum::serve(listener, app)`: axum does not hand the peer to middleware, so only
    // a proxy header can name the client.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
    get_from(plain, "/who/plain", "").await;
    let bare = server_activity("/who/plain").await;
    assert!(bare.tag("client.address").is_none() && bare.tag("network.peer.address").is_none());
    get_from(
        plain,
        "/who/plain-proxied",
        "x-forwarded-for: 203.0.113.195, 10.0.0.1\r\n",
    )
    .await;
    let forwarded = server_activity("/who/plain-proxied").await;
    assert_eq!(tag(&forwarded, "client.address"), "203.0.113.195");
    assert!(forwarded.tag("client.port").is_none());

    // Garbage in the headers: no client tags from them, and the socket's peer still counts.
    get_from(with_info, "/who/garbage", "x-forwarded-for: <script>, 10.0.0.1\r\n").await;
    let garbage = server_activity("/who/garbage").await;
    assert_eq!(tag(&garbage, "client.address"), "127.0.0.1");
}
