//! The mock's request handling: the token endpoint with its lockout, the `sshUsers` paths
//! with strict request checks (parameter names and types, JSON bodies with the schema's
//! property names, Bearer tokens), fault injection, and spec-shaped JSON answers.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::store::{check_username, Refusal, Store};
use super::{EquinixFaults, EquinixSimConfig, MockStats, CLIENT_ID, CLIENT_SECRET, LOCKOUT_AFTER};
use crate::digest::hex;
use crate::http::{Body, Request, Response};

pub(super) const USERS: &str = "/ne/v1/sshUsers";
/// The one account the mock knows (`accountUcmId`).
pub(super) const ACCOUNT_UCM_ID: &str = "133598";

pub(super) struct MockState {
    pub store: Store,
    pub stats: MockStats,
    pub log: Vec<super::LoggedRequest>,
    /// Listing requests received and not yet answered.
    pub lists_in_flight: u64,
    /// Requests received and not yet answered.
    pub in_flight: u64,
    faults: EquinixFaults,
    /// Live tokens and when they expire.
    tokens: HashMap<String, Instant>,
    failures_in_a_row: u32,
    locked: bool,
    /// Authenticated API calls, the clock of the every-N-th faults.
    calls: u64,
    rng: fastrand::Rng,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    username: String,
    password: String,
    device_uuid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    password: String,
}

/// `SshUserInfoVerbose`, or just uuid and username when not verbose.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserJson<'a> {
    uuid: &'a str,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_uuids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metro_status_map: Option<Map<String, Value>>,
}

impl MockState {
    pub(super) fn new(cfg: EquinixSimConfig) -> MockState {
        MockState {
            store: Store::generate(cfg.users, cfg.seed),
            stats: MockStats::default(),
            log: Vec::new(),
            lists_in_flight: 0,
            in_flight: 0,
            faults: cfg.faults,
            tokens: HashMap::new(),
            failures_in_a_row: 0,
            locked: false,
            calls: 0,
            rng: fastrand::Rng::with_seed(cfg.seed),
        }
    }

    pub(super) fn handle(&mut self, req: &Request, now: Instant) -> Response {
        let path = req.path();
        let response = if path == "/oauth2/v1/token" {
            self.token(req, now)
        } else if path == USERS || path.starts_with("/ne/v1/sshUsers/") {
            self.api(req, now)
        } else {
            self.reject(404, "RESOURCE_NOT_FOUND", "No such path", None)
        };
        self.log(now, &req.method, &req.target, response.status);
        response
    }

    fn token(&mut self, req: &Request, now: Instant) -> Response {
        self.stats.token_requests += 1;
        if let Some(wait) = &self.faults.token_throttle {
            self.stats.throttled += 1;
            return token_error(429, "TOO_MANY_REQUESTS", "Slow down")
                .with_header("Retry-After", wait.clone());
        }
        if req.method != "POST" {
            return self.reject(405, "METHOD_NOT_ALLOWED", "Use POST", None);
        }
        if !is_json(req) {
            return self.reject(415, "INVALID_CONTENT_TYPE", "Send application/json", None);
        }
        let Some(body) = parse_body::<TokenBody>(req) else {
            return token_error(400, "INVALID_REQUEST", "Malformed token request");
        };
        if body.grant_type != "client_credentials" {
            return token_error(400, "UNSUPPORTED_GRANT_TYPE", "Use client_credentials");
        }
        let valid = body.client_id == CLIENT_ID && body.client_secret == CLIENT_SECRET;
        if !valid {
            return self.refuse_token(Given::Wrong);
        }
        if self.locked {
            return self.refuse_token(Given::Right);
        }
        self.failures_in_a_row = 0;
        self.issue_token(now)
    }

    fn refuse_token(&mut self, given: Given) -> Response {
        self.stats.token_refusals += 1;
        if given == Given::Wrong {
            self.failures_in_a_row += 1;
            self.locked |= self.failures_in_a_row >= LOCKOUT_AFTER;
        }
        if self.locked {
            return token_error(401, "ACCOUNT_LOCKED", "Too many failed attempts");
        }
        token_error(401, "INVALID_CLIENT", "Invalid client id or secret")
    }

    fn issue_token(&mut self, now: Instant) -> Response {
        let mut raw = [0u8; 18];
        self.rng.fill(&mut raw);
        let token = hex(&raw);
        let lifetime = self.faults.token_lifetime;
        self.tokens.retain(|_, expiry| *expiry > now);
        self.tokens.insert(token.clone(), now + lifetime);
        let body = json!({
            "access_token": token,
            "token_timeout": self
                .faults
                .token_timeout_text
                .clone()
                .unwrap_or_else(|| lifetime.as_secs().to_string()),
            "user_name": "sim-user",
            "token_type": "Bearer",
        });
        Response::json(200, body.to_string())
    }

