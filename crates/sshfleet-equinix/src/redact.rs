//! Known secrets out of error text. The API, or its token endpoint, may echo what it was sent
//! (a client secret, a token, a new password) in an error body; those bodies become error
//! messages, so every configured secret in them is replaced by `[redacted]` first.

use super::errors::{ApiProblem, EquinixError, TokenError};
use sshfleet_core::secret::Secret;

/// What stands in for a secret in a message.
pub(crate) const REDACTED: &str = "[redacted]";

/// `text` with every occurrence of a non-empty secret replaced, as is or JSON-escaped (an
/// API quoting a request body verbatim shows the escaped form), longest first so that a
/// secret containing another is not left half visible.
pub(crate) fn text(text: &str, secrets: &[Secret]) -> String {
    let mut values: Vec<String> = Vec::new();
    for secret in secrets.iter().map(Secret::expose).filter(|s| !s.is_empty()) {
        values.push(secret.to_owned());
        // Both serializers in use: ours for requests, and the common one.
        let escaped = [
            serde_json::to_string(secret).ok(),
            simd_json::to_string(secret).ok(),
        ];
        for quoted in escaped.into_iter().flatten() {
            let inner = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(&quoted);
            if !values.iter().any(|v| v == inner) {
                values.push(inner.to_owned());
            }
        }
    }
    values.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for value in &values {
        if out.contains(value.as_str()) {
            out = out.replace(value.as_str(), REDACTED);
        }
    }
    out
}

fn field(value: &mut Option<String>, secrets: &[Secret]) {
    if let Some(v) = value {
        *v = text(v, secrets);
    }
}

/// Every field of every problem, redacted.
pub(crate) fn problems(mut problems: Vec<ApiProblem>, secrets: &[Secret]) -> Vec<ApiProblem> {
    for p in &mut problems {
        field(&mut p.code, secrets);
        field(&mut p.message, secrets);
        field(&mut p.property, secrets);
        field(&mut p.more_info, secrets);
    }
    problems
}

/// The API's text in a token error, redacted.
pub(crate) fn token_error(error: TokenError, secrets: &[Secret]) -> TokenError {
    match error {
        TokenError::Rejected {
            url,
            status,
            problems: p,
        } => TokenError::Rejected {
            url,
            status,
            problems: problems(p, secrets),
        },
        TokenError::Status {
            url,
            status,
            problems: p,
        } => TokenError::Status {
            url,
            status,
            problems: problems(p, secrets),
        },
        TokenError::Malformed { url, reason } => TokenError::Malformed {
            url,
            reason: text(&reason, secrets),
        },
        other => other,
    }
}

/// The API's text in an error (its problems, a parse failure's reason), redacted.
pub(crate) fn error(e: EquinixError, secrets: &[Secret]) -> EquinixError {
    match e {
        EquinixError::Token(e) => EquinixError::Token(token_error(e, secrets)),
        EquinixError::Api {
            method,
            url,
            status,
            problems: p,
        } => EquinixError::Api {
            method,
            url,
            status,
            problems: problems(p, secrets),
        },
        EquinixError::Unauthorized {
            method,
            url,
            problems: p,
            token,
        } => EquinixError::Unauthorized {
            method,
            url,
            problems: problems(p, secrets),
            token,
        },
        EquinixError::Malformed {
            method,
            url,
            status,
            reason,
        } => EquinixError::Malformed {
            method,
            url,
            status,
            reason: text(&reason, secrets),
        },
        EquinixError::Page { offset, source } => EquinixError::Page {
            offset,
            source: Box::new(error(*source, secrets)),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_replaced_wherever_it_appears() {
        let secrets = [
            Secret::new("s3cr3t"),
            Secret::new("s3cr3t-and-more"),
            Secret::new(""),
        ];
        assert_eq!(
            text("bad secret s3cr3t-and-more (was s3cr3t)", &secrets),
            "bad secret [redacted] (was [redacted])"
        );
        assert_eq!(text("nothing here", &secrets), "nothing here");
        // Quoted from a JSON request body, escapes and all.
        let quoting = [Secret::new(r#"a"b\c"#)];
        assert_eq!(
            text(r#"{"client_secret":"a\"b\\c"} or a"b\c"#, &quoting),
            r#"{"client_secret":"[redacted]"} or [redacted]"#
        );
    }

    #[test]
    fn api_problems_lose_the_secrets_they_echo() {
        let secrets = [Secret::new("hunter2")];
        let echoed = EquinixError::Page {
            offset: 0,
            source: Box::new(EquinixError::Api {
                method: "PUT",
                url: "https://api.equinix.com/ne/v1/sshUsers/u".into(),
                status: 400,
                problems: vec![ApiProblem {
                    code: Some("INVALID_PASSWORD".into()),
                    message: Some("password hunter2 is too short".into()),
                    property: Some("password=hunter2".into()),
                    more_info: Some("hunter2".into()),
                }],
            }),
        };
        let message = error(echoed, &secrets).to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.contains("INVALID_PASSWORD: password [redacted] is too short"),
            "{message}"
        );
        let token = TokenError::Rejected {
            url: "u".into(),
            status: 401,
            problems: vec![ApiProblem {
                message: Some("client_secret hunter2 is wrong".into()),
                ..ApiProblem::default()
            }],
        };
        let message = EquinixError::Token(token_error(token, &secrets)).to_string();
        assert!(
            message.contains("client_secret [redacted] is wrong"),
            "{message}"
        );
    }
}
