//! The device side of the legacy `param.cgi` for the `Network.SSH.Enabled` parameter:
//! `action=list` and `action=update`, with the spellings older firmware uses.

use super::camera::Camera;
use super::http::{Request, Response};

const CONTENT_TYPE: &str = "text/plain; charset=ISO-8859-1";
const SSH_GROUP: &str = "Network.SSH";
const SSH_PARAM: &str = "Network.SSH.Enabled";

/// `GET /axis-cgi/param.cgi?action=list|update&...`.
pub(crate) fn handle(cam: &Camera, req: &Request) -> Response {
    let pairs = parse_query(req.query());
    let action = pairs
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.as_str());
    let body = match action {
        Some("list") => list(
            cam,
            pairs
                .iter()
                .find(|(k, _)| k == "group")
                .map(|(_, v)| v.as_str()),
        ),
        Some("update") => update(cam, &pairs),
        _ => "# Error: Invalid action\r\n".to_owned(),
    };
    Response::new(200, CONTENT_TYPE, body)
}

fn list(cam: &Camera, group: Option<&str>) -> String {
    let has_param = cam.spec.firmware.has_ssh_param();
    let Some(group) = group else {
        let mut all = "root.Brand.Brand=AXIS\r\n".to_owned();
        if has_param {
            all.push_str(&cam.param_style.line(cam.ssh_enabled()));
        }
        return all;
    };
    let known = group
        .split(',')
        .all(|g| is_name(g, SSH_GROUP) || is_name(g, SSH_PARAM));
    if has_param && known {
        cam.param_style.line(cam.ssh_enabled())
    } else {
        format!("# Error: Error -1 getting param in group '{group}'\r\n")
    }
}

fn update(cam: &Camera, pairs: &[(String, String)]) -> String {
    let changes: Vec<_> = pairs.iter().filter(|(k, _)| k != "action").collect();
    let mut value = None;
    for (key, raw) in &changes {
        match parse_bool(raw) {
            Some(on) if is_name(key, SSH_PARAM) && cam.spec.firmware.has_ssh_param() => {
                value = Some(on);
            }
            _ => return format!("# Error: Error setting '{key}' to '{raw}'!\r\n"),
        }
    }
    match value {
        Some(on) => {
            cam.write_ssh(on);
            "OK".to_owned()
        }
        None => "# Error: No parameters to update\r\n".to_owned(),
    }
}

/// `name` with or without the `root.` prefix, any case.
fn is_name(given: &str, name: &str) -> bool {
    let given = given.trim();
    let bare = match given.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("root.") => &given[5..],
        _ => given,
    };
    bare.eq_ignore_ascii_case(name)
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// `a=b&c=d` with `+` and `%XX` decoded.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scheme;
    use crate::camera::Identity;
    use crate::http::Body;
    use crate::spec::{DeviceSpec, Firmware, ParamStyle};
    use std::time::Duration;

    fn camera(firmware: Firmware, param_style: ParamStyle) -> Camera {
        let spec = DeviceSpec {
            firmware,
            ..DeviceSpec::clean(true)
        };
        let id = Identity {
            address: "127.0.0.1:1".to_owned(),
            realm: "AXIS_ACCC8E000001".to_owned(),
            facts: None,
            scheme: Scheme::None,
            password: sshfleet_core::secret::Secret::new("pass"),
            param_style,
            slow_delay: Duration::ZERO,
            ssh_server: crate::sshkex::SshServer::for_camera(0, 0),
        };
        Camera::new(spec, id)
    }

    fn get(cam: &Camera, target: &str) -> String {
        let req = Request {
            method: "GET".to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Body::Full(bytes::Bytes::new()),
            keep_alive: true,
        };
        String::from_utf8_lossy(&handle(cam, &req).body).into_owned()
    }

    const LIST: &str = "/axis-cgi/param.cgi?action=list&group=Network.SSH";

    #[test]
    fn lists_and_updates_the_parameter() {
        let cam = camera(Firmware::ParamOnly, ParamStyle::default());
        assert_eq!(get(&cam, LIST), "root.Network.SSH.Enabled=yes\r\n");
        let update = "/axis-cgi/param.cgi?action=update&root.Network.SSH.Enabled=OFF";
        assert_eq!(get(&cam, update), "OK");
        assert_eq!(get(&cam, LIST), "root.Network.SSH.Enabled=no\r\n");
        assert_eq!(cam.snapshot().writes.len(), 1);
    }

    #[test]
    fn spelling_follows_the_style() {
        let style = ParamStyle {
            root_prefix: false,
            words: ["On", "Off"],
        };
        let cam = camera(Firmware::Modern, style);
        assert_eq!(
            get(
                &cam,
                "/axis-cgi/param.cgi?action=list&group=root.Network.SSH"
            ),
            "Network.SSH.Enabled=On\r\n"
        );
    }

    #[test]
    fn ancient_firmware_and_bad_requests_answer_error_lines() {
        let cam = camera(Firmware::Ancient, ParamStyle::default());
        assert!(get(&cam, LIST).starts_with("# Error:"));
        assert!(get(
            &cam,
            "/axis-cgi/param.cgi?action=update&Network.SSH.Enabled=no"
        )
        .starts_with("# Error:"));
        let modern = camera(Firmware::Modern, ParamStyle::default());
        assert!(
            get(&modern, "/axis-cgi/param.cgi?action=list&group=Network.Foo")
                .starts_with("# Error:")
        );
        assert!(get(
            &modern,
            "/axis-cgi/param.cgi?action=update&Network.SSH.Enabled=maybe"
        )
        .starts_with("# Error:"));
        assert!(modern.snapshot().writes.is_empty());
    }

    #[test]
    fn decodes_queries() {
        assert_eq!(percent_decode("a%2Eb+c%zz%"), "a.b c%zz%");
        assert_eq!(
            parse_query("x=1&&y"),
            vec![("x".into(), "1".into()), ("y".into(), String::new())]
        );
    }
}
