//! The device side of VAPIX `ssh.cgi` (getSupportedVersions, getSshInfo, setSshConfiguration)
//! and of `apidiscovery.cgi` getApiList, with the page's general error codes.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::camera::Camera;
use super::http::{Body, Request, Response};
use super::spec::Fault;

/// The general error codes of the SSH API page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApiError {
    Internal,
    InvalidRequest,
    BodyTooLarge,
    InvalidJson,
    NoSuchMethod,
    UnsupportedVersion,
    AuthorizationFailed,
    MissingParams,
    InvalidParams,
}

impl ApiError {
    fn code(self) -> u32 {
        match self {
            ApiError::Internal => 1000,
            ApiError::InvalidRequest => 2000,
            ApiError::BodyTooLarge => 2001,
            ApiError::InvalidJson => 3000,
            ApiError::NoSuchMethod => 4000,
            ApiError::UnsupportedVersion => 4001,
            ApiError::AuthorizationFailed => 4002,
            ApiError::MissingParams => 4003,
            ApiError::InvalidParams => 4004,
        }
    }

    fn message(self) -> &'static str {
        match self {
            ApiError::Internal => "Internal error",
            ApiError::InvalidRequest => "Invalid request",
            ApiError::BodyTooLarge => "Request body too large",
            ApiError::InvalidJson => "Invalid JSON data",
            ApiError::NoSuchMethod => "Method does not exist",
            ApiError::UnsupportedVersion => "The specified version is not supported",
            ApiError::AuthorizationFailed => "Authorization failed",
            ApiError::MissingParams => "Missing parameter(s)",
            ApiError::InvalidParams => "Invalid parameter(s)",
        }
    }

    /// Only internal errors change the HTTP status; every other error is a 200.
    fn http_status(self) -> u16 {
        if self == ApiError::Internal {
            500
        } else {
            200
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    code: u32,
    message: &'static str,
}

/// One JSON answer: `apiVersion`, `context` (echoed when given), `method`, then data or error.
#[derive(Serialize)]
struct Reply<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl<'a> Reply<'a> {
    fn new(api_version: &'a str, context: Option<&'a Value>, method: Option<&'a str>) -> Self {
        Reply {
            api_version,
            context,
            method,
            data: None,
            error: None,
        }
    }

    fn data(mut self, data: Value) -> Response {
        self.data = Some(data);
        Response::json(200, self.render())
    }

    fn error(mut self, error: ApiError) -> Response {
        self.error = Some(ErrorBody {
            code: error.code(),
            message: error.message(),
        });
        Response::json(error.http_status(), self.render())
    }

    fn render(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

const SSH_METHODS: [&str; 3] = ["getSupportedVersions", "getSshInfo", "setSshConfiguration"];

/// `POST /axis-cgi/ssh.cgi`.
pub(crate) fn handle(cam: &Camera, req: &Request) -> Response {
    let versions = cam.spec.firmware.api_versions();
    let default_version = versions.first().copied().unwrap_or("1.0");
    let obj = match json_object(req) {
        Ok(obj) => obj,
        Err(e) => return Reply::new(default_version, None, None).error(e),
    };
    let context = obj.get("context");
    let method = match obj.get("method").and_then(Value::as_str) {
        Some(m) if SSH_METHODS.contains(&m) => m,
        Some(_) => return Reply::new(default_version, context, None).error(ApiError::NoSuchMethod),
        None => return Reply::new(default_version, context, None).error(ApiError::InvalidRequest),
    };
    let requested = obj.get("apiVersion").and_then(Value::as_str);
    let version = requested.filter(|v| versions.contains(v));
    let reply = Reply::new(version.unwrap_or(default_version), context, Some(method));
    if cam.spec.fault == Fault::NoAdmin {
        return reply.error(ApiError::AuthorizationFailed);
    }
    match (method, version) {
        ("getSupportedVersions", _) => Reply::new(default_version, context, Some(method))
            .data(json!({ "apiVersions": versions })),
        (_, None) => reply.error(ApiError::UnsupportedVersion),
        ("getSshInfo", _) if cam.spec.fault == Fault::InternalError => {
            reply.error(ApiError::Internal)
        }
        ("getSshInfo", _) => reply.data(json!({ "enabled": cam.ssh_enabled() })),
        _ => match requested_state(obj.get("params")) {
            Ok(enabled) => {
                cam.write_ssh(enabled);
                reply.data(json!({}))
            }
            Err(e) => reply.error(e),
        },
    }
}

/// The body as a JSON object, or the error the device reports instead.
fn json_object(req: &Request) -> Result<Map<String, Value>, ApiError> {
    let Body::Full(body) = &req.body else {
        return Err(ApiError::BodyTooLarge);
    };
    let json_type = req.header("content-type").map_or(true, |ct| {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
    });
    if !json_type {
        return Err(ApiError::InvalidRequest);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(ApiError::InvalidRequest),
        Err(_) => Err(ApiError::InvalidJson),
    }
}

/// `params.enabled` of setSshConfiguration.
fn requested_state(params: Option<&Value>) -> Result<bool, ApiError> {
    match params {
        None | Some(Value::Null) => Err(ApiError::MissingParams),
        Some(Value::Object(p)) => match p.get("enabled") {
            None => Err(ApiError::MissingParams),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::InvalidParams),
        },
        Some(_) => Err(ApiError::InvalidParams),
    }
}

/// `POST /axis-cgi/apidiscovery.cgi`: anonymous; 404 on firmware without ssh.cgi.
pub(crate) fn discovery(cam: &Camera, req: &Request) -> Response {
    let versions = cam.spec.firmware.api_versions();
    let Some(latest) = versions.last() else {
        return Response::plain_status(404);
    };
    if req.method != "POST" {
        return Response::plain_status(405).with_header("Allow", "POST");
    }
    let obj = match json_object(req) {
        Ok(obj) => obj,
        Err(e) => return Reply::new("1.0", None, None).error(e),
    };
    let context = obj.get("context");
    match obj.get("method").and_then(Value::as_str) {
        Some(m @ "getApiList") => Reply::new("1.0", context, Some(m)).data(json!({
            "apiList": [{
                "id": "ssh",
                "version": latest,
                "name": "SSH",
                "docLink": "",
                "status": "official",
            }]
        })),
        Some(m @ "getSupportedVersions") => {
            Reply::new("1.0", context, Some(m)).data(json!({ "apiVersions": ["1.0"] }))
        }
        Some(_) => Reply::new("1.0", context, None).error(ApiError::NoSuchMethod),
        None => Reply::new("1.0", context, None).error(ApiError::InvalidRequest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Firmware;
    use bytes::Bytes;

    fn camera(fault: Fault, firmware: Firmware) -> Camera {
        crate::camera::test_camera(fault, firmware, false)
    }

    fn call(cam: &Camera, body: &str) -> (u16, Value) {
        let req = Request {
            method: "POST".to_owned(),
            target: "/axis-cgi/ssh.cgi".to_owned(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: Body::Full(Bytes::copy_from_slice(body.as_bytes())),
            keep_alive: true,
        };
        let resp = handle(cam, &req);
        (
            resp.status,
            serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
        )
    }

    fn code(v: &Value) -> Option<u64> {
        v["error"]["code"].as_u64()
    }

    #[test]
    fn supported_versions_without_api_version_echo_context() {
        let (status, v) = call(
            &camera(Fault::None, Firmware::Modern),
            r#"{"context":"abc","method":"getSupportedVersions"}"#,
        );
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"apiVersion":"1.0","context":"abc","method":"getSupportedVersions",
                   "data":{"apiVersions":["1.0","1.1"]}})
        );
    }

    #[test]
    fn get_and_set_the_ssh_state() {
        let cam = camera(Fault::None, Firmware::Modern);
        let set =
            r#"{"apiVersion":"1.1","method":"setSshConfiguration","params":{"enabled":true}}"#;
        let (_, v) = call(&cam, set);
        assert_eq!(
            v,
            json!({"apiVersion":"1.1","method":"setSshConfiguration","data":{}})
        );
        let (_, v) = call(&cam, r#"{"apiVersion":"1.0","method":"getSshInfo"}"#);
        assert_eq!(v["data"]["enabled"], json!(true));
        assert!(v.get("context").is_none());
        assert_eq!(cam.snapshot().writes.len(), 1);
    }

    #[test]
    fn general_error_codes() {
        let cam = camera(Fault::None, Firmware::Modern);
        let cases = [
            ("{", 3000),
            ("[1]", 2000),
            (r#"{"apiVersion":"1.0"}"#, 2000),
            (r#"{"apiVersion":"1.0","method":"reboot"}"#, 4000),
            (r#"{"method":"getSshInfo"}"#, 4001),
            (r#"{"apiVersion":"2.0","method":"getSshInfo"}"#, 4001),
            (
                r#"{"apiVersion":"1.0","method":"setSshConfiguration"}"#,
                4003,
            ),
            (
                r#"{"apiVersion":"1.0","method":"setSshConfiguration","params":{}}"#,
                4003,
            ),
            (
                r#"{"apiVersion":"1.0","method":"setSshConfiguration","params":{"enabled":"yes"}}"#,
                4004,
            ),
        ];
        for (body, expected) in cases {
            let (status, v) = call(&cam, body);
            assert_eq!((status, code(&v)), (200, Some(expected)), "{body}");
        }
        let (_, unknown) = call(&cam, r#"{"apiVersion":"1.0","method":"reboot"}"#);
        assert!(unknown.get("method").is_none());
    }

    #[test]
    fn device_faults_become_api_errors() {
        let info = r#"{"apiVersion":"1.0","context":"c","method":"getSshInfo"}"#;
        let (status, v) = call(&camera(Fault::InternalError, Firmware::Modern), info);
        assert_eq!((status, code(&v)), (500, Some(1000)));
        let (status, v) = call(&camera(Fault::NoAdmin, Firmware::Modern), info);
        assert_eq!(
            (status, code(&v), v["context"].as_str()),
            (200, Some(4002), Some("c"))
        );
        let (_, v) = call(
            &camera(Fault::None, Firmware::V2Only),
            r#"{"method":"getSupportedVersions"}"#,
        );
        assert_eq!(v["data"]["apiVersions"], json!(["2.0", "2.1"]));
    }

    #[test]
    fn oversized_request_bodies_get_2001() {
        let cam = camera(Fault::None, Firmware::Modern);
        let req = Request {
            method: "POST".to_owned(),
            target: "/axis-cgi/ssh.cgi".to_owned(),
            headers: Vec::new(),
            body: Body::TooLarge,
            keep_alive: false,
        };
        let v: Value = serde_json::from_slice(&handle(&cam, &req).body).unwrap_or(Value::Null);
        assert_eq!(code(&v), Some(2001));
    }
}
