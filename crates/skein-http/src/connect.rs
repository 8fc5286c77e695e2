//! Connection tracing: a connector for hyper-util's client that records how each connection
//! was made (DNS lookup, socket connect, TLS handshake) under an `HTTP connection_setup`
//! activity of its own trace, and a TLS acceptor for servers that terminate TLS themselves.
//!
//! Every source here is off unless a listener asks for it; the connector then costs nothing
//! beyond the connection itself.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use skein::{
    Activity, ActivityContext, ActivityKind, ActivityParent, ActivitySource, ActivityStartOptions, ActivityStatusCode,
    CurrentGuard, FutureExt, Tag, TagValue,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// `HTTP wait_for_connection` and `HTTP connection_setup` activities.
pub static CONNECTIONS_SOURCE: ActivitySource =
    ActivitySource::new("skein.http.connections").with_version(env!("CARGO_PKG_VERSION"));
/// `DNS lookup` activities.
pub static DNS_SOURCE: ActivitySource = ActivitySource::new("skein.net.dns").with_version(env!("CARGO_PKG_VERSION"));
/// `socket connect` activities.
pub static SOCKETS_SOURCE: ActivitySource =
    ActivitySource::new("skein.net.sockets").with_version(env!("CARGO_PKG_VERSION"));
/// `TLS client handshake` and `TLS server handshake` activities.
pub static TLS_SOURCE: ActivitySource = ActivitySource::new("skein.net.tls").with_version(env!("CARGO_PKG_VERSION"));

/// Starts an activity under `parent` without changing the thread's current activity: the
/// new activity belongs to a future, not to the code that happens to poll it.
pub(crate) fn start_detached(parent: Option<&Activity>, start: impl FnOnce() -> Option<Activity>) -> Option<Activity> {
    let _scope = CurrentGuard::new(parent);
    start()
}

/// Starts one step of the current activity's work (a lookup, a connect, a handshake) as its
/// child, without making the step current.
fn start_step(source: &'static ActivitySource, name: String, kind: ActivityKind, tags: Vec<Tag>) -> Option<Activity> {
    start_detached(Activity::current().as_ref(), || {
        source.start_activity_with(
            name,
            kind,
            ActivityStartOptions {
                tags,
                ..Default::default()
            },
        )
    })
}

/// Stops an activity without disturbing the thread's current activity.
pub(crate) fn stop_detached(activity: Option<Activity>) {
    if let Some(activity) = activity {
        let _scope = activity.enter();
        activity.stop();
    }
}

/// Marks `activity` failed with a snake_case `error.type`.
fn fail(activity: Option<&Activity>, kind: &'static str, message: &dyn fmt::Display) {
    if let Some(a) = activity {
        a.set_tag("error.type", kind);
        a.set_status(ActivityStatusCode::Error, Some(message.to_string()));
    }
}

/// The context of the `HTTP connection_setup` activity that made a connection. hyper-util's
/// client copies it into every response's extensions; [`crate::ClientTraceLayer`] links each
/// request to it.
#[derive(Clone, Debug)]
pub struct ConnectionSetup(pub ActivityContext);

/// A request's wait for its connection: the `HTTP wait_for_connection` activity is made once
/// hyper-util hands a pooled or new connection over (or the request fails first), backdated
/// to when the request started, so no activity exists for requests that never wait.
type ConnectedFuture = Pin<Box<dyn Future<Output = Option<Option<ConnectionSetup>>> + Send>>;

pub(crate) struct WaitForConnection {
    started: std::time::SystemTime,
    target: String,
    /// Resolves with the connection's setup (if traced), or `None` if no connection came.
    /// Taken once it resolved without a connection.
    connected: Option<ConnectedFuture>,
}

impl WaitForConnection {
    /// Asks hyper-util to report the request's connection (when connections are traced).
    pub(crate) fn capture<B>(request: &mut http::Request<B>) -> Option<Self> {
        if !CONNECTIONS_SOURCE.has_listeners() {
            return None;
        }
        let uri = request.uri();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let target = format!("{}:{port}", uri.host().unwrap_or_default());
        let mut capture = hyper_util::client::legacy::connect::capture_connection(request);
        Some(WaitForConnection {
            started: std::time::SystemTime::now(),
            target,
            connected: Some(Box::pin(async move {
                let connected = capture.wait_for_connection_metadata().await;
                connected.as_ref().map(|c| {
                    let mut extensions = http::Extensions::new();
                    c.get_extras(&mut extensions);
                    extensions.remove::<ConnectionSetup>()
                })
            })),
        })
    }

