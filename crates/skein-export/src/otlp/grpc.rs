//! OTLP over gRPC (tonic): gzip, metadata headers, retries honouring `RetryInfo`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use skein::logs::LogRecord;
use skein::Activity;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;
use tonic_types::StatusExt;

use super::Retry;
use crate::report::report;
use crate::{ActivityExporter, ConfigError, ExportError, LogExporter, Resource, ShutdownNotice, Signal};

/// The delay a server asked for in a `google.rpc.RetryInfo` detail, if any.
fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    status.get_details_retry_info()?.retry_delay
}

/// Sends activities or log records to an OTLP/gRPC endpoint (e.g. `http://localhost:4317`):
/// one exporter per endpoint, used as an [`ActivityExporter`] or a [`LogExporter`].
pub struct OtlpGrpcExporter {
    runtime: tokio::runtime::Runtime,
    endpoint: String,
    traces: TraceServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
    metadata: MetadataMap,
    resource: Resource,
    retry: Retry,
}

/// What one call's answer said about partial acceptance: rejected items and the message.
type Partial = Option<(i64, String)>;

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
        let uri: http::Uri = endpoint.parse().map_err(|e| ConfigError::endpoint(endpoint, e))?;
        let mut channel = Endpoint::from(uri.clone()).connect_timeout(Duration::from_secs(5));
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut tls = ClientTlsConfig::new().with_native_roots();
                if let Some(pem) = ca_pem {
                    tls = tls.ca_certificate(Certificate::from_pem(pem));
                }
                channel = channel.tls_config(tls).map_err(|e| ConfigError::Tls(Arc::new(e)))?;
            }
            _ => return Err(ConfigError::endpoint(endpoint, "the scheme must be http or https")),
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConfigError::Start(Arc::new(e)))?;
        let channel = {
            let _entered = runtime.enter();
            channel.connect_lazy()
        };
        Ok(OtlpGrpcExporter {
            runtime,
            endpoint: endpoint.to_owned(),
            traces: TraceServiceClient::new(channel.clone()),
            logs: LogsServiceClient::new(channel),
            metadata: MetadataMap::new(),
            resource,
            retry: Retry::default(),
        })
    }

    /// Compresses requests with gzip.
    pub fn with_gzip(mut self, gzip: bool) -> Self {
        if gzip {
            self.traces = self.traces.send_compressed(CompressionEncoding::Gzip);
            self.logs = self.logs.send_compressed(CompressionEncoding::Gzip);
        }
        self
    }

    /// Adds a metadata header to every call (e.g. an API key).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        let bad = |reason| ConfigError::Header {
            name: name.to_owned(),
            reason,
        };
        let key = MetadataKey::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| bad("not a valid metadata key"))?;
        let value: MetadataValue<_> = value
            .trim()
            .parse()
            .map_err(|_| bad("the value cannot be sent as metadata"))?;
        self.metadata.insert(key, value);
        Ok(self)
    }

    /// The longest one export may take, retries included (default 10 s, or the pipeline's
    /// export timeout if that is shorter). A timeout set here is kept whatever the pipeline's.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.retry.set_timeout(timeout);
        self
    }

    /// The first retry delay (then doubling, up to 5 s), mainly for tests.
    pub fn with_initial_backoff(mut self, initial: Duration) -> Self {
        self.retry.backoff.initial = initial;
        self
    }

    /// Makes calls (`call` sends one request) until one succeeds, a failure is final, the
    /// timeout passes or the pipeline shuts down.
    async fn send<T, F, Fut>(
        endpoint: &str,
        metadata: &MetadataMap,
        retry: &Retry,
        message: T,
        mut call: F,
    ) -> Result<Partial, ExportError>
    where
        T: Clone,
        F: FnMut(tonic::Request<T>) -> Fut,
        Fut: Future<Output = Result<Partial, tonic::Status>>,
    {
        let deadline = Instant::now() + retry.timeout;
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let mut request = tonic::Request::new(message.clone());
            *request.metadata_mut() = metadata.clone();
            request.set_timeout(remaining.max(Duration::from_millis(1)));
            let status = match call(request).await {
                Ok(partial) => return Ok(partial),
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
            let text = format!("gRPC {:?}: {}", status.code(), status.message());
            if !retryable {
                return Err(ExportError::Rejected {
                    endpoint: endpoint.to_owned(),
                    message: text,
                });
            }
            if !retry.wait(attempt, server_delay, deadline).await {
                return Err(ExportError::Unavailable {
                    endpoint: endpoint.to_owned(),
                    message: text,
                    source: Some(Arc::new(status)),
                });
            }
            attempt += 1;
        }
    }

    /// Runs `send` on the exporter's runtime — on a helper thread if called from a runtime
    /// thread (a simple pipeline inside async code) — with instrumentation suppressed, and
    /// reports a partial success.
    fn run(
        &mut self,
        signal: Signal,
        send: impl FnOnce(&tokio::runtime::Runtime) -> Result<Partial, ExportError> + Send,
    ) -> Result<(), ExportError> {
        let runtime = &self.runtime;
        let quiet_send = || {
            // The exporter's own spans and logs are not recorded (no feedback loop).
            let _quiet = skein::suppress_instrumentation();
            send(runtime)
        };
        let result = if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                scope.spawn(quiet_send).join().unwrap_or_else(|_| {
                    Err(ExportError::unavailable(
                        &self.endpoint,
                        "the export thread panicked",
                        None,
                    ))
                })
            })
        } else {
            quiet_send()
        };
        if let Some((rejected, message)) = result? {
            report(ExportError::PartiallyRejected {
                endpoint: self.endpoint.clone(),
                signal,
                rejected,
                message,
            });
        }
        Ok(())
    }
}

