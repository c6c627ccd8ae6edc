//! Reading Redfish documents: pure functions over JSON, unit-tested on the host target.

use serde_json::Value;

use metalhost_plugin_sdk::DriverError;

/// The system's power as the contract knows it. A transition reads as where it comes from:
/// `PoweringOn` is not on yet, `PoweringOff` is not off yet.
pub fn power_state(system: &Value) -> Result<bool, DriverError> {
    match system.get("PowerState").and_then(Value::as_str) {
        Some("On" | "PoweringOff" | "Paused") => Ok(true),
        Some("Off" | "PoweringOn") => Ok(false),
        other => Err(DriverError::ParseError(format!("the system reports PowerState {other:?}"))),
    }
}

/// The `@odata.id` of every member of a collection.
pub fn members(collection: &Value) -> Vec<String> {
    collection
        .get("Members")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(|e| e.get("@odata.id").and_then(Value::as_str)).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Where to POST a reset and the reset types the BMC lists (empty when it lists none).
pub fn reset_action(system: &Value, system_path: &str) -> (String, Vec<String>) {
    let action = system.get("Actions").and_then(|a| a.get("#ComputerSystem.Reset"));
    let target = action
        .and_then(|a| a.get("target"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{system_path}/Actions/ComputerSystem.Reset"));
    let allowed = action
        .and_then(|a| a.get("ResetType@Redfish.AllowableValues"))
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    (target, allowed)
}

/// What a BMC said about a failed request: the `@Message.ExtendedInfo` messages, else the
/// error's own message, else the start of the body.
pub fn error_text(body: &[u8]) -> String {
    let Ok(doc) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        return text.trim().chars().take(300).collect();
    };
    let error = doc.get("error").unwrap_or(&doc);
    let extended: Vec<String> = error
        .get("@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .map(|infos| {
            infos
                .iter()
                .filter_map(|i| {
                    let message = i.get("Message").and_then(Value::as_str)?;
                    Some(match i.get("Resolution").and_then(Value::as_str) {
                        Some(fix) if !fix.is_empty() => format!("{message} ({fix})"),
                        _ => message.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if !extended.is_empty() {
        return extended.join("; ");
    }
    error.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| doc.to_string().chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn power_states_and_transitions() {
        assert_eq!(power_state(&json!({"PowerState": "On"})), Ok(true));
        assert_eq!(power_state(&json!({"PowerState": "PoweringOn"})), Ok(false));
        assert!(matches!(power_state(&json!({})), Err(DriverError::ParseError(_))));
    }

    #[test]
    fn reset_target_and_allowed_types_with_a_default() {
        let system = json!({"Actions": {"#ComputerSystem.Reset": {
            "target": "/redfish/v1/Systems/a/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues": ["On", "ForceOff"]}}});
        assert_eq!(reset_action(&system, "/x"), ("/redfish/v1/Systems/a/Actions/ComputerSystem.Reset".into(), vec!["On".into(), "ForceOff".into()]));
        assert_eq!(reset_action(&json!({}), "/redfish/v1/Systems/b").0, "/redfish/v1/Systems/b/Actions/ComputerSystem.Reset");
    }

    #[test]
    fn extended_info_is_what_an_error_says() {
        let body = br#"{"error": {"code": "Base.1.0.GeneralError", "message": "general",
            "@Message.ExtendedInfo": [{"Message": "The property X is read-only.", "Resolution": "Remove it."}]}}"#;
        assert_eq!(error_text(body), "The property X is read-only. (Remove it.)");
        assert_eq!(error_text(br#"{"error": {"message": "only this"}}"#), "only this");
        assert_eq!(error_text(b"<html>nope</html>"), "<html>nope</html>");
        assert_eq!(members(&json!({"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]})), vec!["/redfish/v1/Systems/1".to_owned()]);
    }
}