    /// Once the connection is known: records the wait and links `request` to the setup.
    pub(crate) fn poll_connected(&mut self, cx: &mut Context<'_>, request: &Activity) -> Poll<()> {
        // `None`: the request gave up before a connection came; `failed` records that.
        let Some(connected) = self.connected.as_mut() else {
            return Poll::Pending;
        };
        let Poll::Ready(setup) = connected.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        let Some(setup) = setup else {
            self.connected = None;
            return Poll::Pending;
        };
        let wait = self.start(request);
        if let Some(ConnectionSetup(setup)) = setup {
            request.add_link(skein::ActivityLink::new(setup));
        }
        stop_detached(wait);
        Poll::Ready(())
    }

    /// The request failed before it had a connection.
    pub(crate) fn failed(self, request: &Activity, error: &(dyn std::error::Error + 'static)) {
        let wait = self.start(request);
        fail(wait.as_ref(), crate::error_kind(error), &error);
        stop_detached(wait);
    }

    fn start(&self, request: &Activity) -> Option<Activity> {
        start_detached(Some(request), || {
            CONNECTIONS_SOURCE.start_activity_with(
                format!("HTTP wait_for_connection {}", self.target),
                ActivityKind::Internal,
                ActivityStartOptions {
                    start_time: Some(self.started),
                    ..Default::default()
                },
            )
        })
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub struct ConnectError {
    kind: &'static str,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConnectError {
    fn new(
        kind: &'static str,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ConnectError {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The snake_case `error.type`: `name_resolution_error`, `connection_error`,
    /// `secure_connection_error`, `timeout` or `invalid_url`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A connector for hyper-util's legacy `Client` that traces connection setup.
///
/// Plain `http` and `https` (rustls, the platform's trust store unless
/// [`with_tls_config`](Self::with_tls_config) says otherwise). With listeners on the
/// connection sources every new connection becomes an `HTTP connection_setup {host}:{port}`
/// activity starting a trace of its own, with `DNS lookup`, `socket connect` and
/// `TLS client handshake` children; with [`crate::ClientTraceLayer`] on top, each request gets
/// an `HTTP wait_for_connection` child and a link to the setup of the connection it used.
///
/// ```no_run
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use skein_http::{ClientTraceLayer, SkeinConnector};
/// use tower_layer::Layer;
///
/// let client = Client::builder(TokioExecutor::new())
///     .build::<_, http_body_util::Empty<bytes::Bytes>>(SkeinConnector::new());
/// let client = ClientTraceLayer.layer(client);
/// ```
#[derive(Clone)]
pub struct SkeinConnector {
    tls: Option<tokio_rustls::TlsConnector>,
    tls_error: Option<Arc<str>>,
    connect_timeout: Option<Duration>,
}

impl Default for SkeinConnector {
    fn default() -> Self {
        SkeinConnector::new()
    }
}

impl fmt::Debug for SkeinConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkeinConnector")
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl SkeinConnector {
    /// `http` and `https` with the platform's certificate verifier (and the process's rustls
    /// crypto provider), advertising HTTP/1.1 and HTTP/2.
    pub fn new() -> Self {
        use rustls_platform_verifier::ConfigVerifierExt;
        match rustls::ClientConfig::with_platform_verifier() {
            Ok(mut config) => {
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                SkeinConnector::with_tls_config(Arc::new(config))
            }
            // Reported on the first https connection, so plain http still works.
            Err(e) => SkeinConnector {
                tls: None,
                tls_error: Some(format!("no TLS configuration: {e}").into()),
                connect_timeout: None,
            },
        }
    }

    /// Uses `config` for `https` (its ALPN list decides whether HTTP/2 can be negotiated).
    pub fn with_tls_config(config: Arc<rustls::ClientConfig>) -> Self {
        SkeinConnector {
            tls: Some(tokio_rustls::TlsConnector::from(config)),
            tls_error: None,
            connect_timeout: None,
        }
    }

    /// Gives up on a connection (DNS, connect and handshake together) after `timeout`.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    async fn connect(self, uri: http::Uri) -> Result<SkeinStream, ConnectError> {
        let invalid = |what: &str| ConnectError {
            kind: "invalid_url",
            message: format!("cannot connect to {uri}: {what}"),
            source: None,
        };
        let secure = match uri.scheme_str() {
            Some("https") => true,
            Some("http") | None => false,
            Some(_) => return Err(invalid("unsupported scheme")),
        };
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let setup = start_detached(None, || {
            CONNECTIONS_SOURCE.start_activity_with(
                format!("HTTP connection_setup {host}:{port}"),
                ActivityKind::Internal,
                ActivityStartOptions {
                    parent: ActivityParent::Root,
                    tags: vec![
                        Tag::new("server.address", host.clone()),
                        Tag::new("server.port", i64::from(port)),
                        Tag::new("url.scheme", if secure { "https" } else { "http" }),
                    ],
                    ..Default::default()
                },
            )
        });
        let work = self.establish(host, port, secure, setup.as_ref());
        let work = work.with_activity(setup.as_ref());
        let result = match self.connect_timeout {
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(result) => result,
                Err(elapsed) => Err(ConnectError::new(
                    "timeout",
                    format!("connecting to {uri} took longer than {limit:?}"),
                    elapsed,
                )),
            },
            None => work.await,
        };
        match result {
            Ok(mut stream) => {
                stream.setup = setup.as_ref().map(|a| a.context());
                stop_detached(setup);
                Ok(stream)
            }
            Err(e) => {
                fail(setup.as_ref(), e.kind, &e);
                stop_detached(setup);
                Err(e)
            }
        }
    }

    async fn establish(
        &self,
        host: String,
        port: u16,
        secure: bool,
        setup: Option<&Activity>,
    ) -> Result<SkeinStream, ConnectError> {
        let addresses = resolve(&host, port).await?;
        let tcp = connect_any(&addresses).await?;
        if let (Some(setup), Ok(peer)) = (setup, tcp.peer_addr()) {
            setup.set_tag("network.peer.address", peer.ip().to_string());
        }
        // Small requests should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        if !secure {
            return Ok(SkeinStream::new(Transport::Plain(tcp), false));
        }
        let Some(connector) = &self.tls else {
            let message = self.tls_error.as_deref().unwrap_or("no TLS configuration");
            return Err(ConnectError::new(
                "secure_connection_error",
                message,
                io::Error::other(message.to_owned()),
            ));
        };
        let tls = client_handshake(connector, &host, tcp).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok(SkeinStream::new(Transport::ClientTls(Box::new(tls)), h2))
    }
}

/// `DNS lookup {host}` (skipped for IP literals, as there is nothing to look up).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = start_step(
        &DNS_SOURCE,
        format!("DNS lookup {host}"),
        ActivityKind::Internal,
        vec![Tag::new("dns.question.name", host.to_owned())],
    );
    let result = tokio::net::lookup_host((host, port)).await;
    let result = match result {
        Ok(found) => {
            let found: Vec<SocketAddr> = found.collect();
            if found.is_empty() {
                Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"))
            } else {
                Ok(found)
            }
        }
        Err(e) => Err(e),
    };
    let result = match result {
        Ok(found) => {
            if let Some(a) = &lookup {
                let answers = found.iter().map(|s| s.ip().to_string().into()).collect();
                a.set_tag("dns.answers", TagValue::StrArray(answers));
            }
            Ok(found)
        }
        Err(e) => {
            let error = ConnectError::new("name_resolution_error", format!("DNS lookup of {host} failed: {e}"), e);
            fail(lookup.as_ref(), error.kind, &error);
            Err(error)
        }
    };
    stop_detached(lookup);
    result
}

