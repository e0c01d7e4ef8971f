//! The control API: plain HTTP JSON with every camera's SSH state, request count and writes
//! (`GET /devices`, `GET /devices/{index}`).

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::camera::Camera;
use super::http::{self, HttpError, Request, Response};
use super::server::{stopped, DoneToken, Shared};

pub fn spawn(
    listener: TcpListener,
    cameras: Arc<[Arc<Camera>]>,
    shared: Arc<Shared>,
    done: DoneToken,
) {
    tokio::spawn(async move {
        let mut stop = shared.stop.clone();
        loop {
            let accepted = tokio::select! {
                _ = stopped(&mut stop) => return,
                accepted = listener.accept() => accepted,
            };
            if let Ok((tcp, _)) = accepted {
                let (cameras, shared, done) = (cameras.clone(), shared.clone(), done.clone());
                tokio::spawn(async move {
                    let _done = done;
                    let mut stop = shared.stop.clone();
                    tokio::select! {
                        _ = stopped(&mut stop) => {}
                        _ = serve(tcp, &cameras) => {}
                    }
                });
            }
        }
    });
}

async fn serve(mut tcp: TcpStream, cameras: &[Arc<Camera>]) {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let req = match http::read_request(&mut tcp, &mut buf).await {
            Ok(Some(req)) => req,
            Ok(None) | Err(HttpError::Disconnected) => return,
            Err(HttpError::Reject(status)) => {
                let _ = Response::plain_status(status)
                    .write_to(&mut tcp, false)
                    .await;
                return;
            }
        };
        let response = answer(&req, cameras);
        if response.write_to(&mut tcp, req.keep_alive).await.is_err() || !req.keep_alive {
            let _ = tcp.shutdown().await;
            return;
        }
    }
}

fn answer(req: &Request, cameras: &[Arc<Camera>]) -> Response {
    if req.method != "GET" {
        return Response::plain_status(405).with_header("Allow", "GET");
    }
    let path = req.path().trim_end_matches('/');
    let body = match path.strip_prefix("/devices") {
        Some("") => {
            let all: Vec<_> = cameras.iter().map(|c| c.snapshot()).collect();
            serde_json::to_vec(&all)
        }
        Some(rest) => match rest.strip_prefix('/').and_then(|i| i.parse::<usize>().ok()) {
            Some(i) if i < cameras.len() => serde_json::to_vec(&cameras[i].snapshot()),
            _ => return Response::plain_status(404),
        },
        None => return Response::plain_status(404),
    };
    match body {
        Ok(body) => Response::json(200, body),
        Err(_) => Response::plain_status(500),
    }
}