    fn api(&mut self, req: &Request, now: Instant) -> Response {
        self.stats.api_requests += 1;
        let Some(token) = self.live_token(req, now) else {
            self.stats.unauthorized += 1;
            return unauthorized("Missing, unknown or expired token");
        };
        self.calls += 1;
        if every(self.faults.expire_every, self.calls) {
            self.tokens.remove(&token);
            self.stats.unauthorized += 1;
            return unauthorized("Token expired");
        }
        if every(self.faults.throttle_every, self.calls) {
            return self.throttle();
        }
        if every(self.faults.error_every, self.calls) {
            self.stats.server_errors += 1;
            let body =
                json!({ "errorCode": "INTERNAL_SERVER_ERROR", "errorMessage": "Injected failure" });
            return Response::json(500, body.to_string());
        }
        self.route(req)
    }

    fn live_token(&self, req: &Request, now: Instant) -> Option<String> {
        let value = req.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = token.trim();
        let expiry = self.tokens.get(token)?;
        (*expiry > now).then(|| token.to_owned())
    }

    fn throttle(&mut self) -> Response {
        self.stats.throttled += 1;
        let body =
            json!([{ "errorCode": "TOO_MANY_REQUESTS", "errorMessage": "Rate limit exceeded" }]);
        let response = Response::json(429, body.to_string());
        match self.faults.retry_after {
            Some(seconds) => response.with_header("Retry-After", seconds.to_string()),
            None => response,
        }
    }

