//! The request and response objects, published on the `skein.http` diagnostic listener so a
//! subscriber can enrich the built-in activities without touching the application (the
//! request's activity is current while it is called).
//!
//! | event | payload |
//! |---|---|
//! | `skein.http.server.request` | `http::request::Parts` |
//! | `skein.http.server.response` | `http::response::Parts` |
//! | `skein.http.client.request` | `http::request::Parts` |
//! | `skein.http.client.response` | `http::response::Parts` |
//! | `skein.http.client.error` | [`ClientError`] |

use std::any::Any;
use std::sync::{Arc, OnceLock};

use skein::diagnostics::DiagnosticListener;

/// The name of the HTTP instrumentation's diagnostic listener.
pub const DIAGNOSTIC_LISTENER_NAME: &str = "skein.http";
/// A server request arrived.
pub const SERVER_REQUEST: &str = "skein.http.server.request";
/// A server response is about to be sent.
pub const SERVER_RESPONSE: &str = "skein.http.server.response";
/// A client request is about to be sent.
pub const CLIENT_REQUEST: &str = "skein.http.client.request";
/// A client response arrived.
pub const CLIENT_RESPONSE: &str = "skein.http.client.response";
/// A client request failed.
pub const CLIENT_ERROR: &str = "skein.http.client.error";

/// The payload of [`CLIENT_ERROR`].
#[derive(Debug, Clone)]
pub struct ClientError {
    /// The `error.type` value (`connection_error`, `timeout`, …).
    pub kind: &'static str,
    /// The error's message.
    pub message: String,
}

/// The `skein.http` diagnostic listener.
pub fn diagnostic_listener() -> &'static Arc<DiagnosticListener> {
    static LISTENER: OnceLock<Arc<DiagnosticListener>> = OnceLock::new();
    LISTENER.get_or_init(|| DiagnosticListener::new(DIAGNOSTIC_LISTENER_NAME))
}

/// Whether anyone wants `name` (check before building a payload).
pub(crate) fn enabled(name: &str) -> bool {
    let listener = diagnostic_listener();
    listener.is_enabled() && listener.is_enabled_for(name)
}

pub(crate) fn publish(name: &str, payload: &dyn Any) {
    if enabled(name) {
        diagnostic_listener().write(name, payload);
    }
}
