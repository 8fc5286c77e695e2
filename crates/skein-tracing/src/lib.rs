//! The `tracing` ecosystem flows into Skein. Most Rust libraries (tokio, hyper, tonic, sqlx,
//! tower-http) are instrumented with `tracing`; [`SkeinLayer`] turns their spans into
//! activities of sources named after the span targets, sharing parenthood with Skein
//! activities in both directions, so one trace shows both; with a log pipeline installed
//! (`skein_export::init()`), its events — and `log` records through `tracing-log` — become
//! OTLP log records on their traces. [`WithTraceIds`] adds the current
//! trace and span ids to `tracing_subscriber::fmt` log lines (text or JSON, and `log` records
//! through the bridge), so a trace leads to its logs. With the `sqlx` feature, [`TracedPool`]
//! records database queries as Client activities following OpenTelemetry's database
//! conventions.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//!
//! tracing_subscriber::registry()
//!     .with(skein_tracing::layer())
//!     .with(tracing_subscriber::fmt::layer().event_format(skein_tracing::WithTraceIds::new(
//!         tracing_subscriber::fmt::format(),
//!     )))
//!     .init();
//! ```

mod fmt;
mod layer;
#[cfg(feature = "sqlx")]
mod sqlx;

pub use fmt::WithTraceIds;
pub use layer::{layer, ListenedTargets, SkeinLayer};
#[cfg(feature = "sqlx")]
pub use sqlx::{TracedExecutor, TracedPool, TracedPoolConnection, TracedTransaction, SQLX};
