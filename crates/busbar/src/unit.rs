//! Human units in configuration: durations like `"250ms"` and sizes like `"512MiB"`.
//!
//! Both also accept a bare number: seconds for durations, bytes for sizes, since that is what
//! environment variables and quick TOML edits tend to contain.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Deserializes a duration from seconds (`1.5`) or a string with a unit (`"1500ms"`).
pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

/// Deserializes a byte size from a number of bytes or a string with a unit (`"64MiB"`).
pub(crate) fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(BytesVisitor)
}

/// Like [`bytes`], for optional fields (a present field is always `Some`).
pub(crate) fn opt_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    bytes(deserializer).map(Some)
}

/// Parses `"<number><unit>"` where unit is one of `ns`, `us`, `ms`, `s`, `m`, `h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, f64); 6] =
        [("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];
    let (number, unit) = split_unit(text);
    let scale = UNITS.iter().find(|(name, _)| *name == unit).map(|(_, scale)| *scale).ok_or_else(|| {
        format!(
            "invalid duration {text:?}: expected a number with a unit ns, us, ms, s, m or h, like \"250ms\""
        )
    })?;
    let value: f64 =
        number.parse().map_err(|_| format!("invalid duration {text:?}: {number:?} is not a number"))?;
    seconds(value * scale).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Parses `"<integer><unit>"` where unit is one of `B`, `KiB`, `MiB`, `GiB`, `TiB`.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    const UNITS: [(&str, u32); 6] = [("", 0), ("B", 0), ("KiB", 10), ("MiB", 20), ("GiB", 30), ("TiB", 40)];
    let (number, unit) = split_unit(text);
    let shift = UNITS.iter().find(|(name, _)| *name == unit).map(|(_, shift)| *shift).ok_or_else(|| {
        format!("invalid size {text:?}: expected bytes with a unit B, KiB, MiB, GiB or TiB, like \"512MiB\"")
    })?;
    let value: u64 =
        number.parse().map_err(|_| format!("invalid size {text:?}: {number:?} is not a whole number"))?;
    value.checked_mul(1 << shift).ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Splits `"1.5 s"` into `("1.5", "s")`, trimming spaces.
fn split_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let at = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    (text[..at].trim(), text[at..].trim())
}

/// Converts seconds to a duration, refusing negative, infinite and NaN values.
fn seconds(value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("{value} seconds is out of range"))
}

/// Serde visitor behind [`duration`].
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds or a string like \"250ms\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("invalid duration {v}: must not be negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        seconds(v).map_err(|e| E::custom(format!("invalid duration: {e}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

/// Serde visitor behind [`bytes`].
struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of bytes or a string like \"512MiB\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_bytes(v).map_err(E::custom)
    }
}
