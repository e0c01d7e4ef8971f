//! Network Edge bodies on the wire: request bodies with exactly the schema's property names,
//! and responses parsed once (simd-json, leniently: unknown fields ignored, numbers and
//! booleans also as strings) into the domain types of [`super`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::errors::ApiProblem;
use super::{Dissociation, Page, PodStatus, SshUser};
use sshfleet_core::secret::Secret;

/// The body could not be read as the documented shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

fn parse<'a, T: Deserialize<'a>>(body: &'a mut [u8]) -> Result<T, Malformed> {
    simd_json::serde::from_slice(body).map_err(|e| Malformed(e.to_string()))
}

// ---- requests ----

#[derive(Serialize)]
struct TokenRequest<'a> {
    grant_type: &'static str,
    client_id: &'a str,
    client_secret: &'a str,
}

/// `{"grant_type":"client_credentials","client_id":…,"client_secret":…}`.
pub fn token_request(client_id: &str, client_secret: &Secret) -> Vec<u8> {
    let body = TokenRequest {
        grant_type: "client_credentials",
        client_id,
        client_secret: client_secret.expose(),
    };
    simd_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest<'a> {
    username: &'a str,
    password: &'a str,
    device_uuid: &'a str,
}

/// `SshUserCreateRequest`: `{"username","password","deviceUuid"}`.
pub(crate) fn create_request(username: &str, password: &Secret, device_uuid: &str) -> Vec<u8> {
    let body = CreateRequest {
        username,
        password: password.expose(),
        device_uuid,
    };
    simd_json::to_vec(&body).unwrap_or_default()
}

#[derive(Serialize)]
struct UpdateRequest<'a> {
    password: &'a str,
}

/// `SshUserUpdateRequest`: `{"password"}`.
pub(crate) fn update_request(password: &Secret) -> Vec<u8> {
    let body = UpdateRequest {
        password: password.expose(),
    };
    simd_json::to_vec(&body).unwrap_or_default()
}

// ---- responses ----

/// A token and how long it lives.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: Secret,
    /// `None` when the response did not say (or said something unreadable).
    pub lifetime_secs: Option<u64>,
}

#[derive(Deserialize)]
struct WireToken {
    access_token: String,
    #[serde(default, deserialize_with = "sshfleet_core::lenient::integer")]
    token_timeout: Option<u64>,
    #[serde(default, deserialize_with = "sshfleet_core::lenient::integer")]
    expires_in: Option<u64>,
}

