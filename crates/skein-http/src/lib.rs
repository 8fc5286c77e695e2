//! Skein's HTTP instrumentation. On the client side, [`SkeinMiddleware`] (reqwest) and
//! [`ClientTraceLayer`] (hyper-util and other tower clients) make a Client activity per request
//! and inject the propagation headers. On the server side, [`TraceLayer`] is a tower layer for
//! axum and hyper services:
//! every request becomes a Server activity of the `skein.http.server` source that continues
//! the caller's trace (`traceparent`/`tracestate`/`baggage`, or `Request-Id` and
//! `Correlation-Context`, through the process-wide propagator), is current for the whole
//! handler — across its `.await`s and while the response body streams — and ends when the body
//! has been sent. Names, tags and statuses follow OpenTelemetry's HTTP semantic conventions.
//!
//! ```
//! use axum::{routing::get, Router};
//! use skein_http::TraceLayer;
//!
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "order" }))
//!     .layer(TraceLayer::new()); // after routing: activities are named `GET /orders/{id}`
//! ```

mod client;
#[cfg(feature = "connections")]
mod connect;
pub mod diagnostics;
mod forwarded;
mod server;

#[cfg(feature = "reqwest")]
pub use client::SkeinMiddleware;
pub use client::{
    error_kind, record_error, record_response, redacted_url, start_client_activity, ClientFuture, ClientTraceLayer,
    ClientTraceService, CLIENT_SOURCE,
};
#[cfg(feature = "connections")]
pub use connect::{
    accept_tls, serve_tls, ConnectError, ConnectionSetup, SkeinConnector, SkeinStream, CONNECTIONS_SOURCE, DNS_SOURCE,
    SOCKETS_SOURCE, TLS_SOURCE,
};
pub use server::{ConnectionInfo, ResponseFuture, TraceLayer, TraceService, TracedBody, SERVER_SOURCE};

/// The value of `http.request.method`: the method if it is one of the standard ones, else
/// `_OTHER` (the original goes to `http.request.method_original`).
pub fn known_method(method: &http::Method) -> Option<&'static str> {
    Some(match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::CONNECT => "CONNECT",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::TRACE => "TRACE",
        http::Method::PATCH => "PATCH",
        _ => return None,
    })
}

/// `network.protocol.version` for an HTTP version.
pub fn protocol_version(version: http::Version) -> Option<&'static str> {
    Some(match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => return None,
    })
}
