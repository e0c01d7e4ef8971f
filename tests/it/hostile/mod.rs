//! The hostile suite: a scriptable raw-TCP server on loopback (one behaviour per test) that
//! plays a camera or the Equinix API badly on purpose, and runs of the real binary against
//! it, measured for their outcome, their wall time and the child's peak memory.

mod api;
mod camera;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::support::{command, read_jsonl, PASSWORD};

/// The largest request head the server reads; the client's are a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Connections served at most by one server: a scan of one camera makes a handful.
const MAX_CONNECTIONS: usize = 64;
/// Upper bound on a run of the binary (its own deadlines end it far sooner).
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Peak memory allowed to a child, whatever the server sends.
pub(crate) const RSS_CAP_KIB: u64 = 200 * 1024;

/// Anything a connection can be: plain TCP or TLS over it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One request as the server read it.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub head: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The request-target of the request line.
    pub(crate) fn target(&self) -> &str {
        self.head.split_whitespace().nth(1).unwrap_or_default()
    }

    /// The value of the first header called `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// Whether the body names `method` (ssh.cgi requests are small JSON bodies).
    pub(crate) fn calls(&self, method: &str) -> bool {
        String::from_utf8_lossy(&self.body).contains(method)
    }
}

type Log = Arc<Mutex<Vec<Request>>>;

/// One accepted connection, handed to the case's script.
pub(crate) struct Conn {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    log: Log,
}

impl Conn {
    /// Reads the next request (head and `Content-Length` body); `None` when the client is
    /// gone or sent something that is no request.
    pub(crate) async fn request(&mut self) -> Option<Request> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_REQUEST_HEAD || !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let mut request = Request {
            head,
            body: Vec::new(),
        };
        let length: usize = request
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < end + length {
            if !self.fill().await {
                return None;
            }
        }
        request.body = self.buf[end..end + length].to_vec();
        self.buf.drain(..end + length);
        self.log.lock().expect("log").push(request.clone());
        Some(request)
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Writes all of `bytes`; `false` once the client has hung up.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok() && self.stream.flush().await.is_ok()
    }

    /// Waits until the client hangs up (or a minute passes): a server that answers nothing.
    pub(crate) async fn hold(mut self) {
        let mut chunk = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while matches!(self.stream.read(&mut chunk).await, Ok(n) if n > 0) {}
        })
        .await;
    }

    /// Closes the connection: with a reset on a server started with
    /// [`Hostile::start_resetting`].
    pub(crate) fn reset(self) {
        drop(self);
    }
}

type Script = Arc<dyn Fn(Conn) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A scripted server on `127.0.0.1`, port 0: each connection runs the script.
pub(crate) struct Hostile {
    pub addr: SocketAddr,
    tls: bool,
    log: Log,
}

impl Hostile {
    pub(crate) async fn start<F, Fut>(script: F) -> Hostile
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::serve(None, false, script).await
    }

    /// The same, but every connection closes with a TCP reset (`SO_LINGER` 0), never a FIN.
    pub(crate) async fn start_resetting<F, Fut>(script: F) -> Hostile
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::serve(None, true, script).await
    }

    /// The same over TLS with `acceptor` (a handshake that fails ends the connection).
    pub(crate) async fn start_tls<F, Fut>(acceptor: TlsAcceptor, script: F) -> Hostile
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::serve(Some(acceptor), false, script).await
    }

    async fn serve<F, Fut>(acceptor: Option<TlsAcceptor>, reset: bool, script: F) -> Hostile
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Log::default();
        let script: Script = Arc::new(move |conn| Box::pin(script(conn)));
        let tls = acceptor.is_some();
        tokio::spawn(accept_loop(listener, acceptor, reset, script, log.clone()));
        Hostile { addr, tls, log }
    }

    /// `http://127.0.0.1:port` (or `https://`).
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every request read so far, in order.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    reset: bool,
    script: Script,
    log: Log,
) {
    for _ in 0..MAX_CONNECTIONS {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        if reset {
            socket2::SockRef::from(&tcp)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER");
        }
        let (script, log, acceptor) = (script.clone(), log.clone(), acceptor.clone());
        tokio::spawn(async move {
            let stream: Box<dyn Stream> = match acceptor {
                None => Box::new(tcp),
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => Box::new(tls),
                    Err(_) => return,
                },
            };
            let conn = Conn {
                stream,
                buf: Vec::new(),
                log,
            };
            script(conn).await;
        });
    }
}

