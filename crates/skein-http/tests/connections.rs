//! Connection tracing against real sockets: a rustls server with a self-signed certificate
//! (rcgen) on loopback, hyper-util's client with the Skein connector and the client layer.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use skein::*;
use skein_http::{ClientTraceLayer, ClientTraceService, SkeinConnector, TraceLayer};
use tower_layer::Layer;
use tower_service::Service;

mod common;
use common::tag;

type TracedClient = ClientTraceService<Client<SkeinConnector, Empty<Bytes>>>;

fn client(connector: SkeinConnector) -> TracedClient {
    common::setup();
    ClientTraceLayer.layer(Client::builder(TokioExecutor::new()).build(connector))
}

/// A client trusting only `cert`.
fn trusting(cert: &CertificateDer<'static>) -> SkeinConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    SkeinConnector::with_tls_config(Arc::new(config))
}

/// An HTTPS axum server for `localhost` on an ephemeral port; returns the port and the
/// certificate to trust.
async fn https_server() -> (u16, CertificateDer<'static>) {
    common::setup();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private)
        .unwrap();
    let app = Router::new()
        .route("/conn/{name}", get(|| async { "pong" }))
        .layer(TraceLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(skein_http::serve_tls(listener, Arc::new(config), app));
    (port, cert)
}

async fn get_text(client: &mut TracedClient, url: &str) -> Result<String, hyper_util::client::legacy::Error> {
    let request = http::Request::get(url).body(Empty::new()).unwrap();
    let response = client.call(request).await?;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok(String::from_utf8(body.to_vec()).unwrap())
}

/// Waits until `count` stopped activities match.
async fn wait_for(count: usize, matches: impl Fn(&Activity) -> bool) -> Vec<Activity> {
    for _ in 0..300 {
        let found: Vec<Activity> = common::stopped().into_iter().filter(|a| matches(a)).collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {count} matching activities");
}

fn children_of(parent: &Activity) -> Vec<Activity> {
    common::stopped()
        .into_iter()
        .filter(|a| a.trace_id() == parent.trace_id() && a.parent_span_id() == parent.span_id())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_setup_with_dns_connect_and_tls_is_linked_from_every_request_on_the_connection() {
    let (port, cert) = https_server().await;
    let mut client = client(trusting(&cert));
    let caller = Activity::new("caller").start();
    for i in 0..2 {
        let url = format!("https://localhost:{port}/conn/pooled{i}");
        let body = get_text(&mut client, &url).with_current().await.unwrap();
        assert_eq!(body, "pong");
        // hyper puts an HTTP/1 connection back into its pool from a task it spawns once the
        // response is read; give that task its turn, or a busy machine (CI) can make the next
        // request open a second connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    caller.stop();

    let setups = wait_for(1, |a| {
        a.operation_name() == format!("HTTP connection_setup localhost:{port}")
    })
    .await;
    assert_eq!(setups.len(), 1, "one connection for two sequential requests");
    let setup = &setups[0];
    assert!(
        setup.parent().is_none() && setup.parent_span_id() == SpanId::INVALID,
        "a trace of its own"
    );
    assert_ne!(setup.trace_id(), caller.trace_id());
    assert_eq!(setup.source().name(), "skein.http.connections");
    assert_eq!(tag(setup, "server.address"), "localhost");
    assert_eq!(tag(setup, "server.port"), port.to_string());
    assert_eq!(tag(setup, "url.scheme"), "https");
    assert_eq!(tag(setup, "network.peer.address"), "127.0.0.1");
    assert_eq!(setup.status(), ActivityStatusCode::Unset);

    let children = children_of(setup);
    let dns = children
        .iter()
        .find(|a| a.operation_name() == "DNS lookup localhost")
        .expect("dns");
    assert_eq!(dns.source().name(), "skein.net.dns");
    assert_eq!(tag(dns, "dns.question.name"), "localhost");
    assert!(
        tag(dns, "dns.answers").contains("127.0.0.1"),
        "{}",
        tag(dns, "dns.answers")
    );
    let connect = children
        .iter()
        .find(|a| a.operation_name() == format!("socket connect 127.0.0.1:{port}"))
        .expect("socket connect");
    assert_eq!(connect.kind(), ActivityKind::Client);
    assert_eq!(tag(connect, "network.peer.port"), port.to_string());
    assert_eq!(tag(connect, "network.type"), "ipv4");
    assert_eq!(tag(connect, "network.transport"), "tcp");
    assert_eq!(connect.status(), ActivityStatusCode::Unset);
    let tls = children
        .iter()
        .find(|a| a.operation_name() == "TLS client handshake localhost")
        .expect("tls");
    assert_eq!(tag(tls, "tls.protocol.name"), "tls");
    assert_eq!(tag(tls, "tls.protocol.version"), "1.3");
    // In order, inside the setup.
    assert!(dns.start_time() >= setup.start_time() && dns.end_time() <= connect.end_time());
    assert!(connect.end_time() <= tls.end_time() && tls.end_time() <= setup.end_time());

    // Both requests are children of the caller, each waited for a connection, and both
    // link to the one setup.
    let requests = wait_for(2, |a| {
        a.kind() == ActivityKind::Client && tag(a, "url.full").contains("/conn/pooled")
    })
    .await;
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.trace_id(), caller.trace_id());
        assert_eq!(request.parent_span_id(), caller.span_id());
        let links = request.links();
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0].context.span_id, setup.span_id());
        assert_eq!(links[0].context.trace_id, setup.trace_id());
        let waits: Vec<Activity> = children_of(request)
            .into_iter()
            .filter(|a| a.operation_name() == format!("HTTP wait_for_connection localhost:{port}"))
            .collect();
        assert_eq!(waits.len(), 1);
        assert!(waits[0].start_time() >= request.start_time() && waits[0].end_time() <= request.end_time());
    }

    // The server knows it terminated TLS, and for whom.
    let served = wait_for(2, |a| {
        a.kind() == ActivityKind::Server && tag(a, "url.path").starts_with("/conn/pooled")
    })
    .await;
    for server in &served {
        assert_eq!(tag(server, "url.scheme"), "https");
        assert_eq!(tag(server, "client.address"), "127.0.0.1");
        assert_eq!(server.trace_id(), caller.trace_id());
    }

    // The server recorded its side of the handshake.
    let handshakes = wait_for(1, |a| {
        a.operation_name() == "TLS server handshake" && tag(a, "server.address") == "localhost"
    })
    .await;
    assert_eq!(tag(&handshakes[0], "tls.protocol.version"), "1.3");
    assert!(handshakes[0].parent().is_none());
}

