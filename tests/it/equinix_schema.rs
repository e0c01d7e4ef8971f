//! The mock's answers conform to the OpenAPI file: every response of the sshUsers paths,
//! successes and documented failures, is checked against `fixtures/ssh_users_schema.json`
//! (the file's schemas, derived by hand, with undocumented properties refused) by a small
//! JSON Schema validator below. Raw HTTP, so nothing of the client's parsing is involved.

use std::time::Duration;

use serde_json::{json, Value};
use sshfleet_sim::{EquinixFaults, Fleet};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::equinix_support::{api, mock};

const SCHEMA: &str = include_str!("fixtures/ssh_users_schema.json");

struct Raw {
    status: u16,
    body: Vec<u8>,
}

async fn send(
    url: &str,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Raw {
    let authority = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    head.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let status_line = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Raw {
        status,
        body: raw[split..].to_vec(),
    }
}

async fn token(url: &str) -> String {
    let body = r#"{"grant_type":"client_credentials","client_id":"sim-client","client_secret":"sim-secret"}"#;
    let raw = send(url, "POST", "/oauth2/v1/token", None, Some(body)).await;
    assert_eq!(raw.status, 200);
    let grant: Value = serde_json::from_slice(&raw.body).expect("token JSON");
    assert!(
        grant["token_timeout"].is_string(),
        "a string of seconds: {grant}"
    );
    grant["access_token"].as_str().expect("token").to_owned()
}

/// Checks one exchange against the schema of `METHOD TEMPLATE STATUS`.
struct Checker {
    schema: Value,
    checked: Vec<String>,
}

impl Checker {
    fn check(&mut self, method: &str, template: &str, raw: &Raw) {
        let key = format!("{method} {template} {}", raw.status);
        let Some(expected) = self.schema["responses"].get(&key) else {
            panic!(
                "{key} is not documented: {}",
                String::from_utf8_lossy(&raw.body)
            );
        };
        if expected.is_null() {
            assert!(raw.body.is_empty(), "{key} has a body");
        } else {
            let value: Value = serde_json::from_slice(&raw.body)
                .unwrap_or_else(|e| panic!("{key}: not JSON ({e})"));
            let mut errors = Vec::new();
            validate(&self.schema, expected, &value, "$", &mut errors);
            assert!(errors.is_empty(), "{key}: {errors:?}\n{value}");
        }
        self.checked.push(key);
    }
}

fn validate(root: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/definitions/");
        return validate(root, &root["definitions"][name], value, at, errors);
    }
    let type_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("validator lacks type {other}"),
        None => true,
    };
    if !type_ok {
        return errors.push(format!("{at}: expected {}, got {value}", schema["type"]));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} not in the enum"));
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            validate(root, &schema["items"], item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            if !object.contains_key(name.as_str().unwrap_or_default()) {
                errors.push(format!("{at}: missing {name}"));
            }
        }
        for (name, member) in object {
            let at = format!("{at}.{name}");
            match (
                schema["properties"].get(name),
                &schema["additionalProperties"],
            ) {
                (Some(property), _) => validate(root, property, member, &at, errors),
                (None, Value::Bool(false)) => errors.push(format!("{at}: not in the schema")),
                (None, extra) if extra.is_object() => validate(root, extra, member, &at, errors),
                (None, _) => {}
            }
        }
    }
}

const LIST: &str = "/ne/v1/sshUsers";
const USER: &str = "/ne/v1/sshUsers/{uuid}";
const AVAILABILITY: &str = "/ne/v1/sshUsers/availability";
const ASSOCIATION: &str = "/ne/v1/sshUsers/{sshUserUuid}/devices/{deviceUuid}";

