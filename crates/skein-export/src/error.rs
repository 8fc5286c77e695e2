//! What can go wrong: configuration found unusable at start-up, and exports that fail later.
//! Both are enums that keep the underlying error as their `source()`, so applications can
//! match on the kind and still print the whole chain.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The underlying error, shared: one failure reaches the error hook and the rate-limited log.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What an export carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// Spans (activities).
    Traces,
    /// Log records.
    Logs,
}

impl Signal {
    /// `traces` or `logs`, as in the OTLP paths and variable names.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an export failed, or what the pipeline had to give up on.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The backend could not be reached, or answered "later" (HTTP 429, 502, 503, 504; gRPC
    /// UNAVAILABLE and friends). Retried with backoff within the export timeout before this is
    /// reported.
    #[error("{endpoint}: backend unavailable: {message}")]
    Unavailable {
        /// Where the export went.
        endpoint: String,
        /// What happened (the HTTP status and body, the gRPC status, the connection error).
        message: String,
        /// The transport's error, when there was one.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The backend refused the data for good (HTTP 4xx other than 429, gRPC INVALID_ARGUMENT…):
    /// not retried.
    #[error("{endpoint}: backend rejected the export: {message}")]
    Rejected {
        /// Where the export went.
        endpoint: String,
        /// The status and what the backend said.
        message: String,
    },
    /// The backend accepted the request but rejected some of its items.
    #[error("{endpoint}: backend rejected {rejected} {signal} item(s): {message}")]
    PartiallyRejected {
        /// Where the export went.
        endpoint: String,
        /// Spans or log records.
        signal: Signal,
        /// How many it rejected.
        rejected: i64,
        /// Why, in the backend's words.
        message: String,
    },
    /// The data could not be encoded or compressed.
    #[error("cannot encode the export: {0}")]
    Encode(#[source] ErrorSource),
    /// The queue was full and items were dropped (the application never waits for the
    /// exporter).
    #[error("the {signal} export queue is full: {dropped} item(s) dropped so far (raise the queue size or check the backend)")]
    QueueFull {
        /// Spans or log records.
        signal: Signal,
        /// Dropped since the pipeline started.
        dropped: u64,
    },
    /// A flush or shutdown did not finish within its deadline.
    #[error("the {signal} export did not finish within {timeout:?}")]
    NotDoneInTime {
        /// Spans or log records.
        signal: Signal,
        /// The deadline.
        timeout: Duration,
    },
    /// The pipeline or exporter is shut down.
    #[error("the exporter is shut down")]
    Shutdown,
}

impl ExportError {
    /// An [`ExportError::Unavailable`] for `endpoint`, keeping `source`.
    pub(crate) fn unavailable(
        endpoint: &str,
        message: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ExportError {
        ExportError::Unavailable {
            endpoint: endpoint.to_owned(),
            message: message.into(),
            source: source.map(Arc::from),
        }
    }

    /// True for failures that may pass by themselves.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ExportError::Unavailable { .. } | ExportError::QueueFull { .. } | ExportError::NotDoneInTime { .. }
        )
    }
}

/// A configuration problem found by [`init`](crate::init) or a builder: reported at start-up
/// instead of silently exporting nothing.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable holds a value that cannot work.
    #[error("{name}={value:?}: expected {expected}")]
    Variable {
        /// The variable (`OTEL_TRACES_SAMPLER_ARG`, …).
        name: String,
        /// Its value.
        value: String,
        /// What it may hold.
        expected: &'static str,
    },
    /// The endpoint is not a usable URL.
    #[error("bad OTLP endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name or value cannot be sent.
    #[error("bad OTLP header {name:?}: {reason}")]
    Header {
        /// The header name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The exporter was given a protocol it does not speak.
    #[error("{exporter} does not speak {protocol}")]
    Protocol {
        /// The exporter.
        exporter: &'static str,
        /// The protocol asked for.
        protocol: &'static str,
    },
    /// A trusted certificate could not be read or parsed.
    #[error("bad OTLP certificate{}: {source}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Certificate {
        /// The file, when it came from one.
        path: Option<PathBuf>,
        /// Why.
        #[source]
        source: ErrorSource,
    },
    /// TLS could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(#[source] ErrorSource),
    /// The exporter's own runtime or thread could not be started.
    #[error("cannot start the exporter: {0}")]
    Start(#[source] ErrorSource),
}

impl ConfigError {
    pub(crate) fn variable(name: &str, value: &str, expected: &'static str) -> ConfigError {
        ConfigError::Variable {
            name: name.to_owned(),
            value: value.to_owned(),
            expected,
        }
    }

    pub(crate) fn endpoint(endpoint: &str, reason: impl std::fmt::Display) -> ConfigError {
        ConfigError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn certificate(
        path: Option<PathBuf>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ConfigError {
        ConfigError::Certificate {
            path,
            source: Arc::from(source.into()),
        }
    }
}
