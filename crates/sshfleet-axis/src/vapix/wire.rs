//! ssh.cgi on the wire: request bodies, and responses parsed once (simd-json) into domain
//! values. Anything that is not exactly a well-formed answer is `Malformed`, never a guess.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny};
use serde::Deserialize;

pub const SSH_CGI: &str = "/axis-cgi/ssh.cgi";

/// Echoed back by the device; lets a reader of a capture tell our requests apart.
const CONTEXT: &str = "sshfleet";

/// A `major.minor` API version as the device lists it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    /// Strict `digits.digits`; anything else is not a version we will echo into a request.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.split_once('.')?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The highest `1.x` the device lists: the major version this client speaks.
pub fn pick_version(listed: &[String]) -> Option<ApiVersion> {
    listed
        .iter()
        .filter_map(|v| ApiVersion::parse(v))
        .filter(|v| v.major == 1)
        .max()
}

/// `getSupportedVersions` is sent without `apiVersion` (the device may not know ours).
pub fn get_supported_versions() -> &'static [u8] {
    br#"{"context":"sshfleet","method":"getSupportedVersions"}"#
}

pub fn get_ssh_info(version: ApiVersion) -> Vec<u8> {
    format!(r#"{{"apiVersion":"{version}","context":"{CONTEXT}","method":"getSshInfo"}}"#)
        .into_bytes()
}

pub fn set_ssh_configuration(version: ApiVersion, enabled: bool) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"{version}","context":"{CONTEXT}","method":"setSshConfiguration","params":{{"enabled":{enabled}}}}}"#
    )
    .into_bytes()
}

/// An error object from the device: any integer code (the page itself shows 8000).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceError {
    pub code: Option<i64>,
    pub message: String,
}

impl DeviceError {
    /// VAPIX 4002: authenticated, but the account may not use this API.
    pub(crate) const NOT_AUTHORIZED: i64 = 4002;

    pub fn is_not_authorized(&self) -> bool {
        self.code == Some(Self::NOT_AUTHORIZED)
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "device error {code}: {}", self.message),
            None => write!(f, "device error: {}", self.message),
        }
    }
}

/// What a well-formed ssh.cgi response says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<T> {
    Data(T),
    Error(DeviceError),
}

/// The body was not a well-formed ssh.cgi response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed ssh.cgi response: {0}")]
pub struct Malformed(pub String);

/// The shape every ssh.cgi answer shares. Public only so the benches can parse the same
/// shapes with serde_json for comparison; the rest of the crate sees [`Reply`].
#[doc(hidden)]
#[derive(Deserialize)]
pub struct Envelope<D> {
    #[serde(default = "none")]
    pub data: Option<D>,
    #[serde(default)]
    pub error: Option<WireError>,
    /// The method the answer is for, when the device says.
    #[serde(default)]
    pub method: Option<WireMethod>,
    /// Whether the echoed `context` is ours, when the device echoes one.
    #[serde(default)]
    pub context: Option<WireContext>,
}

/// The ssh.cgi methods this client calls, read without allocating; anything else is `Other`.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireMethod {
    GetSupportedVersions,
    GetSshInfo,
    SetSshConfiguration,
    Other,
}

impl WireMethod {
    fn name(self) -> &'static str {
        match self {
            WireMethod::GetSupportedVersions => "getSupportedVersions",
            WireMethod::GetSshInfo => "getSshInfo",
            WireMethod::SetSshConfiguration => "setSshConfiguration",
            WireMethod::Other => "another method",
        }
    }
}

impl<'de> Deserialize<'de> for WireMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireMethod, D::Error> {
        Ok(match Name::deserialize(d)?.0.as_deref() {
            Some("getSupportedVersions") => WireMethod::GetSupportedVersions,
            Some("getSshInfo") => WireMethod::GetSshInfo,
            Some("setSshConfiguration") => WireMethod::SetSshConfiguration,
            _ => WireMethod::Other,
        })
    }
}

/// An echoed `context`: ours (`sshfleet`) or someone else's.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireContext {
    Ours,
    Other,
}

impl<'de> Deserialize<'de> for WireContext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireContext, D::Error> {
        Ok(match Name::deserialize(d)?.0.as_deref() {
            Some(CONTEXT) => WireContext::Ours,
            _ => WireContext::Other,
        })
    }
}

/// A JSON string borrowed from the body when it can be (no escapes), else copied; any other
/// JSON value is `None`, so a number or an object in `method` is simply not our method.
struct Name<'de>(Option<std::borrow::Cow<'de, str>>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name<'de>, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Some(std::borrow::Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Some(std::borrow::Cow::Owned(v.to_owned()))))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Name(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Name(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Name(None))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn none<D>() -> Option<D> {
    None
}

