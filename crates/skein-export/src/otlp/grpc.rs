//! OTLP over gRPC (tonic): gzip, metadata headers, retries honouring `RetryInfo`.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use skein::Activity;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;
use tonic_types::StatusExt;

use super::http::Backoff;
use crate::{ActivityExporter, ConfigError, ExportError, Resource};

/// The delay a server asked for in a `google.rpc.RetryInfo` detail, if any.
fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    status.get_details_retry_info()?.retry_delay
}

/// Sends activities to an OTLP/gRPC endpoint (e.g. `http://localhost:4317`).
pub struct OtlpGrpcExporter {
    runtime: tokio::runtime::Runtime,
    client: TraceServiceClient<Channel>,
    metadata: MetadataMap,
    timeout: Duration,
    resource: Resource,
    backoff: Backoff,
    partial_reported: bool,
}

impl OtlpGrpcExporter {
    /// An exporter for `endpoint`; the connection is made on first use.
    pub fn new(endpoint: &str, resource: Resource) -> Result<Self, ConfigError> {
        Self::build(endpoint, resource, None)
    }

    /// The same, trusting the PEM certificate in `ca_pem` for `https` endpoints.
    pub fn with_ca(endpoint: &str, resource: Resource, ca_pem: &[u8]) -> Result<Self, ConfigError> {
        Self::build(endpoint, resource, Some(ca_pem))
    }

    fn build(endpoint: &str, resource: Resource, ca_pem: Option<&[u8]>) -> Result<Self, ConfigError> {
        let bad = |e: &dyn std::fmt::Display| ConfigError(format!("bad OTLP gRPC endpoint {endpoint:?}: {e}"));
        let uri: http::Uri = endpoint.parse().map_err(|e| bad(&e))?;
        let mut channel = Endpoint::from(uri.clone()).connect_timeout(Duration::from_secs(5));
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut tls = ClientTlsConfig::new().with_native_roots();
                if let Some(pem) = ca_pem {
                    tls = tls.ca_certificate(Certificate::from_pem(pem));
                }
                channel = channel.tls_config(tls).map_err(|e| bad(&e))?;
            }
            _ => return Err(bad(&"the scheme must be http or https")),
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConfigError(format!("cannot start the exporter's runtime: {e}")))?;
        let channel = {
            let _entered = runtime.enter();
            channel.connect_lazy()
        };
        Ok(OtlpGrpcExporter {
            runtime,
            client: TraceServiceClient::new(channel),
            metadata: MetadataMap::new(),
            timeout: Duration::from_secs(10),
            resource,
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            partial_reported: false,
        })
    }

    /// Compresses requests with gzip.
    pub fn with_gzip(mut self, gzip: bool) -> Self {
        if gzip {
            self.client = self.client.send_compressed(CompressionEncoding::Gzip);
        }
        self
    }

    /// Adds a metadata header to every call (e.g. an API key).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        let key = MetadataKey::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| ConfigError(format!("bad OTLP header name {name:?}")))?;
        let value: MetadataValue<_> = value
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("bad value for OTLP header {name}")))?;
        self.metadata.insert(key, value);
        Ok(self)
    }

    /// The longest one export may take, retries included (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The first retry delay (then doubling, up to 5 s), mainly for tests.
    pub fn with_initial_backoff(mut self, initial: Duration) -> Self {
        self.backoff.initial = initial;
        self
    }

    async fn send(
        client: &mut TraceServiceClient<Channel>,
        metadata: &MetadataMap,
        timeout: Duration,
        backoff: Backoff,
        request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    ) -> Result<Option<(i64, String)>, ExportError> {
        let deadline = Instant::now() + timeout;
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut call = tonic::Request::new(request.clone());
            *call.metadata_mut() = metadata.clone();
            call.set_timeout(remaining.max(Duration::from_millis(1)));
            let status = match client.export(call).await {
                Ok(response) => {
                    let partial = response.into_inner().partial_success;
                    return Ok(partial
                        .filter(|p| p.rejected_spans > 0 || !p.error_message.is_empty())
                        .map(|p| (p.rejected_spans, p.error_message)));
                }
                Err(status) => status,
            };
            let server_delay = retry_delay(&status);
            // RESOURCE_EXHAUSTED is retried only when the server says when (RetryInfo).
            let retryable = match status.code() {
                Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss => true,
                Code::ResourceExhausted => server_delay.is_some(),
                _ => false,
            };
            let message = format!("gRPC {:?}: {}", status.code(), status.message());
            let wait = server_delay.unwrap_or_else(|| backoff.delay(attempt));
            if !retryable || Instant::now() + wait >= deadline {
                return Err(if retryable {
                    ExportError::Unavailable(message)
                } else {
                    ExportError::Rejected(message)
                });
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

impl ActivityExporter for OtlpGrpcExporter {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let request = super::request(&self.resource, batch);
        let OtlpGrpcExporter {
            runtime,
            client,
            metadata,
            timeout,
            backoff,
            ..
        } = self;
        let send = || {
            // Also on the helper thread below: the exporter's own spans are not recorded.
            let _quiet = skein::suppress_instrumentation();
            runtime.block_on(Self::send(client, metadata, *timeout, *backoff, request))
        };
        let result = if tokio::runtime::Handle::try_current().is_ok() {
            // On a runtime thread (a simple pipeline inside async code): use a helper thread.
            std::thread::scope(|scope| {
                scope
                    .spawn(send)
                    .join()
                    .unwrap_or_else(|_| Err(ExportError::Unavailable("the export thread panicked".into())))
            })
        } else {
            send()
        };
        if let Some((rejected, message)) = result? {
            if !self.partial_reported {
                eprintln!(
                    "skein-export: the backend rejected {rejected} span(s): {message} (further partial successes are not reported)"
                );
                self.partial_reported = true;
            }
        }
        Ok(())
    }

    fn set_export_timeout(&mut self, timeout: Duration) {
        self.timeout = self.timeout.min(timeout);
    }
}