/// A complete HTTP/1.1 response with a `Content-Length`.
pub(crate) fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A JSON 200.
pub(crate) fn json(body: &str) -> Vec<u8> {
    response(
        "200 OK",
        &["Content-Type: application/json"],
        body.as_bytes(),
    )
}

/// A run of the binary: exit code, stderr, wall time and the child's peak memory.
pub(crate) struct Run {
    pub output: Output,
    pub elapsed: Duration,
    pub peak_rss_kib: u64,
}

impl Run {
    pub(crate) fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Never a panic (101) or a signal, done within `bound`, and under the memory cap.
    pub(crate) fn assert_sane(&self, bound: Duration) {
        println!(
            "ran {:?}, peak RSS {} KiB; stderr: {}",
            self.elapsed,
            self.peak_rss_kib,
            self.stderr()
        );
        assert_ne!(self.code(), 101, "panicked: {}", self.stderr());
        assert_ne!(self.code(), -1, "killed by a signal: {}", self.stderr());
        assert!(
            self.elapsed < bound,
            "took {:?}, beyond {bound:?}: {}",
            self.elapsed,
            self.stderr()
        );
        assert!(
            self.peak_rss_kib < RSS_CAP_KIB,
            "peak RSS {} KiB, over the {RSS_CAP_KIB} KiB cap",
            self.peak_rss_kib
        );
    }
}

/// Runs the binary with `args` and only `env` (plus PATH), sampling its peak RSS
/// (`VmHWM`, a high-water mark the kernel keeps) until it exits.
pub(crate) async fn run_measured(args: &[String], env: &[(&str, &str)]) -> Run {
    let mut cmd = command(args, env);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().expect("binary starts");
    let pid = child.id().expect("a pid");
    let status = format!("/proc/{pid}/status");
    let mut waiting = std::pin::pin!(tokio::time::timeout(RUN_LIMIT, child.wait_with_output()));
    let mut peak = 0;
    let output = loop {
        peak = peak.max(high_water_kib(&status));
        tokio::select! {
            done = &mut waiting => break done.expect("binary finished within the run limit"),
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    };
    Run {
        output: output.expect("binary ran"),
        elapsed: started.elapsed(),
        peak_rss_kib: peak,
    }
}

fn high_water_kib(status: &str) -> u64 {
    let text = std::fs::read_to_string(status).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A scan of one camera and the record it got.
pub(crate) struct Scan {
    pub run: Run,
    pub record: Value,
}

impl Scan {
    pub(crate) fn status(&self) -> &str {
        self.record["status"].as_str().unwrap_or_default()
    }

    pub(crate) fn error(&self) -> &str {
        self.record["error"].as_str().unwrap_or_default()
    }

    /// `status` is `want`, no state was read, and the error says `says`; exit 1 (the device
    /// could not be checked), within `bound`.
    pub(crate) fn assert_failed(&self, want: &str, says: &str, bound: Duration) {
        self.run.assert_sane(bound);
        assert_eq!(self.status(), want, "{}", self.record);
        assert!(self.record["ssh_enabled"].is_null(), "{}", self.record);
        println!("{}: {}", self.status(), self.error());
        assert!(
            self.error().contains(says),
            "error {:?} does not say {says:?}",
            self.error()
        );
        assert_eq!(self.run.code(), 1, "{}", self.run.stderr());
    }
}

/// `scan` of a one-row inventory holding `url`, with `--timeout <timeout_secs>s
/// --retries 0` and `extra`, into a JSONL report.
pub(crate) async fn scan(url: &str, timeout_secs: u64, extra: &[&str]) -> Scan {
    let dir = tempfile::tempdir().expect("dir");
    let inventory = dir.path().join("inventory.csv");
    std::fs::write(&inventory, format!("address\n{url}\n")).expect("inventory");
    let out = dir.path().join("scan.jsonl");
    let mut args: Vec<String> = [
        "scan",
        "--inventory",
        &inventory.display().to_string(),
        "-o",
        &out.display().to_string(),
        "--quiet",
        "--timeout",
        &format!("{timeout_secs}s"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"--retries") {
        args.extend(["--retries".to_owned(), "0".to_owned()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = run_measured(&args, &[("SSHFLEET_PASSWORD", PASSWORD)]).await;
    Scan {
        record: one_record(&out, &run),
        run,
    }
}

fn one_record(out: &Path, run: &Run) -> Value {
    let mut records = read_jsonl(out);
    assert_eq!(records.len(), 1, "one record: {}", run.stderr());
    records.remove(0)
}

/// A request timeout plus slack for start-up and the report: "does not hang".
pub(crate) fn within(timeout_secs: u64) -> Duration {
    Duration::from_secs(timeout_secs + 5)
}
