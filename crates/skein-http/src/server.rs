//! The server side: a tower layer that wraps each request in a Server activity.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use skein::propagation::{self, DistributedContextPropagator};
use skein::{
    Activity, ActivityKind, ActivitySource, ActivityStatusCode, BaggageTags, CurrentGuard, ListenerRegistration, Tag,
};

/// The source of server request activities.
pub static SERVER_SOURCE: ActivitySource =
    ActivitySource::new("skein.http.server").with_version(env!("CARGO_PKG_VERSION"));

type Filter = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;
type RequestHook = Arc<dyn Fn(&Activity, &http::request::Parts) + Send + Sync>;
type ResponseHook = Arc<dyn Fn(&Activity, &http::response::Parts) + Send + Sync>;

/// Traces every request as a Server activity (see the crate documentation).
///
/// **Client address.** `client.address` and `client.port` name the client behind any proxies
/// (RFC 7239 `Forwarded` `for=`, else the first `X-Forwarded-For` entry), else the
/// connection's peer; `network.peer.address`/`.port` name the peer. The peer is known when
/// the server puts it in the request: [`crate::serve_tls`] does ([`ConnectionInfo`]), and so
/// does axum when served with
/// `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())`. A plain
/// `axum::serve(listener, app)` keeps the peer to itself (it reaches only the make-service,
/// not middleware), so there only the proxy headers can name the client.
#[derive(Clone, Default)]
pub struct TraceLayer {
    propagator: Option<Arc<dyn DistributedContextPropagator>>,
    filter: Option<Filter>,
    on_request: Option<RequestHook>,
    on_response: Option<ResponseHook>,
    baggage_tags: Option<Arc<BaggageTagging>>,
}

/// The baggage entries copied onto server activities, and the listener copying them onto
/// their children (removed when the last clone of the layer goes).
struct BaggageTagging {
    tags: BaggageTags,
    _children: ListenerRegistration,
}

impl TraceLayer {
    /// A layer using the process-wide propagator.
    pub fn new() -> Self {
        TraceLayer::default()
    }

    /// Uses `propagator` instead of the process-wide one (e.g. a pass-through proxy).
    pub fn with_propagator(mut self, propagator: impl DistributedContextPropagator + 'static) -> Self {
        self.propagator = Some(Arc::new(propagator));
        self
    }

    /// Traces only the requests `filter` accepts (e.g. not health checks).
    pub fn with_filter(mut self, filter: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Called with each request's activity before the handler runs, to add tags.
    pub fn on_request(mut self, hook: impl Fn(&Activity, &http::request::Parts) + Send + Sync + 'static) -> Self {
        self.on_request = Some(Arc::new(hook));
        self
    }

    /// Copies the chosen baggage entries of each request onto its server activity and the
    /// activities started under it, as tags (OpenTelemetry's BaggageSpanProcessor), so they
    /// can be searched in every service the request reached:
    /// `TraceLayer::new().with_baggage_tags(BaggageTags::keys(["customer.tier"]))`.
    ///
    /// The children are tagged by a [`BaggageTags`] listener that this adds for as long as the
    /// layer lives; it tags every activity started while such baggage is in effect (client
    /// calls the handler makes included), and never changes what is sampled.
    pub fn with_baggage_tags(mut self, tags: BaggageTags) -> Self {
        let children = ActivitySource::add_activity_listener(tags.clone());
        self.baggage_tags = Some(Arc::new(BaggageTagging {
            tags,
            _children: children,
        }));
        self
    }

    /// Called with each response, to add tags.
    pub fn on_response(mut self, hook: impl Fn(&Activity, &http::response::Parts) + Send + Sync + 'static) -> Self {
        self.on_response = Some(Arc::new(hook));
        self
    }
}

impl<S> tower_layer::Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService {
            inner,
            config: self.clone(),
        }
    }
}

/// The service [`TraceLayer`] makes.
#[derive(Clone)]
pub struct TraceService<S> {
    inner: S,
    config: TraceLayer,
}

