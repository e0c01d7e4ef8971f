//! What a camera says about who it is without being asked: AXIS OS names its authentication
//! realm after the device serial (its MAC address), `AXIS_ACCC8E012345`.

/// The serial in an AXIS OS realm: `AXIS_` and exactly 12 hex digits, returned in upper
/// case. Any other realm (`AXIS`, a web server's own, a hostile one) gives none.
pub(crate) fn serial_from_realm(realm: &str) -> Option<String> {
    let digits = realm.strip_prefix("AXIS_")?;
    let is_serial = digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_hexdigit());
    is_serial.then(|| digits.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_axis_realm_with_twelve_hex_digits_names_a_serial() {
        assert_eq!(
            serial_from_realm("AXIS_ACCC8E012345").as_deref(),
            Some("ACCC8E012345")
        );
        assert_eq!(
            serial_from_realm("AXIS_b8a44f0a0b0c").as_deref(),
            Some("B8A44F0A0B0C")
        );
        for realm in [
            "AXIS",
            "AXIS_",
            "AXIS_ACCC8E01234",
            "AXIS_ACCC8E0123456",
            "AXIS_ACCC8E01234G",
            "axis_ACCC8E012345",
            "Restricted area",
            "AXIS_ACCC8E012345\"<script>",
            "AXIS_ＡCCC8E01234",
            "",
        ] {
            assert_eq!(serial_from_realm(realm), None, "{realm:?}");
        }
    }
}
