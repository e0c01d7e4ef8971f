//! The control API: plain HTTP JSON with every camera's SSH state, request count and writes
//! (`GET /devices`, `GET /devices/{index}`), served from a fleet's own cameras or relayed
//! from worker processes.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::camera::Camera;
use super::http::{Request, Response};
use super::ports;
use super::server::{accept_plain, answer_requests, DoneToken};

/// Where the answers come from; routing and HTTP stay here.
pub(crate) trait DeviceSource: Send + Sync + 'static {
    /// `GET /devices`: the JSON array of every camera's snapshot, in fleet order.
    fn all(&self) -> impl Future<Output = Response> + Send;
    /// `GET /devices/{index}`: one camera's snapshot, or 404.
    fn one(&self, index: usize) -> impl Future<Output = Response> + Send;
}

/// The cameras of this process.
pub(crate) struct Cameras(pub Arc<[Arc<Camera>]>);

impl DeviceSource for Cameras {
    async fn all(&self) -> Response {
        let all: Vec<_> = self.0.iter().map(|c| c.snapshot()).collect();
        json(serde_json::to_vec(&all))
    }

    async fn one(&self, index: usize) -> Response {
        match self.0.get(index) {
            Some(cam) => json(serde_json::to_vec(&cam.snapshot())),
            None => Response::plain_status(404),
        }
    }
}

fn json(body: serde_json::Result<Vec<u8>>) -> Response {
    match body {
        Ok(body) => Response::json(200, body),
        Err(_) => Response::plain_status(500),
    }
}

/// Binds `addr` and serves `source` there until `stop`; returns the API's base URL.
pub(crate) async fn serve<S: DeviceSource>(
    addr: SocketAddr,
    source: Arc<S>,
    stop: watch::Receiver<bool>,
    done: DoneToken,
) -> io::Result<String> {
    let listener = bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("binding the control API on {addr}: {e}")))?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(accept_loop(listener, source, stop, done));
    Ok(url)
}

/// `127.0.0.1:0` (what the tests, the workers and most users ask for) takes its port from a
/// port plan, robust where the kernel's ephemeral range is crowded; other addresses bind as is.
async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    if addr != SocketAddr::from((Ipv4Addr::LOCALHOST, 0)) {
        return TcpListener::bind(addr).await;
    }
    let listener = ports::bind_loopback_listener()?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn accept_loop<S: DeviceSource>(
    listener: TcpListener,
    source: Arc<S>,
    stop: watch::Receiver<bool>,
    done: DoneToken,
) {
    accept_plain(listener, stop, done, move |tcp| {
        let source = source.clone();
        answer_requests(tcp, 1024, move |req| {
            let source = source.clone();
            async move { answer(&req, &*source).await }
        })
    })
    .await;
}

async fn answer<S: DeviceSource>(req: &Request, source: &S) -> Response {
    if req.method != "GET" {
        return Response::plain_status(405).with_header("Allow", "GET");
    }
    let path = req.path().trim_end_matches('/');
    match path.strip_prefix("/devices") {
        Some("") => source.all().await,
        Some(rest) => match rest.strip_prefix('/').and_then(|i| i.parse::<usize>().ok()) {
            Some(i) => source.one(i).await,
            None => Response::plain_status(404),
        },
        None => Response::plain_status(404),
    }
}
