//! Serving the collector's listeners so that no client can take it offline: a cap on open
//! connections per listener, a deadline for a new connection's first bytes (HTTP/1 request
//! line or HTTP/2 preface), a header-read timeout that also closes idle keep-alive
//! connections, HTTP/2 keep-alive pings, and a bound on the whole of an ingest request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// How much of each listener one client population may hold.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Open connections per listener at most; beyond, new ones are closed at once.
    pub max_connections: usize,
    /// A new connection must send its first bytes within this, and an HTTP/1 request its
    /// whole head (this also closes keep-alive connections idle that long).
    pub header_read_timeout: Duration,
    /// An ingest request must be received and answered within this.
    pub request_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// An accepted connection holding its slot under the listener's cap, with a deadline for its
/// first bytes.
pub(crate) struct Admitted {
    stream: TcpStream,
    first_bytes: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Admitted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.first_bytes = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.first_bytes.as_mut().map(|deadline| deadline.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request within the header-read timeout",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Admitted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// Accepts connections within the cap. Failures to accept (out of file descriptors, say)
/// are waited out rather than ending the listener.
pub(crate) struct Gate {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    first_bytes: Duration,
}

impl Gate {
    pub(crate) fn new(listener: TcpListener, limits: &ConnectionLimits) -> Gate {
        Gate {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            first_bytes: limits.header_read_timeout,
        }
    }

    pub(crate) async fn accept(&self) -> Admitted {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // EMFILE and friends: give the process a moment to close something.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Over the cap the connection is closed at once: its client (an OTLP exporter)
            // retries, and the slots held by others run out with the header-read timeout.
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            return Admitted {
                stream,
                first_bytes: Some(Box::pin(tokio::time::sleep(self.first_bytes))),
                _slot: slot,
            };
        }
    }

    /// The accepted connections as a stream (for tonic).
    pub(crate) fn incoming(self) -> impl futures_core::Stream<Item = io::Result<Admitted>> {
        futures_util::stream::unfold(self, |gate| async move {
            let admitted = gate.accept().await;
            Some((Ok(admitted), gate))
        })
    }
}

/// Serves `router` on `gate` (HTTP/1 and HTTP/2) until `stop` resolves, then lets the open
/// connections finish (the caller bounds how long).
pub(crate) async fn serve(gate: Gate, router: Router, limits: &ConnectionLimits, stop: impl Future<Output = ()>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    // Connection tasks belong to this one: when it is aborted (the collector's shutdown grace
    // period is over), so are they.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let admitted = tokio::select! {
            admitted = gate.accept() => admitted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(admitted), service);
        let connection = graceful.watch(connection.into_owned());
        connections.spawn(async move {
            let _ = connection.await;
        });
    }
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}