/// `socket connect {addr}:{port}` for each address in turn until one answers.
async fn connect_any(addresses: &[SocketAddr]) -> Result<TcpStream, ConnectError> {
    let mut last = None;
    for address in addresses {
        let attempt = start_step(
            &SOCKETS_SOURCE,
            format!("socket connect {}:{}", address.ip(), address.port()),
            ActivityKind::Client,
            vec![
                Tag::new("network.peer.address", address.ip().to_string()),
                Tag::new("network.peer.port", i64::from(address.port())),
                Tag::new("network.type", if address.is_ipv4() { "ipv4" } else { "ipv6" }),
                Tag::new("network.transport", "tcp"),
            ],
        );
        match TcpStream::connect(address).await {
            Ok(stream) => {
                stop_detached(attempt);
                return Ok(stream);
            }
            Err(e) => {
                let kind = if e.kind() == io::ErrorKind::TimedOut {
                    "timeout"
                } else {
                    "connection_error"
                };
                let error = ConnectError::new(kind, format!("connecting to {address} failed: {e}"), e);
                fail(attempt.as_ref(), error.kind, &error);
                stop_detached(attempt);
                last = Some(error);
            }
        }
    }
    Err(last.unwrap_or_else(|| ConnectError {
        kind: "connection_error",
        message: "no address to connect to".into(),
        source: None,
    }))
}

/// `tls.protocol.name` and `tls.protocol.version` as OpenTelemetry writes them (`1.2`, `1.3`).
fn record_tls_protocol(activity: &Activity, version: Option<rustls::ProtocolVersion>) {
    activity.set_tag("tls.protocol.name", "tls");
    let version = match version {
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        _ => return,
    };
    activity.set_tag("tls.protocol.version", version);
}

