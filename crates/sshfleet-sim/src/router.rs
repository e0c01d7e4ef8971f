//! Routes one request to a camera's CGI handlers, after its throttling and authentication,
//! then applies its payload fault. The camera (`camera.rs`) is state only; the handlers take
//! it, so the edges run router -> handlers -> camera.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use bytes::Bytes;

use super::auth::{Authority, Nonce, Verdict};
use super::camera::{Arrival, Camera, Settings, OVERSIZED_BYTES};
use super::http::{Request, Response};
use super::spec::Fault;
use super::{deviceinfo, paramcgi, sshcgi};

/// The answer to one request, made after the latency pause; transport faults come later.
pub(crate) fn respond(
    camera: &Camera,
    settings: &Settings,
    req: &Request,
    arrival: Arrival,
) -> Response {
    if camera.spec.fault == Fault::Throttled || camera.guard.is_blocked(arrival.at) {
        return Response::plain_status(403);
    }
    if camera.spec.fault == Fault::ThrottledLong {
        return Response::plain_status(429).with_header("Retry-After", "999999");
    }
    let path = req.path();
    if path == "/axis-cgi/apidiscovery.cgi" {
        return inject_fault(camera, sshcgi::discovery(camera, req));
    }
    if !path.starts_with("/axis-cgi/") {
        return Response::plain_status(404);
    }
    if let Some(denied) = authenticate(camera, settings, req, arrival) {
        return denied;
    }
    let response = match path {
        "/axis-cgi/ssh.cgi" if camera.spec.firmware.has_ssh_cgi() => {
            only(req, "POST", || sshcgi::handle(camera, req))
        }
        "/axis-cgi/param.cgi" => only(req, "GET", || paramcgi::handle(camera, req)),
        "/axis-cgi/basicdeviceinfo.cgi" => only(req, "POST", || deviceinfo::handle(camera, req)),
        _ => Response::plain_status(404),
    };
    inject_fault(camera, response)
}

/// `None` when the request may proceed, else the 401/400 to send.
fn authenticate(
    camera: &Camera,
    settings: &Settings,
    req: &Request,
    arrival: Arrival,
) -> Option<Response> {
    let authority = Authority {
        scheme: camera.scheme,
        realm: &camera.realm,
        username: &settings.username,
        password: camera.password.expose(),
        secret: &settings.nonce_secret,
        nonce_lifetime: settings.nonce_lifetime,
        now_us: arrival.at_us,
    };
    let header = req.header("authorization");
    let nonce = match authority.verify(&req.method, &req.target, header, &camera.guard) {
        Verdict::Pass => return None,
        Verdict::BadRequest => return Some(Response::plain_status(400)),
        Verdict::Challenge(nonce) => nonce,
        Verdict::Failed => {
            camera.failed_logins.fetch_add(1, Ordering::Relaxed);
            camera.guard.record_failure(arrival.at);
            Nonce::Fresh
        }
    };
    let issued_us = settings.clock.now_us();
    let challenge = authority
        .challenge(nonce, issued_us, &camera.guard)
        .unwrap_or_default();
    let body = "<HTML><HEAD><TITLE>401 Unauthorized</TITLE></HEAD>\
                <BODY><H1>401 Unauthorized.</H1></BODY></HTML>\n";
    Some(Response::new(401, "text/html", body).with_header("WWW-Authenticate", challenge))
}

/// Payload faults hit every CGI answer with status 200.
fn inject_fault(camera: &Camera, mut response: Response) -> Response {
    if response.status != 200 {
        return response;
    }
    let json = response
        .headers
        .iter()
        .any(|(n, v)| *n == "Content-Type" && v.starts_with("application/json"));
    let payload = if json { Payload::Json } else { Payload::Text };
    match camera.spec.fault {
        Fault::Reset => response.reset_midway = true,
        Fault::Oversized => response.body = oversized_body(),
        Fault::MalformedJson if payload == Payload::Json => {
            let cut = response.body.len() * 2 / 3;
            response.body = response.body.slice(..cut);
        }
        Fault::ForeignAnswers => response.body = foreign(&response.body, payload),
        _ => {}
    }
    response
}

/// What a CGI answer carries: JSON (ssh.cgi, basicdeviceinfo) or text (param.cgi).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Payload {
    Json,
    Text,
}

/// The answer to someone else's request: another `context` in JSON, and a second, opposite
/// `Network.SSH.Enabled` line in a param.cgi listing.
fn foreign(body: &Bytes, payload: Payload) -> Bytes {
    let text = String::from_utf8_lossy(body);
    if payload == Payload::Json {
        return Bytes::from(text.replace(r#""context":"sshfleet""#, r#""context":"someone-else""#));
    }
    let opposite = if text.contains("Enabled=yes") {
        "no"
    } else {
        "yes"
    };
    match text.lines().find(|l| l.contains("Network.SSH.Enabled=")) {
        Some(line) => {
            let (key, _) = line.split_once('=').unwrap_or((line, ""));
            Bytes::from(format!("{text}{key}={opposite}\r\n"))
        }
        None => body.clone(),
    }
}

/// 405 unless the request uses `method`.
fn only(req: &Request, method: &str, answer: impl FnOnce() -> Response) -> Response {
    if req.method == method {
        answer()
    } else {
        Response::plain_status(405).with_header("Allow", method)
    }
}

/// Valid-looking JSON of [`OVERSIZED_BYTES`], built once and shared.
fn oversized_body() -> Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| {
        let head =
            r#"{"apiVersion":"1.0","method":"getSshInfo","data":{"enabled":false,"padding":""#;
        let tail = r#""}}"#;
        let mut body = String::with_capacity(OVERSIZED_BYTES);
        body.push_str(head);
        body.push_str(&"A".repeat(OVERSIZED_BYTES - head.len() - tail.len()));
        body.push_str(tail);
        Bytes::from(body)
    })
    .clone()
}
