//! The client side: a Client activity per outgoing request, propagation headers injected, the
//! activity ended with the response body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use skein::propagation::{self, PropagatorSetter};
use skein::{Activity, ActivityKind, ActivitySource, ActivityStartOptions, ActivityStatusCode, Tag};

use crate::{diagnostics, TracedBody};

/// The source of client request activities.
pub static CLIENT_SOURCE: ActivitySource =
    ActivitySource::new("skein.http.client").with_version(env!("CARGO_PKG_VERSION"));

/// `url.full` without credentials and with every query value replaced by `REDACTED`.
///
/// ```
/// let uri: http::Uri = "https://user:pw@shop.example:8443/pay?card=4111&amount=3".parse().unwrap();
/// assert_eq!(skein_http::redacted_url(&uri), "https://shop.example:8443/pay?card=REDACTED&amount=REDACTED");
/// ```
pub fn redacted_url(uri: &http::Uri) -> String {
    let mut out = String::new();
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(authority) = uri.authority() {
        // Drop `user:password@`.
        let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
        out.push_str(host_port);
    }
    out.push_str(uri.path());
    if let Some(query) = uri.query() {
        out.push('?');
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) => format!("{k}=REDACTED"),
                None => pair.to_owned(),
            })
            .collect();
        out.push_str(&redacted.join("&"));
    }
    out
}

/// Writes headers the caller has not set already.
struct Preserving<'a>(&'a mut HeaderMap);

impl PropagatorSetter for Preserving<'_> {
    fn set(&mut self, name: &str, value: String) {
        let name = name.to_ascii_lowercase();
        if self.0.contains_key(name.as_str()) {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Starts the client activity for a request and injects the propagation headers (of the new
/// activity, or of the current one when no client activity is made), never overwriting
/// headers the caller set. The activity is *not* left current: it belongs to the request's
/// future, and the caller's next request must not become its child.
pub fn start_client_activity(method: &http::Method, uri: &http::Uri, headers: &mut HeaderMap) -> Option<Activity> {
    let outer = Activity::current();
    let activity = if CLIENT_SOURCE.has_listeners() {
        let (method_tag, original) = match crate::known_method(method) {
            Some(m) => (m, None),
            None => ("_OTHER", Some(method.as_str().to_owned())),
        };
        let mut tags = vec![Tag::new("http.request.method", method_tag)];
        if let Some(original) = original {
            tags.push(Tag::new("http.request.method_original", original));
        }
        if let Some(host) = uri.host() {
            tags.push(Tag::new("server.address", host.to_owned()));
        }
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        if let Some(port) = port {
            tags.push(Tag::new("server.port", i64::from(port)));
        }
        tags.push(Tag::new("url.full", redacted_url(uri)));
        let name = if method_tag == "_OTHER" { "HTTP" } else { method_tag };
        CLIENT_SOURCE.start_activity_with(
            name,
            ActivityKind::Client,
            ActivityStartOptions {
                tags,
                ..Default::default()
            },
        )
    } else {
        None
    };
    let carrier = activity.clone().or_else(|| outer.clone());
    propagation::current().inject(carrier.as_ref(), &mut Preserving(headers));
    if activity.is_some() && diagnostics::enabled(diagnostics::CLIENT_REQUEST) {
        // Published while the activity is still current, so subscribers can enrich it.
        let mut request = http::Request::new(());
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        let (parts, ()) = request.into_parts();
        diagnostics::publish(diagnostics::CLIENT_REQUEST, &parts);
    }
    if activity.is_some() {
        Activity::set_current(outer.as_ref());
    }
    activity
}

/// Records the response status: `error.type` and Error status from 400 on.
pub fn record_response(activity: &Activity, status: http::StatusCode, version: http::Version) {
    let code = status.as_u16();
    activity.set_tag("http.response.status_code", i64::from(code));
    if let Some(v) = crate::protocol_version(version) {
        activity.set_tag("network.protocol.version", v);
    }
    if code >= 400 {
        activity.set_tag("error.type", code.to_string());
        activity.set_status(ActivityStatusCode::Error, None::<&str>);
    }
}

/// The snake_case kind of a failed request, from the error's source chain.
pub fn error_kind(error: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut text = String::new();
    while let Some(e) = next {
        #[cfg(feature = "connections")]
        if let Some(connect) = e.downcast_ref::<crate::ConnectError>() {
            return connect.kind();
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut => return "timeout",
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::NotConnected => return "connection_error",
                _ => {}
            }
        }
        text.push_str(&e.to_string().to_ascii_lowercase());
        text.push(' ');
        next = e.source();
    }
    if text.contains("timed out") || text.contains("timeout") {
        "timeout"
    } else if text.contains("dns") || text.contains("lookup") || text.contains("resolve") {
        "name_resolution_error"
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        "secure_connection_error"
    } else if text.contains("connect") {
        "connection_error"
    } else {
        "_OTHER"
    }
}

/// Records a failed request (and publishes it as `skein.http.client.error`).
pub fn record_error(activity: &Activity, error: &(dyn std::error::Error + 'static)) {
    let kind = error_kind(error);
    activity.set_tag("error.type", kind);
    activity.set_status(ActivityStatusCode::Error, Some(error.to_string()));
    if diagnostics::enabled(diagnostics::CLIENT_ERROR) {
        let _current = activity.enter();
        diagnostics::publish(
            diagnostics::CLIENT_ERROR,
            &diagnostics::ClientError {
                kind,
                message: error.to_string(),
            },
        );
    }
}

/// Publishes a client response (with `activity` current).
fn publish_response(activity: &Activity, parts: &http::response::Parts) {
    if diagnostics::enabled(diagnostics::CLIENT_RESPONSE) {
        let _current = activity.enter();
        diagnostics::publish(diagnostics::CLIENT_RESPONSE, parts);
    }
}

/// A tower layer for HTTP clients (hyper-util's `Client`, or any
/// `Service<http::Request<B>, Response = http::Response<_>>`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientTraceLayer;

impl<S> tower_layer::Layer<S> for ClientTraceLayer {
    type Service = ClientTraceService<S>;
    fn layer(&self, inner: S) -> ClientTraceService<S> {
        ClientTraceService { inner }
    }
}

/// The service [`ClientTraceLayer`] makes.
#[derive(Clone, Debug)]
pub struct ClientTraceService<S> {
    inner: S,
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for ClientTraceService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    S::Error: std::error::Error + 'static,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let activity = start_client_activity(&method, &uri, request.headers_mut());
        #[cfg(feature = "connections")]
        let wait = activity.as_ref().and_then(|_| Wait::capture(&mut request));
        #[cfg(not(feature = "connections"))]
        let wait = None;
        let inner = {
            let _current = activity.as_ref().map(|a| a.enter());
            self.inner.call(request)
        };
        ClientFuture { inner, activity, wait }
    }
}

pin_project! {
    /// The response future of [`ClientTraceService`].
    pub struct ClientFuture<F> {
        #[pin]
        inner: F,
        activity: Option<Activity>,
        wait: Option<Wait>,
    }
}

#[cfg(feature = "connections")]
type Wait = crate::connect::WaitForConnection;
#[cfg(not(feature = "connections"))]
type Wait = std::convert::Infallible;

impl<F, ResBody, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: std::error::Error + 'static,
{
    type Output = Result<Response<TracedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Held to the end, so a stop below restores the thread's own current activity.
        let _current = this.activity.as_ref().map(|a| a.enter());
        let result = this.inner.poll(cx);
        #[cfg(feature = "connections")]
        if let (Some(wait), Some(activity)) = (this.wait.as_mut(), this.activity.as_ref()) {
            // Polled after the request, which is what hands the connection over.
            if wait.poll_connected(cx, activity).is_ready() {
                *this.wait = None;
            }
        }
        let result = std::task::ready!(result);
        let activity = this.activity.take();
        #[cfg(feature = "connections")]
        if let (Some(wait), Some(activity), Err(error)) = (this.wait.take(), activity.as_ref(), &result) {
            wait.failed(activity, error);
        }
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                if let Some(a) = &activity {
                    record_response(a, parts.status, parts.version);
                    publish_response(a, &parts);
                }
                Ok(Response::from_parts(parts, TracedBody::new(body, activity)))
            }
            Err(error) => {
                if let Some(a) = &activity {
                    record_error(a, &error);
                }
                Err(error)
            }
        })
    }
}

