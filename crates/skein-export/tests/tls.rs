//! Exporting to `https` endpoints: real TLS (rustls) on loopback with a self-signed
//! certificate the exporter is told to trust.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skein::*;
use skein_export::otlp::{OtlpGrpcExporter, OtlpHttpExporter, Protocol};
use skein_export::{ExportPipeline, Resource};

struct Cert {
    cert_pem: String,
    key_pem: String,
}

fn self_signed() -> Cert {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Cert {
        cert_pem: key.cert.pem(),
        key_pem: key.signing_key.serialize_pem(),
    }
}

/// An HTTPS OTLP receiver: TLS by tokio-rustls, HTTP by hyper, the routes of the plain test
/// receiver (counting requests).
fn start_https_receiver(cert: &Cert) -> (SocketAddr, Arc<Mutex<usize>>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let certs = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let count = Arc::new(Mutex::new(0usize));
    let counted = count.clone();
    let addr = common::serve_on_loopback(move |listener| async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let counted = counted.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        let _body = body::collect(request.into_body()).await;
                        if path == "/v1/traces" {
                            *counted.lock().unwrap() += 1;
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, count)
}

/// Reads a whole hyper body without an extra dependency.
mod body {
    use hyper::body::{Body, Incoming};
    pub async fn collect(mut body: Incoming) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
            if let Ok(Ok(data)) = frame.map(|f| f.into_data()) {
                out.extend_from_slice(&data);
            }
        }
        out
    }
}

#[test]
fn http_exporter_speaks_tls_to_a_trusted_self_signed_collector() {
    static SOURCE: ActivitySource = ActivitySource::new("test.tls.http");
    let cert = self_signed();
    let (addr, count) = start_https_receiver(&cert);
    let endpoint = format!("https://localhost:{}/v1/traces", addr.port());

    // Without trusting the certificate, the export fails (and nothing arrives).
    let untrusted = OtlpHttpExporter::new(&endpoint, Protocol::HttpProtobuf, Resource::new("svc"))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let guard = ExportPipeline::new()
        .with_sources([SOURCE.name()])
        .simple(untrusted)
        .install();
    drop(SOURCE.start_activity("refused", ActivityKind::Internal));
    drop(guard);
    assert_eq!(*count.lock().unwrap(), 0);

    let trusted = OtlpHttpExporter::with_ca(
        &endpoint,
        Protocol::HttpProtobuf,
        Resource::new("svc"),
        cert.cert_pem.as_bytes(),
    )
    .unwrap();
    let guard = common::pipeline(&SOURCE, trusted);
    drop(SOURCE.start_activity("over tls", ActivityKind::Internal));
    guard.force_flush(Duration::from_secs(10)).unwrap();
    assert_eq!(*count.lock().unwrap(), 1);
}

#[test]
fn grpc_exporter_speaks_tls_to_a_trusted_self_signed_collector() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};

    #[derive(Clone, Default)]
    struct Count(Arc<Mutex<usize>>);
    #[tonic::async_trait]
    impl TraceService for Count {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let spans: usize = request
                .into_inner()
                .resource_spans
                .iter()
                .flat_map(|r| r.scope_spans.iter())
                .map(|s| s.spans.len())
                .sum();
            *self.0.lock().unwrap() += spans;
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    static SOURCE: ActivitySource = ActivitySource::new("test.tls.grpc");
    let cert = self_signed();
    let service = Count::default();
    let count = service.0.clone();
    let identity = tonic::transport::Identity::from_pem(&cert.cert_pem, &cert.key_pem);
    let addr = common::serve_on_loopback(move |listener| async move {
        tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(TraceServiceServer::new(service))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let exporter = OtlpGrpcExporter::with_ca(
        &format!("https://localhost:{}", addr.port()),
        Resource::new("svc"),
        cert.cert_pem.as_bytes(),
    )
    .unwrap();
    let guard = common::pipeline(&SOURCE, exporter);
    drop(SOURCE.start_activity("over tls", ActivityKind::Internal));
    guard.force_flush(Duration::from_secs(10)).unwrap();
    assert_eq!(*count.lock().unwrap(), 1);
}