pub fn parse_token(body: &mut [u8]) -> Result<TokenGrant, Malformed> {
    let wire: WireToken = parse(body)?;
    if wire.access_token.trim().is_empty() {
        return Err(Malformed("empty access_token".into()));
    }
    Ok(TokenGrant {
        access_token: Secret::new(wire.access_token),
        lifetime_secs: wire.token_timeout.or(wire.expires_in),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUser {
    uuid: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    device_uuids: Option<Vec<String>>,
    #[serde(default)]
    metro_status_map: Option<BTreeMap<String, WireMetroStatus>>,
}

#[derive(Deserialize)]
struct WireMetroStatus {
    #[serde(default)]
    status: Option<String>,
}

impl From<WireUser> for SshUser {
    fn from(w: WireUser) -> SshUser {
        let metros = w
            .metro_status_map
            .unwrap_or_default()
            .into_iter()
            .map(|(pod, s)| (pod, PodStatus::parse(s.status.as_deref().unwrap_or(""))))
            .collect();
        SshUser {
            uuid: w.uuid,
            username: w.username.unwrap_or_default(),
            device_uuids: w.device_uuids,
            metros,
        }
    }
}

#[derive(Deserialize)]
struct WirePage {
    #[serde(default)]
    pagination: Option<WirePagination>,
    #[serde(default)]
    data: Option<Vec<WireUser>>,
}

/// `next`/`previous` may be present; paging is driven by `offset` and `total` only.
#[derive(Deserialize)]
struct WirePagination {
    #[serde(default, deserialize_with = "sshfleet_core::lenient::integer")]
    offset: Option<u64>,
    #[serde(default, deserialize_with = "sshfleet_core::lenient::integer")]
    limit: Option<u64>,
    #[serde(default, deserialize_with = "sshfleet_core::lenient::integer")]
    total: Option<u64>,
}

/// `SshUserPageResponse`. `requested_offset` stands in when the API omits `pagination`.
pub fn parse_page(body: &mut [u8], requested_offset: u64) -> Result<Page, Malformed> {
    let body_bytes = body.len();
    let wire: WirePage = parse(body)?;
    let pagination = wire.pagination.unwrap_or(WirePagination {
        offset: None,
        limit: None,
        total: None,
    });
    Ok(Page {
        offset: pagination.offset.unwrap_or(requested_offset),
        limit: pagination.limit,
        total: pagination.total,
        users: wire
            .data
            .unwrap_or_default()
            .into_iter()
            .map(SshUser::from)
            .collect(),
        body_bytes,
    })
}

/// `SshUserInfoVerbose`.
pub fn parse_user(body: &mut [u8]) -> Result<SshUser, Malformed> {
    parse::<WireUser>(body).map(SshUser::from)
}

#[derive(Deserialize)]
struct WireCreated {
    #[serde(default)]
    uuid: Option<String>,
}

/// `SshUserCreateResponse`'s uuid; `Ok(None)` for an empty or uuid-less body.
pub fn parse_created(body: &mut [u8]) -> Result<Option<String>, Malformed> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let wire: WireCreated = parse(body)?;
    Ok(wire.uuid.filter(|u| !u.trim().is_empty()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDissociation {
    #[serde(default, deserialize_with = "sshfleet_core::lenient::boolean")]
    ssh_user_deleted: Option<bool>,
    #[serde(default, deserialize_with = "sshfleet_core::lenient::boolean")]
    ssh_user_to_device_association_deleted: Option<bool>,
}

/// `SshUserInfoDissociateResponse` (booleans, or `"true"`/`"false"` as the page shows).
pub fn parse_dissociation(body: &mut [u8]) -> Result<Dissociation, Malformed> {
    let wire: WireDissociation = parse(body)?;
    Ok(Dissociation {
        user_deleted: wire.ssh_user_deleted.unwrap_or(false),
        association_deleted: wire
            .ssh_user_to_device_association_deleted
            .ok_or_else(|| Malformed("no sshUserToDeviceAssociationDeleted".into()))?,
    })
}

#[derive(Deserialize)]
struct WireProblem {
    #[serde(default, alias = "errorCode", alias = "error_code", alias = "error")]
    code: Option<WireScalar>,
    #[serde(
        default,
        alias = "errorMessage",
        alias = "error_message",
        alias = "error_description"
    )]
    message: Option<WireScalar>,
    #[serde(default)]
    property: Option<WireScalar>,
    #[serde(default, alias = "moreInfo", alias = "more_info")]
    more_info: Option<WireScalar>,
}

/// A string, or anything else rendered as text (codes are sometimes numbers).
#[derive(Deserialize)]
#[serde(untagged)]
enum WireScalar {
    Text(String),
    Number(i64),
    Other(serde::de::IgnoredAny),
}

impl WireScalar {
    fn text(self) -> Option<String> {
        match self {
            WireScalar::Text(t) if !t.trim().is_empty() => Some(t),
            WireScalar::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireErrorBody {
    Many(Vec<WireProblem>),
    One(WireProblem),
    /// The 404 of `GET /sshUsers/{uuid}` is documented as a bare code string.
    Code(String),
}

impl From<WireProblem> for ApiProblem {
    fn from(w: WireProblem) -> ApiProblem {
        ApiProblem {
            code: w.code.and_then(WireScalar::text),
            message: w.message.and_then(WireScalar::text),
            property: w.property.and_then(WireScalar::text),
            more_info: w.more_info.and_then(WireScalar::text),
        }
    }
}

/// The problems an error body reports: a single object or an array, camelCase or
/// snake_case, or a bare code string. Anything else becomes one problem with the body's
/// first line as its message (cut short), so the user still sees what the API said.
pub fn parse_problems(body: &[u8]) -> Vec<ApiProblem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    let mut copy = body.to_vec();
    let problems = match parse::<WireErrorBody>(&mut copy) {
        Ok(WireErrorBody::Many(list)) => list.into_iter().map(ApiProblem::from).collect(),
        Ok(WireErrorBody::One(one)) => vec![ApiProblem::from(one)],
        Ok(WireErrorBody::Code(code)) => vec![ApiProblem {
            code: Some(code),
            ..ApiProblem::default()
        }],
        Err(_) => vec![ApiProblem {
            message: Some(snippet(body)),
            ..ApiProblem::default()
        }],
    };
    problems
        .into_iter()
        .filter(|p| *p != ApiProblem::default())
        .collect()
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(200).collect()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_page_sample() {
        let mut body = br#"{"pagination":{"offset":0,"limit":20,"total":2},"data":[
            {"uuid":"68d8","username":"user6","deviceUuids":[],
             "metroStatusMap":{"da1.pod1":{"status":"FAILED"}}},
            {"uuid":"1768","username":"testSsh","deviceUuids":["c71f","d847"],
             "metroStatusMap":{"sy5.pod2":{"status":"ACTIVE"}},"extra":1}]}"#
            .to_vec();
        let page = parse_page(&mut body, 0).unwrap();
        assert_eq!(
            (page.offset, page.limit, page.total),
            (0, Some(20), Some(2))
        );
        assert_eq!(page.users.len(), 2);
        assert_eq!(page.users[0].device_uuids, Some(vec![]));
        assert_eq!(
            page.users[0].metros,
            [("da1.pod1".to_owned(), PodStatus::Failed)]
        );
        assert_eq!(page.users[1].device_count(), Some(2));
    }

    #[test]
    fn pages_tolerate_strings_links_and_missing_details() {
        let mut body = br#"{"pagination":{"offset":"100","limit":"100","total":"250",
            "next":"/ne/v1/sshUsers?offset=200","previous":null},
            "data":[{"uuid":"a","username":"x"}]}"#
            .to_vec();
        let page = parse_page(&mut body, 100).unwrap();
        assert_eq!((page.offset, page.total), (100, Some(250)));
        assert_eq!(page.users[0].device_uuids, None);
        let mut empty = br#"{"data":[]}"#.to_vec();
        let page = parse_page(&mut empty, 300).unwrap();
        assert_eq!((page.offset, page.total, page.users.len()), (300, None, 0));
        assert!(parse_page(&mut b"[1,2]".to_vec(), 0).is_err());
    }

    #[test]
    fn error_bodies_in_every_spelling() {
        let array = br#"[{"errorCode":"SSH_USER_ALREADY_EXISTS","errorMessage":"taken","property":"username"}]"#;
        let problems = parse_problems(array);
        assert_eq!(problems[0].code.as_deref(), Some("SSH_USER_ALREADY_EXISTS"));
        assert_eq!(problems[0].property.as_deref(), Some("username"));
        let snake = br#"{"error_code":"INVALID_CLIENT","error_message":"bad secret"}"#;
        assert_eq!(
            parse_problems(snake)[0].message.as_deref(),
            Some("bad secret")
        );
        let bare = br#""RESOURCE_NOT_FOUND""#;
        assert_eq!(
            parse_problems(bare)[0].code.as_deref(),
            Some("RESOURCE_NOT_FOUND")
        );
        let html = b"<html>\n<h1>502 Bad Gateway</h1>";
        assert_eq!(parse_problems(html)[0].message.as_deref(), Some("<html>"));
        assert!(parse_problems(b"").is_empty());
        assert!(parse_problems(b"{}").is_empty());
    }

    #[test]
    fn token_timeout_is_a_string_of_seconds() {
        let mut body =
            br#"{"access_token":"abc","token_type":"Bearer","token_timeout":"3599","user_name":"u"}"#
                .to_vec();
        let grant = parse_token(&mut body).unwrap();
        assert_eq!(grant.access_token.expose(), "abc");
        assert_eq!(grant.lifetime_secs, Some(3599));
        assert!(parse_token(&mut br#"{"access_token":""}"#.to_vec()).is_err());
    }

    #[test]
    fn dissociation_booleans_may_be_strings() {
        let mut body =
            br#"{"sshUserDeleted":"false","sshUserToDeviceAssociationDeleted":true}"#.to_vec();
        assert_eq!(
            parse_dissociation(&mut body).unwrap(),
            Dissociation {
                user_deleted: false,
                association_deleted: true
            }
        );
    }

    #[test]
    fn request_bodies_use_the_schema_names() {
        let body = create_request("u1", &Secret::new("p\"w"), "dev");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"username":"u1","password":"p\"w","deviceUuid":"dev"}"#
        );
        let token = token_request("id", &Secret::new("s"));
        assert_eq!(
            String::from_utf8(token).unwrap(),
            r#"{"grant_type":"client_credentials","client_id":"id","client_secret":"s"}"#
        );
        assert_eq!(
            parse_created(&mut br#"{"uuid":"12828472"}"#.to_vec()).unwrap(),
            Some("12828472".into())
        );
        assert_eq!(parse_created(&mut b"".to_vec()).unwrap(), None);
    }
}
