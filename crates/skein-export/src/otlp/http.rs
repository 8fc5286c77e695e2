//! OTLP over HTTP: protobuf or JSON bodies, gzip, retries with backoff.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use skein::logs::LogRecord;
use skein::Activity;

use super::{error_chain, Retry};
use crate::report::report;
use crate::{ActivityExporter, ConfigError, ErrorSource, ExportError, LogExporter, Resource, ShutdownNotice, Signal};

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// gRPC (`grpc`).
    Grpc,
    /// HTTP with protobuf bodies (`http/protobuf`, the default).
    #[default]
    HttpProtobuf,
    /// HTTP with OTLP JSON bodies (`http/json`).
    HttpJson,
}

impl Protocol {
    /// Parses the `OTEL_EXPORTER_OTLP_PROTOCOL` values.
    pub fn parse(value: &str) -> Result<Protocol, ConfigError> {
        match value.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            other => Err(ConfigError::variable(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                other,
                "grpc, http/protobuf or http/json",
            )),
        }
    }
}

/// Sends activities (to `…/v1/traces`) or log records (to `…/v1/logs`) to an OTLP/HTTP
/// endpoint: one exporter per endpoint, used as an [`ActivityExporter`] or a [`LogExporter`].
///
/// It runs on the pipeline's export thread with a private single-threaded runtime, so it works
/// whether or not the application uses tokio.
pub struct OtlpHttpExporter {
    runtime: tokio::runtime::Runtime,
    sender: Sender,
}

struct Sender {
    endpoint: String,
    json: bool,
    gzip: bool,
    headers: HeaderMap,
    resource: Resource,
    retry: Retry,
    client:
        Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<bytes::Bytes>>,
    encoder: super::encode::Encoder,
}

/// rustls with ring: the platform's trust store, or only the given PEM certificates.
fn https_connector(
    ca_pem: Option<&[u8]>,
) -> Result<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, ConfigError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(Arc::new(e)))?;
    let config = match ca_pem {
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ConfigError::certificate(None, e))?;
                roots.add(cert).map_err(|e| ConfigError::certificate(None, e))?;
            }
            if roots.is_empty() {
                return Err(ConfigError::certificate(None, "no certificate in the PEM data"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| ConfigError::Tls(Arc::new(e)))?
                .with_no_client_auth()
        }
    };
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}

impl OtlpHttpExporter {
    /// An exporter posting to `endpoint` (the full URL, e.g.
    /// `http://localhost:4318/v1/traces`, or `…/v1/logs` for log records) with protobuf or JSON
    /// bodies.
    pub fn new(endpoint: &str, protocol: Protocol, resource: Resource) -> Result<Self, ConfigError> {
        Self::build(endpoint, protocol, resource, None)
    }

    /// The same, trusting the PEM certificate(s) in `ca_pem` for `https` endpoints (e.g. a
    /// self-signed development collector).
    pub fn with_ca(endpoint: &str, protocol: Protocol, resource: Resource, ca_pem: &[u8]) -> Result<Self, ConfigError> {
        Self::build(endpoint, protocol, resource, Some(ca_pem))
    }

    fn build(
        endpoint: &str,
        protocol: Protocol,
        resource: Resource,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, ConfigError> {
        let json = match protocol {
            Protocol::HttpProtobuf => false,
            Protocol::HttpJson => true,
            Protocol::Grpc => {
                return Err(ConfigError::Protocol {
                    exporter: "OtlpHttpExporter",
                    protocol: "grpc",
                })
            }
        };
        let url: http::Uri = endpoint.parse().map_err(|e| ConfigError::endpoint(endpoint, e))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(ConfigError::endpoint(endpoint, "it must be an http or https URL"));
        }
        let client = Client::builder(TokioExecutor::new()).build(https_connector(ca_pem)?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConfigError::Start(Arc::new(e)))?;
        Ok(OtlpHttpExporter {
            runtime,
            sender: Sender {
                endpoint: url.to_string(),
                json,
                gzip: false,
                headers: HeaderMap::new(),
                resource,
                retry: Retry::default(),
                client,
                encoder: Default::default(),
            },
        })
    }

    /// Compresses bodies with gzip.
    pub fn with_gzip(mut self, gzip: bool) -> Self {
        self.sender.gzip = gzip;
        self
    }

    /// Adds a header to every request (e.g. an API key).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::Header {
            name: name.to_owned(),
            reason,
        };
        let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad("not a valid header name"))?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| bad("the value cannot be sent in a header"))?;
        let name = header;
        self.sender.headers.insert(name, value);
        Ok(self)
    }

    /// The longest one export may take, retries included (default 10 s, or the pipeline's
    /// export timeout if that is shorter). A timeout set here is kept whatever the pipeline's.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.sender.retry.set_timeout(timeout);
        self
    }

    /// The first retry delay (then doubling, up to 5 s), mainly for tests.
    pub fn with_initial_backoff(mut self, initial: Duration) -> Self {
        self.sender.retry.backoff.initial = initial;
        self
    }
}

