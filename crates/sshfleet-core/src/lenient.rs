//! Lenient field readers for the JSON that devices and APIs send (`deserialize_with`): a
//! number or a boolean as JSON or as text, and anything else "unknown" (`None`) rather than
//! a refused body.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer};

/// A whole number that fits `T`, as a JSON number (a float only when whole) or as text;
/// anything else (`null`, a boolean, other text, out of range) is `None` — except a whole
/// number above every `u64`, which is read as `u64::MAX` when `T` holds it: a count that
/// huge must stay implausibly huge (an Equinix total of `1e30` is no listing to trust), not
/// become unknown.
pub fn integer<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64> + FromStr,
{
    d.deserialize_any(Integer(PhantomData))
}

struct Integer<T>(PhantomData<T>);

impl<T> de::Visitor<'_> for Integer<T>
where
    T: TryFrom<u64> + TryFrom<i64> + FromStr,
{
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(T::try_from(v).ok())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::try_from(v).ok())
    }

    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a whole number within the integer's range is cast exactly"
    )]
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        const U64_END: f64 = 18_446_744_073_709_551_616.0;
        const I64_MIN: f64 = -9_223_372_036_854_775_808.0;
        if v.fract() != 0.0 {
            return Ok(None);
        }
        Ok(if (0.0..U64_END).contains(&v) {
            T::try_from(v as u64).ok()
        } else if v >= U64_END {
            T::try_from(u64::MAX).ok()
        } else if (I64_MIN..0.0).contains(&v) {
            T::try_from(v as i64).ok()
        } else {
            None
        })
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.trim().parse().ok())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A boolean as JSON `true`/`false` or the text `"true"`/`"false"` (any case); anything
/// else is `None`.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(Boolean)
}

struct Boolean;

impl de::Visitor<'_> for Boolean {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match v.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fields {
        #[serde(default, deserialize_with = "super::integer")]
        count: Option<u64>,
        #[serde(default, deserialize_with = "super::integer")]
        code: Option<i64>,
        #[serde(default, deserialize_with = "super::boolean")]
        flag: Option<bool>,
    }

    fn read(json: &str) -> (Option<u64>, Option<i64>, Option<bool>) {
        let f: Fields = serde_json::from_str(json).unwrap();
        (f.count, f.code, f.flag)
    }

    #[test]
    fn numbers_and_booleans_come_as_json_or_text_and_the_rest_is_unknown() {
        assert_eq!(
            read(r#"{"count":7,"code":-3,"flag":true}"#),
            (Some(7), Some(-3), Some(true))
        );
        assert_eq!(
            read(r#"{"count":" 7 ","code":"-3","flag":"FALSE"}"#),
            (Some(7), Some(-3), Some(false))
        );
        assert_eq!(
            read(r#"{"count":7.0,"code":-2.0}"#),
            (Some(7), Some(-2), None)
        );
        assert_eq!(
            read(r#"{"count":-1,"code":1.5,"flag":"yes"}"#),
            (None, None, None)
        );
        assert_eq!(
            read(r#"{"count":null,"code":true,"flag":null}"#),
            (None, None, None)
        );
        assert_eq!(
            read(r#"{"count":1e300,"code":18446744073709551615}"#),
            (Some(u64::MAX), None, None)
        );
        assert!(serde_json::from_str::<Fields>(r#"{"count":[1]}"#).is_err());
    }
}
