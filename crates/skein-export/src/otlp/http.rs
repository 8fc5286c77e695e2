//! OTLP over HTTP: protobuf or JSON bodies, gzip, retries with backoff.

use std::io::Write as _;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use skein::Activity;

use crate::{ActivityExporter, ConfigError, ExportError, Resource};

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
            other => Err(ConfigError(format!(
                "unknown OTLP protocol {other:?} (expected grpc, http/protobuf or http/json)"
            ))),
        }
    }
}

/// Retries of retryable failures: exponential backoff with jitter, within the export timeout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based), with ±50% jitter.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        let jitter = 0.5 + (skein::SpanId::random().to_u64() % 1000) as f64 / 1000.0;
        base.mul_f64(jitter)
    }
}

/// Sends activities to an OTLP/HTTP endpoint (`…/v1/traces`).
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
    timeout: Duration,
    resource: Resource,
    backoff: Backoff,
    client:
        Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<bytes::Bytes>>,
    partial_reported: bool,
    encoder: super::encode::Encoder,
}

/// rustls with ring: the platform's trust store, or only the given PEM certificates.
fn https_connector(
    ca_pem: Option<&[u8]>,
) -> Result<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, ConfigError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("TLS setup: {e}")))?;
    let config = match ca_pem {
        Some(pem) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ConfigError(format!("bad OTLP certificate: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ConfigError(format!("bad OTLP certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ConfigError(
                    "bad OTLP certificate: no certificate in the PEM data".into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| ConfigError(format!("TLS setup: {e}")))?
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
    /// `http://localhost:4318/v1/traces`) with protobuf or JSON bodies.
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
            Protocol::Grpc => return Err(ConfigError("OtlpHttpExporter speaks HTTP, not gRPC".into())),
        };
        let url: http::Uri = endpoint
            .parse()
            .map_err(|e| ConfigError(format!("bad OTLP endpoint {endpoint:?}: {e}")))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(ConfigError(format!(
                "OTLP endpoint {endpoint:?} must be an http or https URL"
            )));
        }
        let client = Client::builder(TokioExecutor::new()).build(https_connector(ca_pem)?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConfigError(format!("cannot start the exporter's runtime: {e}")))?;
        Ok(OtlpHttpExporter {
            runtime,
            sender: Sender {
                endpoint: url.to_string(),
                json,
                gzip: false,
                headers: HeaderMap::new(),
                timeout: Duration::from_secs(10),
                resource,
                backoff: Backoff {
                    initial: Duration::from_millis(100),
                    max: Duration::from_secs(5),
                },
                client,
                partial_reported: false,
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
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ConfigError(format!("bad OTLP header name {name:?}")))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| ConfigError(format!("bad value for OTLP header {name}")))?;
        self.sender.headers.insert(name, value);
        Ok(self)
    }

    /// The longest one export may take, retries included (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.sender.timeout = timeout;
        self
    }

    /// The first retry delay (then doubling, up to 5 s), mainly for tests.
    pub fn with_initial_backoff(mut self, initial: Duration) -> Self {
        self.sender.backoff.initial = initial;
        self
    }
}

impl Sender {
    fn body(&mut self, batch: &[Activity]) -> Result<Vec<u8>, ExportError> {
        let raw = if self.json {
            let request = super::request(&self.resource, batch);
            serde_json::to_vec(&request).map_err(|e| ExportError::Rejected(format!("cannot encode JSON: {e}")))?
        } else {
            let mut raw = Vec::with_capacity(batch.len() * 256);
            self.encoder.request(&mut raw, &self.resource, batch);
            raw
        };
        if !self.gzip {
            return Ok(raw);
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(&raw)
            .and_then(|_| encoder.finish())
            .map_err(|e| ExportError::Rejected(format!("cannot compress: {e}")))
    }

    async fn send(&mut self, body: Vec<u8>) -> Result<(), ExportError> {
        // Shared, so a retry re-sends without copying.
        let body = bytes::Bytes::from(body);
        let deadline = Instant::now() + self.timeout;
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
                .map_err(|e| ExportError::Rejected(format!("cannot build the request: {e}")))?;
            request.headers_mut().extend(self.headers.clone());
            if self.gzip {
                request
                    .headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            let exchange = async {
                let response = self.client.request(request).await.map_err(|e| e.to_string())?;
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok::<_, String>((parts, bytes))
            };
            let outcome = match tokio::time::timeout(remaining.max(Duration::from_millis(1)), exchange).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            };
            let (retry, error, server_delay) = match outcome {
                Ok((parts, bytes)) => {
                    let status = parts.status;
                    if status.is_success() {
                        self.report_partial_success(&bytes);
                        return Ok(());
                    }
                    let delay = retry_after(&parts.headers);
                    let retryable = matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS
                            | StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    let text = String::from_utf8_lossy(&bytes);
                    let message = format!("HTTP {status} from {}: {}", self.endpoint, text.trim());
                    if retryable {
                        (true, ExportError::Unavailable(message), delay)
                    } else {
                        (false, ExportError::Rejected(message), None)
                    }
                }
                // Connection problems and timeouts are transient.
                Err(e) => (true, ExportError::Unavailable(format!("{}: {e}", self.endpoint)), None),
            };
            let wait = server_delay.unwrap_or_else(|| self.backoff.delay(attempt));
            if !retry || Instant::now() + wait >= deadline {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn report_partial_success(&mut self, body: &[u8]) {
        if body.is_empty() {
            return;
        }
        let response = if self.json {
            serde_json::from_slice::<ExportTraceServiceResponse>(body).ok()
        } else {
            ExportTraceServiceResponse::decode(body).ok()
        };
        if let Some(partial) = response.and_then(|r| r.partial_success) {
            if partial.rejected_spans > 0 || !partial.error_message.is_empty() {
                if !self.partial_reported {
                    eprintln!(
                        "skein-export: the backend rejected {} span(s): {} (further partial successes are not reported)",
                        partial.rejected_spans, partial.error_message
                    );
                }
                self.partial_reported = true;
            }
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from collectors and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl ActivityExporter for OtlpHttpExporter {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.sender.body(batch)?;
        let OtlpHttpExporter { runtime, sender } = self;
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called on a runtime thread (a simple pipeline inside async code): block a helper
            // thread rather than the application's runtime.
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        // The exporter's own spans are not recorded (no feedback loop).
                        let _quiet = skein::suppress_instrumentation();
                        runtime.block_on(sender.send(body))
                    })
                    .join()
                    .unwrap_or_else(|_| Err(ExportError::Unavailable("the export thread panicked".into())))
            })
        } else {
            runtime.block_on(sender.send(body))
        }
    }

    fn set_export_timeout(&mut self, timeout: Duration) {
        self.sender.timeout = self.sender.timeout.min(timeout);
    }
}