#[doc(hidden)]
#[derive(Deserialize)]
pub struct WireError {
    #[serde(default, deserialize_with = "sshfleet_core::lenient::integer")]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

#[doc(hidden)]
#[derive(Deserialize)]
pub struct VersionsData {
    #[serde(rename = "apiVersions")]
    pub api_versions: Vec<String>,
}

#[doc(hidden)]
#[derive(Deserialize)]
pub struct SshInfoData {
    pub enabled: bool,
}

thread_local! {
    /// simd-json's scratch buffers, kept per thread: allocating them for every parse made
    /// simd-json 1.5-1.9x slower, and slower than serde_json, on ~100-byte ssh.cgi bodies
    /// (bench `parse/*`). They grow to the largest body parsed, at most the body cap.
    static PARSE_BUFFERS: RefCell<simd_json::Buffers> = RefCell::new(simd_json::Buffers::new(512));
}

/// Parses in place (simd-json mutates the buffer). An `error` member always wins over `data`.
/// An answer that names another method, or echoes another context, is not an answer to this
/// request (a proxy or a confused device mixing up answers) and is never taken as a reading.
fn parse<D: for<'de> Deserialize<'de>>(
    body: &mut [u8],
    expected: WireMethod,
) -> Result<Reply<D>, Malformed> {
    let body = without_bom(body);
    if body.is_empty() {
        return Err(Malformed("empty body".into()));
    }
    let envelope: Envelope<D> = PARSE_BUFFERS
        .with_borrow_mut(|buffers| simd_json::serde::from_slice_with_buffers(body, buffers))
        .map_err(|e| Malformed(e.to_string()))?;
    if let Some(method) = envelope.method.filter(|m| *m != expected) {
        return Err(Malformed(format!(
            "answer for {}, not for {}",
            method.name(),
            expected.name()
        )));
    }
    if envelope.context == Some(WireContext::Other) {
        return Err(Malformed(format!(
            "answer echoes another request's context, not {CONTEXT:?}"
        )));
    }
    match (envelope.error, envelope.data) {
        (Some(e), _) => Ok(Reply::Error(DeviceError {
            code: e.code,
            message: e.message.unwrap_or_default(),
        })),
        (None, Some(data)) => Ok(Reply::Data(data)),
        (None, None) => Err(Malformed("neither data nor error".into())),
    }
}

/// JSON text may start with a UTF-8 byte order mark (RFC 8259 lets readers ignore it), and
/// some device web servers send one; simd-json refuses it, so it is skipped, not copied.
fn without_bom(body: &mut [u8]) -> &mut [u8] {
    const BOM: &[u8] = b"\xef\xbb\xbf";
    if body.starts_with(BOM) {
        &mut body[BOM.len()..]
    } else {
        body
    }
}

pub fn parse_supported_versions(body: &mut [u8]) -> Result<Reply<Vec<String>>, Malformed> {
    Ok(
        match parse::<VersionsData>(body, WireMethod::GetSupportedVersions)? {
            Reply::Data(d) => Reply::Data(d.api_versions),
            Reply::Error(e) => Reply::Error(e),
        },
    )
}

/// `data.enabled` must be a JSON boolean: a missing or odd value is never read as "disabled".
pub fn parse_ssh_info(body: &mut [u8]) -> Result<Reply<bool>, Malformed> {
    Ok(match parse::<SshInfoData>(body, WireMethod::GetSshInfo)? {
        Reply::Data(d) => Reply::Data(d.enabled),
        Reply::Error(e) => Reply::Error(e),
    })
}

pub fn parse_set_ssh_configuration(body: &mut [u8]) -> Result<Reply<()>, Malformed> {
    Ok(
        match parse::<IgnoredAny>(body, WireMethod::SetSshConfiguration)? {
            Reply::Data(_) => Reply::Data(()),
            Reply::Error(e) => Reply::Error(e),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn request_bodies_are_valid_json_per_the_page() {
        let v = ApiVersion { major: 1, minor: 1 };
        let info: serde_json::Value = serde_json::from_slice(&get_ssh_info(v)).unwrap_or_default();
        assert_eq!(info["apiVersion"], "1.1");
        assert_eq!(info["method"], "getSshInfo");
        let set: serde_json::Value =
            serde_json::from_slice(&set_ssh_configuration(v, false)).unwrap_or_default();
        assert_eq!(set["params"]["enabled"], false);
        let versions: serde_json::Value =
            serde_json::from_slice(get_supported_versions()).unwrap_or_default();
        assert_eq!(versions["method"], "getSupportedVersions");
        assert!(versions.get("apiVersion").is_none());
    }

    #[test]
    fn picks_highest_one_x() {
        let listed = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pick_version(&listed(&["1.0", "1.10", "1.2", "2.1"])),
            Some(ApiVersion {
                major: 1,
                minor: 10
            })
        );
        assert_eq!(pick_version(&listed(&["2.0", "2.1"])), None);
        assert_eq!(pick_version(&listed(&["1.0\"}", "x", ""])), None);
    }

    #[test]
    fn parses_page_examples() {
        // The page's answers, echoing the context our requests send (the page's own requests
        // send "abc" and "123").
        let mut ok = bytes(
            r#"{"apiVersion":"1.0","context":"sshfleet","method":"getSupportedVersions","data":{"apiVersions":["1.0","2.1"]}}"#,
        );
        assert_eq!(
            parse_supported_versions(&mut ok),
            Ok(Reply::Data(vec!["1.0".into(), "2.1".into()]))
        );
        let mut info = bytes(
            r#"{"apiVersion":"1.0","context":"sshfleet","method":"getSshInfo","data":{"enabled":true}}"#,
        );
        assert_eq!(parse_ssh_info(&mut info), Ok(Reply::Data(true)));
        let mut err = bytes(
            r#"{"apiVersion":"1.0","context":"sshfleet","method":"getSupportedVersions","error":{"code":8000,"message":"Internal error"}}"#,
        );
        assert_eq!(
            parse_supported_versions(&mut err),
            Ok(Reply::Error(DeviceError {
                code: Some(8000),
                message: "Internal error".into()
            }))
        );
        let mut set = bytes(
            r#"{"apiVersion":"1.0","context":"sshfleet","method":"setSshConfiguration","data":{}}"#,
        );
        assert_eq!(parse_set_ssh_configuration(&mut set), Ok(Reply::Data(())));
    }

    #[test]
    fn error_member_wins_and_may_lack_method() {
        let mut both = bytes(
            r#"{"data":{"enabled":false},"error":{"code":"4002","message":"Authorization failed"}}"#,
        );
        let reply = parse_ssh_info(&mut both);
        assert!(matches!(reply, Ok(Reply::Error(ref e)) if e.is_not_authorized()));
    }

    #[test]
    fn an_answer_for_another_method_or_context_is_no_reading() {
        for body in [
            r#"{"method":"getSupportedVersions","data":{"enabled":false}}"#,
            r#"{"method":"getSshInf","data":{"enabled":false}}"#,
            r#"{"method":7,"data":{"enabled":false}}"#,
            r#"{"method":"getSshInfo","context":"other","data":{"enabled":false}}"#,
            r#"{"context":{"a":1},"data":{"enabled":false}}"#,
            r#"{"method":"setSshConfiguration","error":{"code":8000,"message":"x"}}"#,
        ] {
            let reply = parse_ssh_info(&mut bytes(body));
            assert!(reply.is_err(), "{body}: {reply:?}");
        }
        // The method and our context, escaped or not, or absent, are fine.
        for body in [
            r#"{"method":"getSshInfo","context":"sshfleet","data":{"enabled":false}}"#,
            r#"{"method":"getSsh\u0049nfo","context":"ssh\u0066leet","data":{"enabled":false}}"#,
            r#"{"data":{"enabled":false}}"#,
        ] {
            assert_eq!(
                parse_ssh_info(&mut bytes(body)),
                Ok(Reply::Data(false)),
                "{body}"
            );
        }
        let mut set = bytes(r#"{"method":"getSshInfo","data":{}}"#);
        assert!(parse_set_ssh_configuration(&mut set).is_err());
    }

    #[test]
    fn a_leading_bom_is_skipped_and_nothing_else() {
        let mut with_bom = b"\xef\xbb\xbf{\"data\":{\"enabled\":true}}".to_vec();
        assert_eq!(parse_ssh_info(&mut with_bom), Ok(Reply::Data(true)));
        for body in [
            &b"\xef\xbb\xbf"[..],
            b"\xef\xbb{\"data\":{\"enabled\":true}}",
        ] {
            assert!(parse_ssh_info(&mut body.to_vec()).is_err(), "{body:?}");
        }
    }

    #[test]
    fn never_guesses_disabled() {
        for body in [
            r#"{"data":{"enabled":"false"}}"#,
            r#"{"data":{"enabled":0}}"#,
            r#"{"data":{}}"#,
            r#"{"data":{"enabled":null}}"#,
            r#"{"apiVersion":"1.0"}"#,
            r#"{"data":{"enabled":false"#,
            "",
            "<html>",
            "null",
        ] {
            assert!(parse_ssh_info(&mut bytes(body)).is_err(), "{body}");
        }
    }
}
