//! Why an Equinix call failed: typed, carrying the method and URL (or page) concerned and the
//! API's own error codes. No secret ever reaches these values.

use std::fmt;

use sshfleet_net::HttpError;

/// One entry of an API error body (`errorCode`/`errorMessage`/…, or the snake_case spelling).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiProblem {
    pub code: Option<String>,
    pub message: Option<String>,
    pub property: Option<String>,
    pub more_info: Option<String>,
}

impl fmt::Display for ApiProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(code) = &self.code {
            parts.push(code.clone());
        }
        if let Some(message) = &self.message {
            parts.push(message.clone());
        }
        if let Some(property) = &self.property {
            parts.push(format!("(property {property})"));
        }
        if let Some(more) = &self.more_info {
            parts.push(format!("[{more}]"));
        }
        f.write_str(&parts.join(": ").replace(": (", " (").replace(": [", " ["))
    }
}

/// Renders problems as `: CODE: message; CODE2: …`, or nothing when the body said nothing.
pub(crate) struct Problems<'a>(pub &'a [ApiProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// The token could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// 400/401/403 on the token request: wrong client id or secret, or a locked account.
    /// Never retried: the account locks after five failures in a row.
    #[error("POST {url}: HTTP {status}: the API rejected the client credentials{problems} (not retried: the account locks after 5 failed token requests)", problems = Problems(.problems))]
    Rejected {
        url: String,
        status: u16,
        problems: Vec<ApiProblem>,
    },
    #[error("POST {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: HttpError,
    },
    #[error("POST {url}: HTTP {status}{problems}", problems = Problems(.problems))]
    Status {
        url: String,
        status: u16,
        problems: Vec<ApiProblem>,
    },
    #[error("POST {url}: malformed token response: {reason}")]
    Malformed { url: String, reason: String },
    /// The token endpoint asked to wait longer than sshfleet waits (`Retry-After`).
    #[error("POST {url}: HTTP 429: the API asks to wait {asked_secs} s before the next token request, longer than the longest wait ({max_secs} s); try again later")]
    WaitTooLong {
        url: String,
        asked_secs: u64,
        max_secs: u64,
    },
    /// A stop request (Ctrl-C, SIGTERM) ended a wait between token requests.
    #[error("POST {url}: interrupted while waiting to retry the token request")]
    Interrupted { url: String },
    /// The ready token of `EQUINIX_API_TOKEN` was refused and cannot be renewed.
    #[error("the API refused the token from EQUINIX_API_TOKEN (HTTP 401); it cannot be renewed without client credentials")]
    StaticTokenRefused,
}