/// reqwest instrumentation through `reqwest-middleware`.
///
/// ```no_run
/// # async fn run() -> Result<(), reqwest_middleware::Error> {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(skein_http::SkeinMiddleware)
///     .build();
/// let response = client.get("http://localhost:8080/orders").send().await?;
/// # Ok(()) }
/// ```
#[cfg(feature = "reqwest")]
#[derive(Clone, Copy, Debug, Default)]
pub struct SkeinMiddleware;

#[cfg(feature = "reqwest")]
#[async_trait::async_trait]
impl reqwest_middleware::Middleware for SkeinMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        use skein::FutureExt;
        let uri: http::Uri = request.url().as_str().parse().unwrap_or_default();
        let method = request.method().clone();
        let activity = start_client_activity(&method, &uri, request.headers_mut());
        let result = next.run(request, extensions).with_activity(activity.as_ref()).await;
        let Some(activity) = activity else { return result };
        match result {
            Ok(response) => {
                record_response(&activity, response.status(), response.version());
                // End the activity with the body, as for the other clients.
                let response: http::Response<reqwest::Body> = response.into();
                let (parts, body) = response.into_parts();
                publish_response(&activity, &parts);
                let body = reqwest::Body::wrap(TracedBody::new(body, Some(activity)));
                Ok(reqwest::Response::from(http::Response::from_parts(parts, body)))
            }
            Err(error) => {
                match &error {
                    reqwest_middleware::Error::Reqwest(e) => record_error(&activity, e),
                    reqwest_middleware::Error::Middleware(e) => record_error(&activity, e.as_ref()),
                }
                Err(error)
            }
        }
    }
}
