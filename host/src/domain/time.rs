//! Times are stored as Unix milliseconds (cheap to compare and do deadline arithmetic on) and
//! handed to clients as RFC 3339 UTC with milliseconds, `2026-12-01T03:12:19.042Z`.

use serde::Serializer;

/// Unix milliseconds as RFC 3339 UTC; a value outside the calendar's range (never written by the
/// daemon) falls back to the epoch rather than failing the whole response.
pub fn rfc3339(ms: i64) -> String {
    let at = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{at:.3}")
}

/// `#[serde(serialize_with)]` for a stored time.
pub fn as_rfc3339<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*ms))
}

/// `#[serde(serialize_with)]` for a time that may be unset (null).
pub fn as_rfc3339_opt<S: Serializer>(ms: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => serializer.serialize_str(&rfc3339(*ms)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn milliseconds_become_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_079_542_046), "2026-11-30T22:59:02.046Z");
    }
}