/// `server.address` and `server.port` from the `Host` header, else the request URI.
fn server_address(parts: &http::request::Parts) -> Option<(String, Option<u16>)> {
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| parts.uri.authority().cloned())?;
    Some((authority.host().to_owned(), authority.port_u16()))
}

/// What the server knows about the connection a request came on. [`crate::serve_tls`] adds it
/// to every request; a server of your own can insert it into the request extensions so
/// `url.scheme`, `client.*` and `network.peer.*` are right. axum's `ConnectInfo<SocketAddr>`
/// is read too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: Option<std::net::SocketAddr>,
    /// True if the server terminated TLS for this connection.
    pub tls: bool,
}

#[cfg(feature = "axum")]
fn connect_info(parts: &http::request::Parts) -> Option<std::net::SocketAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

#[cfg(not(feature = "axum"))]
fn connect_info(_: &http::request::Parts) -> Option<std::net::SocketAddr> {
    None
}

#[cfg(feature = "axum")]
fn matched_route(parts: &http::request::Parts) -> Option<String> {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
}

#[cfg(not(feature = "axum"))]
fn matched_route(_: &http::request::Parts) -> Option<String> {
    None
}

/// Starts the server activity for a request (`None` when no listener wants it).
fn start(config: &TraceLayer, parts: &http::request::Parts) -> Option<Activity> {
    if !SERVER_SOURCE.has_listeners() {
        return None;
    }
    let incoming = match &config.propagator {
        Some(propagator) => propagator.extract(&parts.headers),
        None => propagation::current().extract(&parts.headers),
    };
    let method = known_method_tag(&parts.method);
    // The tags samplers may decide on (room for the ones added once it is recorded, too).
    let mut tags = Vec::with_capacity(12);
    tags.push(Tag::new("http.request.method", method.0));
    if let Some(original) = &method.1 {
        tags.push(Tag::new("http.request.method_original", original.clone()));
    }
    tags.push(Tag::new("url.path", parts.uri.path().to_owned()));
    let connection = parts.extensions.get::<ConnectionInfo>();
    let scheme: Cow<'static, str> = match parts.uri.scheme_str() {
        Some("https") => "https".into(),
        Some("http") => "http".into(),
        Some(other) => other.to_owned().into(),
        None if connection.is_some_and(|c| c.tls) => "https".into(),
        None => "http".into(),
    };
    tags.push(Tag::new("url.scheme", scheme));
    if let Some((host, port)) = server_address(parts) {
        tags.push(Tag::new("server.address", host));
        if let Some(port) = port {
            tags.push(Tag::new("server.port", i64::from(port)));
        }
    }
    let mut options = incoming.start_options();
    options.tags = tags;
    let name = match method.1 {
        Some(_) => "HTTP",
        None => method.0,
    };
    let activity = SERVER_SOURCE.start_activity_with(name, ActivityKind::Server, options)?;
    incoming.apply_baggage(&activity);
    if let Some(tagging) = &config.baggage_tags {
        tagging.tags.apply(&activity);
    }
    if activity.is_all_data_requested() {
        // New keys: added under one lock, without looking for existing ones.
        let mut more = Vec::with_capacity(4);
        if let Some(agent) = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            more.push(Tag::new("user_agent.original", agent.to_owned()));
        }
        if let Some(version) = crate::protocol_version(parts.version) {
            more.push(Tag::new("network.protocol.version", version));
        }
        // The socket's peer (with `serve_tls`, or axum's `ConnectInfo<SocketAddr>`), and the
        // client behind any proxies (`Forwarded`, `X-Forwarded-For`), which
        // `client.address` names when it is known.
        let peer = connection.and_then(|c| c.peer).or_else(|| connect_info(parts));
        if let Some(peer) = peer {
            more.push(Tag::new("network.peer.address", peer.ip().to_string()));
            more.push(Tag::new("network.peer.port", i64::from(peer.port())));
        }
        match crate::forwarded::original_client(&parts.headers) {
            Some((address, port)) => {
                more.push(Tag::new("client.address", address.to_string()));
                if let Some(port) = port {
                    more.push(Tag::new("client.port", i64::from(port)));
                }
            }
            None => {
                if let Some(peer) = peer {
                    more.push(Tag::new("client.address", peer.ip().to_string()));
                    more.push(Tag::new("client.port", i64::from(peer.port())));
                }
            }
        }
        if let Some(route) = matched_route(parts) {
            activity.set_display_name(format!("{name} {route}"));
            more.push(Tag::new("http.route", route));
        }
        activity.add_tags(more);
        if let Some(hook) = &config.on_request {
            hook(&activity, parts);
        }
    }
    // Still current here (start made it so): subscribers may enrich it.
    crate::diagnostics::publish(crate::diagnostics::SERVER_REQUEST, parts);
    Some(activity)
}