#[test]
fn the_validator_catches_what_it_should() {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema JSON");
    let page = &schema["definitions"]["SshUserPageResponse"];
    let mut errors = Vec::new();
    let bad = json!({"pagination": {"offset": "0", "total": 1}, "data": [{"uuid": 5, "extra": 1,
        "metroStatusMap": {"SV": {"status": 1}}}]});
    validate(&schema, page, &bad, "$", &mut errors);
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[tokio::test]
async fn every_sshusers_response_of_the_mock_matches_the_openapi_schemas() {
    let fleet = mock(150, EquinixFaults::default()).await;
    let url = fleet.equinix_url().expect("url");
    let token = token(&url).await;
    let mut checker = Checker {
        schema: serde_json::from_str(SCHEMA).expect("schema JSON"),
        checked: Vec::new(),
    };
    let users = api(&fleet).users();
    let (device, inactive) = api(&fleet).devices();
    let t = Some(token.as_str());

    for target in [
        "/ne/v1/sshUsers",
        "/ne/v1/sshUsers?offset=0&limit=100&verbose=true",
        "/ne/v1/sshUsers?offset=100&limit=100&verbose=false",
        "/ne/v1/sshUsers?offset=400&limit=100",
        &format!(
            "/ne/v1/sshUsers?username={}&verbose=true&accountUcmId=133598",
            users[0].username
        ),
        &format!("/ne/v1/sshUsers?virtualDeviceUuid={device}&verbose=true"),
        "/ne/v1/sshUsers?accountUcmId=999",
    ] {
        let raw = send(&url, "GET", target, t, None).await;
        checker.check("GET", LIST, &raw);
    }
    for name in ["free_name", users[1].username.as_str(), "x"] {
        let raw = send(
            &url,
            "GET",
            &format!("{AVAILABILITY}?username={name}"),
            t,
            None,
        )
        .await;
        checker.check("GET", AVAILABILITY, &raw);
    }
    for uuid in [users[2].uuid.as_str(), "missing"] {
        let raw = send(&url, "GET", &format!("{LIST}/{uuid}"), t, None).await;
        checker.check("GET", USER, &raw);
    }
    let create = |name: &str, device: &str| {
        json!({"username": name, "password": "pass12", "deviceUuid": device}).to_string()
    };
    let created = send(&url, "POST", LIST, t, Some(&create("schema_user", &device))).await;
    checker.check("POST", LIST, &created);
    let uuid: Value = serde_json::from_slice(&created.body).expect("created JSON");
    let uuid = uuid["uuid"].as_str().expect("uuid").to_owned();
    for body in [
        create("schema_user", &device),
        create("other_user", &inactive),
    ] {
        checker.check(
            "POST",
            LIST,
            &send(&url, "POST", LIST, t, Some(&body)).await,
        );
    }
    for (id, password) in [
        (uuid.as_str(), "pass99"),
        (uuid.as_str(), "no"),
        ("missing", "pass99"),
    ] {
        let body = json!({ "password": password }).to_string();
        let raw = send(&url, "PUT", &format!("{LIST}/{id}"), t, Some(&body)).await;
        checker.check("PUT", USER, &raw);
    }
    let other_device = api(&fleet).active_devices()[1].clone();
    for (method, user, dev) in [
        ("POST", uuid.as_str(), other_device.as_str()),
        ("POST", uuid.as_str(), other_device.as_str()),
        ("POST", "missing", device.as_str()),
        ("DELETE", uuid.as_str(), device.as_str()),
        ("DELETE", uuid.as_str(), device.as_str()),
        ("DELETE", "missing", device.as_str()),
        ("DELETE", uuid.as_str(), other_device.as_str()),
    ] {
        let raw = send(
            &url,
            method,
            &format!("{LIST}/{user}/devices/{dev}"),
            t,
            Some("{}"),
        )
        .await;
        checker.check(method, ASSOCIATION, &raw);
    }
    assert_eq!(checker.checked.len(), 25);
    assert_server_errors_conform(&mut checker).await;
    let mut covered = checker.checked.clone();
    covered.sort();
    covered.dedup();
    let documented = checker.schema["responses"]
        .as_object()
        .expect("responses")
        .len();
    // Every documented answer is produced, but for five 403s: the mock refuses only other
    // accounts, which only the listing takes.
    assert_eq!(covered.len(), documented - 5, "{covered:#?}");
}

async fn assert_server_errors_conform(checker: &mut Checker) {
    let faults = EquinixFaults {
        error_every: Some(1),
        ..EquinixFaults::default()
    };
    let fleet: Fleet = mock(3, faults).await;
    let url = fleet.equinix_url().expect("url");
    let token = token(&url).await;
    let t = Some(token.as_str());
    let body = Some(r#"{"password":"pass12"}"#);
    for (method, target, template, body) in [
        ("GET", LIST.to_owned(), LIST, None),
        (
            "POST",
            LIST.to_owned(),
            LIST,
            Some(r#"{"username":"a","password":"b","deviceUuid":"c"}"#),
        ),
        (
            "GET",
            format!("{AVAILABILITY}?username=abc"),
            AVAILABILITY,
            None,
        ),
        ("GET", format!("{LIST}/x"), USER, None),
        ("PUT", format!("{LIST}/x"), USER, body),
        (
            "POST",
            format!("{LIST}/x/devices/y"),
            ASSOCIATION,
            Some("{}"),
        ),
        (
            "DELETE",
            format!("{LIST}/x/devices/y"),
            ASSOCIATION,
            Some("{}"),
        ),
    ] {
        let raw = send(&url, method, &target, t, body).await;
        assert_eq!(raw.status, 500);
        checker.check(method, template, &raw);
    }
}