/// `TLS client handshake {host}`.
async fn client_handshake(
    connector: &tokio_rustls::TlsConnector,
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        ConnectError::new(
            "secure_connection_error",
            format!("{host} is not a valid TLS server name"),
            e,
        )
    })?;
    let handshake = start_step(
        &TLS_SOURCE,
        format!("TLS client handshake {host}"),
        ActivityKind::Internal,
        vec![Tag::new("server.address", host.to_owned())],
    );
    let result = connector.connect(name, tcp).await;
    let result = match result {
        Ok(tls) => {
            if let Some(a) = &handshake {
                record_tls_protocol(a, tls.get_ref().1.protocol_version());
            }
            Ok(tls)
        }
        Err(e) => {
            let error = ConnectError::new(
                "secure_connection_error",
                format!("TLS handshake with {host} failed: {e}"),
                e,
            );
            fail(handshake.as_ref(), error.kind, &error);
            Err(error)
        }
    };
    stop_detached(handshake);
    result
}

/// Accepts a TLS connection as a server, recording a `TLS server handshake` activity (a trace
/// of its own: no request exists yet).
///
/// ```no_run
/// # async fn run(config: std::sync::Arc<rustls::ServerConfig>) -> std::io::Result<()> {
/// let acceptor = tokio_rustls::TlsAcceptor::from(config);
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// let (tcp, _) = listener.accept().await?;
/// let tls = skein_http::accept_tls(&acceptor, tcp).await?;
/// # Ok(()) }
/// ```
pub async fn accept_tls(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = tcp.peer_addr().ok();
    let handshake = start_detached(None, || {
        let mut tags = Vec::new();
        if let Some(peer) = peer {
            tags.push(Tag::new("client.address", peer.ip().to_string()));
            tags.push(Tag::new("client.port", i64::from(peer.port())));
        }
        TLS_SOURCE.start_activity_with(
            "TLS server handshake",
            ActivityKind::Internal,
            ActivityStartOptions {
                parent: ActivityParent::Root,
                tags,
                ..Default::default()
            },
        )
    });
    let result = acceptor.accept(tcp).await;
    match &result {
        Ok(tls) => {
            if let Some(a) = &handshake {
                let connection = tls.get_ref().1;
                if let Some(name) = connection.server_name() {
                    a.set_tag("server.address", name.to_owned());
                }
                record_tls_protocol(a, connection.protocol_version());
            }
        }
        Err(e) => fail(handshake.as_ref(), "secure_connection_error", e),
    }
    stop_detached(handshake);
    result
}

/// Serves `service` (an axum `Router` or any tower HTTP service) over TLS on `listener`: each
/// connection's handshake is traced by [`accept_tls`], then served with HTTP/1.1 or HTTP/2 as
/// negotiated. Runs until the listener fails; a connection that fails its handshake is dropped.
pub async fn serve_tls<S, B>(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>, service: S)
where
    S: tower_service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            // Out of file descriptors and the like: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let Ok(tls) = accept_tls(&acceptor, tcp).await else {
                return;
            };
            let info = crate::ConnectionInfo {
                peer: Some(peer),
                tls: true,
            };
            let service = hyper_util::service::TowerToHyperService::new(WithConnectionInfo { inner: service, info });
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

/// Adds the connection's [`crate::ConnectionInfo`] to each request.
#[derive(Clone)]
struct WithConnectionInfo<S> {
    inner: S,
    info: crate::ConnectionInfo,
}

impl<S, B> tower_service::Service<http::Request<B>> for WithConnectionInfo<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> S::Future {
        request.extensions_mut().insert(self.info);
        self.inner.call(request)
    }
}

enum Transport {
    Plain(TcpStream),
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A connection made by [`SkeinConnector`].
pub struct SkeinStream {
    io: TokioIo<Transport>,
    h2: bool,
    setup: Option<ActivityContext>,
}

impl fmt::Debug for SkeinStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkeinStream")
            .field("tls", &matches!(self.io.inner(), Transport::ClientTls(_)))
            .field("h2", &self.h2)
            .field("setup", &self.setup)
            .finish()
    }
}

impl SkeinStream {
    fn new(transport: Transport, h2: bool) -> Self {
        SkeinStream {
            io: TokioIo::new(transport),
            h2,
            setup: None,
        }
    }
}

impl Connection for SkeinStream {
    fn connected(&self) -> Connected {
        let mut connected = Connected::new();
        if let Some(setup) = &self.setup {
            connected = connected.extra(ConnectionSetup(setup.clone()));
        }
        if self.h2 {
            connected = connected.negotiated_h2();
        }
        connected
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::ClientTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::ClientTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::ClientTls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::ClientTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::ClientTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::ClientTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl hyper::rt::Read for SkeinStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SkeinStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl tower_service::Service<http::Uri> for SkeinConnector {
    type Response = SkeinStream;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<SkeinStream, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}
