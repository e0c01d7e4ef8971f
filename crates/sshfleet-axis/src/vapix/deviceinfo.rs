//! Device facts from VAPIX `basicdeviceinfo.cgi` (`getAllProperties`): model, product name,
//! firmware version and serial, for `--device-info`. One more request on the device's
//! session (same authentication, cached challenge), so it is asked for, not default.

use bytes::Bytes;
use serde::Deserialize;

use super::{Connection, DeviceSession, Failure, Resend};

pub(crate) const BASIC_DEVICE_INFO: &str = "/axis-cgi/basicdeviceinfo.cgi";

/// The request body.
const GET_ALL_PROPERTIES: &[u8] =
    br#"{"apiVersion":"1.0","context":"sshfleet","method":"getAllProperties"}"#;

/// Longest fact kept (model names and versions are far shorter; this bounds hostile ones).
const MAX_FACT: usize = 64;

/// What the device says it is. Every field is sanitised (printable ASCII, at most 64
/// characters) and `None` when the device did not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceFacts {
    /// `ProdNbr`, e.g. `P3265-LVE`.
    pub model: Option<String>,
    /// `ProdFullName`, e.g. `AXIS P3265-LVE Dome Camera`.
    pub product: Option<String>,
    /// `Version`, the AXIS OS version, e.g. `10.12.114`.
    pub firmware: Option<String>,
    /// `SerialNumber`, upper case.
    pub serial: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    context: Option<serde_json::Value>,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "propertyList")]
    property_list: Properties,
}

#[derive(Deserialize)]
struct Properties {
    #[serde(rename = "ProdNbr", default)]
    model: Option<String>,
    #[serde(rename = "ProdFullName", default)]
    product: Option<String>,
    #[serde(rename = "Version", default)]
    firmware: Option<String>,
    #[serde(rename = "SerialNumber", default)]
    serial: Option<String>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// Asks the device for its facts. `after` says whether the connection is wanted again.
pub async fn read_device_facts(
    session: &mut DeviceSession<'_>,
    after: Connection,
) -> Result<DeviceFacts, Failure> {
    let body = Bytes::from_static(GET_ALL_PROPERTIES);
    let response = session
        .post_json(BASIC_DEVICE_INFO, body, after, Resend::IfTransient)
        .await?;
    let status = response.status.as_u16();
    if status == 404 {
        return Err(Failure::Unsupported(String::from(
            "no basicdeviceinfo.cgi (firmware before AXIS OS 8.40)",
        )));
    }
    if status != 200 {
        return Err(Failure::Malformed {
            reason: format!("basicdeviceinfo.cgi answered HTTP {status}"),
            http_status: status,
        });
    }
    parse_facts(&response.body).map_err(|reason| Failure::Malformed {
        reason,
        http_status: status,
    })
}

/// The facts in a `getAllProperties` answer, or why there are none.
pub fn parse_facts(body: &[u8]) -> Result<DeviceFacts, String> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("basicdeviceinfo.cgi answer is not the expected JSON: {e}"))?;
    if let Some(context) = answer.context.filter(|c| c.as_str() != Some("sshfleet")) {
        return Err(format!(
            "basicdeviceinfo.cgi answered another request (context {})",
            sanitise(&context.to_string()).unwrap_or_default()
        ));
    }
    if let Some(error) = answer.error {
        return Err(format!(
            "basicdeviceinfo.cgi error {}: {}",
            error.code.unwrap_or(0),
            sanitise(error.message.as_deref().unwrap_or("")).unwrap_or_default()
        ));
    }
    let Some(data) = answer.data else {
        return Err(String::from(
            "basicdeviceinfo.cgi answer has neither data nor error",
        ));
    };
    let p = data.property_list;
    Ok(DeviceFacts {
        model: p.model.as_deref().and_then(sanitise),
        product: p.product.as_deref().and_then(sanitise),
        firmware: p.firmware.as_deref().and_then(sanitise),
        serial: p
            .serial
            .as_deref()
            .and_then(sanitise)
            .map(|s| s.to_ascii_uppercase()),
    })
}

/// Printable ASCII only (others become `?`), trimmed, at most [`MAX_FACT`] characters;
/// `None` when nothing is left.
fn sanitise(text: &str) -> Option<String> {
    let clean: String = text
        .trim()
        .chars()
        .take(MAX_FACT)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    (!clean.is_empty()).then_some(clean)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn facts_are_read_and_sanitised() {
        let body = br#"{"apiVersion":"1.3","data":{"propertyList":{"Brand":"AXIS","ProdNbr":"P3265-LVE","ProdFullName":"AXIS P3265-LVE Dome Camera","Version":"10.12.114","SerialNumber":"accc8e012345","Architecture":"aarch64"}}}"#;
        let facts = parse_facts(body).unwrap();
        assert_eq!(facts.model.as_deref(), Some("P3265-LVE"));
        assert_eq!(facts.product.as_deref(), Some("AXIS P3265-LVE Dome Camera"));
        assert_eq!(facts.firmware.as_deref(), Some("10.12.114"));
        assert_eq!(facts.serial.as_deref(), Some("ACCC8E012345"));
        let hostile = "{\"data\":{\"propertyList\":{\"ProdNbr\":\"<script>\\u0007\\n=cmd|x\",\"Version\":\"\"}}}";
        let facts = parse_facts(hostile.as_bytes()).unwrap();
        assert_eq!(facts.model.as_deref(), Some("<script>??=cmd|x"));
        assert_eq!(facts.firmware, None);
        let long = format!(
            "{{\"data\":{{\"propertyList\":{{\"ProdNbr\":\"{}\"}}}}}}",
            "A".repeat(500)
        );
        assert_eq!(
            parse_facts(long.as_bytes()).unwrap().model.unwrap().len(),
            64
        );
    }

    #[test]
    fn errors_and_garbage_are_reasons() {
        let err = parse_facts(
            br#"{"apiVersion":"1.3","error":{"code":2002,"message":"Method not supported"}}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("2002") && err.contains("Method not supported"),
            "{err}"
        );
        assert!(parse_facts(b"{\"apiVersion\":\"1.3\"}")
            .unwrap_err()
            .contains("neither"));
        assert!(parse_facts(b"<html>")
            .unwrap_err()
            .contains("not the expected JSON"));
    }
}
