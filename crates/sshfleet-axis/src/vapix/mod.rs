//! The Axis wire protocol: ssh.cgi (`getSupportedVersions` → `getSshInfo`,
//! `setSshConfiguration`) with the `param.cgi` fallback for firmware without ssh.cgi.

pub mod deviceinfo;
pub mod identity;
pub mod param;
pub mod session;
pub mod wire;

use bytes::Bytes;
use http::StatusCode;

pub use session::{CallError, Connection, DeviceSession, Resend, SessionPolicy};
use sshfleet_core::model::Method;
use sshfleet_net::HttpResponse;
use wire::{ApiVersion, DeviceError, Reply};

/// The SSH state of a device and how it was read.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SshReading {
    pub enabled: bool,
    pub method: Method,
    /// The ssh.cgi version used (`None` on param.cgi).
    pub api_version: Option<ApiVersion>,
    pub supported_versions: Vec<String>,
}

/// Why the state could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("{error}")]
    Device {
        error: DeviceError,
        http_status: u16,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{reason}")]
    Malformed { reason: String, http_status: u16 },
}

/// Reads the SSH state: ssh.cgi when the device has it, else param.cgi. `after` says
/// whether the connection is still wanted once the state is read.
pub async fn read_ssh_state(
    session: &mut DeviceSession<'_>,
    after: Connection,
) -> Result<SshReading, Failure> {
    let body = Bytes::from_static(wire::get_supported_versions());
    let mut response = session
        .post_json(
            wire::SSH_CGI,
            body,
            Connection::KeepAlive,
            Resend::IfTransient,
        )
        .await?;
    if response.status == StatusCode::NOT_FOUND {
        return read_param(session, after).await;
    }
    let listed = expect_reply(&mut response, wire::parse_supported_versions)?;
    let Some(version) = wire::pick_version(&listed) else {
        return Err(Failure::Unsupported(format!(
            "no 1.x ssh.cgi version among {listed:?}"
        )));
    };
    let enabled = read_ssh_info(session, version, after).await?;
    Ok(SshReading {
        enabled,
        method: Method::SshCgi,
        api_version: Some(version),
        supported_versions: listed,
    })
}

/// `getSshInfo` alone, for read-back after a write (the version is already known).
pub(crate) async fn read_ssh_info(
    session: &mut DeviceSession<'_>,
    version: ApiVersion,
    after: Connection,
) -> Result<bool, Failure> {
    let body = Bytes::from(wire::get_ssh_info(version));
    let mut response = session
        .post_json(wire::SSH_CGI, body, after, Resend::IfTransient)
        .await?;
    expect_reply(&mut response, wire::parse_ssh_info)
}

/// Reads the state the same way `reading` was obtained (ssh.cgi version or param.cgi).
pub async fn read_back(
    session: &mut DeviceSession<'_>,
    reading: &SshReading,
    after: Connection,
) -> Result<bool, Failure> {
    let enabled = match reading.api_version {
        Some(version) => read_ssh_info(session, version, after).await,
        None => read_param(session, after).await.map(|r| r.enabled),
    };
    match &enabled {
        Ok(enabled) => tracing::debug!(api = reading.method.as_str(), enabled, "read back"),
        Err(error) => tracing::debug!(api = reading.method.as_str(), %error, "read-back failed"),
    }
    enabled
}

/// Writes the SSH state through the API the device was read with. Never retried on a
/// broken connection: whether it applied is learned by reading back, not by writing again.
pub async fn write_ssh_state(
    session: &mut DeviceSession<'_>,
    reading: &SshReading,
    enabled: bool,
) -> Result<(), Failure> {
    let written = match reading.api_version {
        Some(version) => write_ssh_cgi(session, version, enabled).await,
        None => write_param(session, enabled).await,
    };
    let api = reading.method.as_str();
    match &written {
        Ok(()) => tracing::debug!(api, enabled, "SSH state written"),
        Err(error) => tracing::debug!(api, enabled, %error, "SSH state write failed"),
    }
    written
}

async fn write_ssh_cgi(
    session: &mut DeviceSession<'_>,
    version: ApiVersion,
    enabled: bool,
) -> Result<(), Failure> {
    let body = Bytes::from(wire::set_ssh_configuration(version, enabled));
    let mut response = session
        .post_json(wire::SSH_CGI, body, Connection::KeepAlive, Resend::Never)
        .await?;
    expect_reply(&mut response, wire::parse_set_ssh_configuration)
}

async fn write_param(session: &mut DeviceSession<'_>, enabled: bool) -> Result<(), Failure> {
    let response = session
        .get(
            param::update_target(enabled),
            Connection::KeepAlive,
            Resend::Never,
        )
        .await?;
    let status = response.status.as_u16();
    if response.status != StatusCode::OK {
        return Err(unexpected_status(status));
    }
    param::parse_update(&response.body).map_err(|reason| Failure::Device {
        error: DeviceError {
            code: None,
            message: format!("param.cgi update failed: {reason}"),
        },
        http_status: status,
    })
}

async fn read_param(
    session: &mut DeviceSession<'_>,
    after: Connection,
) -> Result<SshReading, Failure> {
    let response = session
        .get(param::LIST_SSH, after, Resend::IfTransient)
        .await?;
    let status = response.status.as_u16();
    match response.status {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => {
            return Err(Failure::Unsupported(
                "device has neither ssh.cgi nor param.cgi".into(),
            ))
        }
        _ => return Err(unexpected_status(status)),
    }
    match param::parse_list(&response.body) {
        param::ListReply::Enabled(enabled) => Ok(SshReading {
            enabled,
            method: Method::ParamCgi,
            api_version: None,
            supported_versions: Vec::new(),
        }),
        param::ListReply::NoParameter(line) => Err(Failure::Unsupported(format!(
            "no ssh.cgi and no Network.SSH.Enabled parameter ({line})"
        ))),
        param::ListReply::Malformed(reason) => Err(Failure::Malformed {
            reason,
            http_status: status,
        }),
    }
}

/// ssh.cgi answers 200 (or 500 for code 1000) with a JSON body; anything else is unexpected.
fn expect_reply<T>(
    response: &mut HttpResponse,
    parse: impl FnOnce(&mut [u8]) -> Result<Reply<T>, wire::Malformed>,
) -> Result<T, Failure> {
    let status = response.status.as_u16();
    if !matches!(status, 200 | 500) {
        return Err(unexpected_status(status));
    }
    match parse(&mut response.body) {
        Ok(Reply::Data(data)) if status == 200 => Ok(data),
        Ok(Reply::Data(_)) => Err(unexpected_status(status)),
        Ok(Reply::Error(error)) => Err(Failure::Device {
            error,
            http_status: status,
        }),
        Err(e) => Err(Failure::Malformed {
            reason: e.to_string(),
            http_status: status,
        }),
    }
}

fn unexpected_status(status: u16) -> Failure {
    Failure::Malformed {
        reason: format!("unexpected HTTP status {status}"),
        http_status: status,
    }
}