impl ActivityExporter for OtlpGrpcExporter {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let request = super::request(&self.resource, batch);
        let (endpoint, metadata, retry, client) = (
            self.endpoint.clone(),
            self.metadata.clone(),
            self.retry.clone(),
            self.traces.clone(),
        );
        self.run(Signal::Traces, move |runtime| {
            runtime.block_on(Self::send(&endpoint, &metadata, &retry, request, |call| {
                let mut client = client.clone();
                async move {
                    let partial = client.export(call).await?.into_inner().partial_success;
                    Ok(partial
                        .filter(|p| p.rejected_spans > 0 || !p.error_message.is_empty())
                        .map(|p| (p.rejected_spans, p.error_message)))
                }
            }))
        })
    }

    fn set_export_timeout(&mut self, timeout: Duration) {
        self.retry.cap_timeout(timeout);
    }

    fn watch_shutdown(&mut self, notice: ShutdownNotice) {
        self.retry.notice = Some(notice);
    }
}

impl LogExporter for OtlpGrpcExporter {
    fn export(&mut self, batch: &[LogRecord]) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let request = super::logs_request(&self.resource, batch);
        let (endpoint, metadata, retry, client) = (
            self.endpoint.clone(),
            self.metadata.clone(),
            self.retry.clone(),
            self.logs.clone(),
        );
        self.run(Signal::Logs, move |runtime| {
            runtime.block_on(Self::send(&endpoint, &metadata, &retry, request, |call| {
                let mut client = client.clone();
                async move {
                    let partial = client.export(call).await?.into_inner().partial_success;
                    Ok(partial
                        .filter(|p| p.rejected_log_records > 0 || !p.error_message.is_empty())
                        .map(|p| (p.rejected_log_records, p.error_message)))
                }
            }))
        })
    }

    fn set_export_timeout(&mut self, timeout: Duration) {
        self.retry.cap_timeout(timeout);
    }

    fn watch_shutdown(&mut self, notice: ShutdownNotice) {
        self.retry.notice = Some(notice);
    }
}
