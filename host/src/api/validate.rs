//! Small request-field checks shared by the resource modules; each failure is a 400 naming the field.

use super::error::ApiError;

/// Names are looked up like ids in URLs, so they must not be all digits.
pub fn name(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !value.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!("invalid {field} {value:?}: use 1-63 letters, digits, '-', '_' or '.', not only digits")))
    }
}

pub fn non_empty(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() { Err(ApiError::BadRequest(format!("{field} must not be empty"))) } else { Ok(()) }
}

pub fn port(field: &str, value: i64) -> Result<u16, ApiError> {
    u16::try_from(value).ok().filter(|p| *p > 0).ok_or_else(|| ApiError::BadRequest(format!("invalid {field} {value}: expected 1-65535")))
}

/// Sizes and counts: strictly positive.
pub fn positive<T: TryFrom<i64>>(field: &str, value: i64) -> Result<T, ApiError> {
    if value <= 0 {
        return Err(ApiError::BadRequest(format!("{field} must be greater than zero, got {value}")));
    }
    T::try_from(value).map_err(|_| ApiError::BadRequest(format!("{field} {value} is too large")))
}
