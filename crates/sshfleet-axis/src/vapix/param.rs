//! param.cgi, for firmware without ssh.cgi: `Network.SSH.Enabled` read and written as
//! ISO-8859-1 text lines, with the value spellings and prefixes seen in the field.

pub(crate) const LIST_SSH: &str = "/axis-cgi/param.cgi?action=list&group=Network.SSH";

/// The request-target that sets the parameter.
pub(crate) fn update_target(enabled: bool) -> &'static str {
    if enabled {
        "/axis-cgi/param.cgi?action=update&Network.SSH.Enabled=yes"
    } else {
        "/axis-cgi/param.cgi?action=update&Network.SSH.Enabled=no"
    }
}

/// What a `list` answer says about SSH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListReply {
    Enabled(bool),
    /// The device has no such parameter: SSH state unknowable here, never "disabled".
    NoParameter(String),
    Malformed(String),
}

/// Parses `root.Network.SSH.Enabled=yes` (prefix optional, value in any common spelling).
pub fn parse_list(body: &[u8]) -> ListReply {
    let text = latin1(body);
    let mut error_line = None;
    let mut found: Option<bool> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("# Error") || line.starts_with("#Error") {
            error_line.get_or_insert_with(|| line.to_owned());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let key = key.strip_prefix("root.").unwrap_or(key);
        if key.eq_ignore_ascii_case("Network.SSH.Enabled") {
            let Some(on) = parse_bool(value) else {
                return ListReply::Malformed(format!(
                    "unrecognised Network.SSH.Enabled value {:?}",
                    truncate(value.trim(), 40)
                ));
            };
            // The same parameter twice with different values: which one the device uses is
            // unknowable, so neither is reported.
            if found.is_some_and(|earlier| earlier != on) {
                return ListReply::Malformed(
                    "param.cgi answer gives Network.SSH.Enabled twice, with different values"
                        .into(),
                );
            }
            found = Some(on);
        }
    }
    if let Some(on) = found {
        return ListReply::Enabled(on);
    }
    match error_line {
        Some(line) => ListReply::NoParameter(truncate(&line, 200).to_owned()),
        None if text.trim().is_empty() => ListReply::Malformed("empty param.cgi answer".into()),
        None => ListReply::Malformed("param.cgi answer has no Network.SSH.Enabled line".into()),
    }
}

/// `OK` means applied; a `# Error:` line (still HTTP 200) means it was not.
pub fn parse_update(body: &[u8]) -> Result<(), String> {
    let text = latin1(body);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    match first {
        Some(line) if line.eq_ignore_ascii_case("OK") => Ok(()),
        Some(line) => Err(truncate(line, 200).to_owned()),
        None => Err("empty param.cgi answer".into()),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// ISO-8859-1 maps each byte to the code point of the same value.
fn latin1(body: &[u8]) -> String {
    body.iter().map(|&b| b as char).collect()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_spelling_with_and_without_prefix() {
        for (body, want) in [
            ("root.Network.SSH.Enabled=yes\r\n", true),
            ("Network.SSH.Enabled=no\n", false),
            ("root.Network.SSH.Enabled=TRUE", true),
            ("root.Network.SSH.Enabled=Off\n", false),
            (
                "root.Network.SSH.Other=x\nroot.Network.SSH.Enabled=On\n",
                true,
            ),
        ] {
            assert_eq!(
                parse_list(body.as_bytes()),
                ListReply::Enabled(want),
                "{body}"
            );
        }
    }

    #[test]
    fn missing_parameter_is_never_disabled() {
        let body = b"# Error: Error -1 getting param in group 'Network.SSH'\r\n";
        assert!(matches!(parse_list(body), ListReply::NoParameter(_)));
        assert!(matches!(parse_list(b""), ListReply::Malformed(_)));
        assert!(matches!(
            parse_list(b"<html>404</html>"),
            ListReply::Malformed(_)
        ));
        assert!(matches!(
            parse_list(b"root.Network.SSH.Enabled=maybe"),
            ListReply::Malformed(_)
        ));
    }

    #[test]
    fn the_parameter_given_twice_is_read_only_when_both_agree() {
        for body in [
            "root.Network.SSH.Enabled=no\nroot.Network.SSH.Enabled=yes\n",
            "Network.SSH.Enabled=yes\nroot.Network.SSH.Enabled=off\n",
        ] {
            assert!(
                matches!(parse_list(body.as_bytes()), ListReply::Malformed(ref r) if r.contains("twice")),
                "{body}"
            );
        }
        let agreeing = b"root.Network.SSH.Enabled=no\nNetwork.SSH.Enabled=off\n";
        assert_eq!(parse_list(agreeing), ListReply::Enabled(false));
        // A garbled second value is no agreement either.
        let garbled = b"root.Network.SSH.Enabled=no\nroot.Network.SSH.Enabled=perhaps\n";
        assert!(matches!(parse_list(garbled), ListReply::Malformed(_)));
    }

    #[test]
    fn latin1_bodies_do_not_break_parsing() {
        let body = b"root.Brand.ProdFullName=Cam\xe9ra\nroot.Network.SSH.Enabled=no\n";
        assert_eq!(parse_list(body), ListReply::Enabled(false));
    }

    #[test]
    fn update_answers() {
        assert_eq!(parse_update(b"OK\r\n"), Ok(()));
        assert!(parse_update(b"# Error: Error setting 'Network.SSH.Enabled'").is_err());
        assert!(parse_update(b"").is_err());
    }
}