    fn route(&mut self, req: &Request) -> Response {
        let rest = req.path().strip_prefix(USERS).unwrap_or_default();
        let parts: Vec<&str> = rest.split('/').skip(1).collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", []) => self.list(req),
            ("POST", []) => self.create(req),
            ("GET", ["availability"]) => self.availability(req),
            ("GET", [uuid]) => self.get(req, uuid),
            ("PUT", [uuid]) => self.update(req, uuid),
            ("POST", [user, "devices", device]) => self.attach(req, user, device),
            ("DELETE", [user, "devices", device]) => self.detach(req, user, device),
            (_, [] | [_] | [_, "devices", _]) => {
                self.reject(405, "METHOD_NOT_ALLOWED", "Method not allowed", None)
            }
            _ => self.reject(404, "RESOURCE_NOT_FOUND", "No such path", None),
        }
    }

    fn list(&mut self, req: &Request) -> Response {
        const NAMES: [&str; 6] = [
            "username",
            "virtualDeviceUuid",
            "verbose",
            "accountUcmId",
            "offset",
            "limit",
        ];
        let query = match self.query(req, &NAMES) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let (offset, limit, detail) = match list_params(&query) {
            Ok(p) => p,
            Err(property) => {
                return self.reject(
                    400,
                    "INVALID_REQUEST_FORMAT",
                    "Invalid value",
                    Some(property),
                )
            }
        };
        if query
            .get("accountUcmId")
            .is_some_and(|a| a != ACCOUNT_UCM_ID)
        {
            return self.reject(403, "UNAUTHORIZED_USER", "Not your account", None);
        }
        self.stats.list_requests += 1;
        let body = self.page_body(&query, offset, limit, detail);
        if offset > 0 && self.faults.drift_per_page != 0 {
            self.store.drift(self.faults.drift_per_page);
        }
        Response::json(200, body.to_string())
    }

    fn page_body(
        &self,
        query: &HashMap<String, String>,
        offset: usize,
        limit: usize,
        detail: Detail,
    ) -> Value {
        let matching: Vec<_> = self
            .store
            .users()
            .iter()
            .filter(|u| query.get("username").map_or(true, |n| *n == u.username))
            .filter(|u| {
                query
                    .get("virtualDeviceUuid")
                    .map_or(true, |d| u.devices.contains(d))
            })
            .collect();
        let offset = if self.faults.ignore_offset { 0 } else { offset };
        let served_from = match offset {
            o if o == limit => o.saturating_sub(self.faults.second_page_early_by),
            o => o,
        };
        let without_devices = self.faults.listed_without_devices_every;
        let data: Vec<Value> = matching
            .iter()
            .enumerate()
            .skip(served_from)
            .take(limit)
            .map(|(i, u)| {
                let mut user = user_json(u, detail);
                if detail == Detail::Verbose && every(without_devices, i as u64 + 1) {
                    user["deviceUuids"] = Value::Null;
                }
                user
            })
            .collect();
        let total = self
            .faults
            .total_claimed
            .unwrap_or(matching.len() as u64 + self.faults.total_overstated_by);
        let mut page = json!({
            "pagination": { "offset": offset, "limit": limit, "total": total },
            "data": data,
        });
        if let Some(pagination) = page["pagination"]
            .as_object_mut()
            .filter(|_| self.faults.omit_total)
        {
            pagination.remove("total");
        }
        if self.faults.page_padding > 0 {
            page["padding"] = Value::String("x".repeat(self.faults.page_padding));
        }
        page
    }

    fn get(&mut self, req: &Request, uuid: &str) -> Response {
        if let Err(r) = self.query(req, &[]) {
            return r;
        }
        match self
            .store
            .find(uuid)
            .filter(|_| !self.faults.read_not_found)
        {
            Some(user) => {
                let mut body = user_json(user, Detail::Verbose);
                if self.faults.read_without_devices {
                    if let Some(user) = body.as_object_mut() {
                        user.remove("deviceUuids");
                    }
                }
                Response::json(200, body.to_string())
            }
            None => {
                // The spec documents this 404 body as a bare code string.
                self.stats.rejected += 1;
                Response::json(404, "\"RESOURCE_NOT_FOUND\"")
            }
        }
    }

    fn availability(&mut self, req: &Request) -> Response {
        let query = match self.query(req, &["username"]) {
            Ok(q) => q,
            Err(r) => return r,
        };
        let Some(username) = query.get("username") else {
            return self.reject(
                400,
                "INVALID_REQUEST_FORMAT",
                "username is required",
                Some("username"),
            );
        };
        if let Err(r) = check_username(username) {
            return self.refused(r);
        }
        if self.store.username_taken(username) {
            return self.reject(
                400,
                "SSH_USER_ALREADY_EXISTS",
                "The username is taken",
                Some("username"),
            );
        }
        Response::new(204, "application/json", "")
    }

    fn create(&mut self, req: &Request) -> Response {
        let body = match self.write_body::<CreateBody>(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        match self
            .store
            .create(&body.username, &body.password, &body.device_uuid)
        {
            Ok(uuid) => {
                let location = format!("{USERS}/{uuid}");
                let body = match self.faults.created_uuid_in_location_only {
                    true => String::new(),
                    false => json!({ "uuid": uuid }).to_string(),
                };
                Response::json(201, body).with_header("Location", location)
            }
            Err(r) => self.refused(r),
        }
    }

    fn update(&mut self, req: &Request, uuid: &str) -> Response {
        let body = match self.write_body::<UpdateBody>(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        match self.store.set_password(uuid, &body.password) {
            Ok(()) => Response::new(204, "application/json", ""),
            Err(r) => self.refused(r),
        }
    }

    fn attach(&mut self, req: &Request, user: &str, device: &str) -> Response {
        if let Err(r) = self.association_body(req) {
            return r;
        }
        match self.store.attach(user, device) {
            Ok(()) => Response::new(201, "application/json", ""),
            Err(r) => self.refused(r),
        }
    }

    fn detach(&mut self, req: &Request, user: &str, device: &str) -> Response {
        if let Err(r) = self.association_body(req) {
            return r;
        }
        let mut applied_then_500 = false;
        if self.store.is_attached(user, device) {
            self.stats.detaches += 1;
            let n = self.stats.detaches;
            if every(self.faults.detach_refused_every, n) {
                return self.reject(
                    400,
                    "SSH_USER_DEVICE_STATE_NOT_VALID",
                    "Injected refusal: the device is not in a state that allows this change",
                    None,
                );
            }
            if every(self.faults.detach_unstuck_every, n) {
                let body = json!({
                    "sshUserDeleted": false,
                    "sshUserToDeviceAssociationDeleted": true,
                });
                return Response::json(200, body.to_string());
            }
            applied_then_500 = every(self.faults.detach_applied_then_500_every, n);
        }
        match self.store.detach(user, device) {
            Ok(_) if applied_then_500 => {
                self.stats.server_errors += 1;
                let body = json!({
                    "errorCode": "INTERNAL_SERVER_ERROR",
                    "errorMessage": "Injected failure after the change was made",
                });
                Response::json(500, body.to_string())
            }
            Ok((user_deleted, association_deleted)) => {
                let body = json!({
                    "sshUserDeleted": user_deleted,
                    "sshUserToDeviceAssociationDeleted": association_deleted,
                });
                Response::json(200, body.to_string())
            }
            Err(r) => self.refused(r),
        }
    }

    /// Query parameters, refusing names the operation does not document and repeats.
    fn query(
        &mut self,
        req: &Request,
        allowed: &[&str],
    ) -> Result<HashMap<String, String>, Response> {
        let mut out = HashMap::new();
        for pair in req.query().split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(name), Some(value)) = (percent_decode(name), percent_decode(value)) else {
                return Err(self.reject(400, "INVALID_REQUEST_FORMAT", "Bad encoding", None));
            };
            if !allowed.contains(&name.as_str()) || out.contains_key(&name) {
                let message = format!("Unexpected or repeated query parameter {name}");
                return Err(self.reject(400, "INVALID_REQUEST_FORMAT", &message, None));
            }
            out.insert(name, value);
        }
        Ok(out)
    }

    /// A JSON body of exactly the schema's properties, sent as `application/json`.
    fn write_body<T: for<'de> Deserialize<'de>>(&mut self, req: &Request) -> Result<T, Response> {
        if !req.query().is_empty() {
            return Err(self.reject(400, "INVALID_REQUEST_FORMAT", "No query expected", None));
        }
        if !is_json(req) {
            return Err(self.reject(415, "INVALID_CONTENT_TYPE", "Send application/json", None));
        }
        parse_body(req).ok_or_else(|| {
            self.reject(
                400,
                "INVALID_JSON_FORMAT",
                "Body does not match the schema",
                None,
            )
        })
    }

    /// Association calls take no body per the spec; the API wants `application/json` and
    /// accepts `{}` (and, with `association_needs_body`, insists on it).
    fn association_body(&mut self, req: &Request) -> Result<(), Response> {
        if !req.query().is_empty() {
            return Err(self.reject(400, "INVALID_REQUEST_FORMAT", "No query expected", None));
        }
        if !is_json(req) {
            return Err(self.reject(415, "INVALID_CONTENT_TYPE", "Send application/json", None));
        }
        let needs_body = self.faults.association_needs_body;
        match &req.body {
            Body::Full(b) if b.iter().all(u8::is_ascii_whitespace) && needs_body => {
                Err(self.reject(415, "INVALID_REQUEST_FORMAT", "Send a JSON body ({})", None))
            }
            Body::Full(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(()),
            Body::Full(b) if serde_json::from_slice::<Map<String, Value>>(b).is_ok() => Ok(()),
            _ => Err(self.reject(400, "INVALID_JSON_FORMAT", "Expected {}", None)),
        }
    }

    fn refused(&mut self, r: Refusal) -> Response {
        self.reject(r.status, r.code, &r.message, r.property)
    }

    /// A `FieldErrorResponse` (the shape the spec gives its 400/403/404 answers).
    fn reject(
        &mut self,
        status: u16,
        code: &str,
        message: &str,
        property: Option<&str>,
    ) -> Response {
        self.stats.rejected += 1;
        let mut body = json!({ "errorCode": code, "errorMessage": message });
        if let Some(property) = property {
            body["property"] = Value::from(property);
        }
        Response::json(status, body.to_string())
    }
}

