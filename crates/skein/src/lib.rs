//! The Activity model of Skein: .NET-style distributed tracing for Rust.
//!
//! Instrumented code creates [`Activity`]s (spans) from named [`ActivitySource`]s. Nothing is
//! allocated unless an [`ActivityListener`] wants the source, and the listeners' sampling
//! decides how much is recorded ([`ActivitySamplingResult`]). [`Activity::current`] flows
//! through synchronous calls, and across `.await`s and into spawned tasks and threads with
//! [`FutureExt`] and [`with_current`]. Ids are W3C Trace Context by default, hierarchical
//! `Request-Id`s on request; [`propagation`] moves contexts and baggage across processes, and
//! [`diagnostics`] lets instrumentation publish raw objects to subscribers. This crate knows
//! nothing of HTTP or export: those live in `skein-http` and `skein-export`.
//!
//! ```
//! use skein::*;
//!
//! static SOURCE: ActivitySource = ActivitySource::new("quickstart");
//!
//! struct Print;
//! impl ActivityListener for Print {
//!     fn should_listen_to(&self, s: &ActivitySource) -> bool { s.name() == "quickstart" }
//!     fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
//!         ActivitySamplingResult::AllDataAndRecorded
//!     }
//!     fn on_stopped(&self, a: &Activity) {
//!         println!("{} {} parent={}", a.display_name(), a.span_id(), a.parent_span_id());
//!     }
//! }
//!
//! let _listener = ActivitySource::add_activity_listener(Print);
//! let parent = SOURCE.start_activity("parent", ActivityKind::Server).unwrap();
//! let child = SOURCE.start_activity("child", ActivityKind::Internal).unwrap();
//! assert_eq!(child.parent_span_id(), parent.span_id());
//! ```

#![warn(missing_docs)]

mod activity;
mod clock;
mod context;
mod current;
pub mod diagnostics;
pub mod hierarchical;
mod id;
mod inline_vec;
mod listener;
pub mod propagation;
pub mod sampler;
mod shared;
mod source;
mod sync;
mod tag;
mod trace_state;

pub use activity::{
    Activity, ActivityData, ActivityEvent, ActivityIdFormat, ActivityKind, ActivityLink, ActivityStatusCode,
};
pub use clock::Timestamp;
pub use context::ActivityContext;
pub use current::{with_current, CurrentGuard, FutureExt, WithActivity};
pub use id::{set_trace_id_generator, ActivityTraceFlags, ParseError, SpanId, TraceId};
pub use listener::{ActivityCreationOptions, ActivityListener, ActivitySamplingResult};
pub use sampler::{AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, Sampler, TraceIdRatioSampler};
pub use source::{ActivityParent, ActivitySource, ActivityStartOptions, ListenerRegistration};
pub use tag::{IntoTagValue, Tag, TagValue};
pub use trace_state::TraceState;
