//! Small request-field checks shared by the resource modules; each failure is a 400 naming the field.

use super::error::ApiError;

/// The name rule below as a pattern, for the API document (api/schema.rs).
pub const NAME_PATTERN: &str = "^(?![0-9]+$)[A-Za-z0-9._-]{1,63}$";

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

/// The value of `allowed` whose wire name (`name`) is `value`; the message names the field as the
/// API does, and the choices, not the Rust type.
pub fn one_of<T: Copy>(field: &str, value: &str, allowed: &[T], name: impl Fn(T) -> &'static str) -> Result<T, ApiError> {
    allowed.iter().copied().find(|t| name(*t) == value).ok_or_else(|| {
        let names: Vec<&str> = allowed.iter().map(|t| name(*t)).collect();
        ApiError::BadRequest(format!("invalid {field} {value:?}: expected one of {}", names.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PowerAction;

    #[test]
    fn a_choice_is_named_as_the_api_names_the_field() {
        let reboot = one_of("action", "reboot", PowerAction::OPERATOR, PowerAction::as_str);
        assert!(matches!(reboot, Ok(PowerAction::Reboot)));
        for refused in ["graceful-off", "graceful-reboot", "cycle", ""] {
            let message = one_of("action", refused, PowerAction::OPERATOR, PowerAction::as_str).err().map(|e| e.to_string());
            assert_eq!(message, Some(format!("invalid action {refused:?}: expected one of on, off, reboot")));
        }
    }
}