fn every(n: Option<u64>, count: u64) -> bool {
    n.is_some_and(|n| n > 0 && count % n == 0)
}

fn unauthorized(message: &str) -> Response {
    let body = json!([{ "errorCode": "UNAUTHORIZED_USER", "errorMessage": message }]);
    Response::json(401, body.to_string())
}

/// Token errors in the token service's snake_case spelling.
fn token_error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({ "error_code": code, "error_message": message });
    Response::json(status, body.to_string())
}

fn is_json(req: &Request) -> bool {
    req.header("content-type").is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

fn parse_body<T: for<'de> Deserialize<'de>>(req: &Request) -> Option<T> {
    match &req.body {
        Body::Full(bytes) => serde_json::from_slice(bytes).ok(),
        Body::TooLarge => None,
    }
}

/// How much of each user a listing gives (`verbose`): uuid and username, or everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detail {
    Brief,
    Verbose,
}

/// Whether a token request gave the right client credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Given {
    Right,
    Wrong,
}

/// `offset` and `limit` as int32 strings (defaults 0 and 20), `verbose` as a boolean.
fn list_params(query: &HashMap<String, String>) -> Result<(usize, usize, Detail), &'static str> {
    let int = |name: &'static str, default: usize| match query.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i32>()
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(name),
    };
    let offset = int("offset", 0)?;
    let limit = int("limit", 20)?;
    if limit == 0 {
        return Err("limit");
    }
    let detail = match query.get("verbose").map(String::as_str) {
        None | Some("false") => Detail::Brief,
        Some("true") => Detail::Verbose,
        Some(_) => return Err("verbose"),
    };
    Ok((offset, limit, detail))
}

fn user_json(user: &super::MockUser, detail: Detail) -> Value {
    let metros = (detail == Detail::Verbose).then(|| {
        user.metros
            .iter()
            .map(|(pod, status)| (pod.clone(), json!({ "status": status })))
            .collect::<Map<String, Value>>()
    });
    let body = UserJson {
        uuid: &user.uuid,
        username: &user.username,
        device_uuids: (detail == Detail::Verbose).then_some(user.devices.as_slice()),
        metro_status_map: metros,
    };
    serde_json::to_value(body).unwrap_or(Value::Null)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
