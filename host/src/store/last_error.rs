//! Why a node or instance failed, kept as a record (step, plugin, operation, kind, message) so the
//! API can hand it out structured and the CLI can still print it as one line.
//!
//! Stored twice on the row: the one-line text in `last_error` (what older rows and older readers
//! have) and the record as JSON in `last_error_detail` (migration 2). A row with only the text
//! reads back as a record holding just the message.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::FailureKind;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastError {
    /// The workflow step that failed (`switch port -> provisioning`, `validate`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "kind")]
    #[schema(value_type = Option<String>, example = "unreachable")]
    pub kind: Option<FailureKind>,
    pub message: String,
}

impl LastError {
    /// A failure known only by its text (rows written before migration 2).
    pub fn text(message: impl Into<String>) -> LastError {
        LastError { step: None, plugin: None, operation: None, kind: None, message: message.into() }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the row's two columns: the record when there is one, else the text.
    pub fn from_columns(text: Option<String>, detail: Option<String>) -> Option<LastError> {
        detail.and_then(|d| serde_json::from_str(&d).ok()).or_else(|| text.map(LastError::text))
    }
}

/// One line: `step: plugin operation: kind: message`, leaving out what is unknown.
impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(step) = &self.step {
            write!(f, "{step}: ")?;
        }
        match (&self.plugin, &self.operation) {
            (Some(p), Some(o)) => write!(f, "plugin {p:?} {o}: ")?,
            (Some(p), None) => write!(f, "plugin {p:?}: ")?,
            _ => {}
        }
        if let Some(kind) = self.kind {
            write!(f, "{kind}: ")?;
        }
        f.write_str(&self.message)
    }
}

mod kind {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::domain::FailureKind;

    pub fn serialize<S: Serializer>(kind: &Option<FailureKind>, s: S) -> Result<S::Ok, S::Error> {
        match kind {
            Some(k) => s.serialize_str(k.as_str()),
            None => s.serialize_none(),
        }
    }

    /// An unknown kind (written by a newer daemon) reads as none rather than failing the row.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FailureKind>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.and_then(|k| k.parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_rows_read_as_text_and_records_round_trip() {
        assert_eq!(LastError::from_columns(Some("it broke".into()), None), Some(LastError::text("it broke")));
        assert_eq!(LastError::from_columns(None, None), None);
        let record = LastError {
            step: Some("power off".into()),
            plugin: Some("ipmitool".into()),
            operation: Some("set-power-state".into()),
            kind: Some(FailureKind::AuthFailed),
            message: "RAKP 2 HMAC is invalid".into(),
        };
        assert_eq!(LastError::from_columns(Some(record.to_string()), Some(record.to_json())), Some(record.clone()));
        assert_eq!(record.to_string(), "power off: plugin \"ipmitool\" set-power-state: auth-failed: RAKP 2 HMAC is invalid");
        assert!(record.to_json().contains("\"kind\":\"auth-failed\""), "{}", record.to_json());
    }
}