impl Sender {
    fn finish_body(&self, raw: Vec<u8>) -> Result<Vec<u8>, ExportError> {
        if !self.gzip {
            return Ok(raw);
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(&raw)
            .and_then(|_| encoder.finish())
            .map_err(|e| ExportError::Encode(Arc::new(e)))
    }

    fn spans_body(&mut self, batch: &[Activity]) -> Result<Vec<u8>, ExportError> {
        let raw = if self.json {
            let request = super::request(&self.resource, batch);
            serde_json::to_vec(&request).map_err(|e| ExportError::Encode(Arc::new(e)))?
        } else {
            let mut raw = Vec::with_capacity(batch.len() * 256);
            self.encoder.request(&mut raw, &self.resource, batch);
            raw
        };
        self.finish_body(raw)
    }

    fn logs_body(&mut self, batch: &[LogRecord]) -> Result<Vec<u8>, ExportError> {
        let request = super::logs_request(&self.resource, batch);
        let raw = if self.json {
            serde_json::to_vec(&request).map_err(|e| ExportError::Encode(Arc::new(e)))?
        } else {
            request.encode_to_vec()
        };
        self.finish_body(raw)
    }

    async fn send(&self, body: Vec<u8>, signal: Signal) -> Result<(), ExportError> {
        // Shared, so a retry re-sends without copying.
        let body = bytes::Bytes::from(body);
        let deadline = Instant::now() + self.retry.timeout;
        let content_type = if self.json {
            "application/json"
        } else {
            "application/x-protobuf"
        };
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut request = http::Request::post(&self.endpoint)
                .header(CONTENT_TYPE, content_type)
                .body(Full::new(body.clone()))
                .map_err(|e| ExportError::Encode(Arc::new(e)))?;
            request.headers_mut().extend(self.headers.clone());
            if self.gzip {
                request
                    .headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            let exchange = async {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| Arc::new(e) as ErrorSource)?;
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await.map_err(|e| Arc::new(e) as ErrorSource)?.to_bytes();
                Ok::<_, ErrorSource>((parts, bytes))
            };
            let outcome = tokio::time::timeout(remaining.max(Duration::from_millis(1)), exchange).await;
            let (error, server_delay) = match outcome {
                Ok(Ok((parts, bytes))) => {
                    let status = parts.status;
                    if status.is_success() {
                        self.report_partial_success(&bytes, signal);
                        return Ok(());
                    }
                    let text = String::from_utf8_lossy(&bytes);
                    let message = format!("HTTP {status}: {}", text.trim());
                    let retryable = matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS
                            | StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    if !retryable {
                        return Err(ExportError::Rejected {
                            endpoint: self.endpoint.clone(),
                            message,
                        });
                    }
                    (
                        ExportError::unavailable(&self.endpoint, message, None),
                        retry_after(&parts.headers),
                    )
                }
                // Connection problems and timeouts are transient.
                Ok(Err(e)) => (
                    ExportError::Unavailable {
                        endpoint: self.endpoint.clone(),
                        message: error_chain(&*e),
                        source: Some(e),
                    },
                    None,
                ),
                Err(_) => (
                    ExportError::unavailable(
                        &self.endpoint,
                        format!("no answer within {:?}", self.retry.timeout),
                        None,
                    ),
                    None,
                ),
            };
            if !self.retry.wait(attempt, server_delay, deadline).await {
                return Err(error);
            }
            attempt += 1;
        }
    }

    fn report_partial_success(&self, body: &[u8], signal: Signal) {
        if body.is_empty() {
            return;
        }
        let partial = match signal {
            Signal::Logs => {
                let response = if self.json {
                    serde_json::from_slice::<ExportLogsServiceResponse>(body).ok()
                } else {
                    ExportLogsServiceResponse::decode(body).ok()
                };
                response
                    .and_then(|r| r.partial_success)
                    .map(|p| (p.rejected_log_records, p.error_message))
            }
            _ => {
                let response = if self.json {
                    serde_json::from_slice::<ExportTraceServiceResponse>(body).ok()
                } else {
                    ExportTraceServiceResponse::decode(body).ok()
                };
                response
                    .and_then(|r| r.partial_success)
                    .map(|p| (p.rejected_spans, p.error_message))
            }
        };
        if let Some((rejected, message)) = partial {
            if rejected > 0 || !message.is_empty() {
                report(ExportError::PartiallyRejected {
                    endpoint: self.endpoint.clone(),
                    signal,
                    rejected,
                    message,
                });
            }
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from collectors and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl OtlpHttpExporter {
    fn export_body(&mut self, body: Vec<u8>, signal: Signal) -> Result<(), ExportError> {
        let OtlpHttpExporter { runtime, sender } = self;
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called on a runtime thread (a simple pipeline inside async code): block a helper
            // thread rather than the application's runtime.
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        // The exporter's own spans and logs are not recorded (no feedback loop).
                        let _quiet = skein::suppress_instrumentation();
                        runtime.block_on(sender.send(body, signal))
                    })
                    .join()
                    .unwrap_or_else(|_| {
                        Err(ExportError::unavailable(
                            &sender.endpoint,
                            "the export thread panicked",
                            None,
                        ))
                    })
            })
        } else {
            runtime.block_on(sender.send(body, signal))
        }
    }
}

impl ActivityExporter for OtlpHttpExporter {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.sender.spans_body(batch)?;
        self.export_body(body, Signal::Traces)
    }

    fn set_export_timeout(&mut self, timeout: Duration) {
        self.sender.retry.cap_timeout(timeout);
    }

    fn watch_shutdown(&mut self, notice: ShutdownNotice) {
        self.sender.retry.notice = Some(notice);
    }
}

impl LogExporter for OtlpHttpExporter {
    fn export(&mut self, batch: &[LogRecord]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.sender.logs_body(batch)?;
        self.export_body(body, Signal::Logs)
    }

    fn set_export_timeout(&mut self, timeout: Duration) {
        self.sender.retry.cap_timeout(timeout);
    }

    fn watch_shutdown(&mut self, notice: ShutdownNotice) {
        self.sender.retry.notice = Some(notice);
    }
}