/// The request's, the setup's and the failing step's `error.type`, all with Error status.
async fn failure(url: &str, connector: SkeinConnector, step: &str) -> (String, String, String) {
    let mut client = client(connector);
    let error = get_text(&mut client, url).await.unwrap_err();
    assert!(std::error::Error::source(&error).is_some(), "{error:?}");
    let marker = url.to_owned();
    let request = wait_for(1, |a| {
        a.kind() == ActivityKind::Client && tag(a, "url.full").starts_with(&marker)
    })
    .await;
    let request = request[0].clone();
    let authority: http::Uri = url.parse().unwrap();
    let target = format!(
        "{}:{}",
        authority.host().unwrap(),
        authority
            .port_u16()
            .unwrap_or(if url.starts_with("https") { 443 } else { 80 })
    );
    let setup = wait_for(1, |a| a.operation_name() == format!("HTTP connection_setup {target}")).await;
    let setup = setup[0].clone();
    let failed = children_of(&setup)
        .into_iter()
        .find(|a| a.operation_name().starts_with(step))
        .unwrap_or_else(|| panic!("no {step} under the setup"));
    for a in [&request, &setup, &failed] {
        assert_eq!(a.status(), ActivityStatusCode::Error, "{}", a.operation_name());
    }
    let waits: Vec<Activity> = children_of(&request)
        .into_iter()
        .filter(|a| a.operation_name().starts_with("HTTP wait_for_connection"))
        .collect();
    assert_eq!(waits.len(), 1, "the wait ends with the failure");
    assert_eq!(waits[0].status(), ActivityStatusCode::Error);
    assert!(request.links().is_empty());
    (
        tag(&request, "error.type"),
        tag(&setup, "error.type"),
        tag(&failed, "error.type"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/refused");
    let kinds = failure(&url, SkeinConnector::new(), "socket connect").await;
    assert_eq!(
        kinds,
        (
            "connection_error".into(),
            "connection_error".into(),
            "connection_error".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_is_a_name_resolution_error() {
    let url = "http://skein-test-host.invalid:8080/unknown";
    let kinds = failure(url, SkeinConnector::new(), "DNS lookup").await;
    let expected = "name_resolution_error".to_owned();
    assert_eq!(kinds, (expected.clone(), expected.clone(), expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_secure_connection_error() {
    let (port, _cert) = https_server().await;
    // Trusts a different self-signed certificate only.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let url = format!("https://localhost:{port}/conn/untrusted");
    let kinds = failure(&url, trusting(other.cert.der()), "TLS client handshake").await;
    let expected = "secure_connection_error".to_owned();
    assert_eq!(kinds, (expected.clone(), expected.clone(), expected));
    // The server saw the handshake fail too.
    let failed = wait_for(1, |a| {
        a.operation_name() == "TLS server handshake" && a.status() == ActivityStatusCode::Error
    })
    .await;
    assert_eq!(tag(&failed[0], "error.type"), "secure_connection_error");
}
