//! OTLP over HTTP: protobuf or JSON bodies, gzip, retries with backoff.

use std::io::Write as _;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
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
    client: reqwest::Client,
    partial_reported: bool,
    encoder: super::encode::Encoder,
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
        let url =
            reqwest::Url::parse(endpoint).map_err(|e| ConfigError(format!("bad OTLP endpoint {endpoint:?}: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ConfigError(format!("OTLP endpoint {endpoint:?} must be http or https")));
        }
        // rustls needs a process-wide crypto provider; keep the application's if it set one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ConfigError(format!("bad OTLP certificate: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ConfigError(format!("cannot build the OTLP HTTP client: {e}")))?;
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
            let mut request = self
                .client
                .post(&self.endpoint)
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, content_type)
                .timeout(remaining.max(Duration::from_millis(1)))
                .body(body.clone());
            if self.gzip {
                request = request.header(CONTENT_ENCODING, "gzip");
            }
            let (retry, error, server_delay) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let bytes = response.bytes().await.unwrap_or_default();
                        self.report_partial_success(&bytes);
                        return Ok(());
                    }
                    let delay = retry_after(response.headers());
                    let retryable = matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS
                            | StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    let text = response.text().await.unwrap_or_default();
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
                    .spawn(|| runtime.block_on(sender.send(body)))
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
