//! The cameras' transport: one accept task per listener, one task per connection, TLS when
//! configured, latency, and the transport faults (slow, hang, reset mid-response).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::camera::{Arrival, Camera, Settings};
use super::http::{self, HttpError, Persist, Response};
use super::spec::Fault;

/// What every camera task shares.
pub(crate) struct Shared {
    pub settings: Settings,
    pub latency: Duration,
    pub tls: Option<TlsAcceptor>,
    pub stop: watch::Receiver<bool>,
}

/// Held by every task; the fleet is fully stopped once all clones are dropped.
pub(crate) type DoneToken = mpsc::Sender<()>;

/// Resolves once the fleet is stopping (or its owner is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Accepts connections on a plain-HTTP listener (the control API, the Equinix mock) until
/// `stop`, each served by `serve` on its own task that `stop` also ends. An accept error (out
/// of file descriptors, say) pauses briefly rather than spinning.
pub(crate) async fn accept_plain<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    done: DoneToken,
    serve: F,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let connection = serve(tcp);
        let (mut stop, done) = (stop.clone(), done.clone());
        tokio::spawn(async move {
            let _done = done;
            tokio::select! {
                _ = stopped(&mut stop) => {}
                _ = connection => {}
            }
        });
    }
}

/// Answers the requests of one plain-HTTP connection in turn until the client closes it or
/// asks to; a request refused while being read gets its status and the connection closes.
pub(crate) async fn answer_requests<F, Fut>(mut tcp: TcpStream, buffer: usize, mut answer: F)
where
    F: FnMut(http::Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let _ = tcp.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(buffer);
    loop {
        let req = match http::read_request(&mut tcp, &mut buf).await {
            Ok(Some(req)) => req,
            Ok(None) | Err(HttpError::Disconnected) => return,
            Err(HttpError::Reject(status)) => {
                let _ = Response::plain_status(status)
                    .write_to(&mut tcp, Persist::Close)
                    .await;
                return;
            }
        };
        let persist = req.persist();
        let response = answer(req).await;
        if response.write_to(&mut tcp, persist).await.is_err() || persist == Persist::Close {
            let _ = tcp.shutdown().await;
            return;
        }
    }
}

/// A connection the cameras can serve and, for faults, reset.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

pub(crate) fn spawn_camera(
    listener: TcpListener,
    camera: Arc<Camera>,
    shared: Arc<Shared>,
    done: DoneToken,
) {
    tokio::spawn(accept_loop(listener, camera, shared, done));
}

async fn accept_loop(
    listener: TcpListener,
    camera: Arc<Camera>,
    shared: Arc<Shared>,
    done: DoneToken,
) {
    let mut stop = shared.stop.clone();
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _)) => {
                tokio::spawn(connection(
                    tcp,
                    camera.clone(),
                    shared.clone(),
                    done.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors, most likely: let connections drain, then go on.
                tracing::debug!(address = %camera.address, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn connection(tcp: TcpStream, camera: Arc<Camera>, shared: Arc<Shared>, _done: DoneToken) {
    let mut stop = shared.stop.clone();
    let _ = tcp.set_nodelay(true);
    let serving = async {
        match &shared.tls {
            None => serve(tcp, &camera, &shared).await,
            Some(acceptor) => {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls, &camera, &shared).await;
                }
            }
        }
    };
    tokio::select! {
        _ = stopped(&mut stop) => {}
        _ = serving => {}
    }
}

/// Answers requests on one connection until it closes or a fault ends it.
async fn serve<T: Transport>(mut io: T, camera: &Camera, shared: &Shared) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let req = match http::read_request(&mut io, &mut buf).await {
            Ok(Some(req)) => req,
            Ok(None) | Err(HttpError::Disconnected) => return,
            Err(HttpError::Reject(status)) => {
                camera.count_request();
                let _ = Response::plain_status(status)
                    .write_to(&mut io, Persist::Close)
                    .await;
                return;
            }
        };
        let arrival = Arrival::now(&shared.settings.clock);
        camera.count_request();
        if camera.spec.fault == Fault::Hang {
            return drain(io).await;
        }
        pause(camera, shared).await;
        let response = super::router::respond(camera, &shared.settings, &req, arrival);
        if response.reset_midway {
            return reset_midway(io, &response).await;
        }
        if response.write_to(&mut io, req.persist()).await.is_err() || !req.keep_alive {
            let _ = io.shutdown().await;
            return;
        }
    }
}

async fn pause(camera: &Camera, shared: &Shared) {
    let mut delay = shared.latency;
    if camera.spec.fault == Fault::Slow {
        delay += camera.slow_delay;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Never answers; keeps reading so the socket is released as soon as the client gives up.
async fn drain<T: Transport>(mut io: T) {
    let mut scratch = [0u8; 1024];
    while matches!(io.read(&mut scratch).await, Ok(n) if n > 0) {}
}

/// Sends the head and half the body, then resets the connection (SO_LINGER 0, close).
async fn reset_midway<T: Transport>(mut io: T, response: &Response) {
    let cut = response.body.len() / 2;
    let _ = io.write_all(&response.head_bytes(Persist::KeepAlive)).await;
    let _ = io.write_all(&response.body[..cut]).await;
    let _ = io.flush().await;
    let _ = io.tcp().set_zero_linger();
    drop(io);
}