impl TokenError {
    /// Retrying might help (never true for credential failures).
    pub fn is_transient(&self) -> bool {
        match self {
            TokenError::Http { source, .. } => {
                source.is_transient() || matches!(source, HttpError::Timeout(_))
            }
            TokenError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// The token a 401 refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedToken {
    /// One renewed for this very call (client credentials): renewing again would not help.
    Renewed,
    /// The ready token of `EQUINIX_API_TOKEN`, which cannot be renewed.
    Ready,
}

/// An operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EquinixError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{method} {url}: {source}")]
    Http {
        method: &'static str,
        url: String,
        #[source]
        source: HttpError,
    },
    /// The API answered with an error status and, usually, its error codes.
    #[error("{method} {url}: HTTP {status}{problems}", problems = Problems(.problems))]
    Api {
        method: &'static str,
        url: String,
        status: u16,
        problems: Vec<ApiProblem>,
    },
    /// 401 again after the token was renewed, or for a ready token, which cannot be.
    #[error("{method} {url}: HTTP 401 {after}{problems}", after = after_401(*.token), problems = Problems(.problems))]
    Unauthorized {
        method: &'static str,
        url: String,
        problems: Vec<ApiProblem>,
        /// Which token the API refused.
        token: RefusedToken,
    },
    /// A 429 (or 5xx) whose `Retry-After` asks for a longer wait than sshfleet waits: not
    /// slept through, not retried.
    #[error("{method} {url}: HTTP {status}: the API asks to wait {asked_secs} s, longer than the longest wait ({max_secs} s); try again later")]
    WaitTooLong {
        method: &'static str,
        url: String,
        status: u16,
        asked_secs: u64,
        max_secs: u64,
    },
    #[error("{method} {url}: malformed response (HTTP {status}): {reason}")]
    Malformed {
        method: &'static str,
        url: String,
        status: u16,
        reason: String,
    },
    /// A value that cannot go into a request (an id with `/`, `?`, spaces…).
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A stop request (Ctrl-C, SIGTERM) ended a wait between retries.
    #[error("{method} {url}: interrupted while waiting to retry")]
    Interrupted { method: &'static str, url: String },
    /// A full page held only users listed before, though the total had not grown: the API
    /// ignores `offset` (or serves one page forever). The listing stopped there, incomplete.
    #[error("the page at offset {offset} holds only users already listed: the API seems to ignore `offset`; stopped with {listed} of {total} users", total = count(*.total))]
    NoProgress {
        offset: u64,
        listed: u64,
        total: Option<u64>,
    },
    /// An empty or short page came before the API's `total`: it counts users it does not
    /// serve (or serves no longer). The users served were delivered; the listing is
    /// incomplete by the API's own count.
    #[error("the page at offset {offset} is empty or short, though the API's total is {total}: stopped with {listed} users; the rest could not be listed")]
    EndedEarly {
        offset: u64,
        listed: u64,
        total: u64,
    },
    /// The pages contradict each other (overlaps, a changing or implausible total, fewer
    /// users than the total), even when read again one page at a time: the users listed
    /// were delivered, but the listing cannot be called complete.
    #[error("the listing is not exact: {}{}; {listed} distinct users listed", doubts_text(.doubts), if *.rechecked { ", also when read again one page at a time" } else { "" })]
    Inexact {
        listed: u64,
        doubts: Vec<crate::paging::Doubt>,
        rechecked: bool,
    },
    /// A page of the listing failed; the pages before it were delivered.
    #[error("page at offset {offset}: {source}")]
    Page {
        offset: u64,
        #[source]
        source: Box<EquinixError>,
    },
}

fn after_401(token: RefusedToken) -> &'static str {
    match token {
        RefusedToken::Renewed => "even with a freshly renewed token",
        RefusedToken::Ready => {
            "for the ready token from EQUINIX_API_TOKEN, which cannot be renewed without client credentials"
        }
    }
}

fn doubts_text(doubts: &[crate::paging::Doubt]) -> String {
    let texts: Vec<String> = doubts.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

fn count(total: Option<u64>) -> String {
    total.map_or_else(
        || "an unknown total".to_owned(),
        |t| format!("a total of {t}"),
    )
}

impl EquinixError {
    /// The API's error codes, for callers that branch on them (never on messages).
    pub fn api_codes(&self) -> Vec<&str> {
        let problems = match self {
            EquinixError::Api { problems, .. } | EquinixError::Unauthorized { problems, .. } => {
                problems.as_slice()
            }
            EquinixError::Page { source, .. } => return source.api_codes(),
            _ => &[],
        };
        problems.iter().filter_map(|p| p.code.as_deref()).collect()
    }

    /// The HTTP status the API answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            EquinixError::Api { status, .. }
            | EquinixError::Malformed { status, .. }
            | EquinixError::WaitTooLong { status, .. } => Some(*status),
            EquinixError::Unauthorized { .. } => Some(401),
            EquinixError::Page { source, .. } => source.status(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_url_status_and_codes() {
        let err = EquinixError::Api {
            method: "POST",
            url: "https://api.equinix.com/ne/v1/sshUsers".into(),
            status: 400,
            problems: vec![
                ApiProblem {
                    code: Some("SSH_USER_ALREADY_EXISTS".into()),
                    message: Some("User exists".into()),
                    property: Some("username".into()),
                    more_info: None,
                },
                ApiProblem {
                    code: Some("X".into()),
                    ..ApiProblem::default()
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "POST https://api.equinix.com/ne/v1/sshUsers: HTTP 400: \
             SSH_USER_ALREADY_EXISTS: User exists (property username); X"
        );
        assert_eq!(err.api_codes(), ["SSH_USER_ALREADY_EXISTS", "X"]);
    }
}
