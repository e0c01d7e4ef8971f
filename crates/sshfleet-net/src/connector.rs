//! The TCP + TLS connector behind the pooled client: bounded connect and handshake, pin
//! checks, and the peer certificate fingerprint handed to each response.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::auth::Transport;
use super::tls::{Fingerprint, PeerCheck, TlsConfigs};

/// Why a connection could not be made. Carried through hyper-util's error as its source.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection refused")]
    Refused,
    #[error("cannot resolve host {0}")]
    Dns(String),
    #[error("host unreachable: {0}")]
    Unreachable(io::Error),
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("certificate {0} matches no pin for this device")]
    PinMismatch(Fingerprint),
    #[error("invalid device URL: {0}")]
    BadUri(String),
}

/// Connects to devices; cheap to clone (one per pooled client).
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Arc<TlsConfigs>,
    connect_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(tls: Arc<TlsConfigs>, connect_timeout: Duration) -> Connector {
        Connector {
            tls,
            connect_timeout,
        }
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<DeviceStream>, ConnectError> {
        let host = uri
            .host()
            .ok_or_else(|| ConnectError::BadUri(uri.to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let transport = if uri.scheme_str() == Some("https") {
            Transport::Tls
        } else {
            Transport::Plain
        };
        let port = uri.port_u16().unwrap_or(match transport {
            Transport::Tls => 443,
            Transport::Plain => 80,
        });
        let deadline = self.connect_timeout;
        let stream = tokio::time::timeout(deadline, self.handshake(host, port, transport))
            .await
            .map_err(|_| ConnectError::Timeout(deadline))??;
        Ok(TokioIo::new(stream))
    }

    async fn handshake(
        &self,
        host: &str,
        port: u16,
        transport: Transport,
    ) -> Result<DeviceStream, ConnectError> {
        let tcp = tcp_connect(host, port).await?;
        // Small request/response exchanges: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        if transport == Transport::Plain {
            return Ok(DeviceStream::Plain(tcp));
        }
        let authority = authority(host, port);
        let (config, check) = self.tls.for_authority(&authority);
        let name = server_name(host)?;
        let stream = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectError::Tls(tls_reason(&e)))?;
        let fingerprint = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| Fingerprint::of(cert.as_ref()))
            .ok_or_else(|| ConnectError::Tls("no peer certificate".into()))?;
        if let PeerCheck::Pinned(pins) = check {
            if !pins.contains(&fingerprint) {
                return Err(ConnectError::PinMismatch(fingerprint));
            }
        }
        Ok(DeviceStream::Tls(Box::new(stream), fingerprint))
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn server_name(host: &str) -> Result<ServerName<'static>, ConnectError> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_owned())
            .map_err(|_| ConnectError::BadUri(format!("invalid TLS server name {host}"))),
    }
}

/// The rustls error text without the io::Error wrapping; a refused protocol version says
/// which versions this client speaks (old cameras may offer only TLS 1.0 or 1.1).
fn tls_reason(e: &io::Error) -> String {
    let Some(inner) = e.get_ref() else {
        return e.to_string();
    };
    match inner.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)) => {
            format!("{inner}: the device offers no TLS version this client accepts (1.2 or 1.3)")
        }
        _ => inner.to_string(),
    }
}

async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| ConnectError::Dns(host.to_owned()))?
            .collect(),
    };
    let mut last = ConnectError::Dns(host.to_owned());
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => last = ConnectError::Refused,
            Err(e) => last = ConnectError::Unreachable(e),
        }
    }
    Err(last)
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<DeviceStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// A device connection, plain or TLS.
pub(crate) enum DeviceStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>, Fingerprint),
}

/// Attached to every response that came over TLS.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerCertificate(pub Fingerprint);

impl Connection for DeviceStream {
    fn connected(&self) -> Connected {
        match self {
            DeviceStream::Plain(_) => Connected::new(),
            DeviceStream::Tls(_, fp) => Connected::new().extra(PeerCertificate(*fp)),
        }
    }
}

impl AsyncRead for DeviceStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DeviceStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            DeviceStream::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DeviceStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DeviceStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            DeviceStream::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DeviceStream::Plain(s) => Pin::new(s).poll_flush(cx),
            DeviceStream::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DeviceStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            DeviceStream::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