fn known_method_tag(method: &http::Method) -> (&'static str, Option<String>) {
    match crate::known_method(method) {
        Some(m) => (m, None),
        None => ("_OTHER", Some(method.as_str().to_owned())),
    }
}

/// Marks a failed request: `error.type` and Error status (only 5xx count for servers).
fn record_error(activity: &Activity, error_type: impl Into<String>, description: Option<String>) {
    activity.set_tag("error.type", error_type.into());
    activity.set_status(ActivityStatusCode::Error, description);
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for TraceService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let traced = self.config.filter.as_ref().is_none_or(|f| f(&parts));
        let outer = Activity::current();
        let activity = if traced { start(&self.config, &parts) } else { None };
        let request = Request::from_parts(parts, body);
        // `call` itself may run part of the handler: it runs with the activity current (as
        // `start` left it); then the activity lives in the future, not on this thread.
        let inner = self.inner.call(request);
        if activity.is_some() {
            Activity::set_current(outer.as_ref());
        }
        ResponseFuture {
            inner,
            activity,
            on_response: self.config.on_response.clone(),
        }
    }
}

pin_project! {
    /// The response future of [`TraceService`]: the handler runs with the request's activity
    /// current.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        activity: Option<Activity>,
        on_response: Option<ResponseHook>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(activity) = this.activity.take() {
                // Dropped before the handler answered: a panic unwinding, or a cancellation.
                let kind = if std::thread::panicking() { "panic" } else { "cancelled" };
                record_error(&activity, kind, Some(format!("the request handler {kind}")));
            }
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<TracedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // Held to the end, so a stop below restores the thread's own current activity.
        let _current = this.activity.as_ref().map(|a| a.enter());
        let result = std::task::ready!(this.inner.poll(cx));
        let activity = this.activity.take();
        Poll::Ready(match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                if let Some(activity) = &activity {
                    let status = parts.status.as_u16();
                    activity.add_tag("http.response.status_code", i64::from(status));
                    if status >= 500 {
                        record_error(activity, status.to_string(), None);
                    }
                    if let Some(hook) = this.on_response {
                        hook(activity, &parts);
                    }
                    crate::diagnostics::publish(crate::diagnostics::SERVER_RESPONSE, &parts);
                }
                Ok(Response::from_parts(parts, TracedBody::new(body, activity)))
            }
            Err(error) => {
                if let Some(activity) = &activity {
                    record_error(activity, "_OTHER", Some(error.to_string()));
                }
                Err(error)
            }
        })
    }
}

pin_project! {
    /// A response body that keeps the request's activity running (and current while it is
    /// polled) until the last frame is sent, then stops it.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        activity: Option<Activity>,
    }
}

impl<B> TracedBody<B> {
    /// `inner`, keeping `activity` running until its last frame.
    pub fn new(inner: B, activity: Option<Activity>) -> Self {
        TracedBody { inner, activity }
    }
}

impl<B: Body> Body for TracedBody<B>
where
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        // Held to the end, so stopping below restores the thread's own current activity.
        let _current: Option<CurrentGuard> = this.activity.as_ref().map(|a| a.enter());
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            None => drop(this.activity.take()),
            Some(Err(error)) => {
                if let Some(activity) = this.activity.take() {
                    record_error(&activity, "response_body_error", Some(error.to_string()));
                }
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
