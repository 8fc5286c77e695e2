//! Two HTTPS services on loopback, `shop` calling `inventory`, and a caller sending requests
//! through both. The console exporter prints one trace per request, and one trace per
//! connection (`HTTP connection_setup` with its DNS, connect and TLS steps) that the requests
//! link to (`~> trace …`).
//!
//! ```sh
//! cargo run -p skein-http --example two_services
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use skein::{ActivityKind, ActivitySource, FutureExt};
use skein_export::{ConsoleExporter, ConsoleFormat, ExportPipeline};
use skein_http::{ClientTraceLayer, ClientTraceService, SkeinConnector, TraceLayer};
use tower_layer::Layer;
use tower_service::Service;

static CALLER: ActivitySource = ActivitySource::new("example.caller");

type HttpsClient = ClientTraceService<Client<SkeinConnector, Empty<Bytes>>>;

/// An instrumented HTTPS client trusting the example's own certificate.
fn client(cert: &CertificateDer<'static>) -> HttpsClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("a valid certificate");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = SkeinConnector::with_tls_config(Arc::new(config));
    ClientTraceLayer.layer(Client::builder(TokioExecutor::new()).build(connector))
}

async fn get_text(client: &mut HttpsClient, url: &str) -> Result<String, Box<dyn std::error::Error>> {
    let response = client.call(http::Request::get(url).body(Empty::new())?).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Serves `app` over TLS on an ephemeral loopback port.
async fn serve(app: Router, tls: Arc<rustls::ServerConfig>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let port = listener.local_addr().expect("bound").port();
    tokio::spawn(skein_http::serve_tls(listener, tls, app));
    port
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let export = ExportPipeline::new()
        .simple(ConsoleExporter::new(ConsoleFormat::Tree))
        .install();

    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::try_from(key.signing_key.serialize_der())?;
    let tls = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], private)?,
    );

    let inventory = Router::new()
        .route("/stock/{sku}", get(|| async { "12 in stock" }))
        .layer(TraceLayer::new());
    let inventory_port = serve(inventory, tls.clone()).await;

    let shop = Router::new()
        .route(
            "/buy/{sku}",
            get(
                move |State(mut inventory): State<HttpsClient>, path: axum::extract::Path<String>| async move {
                    let url = format!("https://localhost:{inventory_port}/stock/{}", path.0);
                    get_text(&mut inventory, &url)
                        .await
                        .unwrap_or_else(|e| format!("inventory failed: {e}"))
                },
            ),
        )
        .with_state(client(&cert))
        .layer(TraceLayer::new());
    let shop_port = serve(shop, tls).await;

    let mut caller = client(&cert);
    for sku in ["kettle", "teapot", "mug"] {
        let request = CALLER.start_activity(format!("buy {sku}"), ActivityKind::Internal);
        let url = format!("https://localhost:{shop_port}/buy/{sku}");
        let answer = get_text(&mut caller, &url).with_current().await?;
        drop(request);
        eprintln!("{sku}: {answer}");
    }

    // Let the servers finish their body-end bookkeeping before the exporter shuts down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    export.shutdown(Duration::from_secs(5))?;
    Ok(())
}
