//! Printing API answers: aligned tables and key/value blocks for people, raw JSON for scripts.

use serde_json::Value;

/// Renders a JSON value the way a person wants to read it in a table: a failure record
/// (`last_error`) as its one line.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(record @ Value::Object(o)) if o.contains_key("message") => failure_line(record),
        Some(other) => other.to_string(),
    }
}

/// A failure record `{step, plugin, operation, kind, message}` as one line, the way the daemon
/// writes it: `step: plugin "p" operation: kind: message`, leaving out what is absent.
pub fn failure_line(record: &Value) -> String {
    let text = |k: &str| record.get(k).and_then(Value::as_str);
    let mut line = String::new();
    if let Some(step) = text("step") {
        line.push_str(&format!("{step}: "));
    }
    match (text("plugin"), text("operation")) {
        (Some(p), Some(o)) => line.push_str(&format!("plugin {p:?} {o}: ")),
        (Some(p), None) => line.push_str(&format!("plugin {p:?}: ")),
        _ => {}
    }
    if let Some(kind) = text("kind") {
        line.push_str(&format!("{kind}: "));
    }
    line.push_str(text("message").unwrap_or(""));
    line
}

/// An RFC 3339 time from the API in the operator's local zone, to the second:
/// `2026-12-01 04:12:19 CET`. Anything else is shown as it came.
pub fn local_time(value: &str) -> String {
    match value.parse::<jiff::Timestamp>() {
        Ok(at) => at.to_zoned_datetime(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        Err(_) => value.to_owned(),
    }
}

/// How long ago (or, for a deadline, how far ahead) `value` is from `now`, in its largest unit:
/// `42s ago`, `5m ago`, `3h ago`, `2d ago`, `in 4m`.
pub fn age(value: &str, now: jiff::Timestamp) -> Option<String> {
    let at = value.parse::<jiff::Timestamp>().ok()?;
    let seconds = now.as_second() - at.as_second();
    let n = seconds.abs();
    let amount = match n {
        0..60 => format!("{n}s"),
        60..3_600 => format!("{}m", n / 60),
        3_600..86_400 => format!("{}h", n / 3_600),
        _ => format!("{}d", n / 86_400),
    };
    Some(if seconds >= 0 { format!("{amount} ago") } else { format!("in {amount}") })
}

fn is_time_field(field: &str) -> bool {
    field == "at" || field.ends_with("_at") || field.ends_with("_deadline")
}

/// Prints `rows` (JSON objects) as a table of the given (header, field) columns; times (`at`,
/// `*_at`, `*_deadline`) are shown in local time with their age.
pub fn table(rows: &Value, columns: &[(&str, &str)]) {
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    let now = jiff::Timestamp::now();
    let show = |row: &Value, field: &str| match row.get(field) {
        Some(Value::String(s)) if is_time_field(field) => match age(s, now) {
            Some(age) => format!("{} ({age})", local_time(s)),
            None => s.clone(),
        },
        other => cell(other),
    };
    let cells: Vec<Vec<String>> = rows.iter().map(|row| columns.iter().map(|(_, field)| show(row, field)).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, _))| cells.iter().map(|r| r[i].chars().count()).chain([header.len()]).max().unwrap_or(0))
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| (*h).to_owned()).collect());
    for row in cells {
        line(row);
    }
}

/// Prints one JSON object as `key: value` lines.
pub fn record(value: &Value) {
    if let Some(object) = value.as_object() {
        let width = object.keys().map(String::len).max().unwrap_or(0);
        for (key, v) in object {
            let shown = match v.as_str() {
                Some(s) if is_time_field(key) => local_time(s),
                _ => cell(Some(v)),
            };
            println!("{key:<width$}  {shown}");
        }
    } else {
        println!("{value}");
    }
}

pub fn json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failure_record_prints_as_one_line() {
        let record = serde_json::json!({"step": "power off", "plugin": "ipmitool", "operation": "set-power-state", "kind": "auth-failed", "message": "RAKP 2 HMAC is invalid"});
        assert_eq!(super::cell(Some(&record)), "power off: plugin \"ipmitool\" set-power-state: auth-failed: RAKP 2 HMAC is invalid");
        assert_eq!(super::cell(Some(&serde_json::json!({"message": "old text"}))), "old text");
    }

    #[test]
    fn times_show_local_and_their_age() {
        let now: jiff::Timestamp = "2026-12-01T03:00:00Z".parse().expect("time");
        assert_eq!(super::age("2026-12-01T02:59:18.500Z", now).as_deref(), Some("42s ago"));
        assert_eq!(super::age("2026-12-01T01:00:00Z", now).as_deref(), Some("2h ago"));
        assert_eq!(super::age("2026-11-28T03:00:00Z", now).as_deref(), Some("3d ago"));
        assert_eq!(super::age("2026-12-01T03:04:00Z", now).as_deref(), Some("in 4m"));
        assert_eq!(super::age("not a time", now), None);
        assert_eq!(super::local_time("not a time"), "not a time");
        // The zone is the machine's; the shape is fixed.
        let shown = super::local_time("2026-12-01T03:00:00Z");
        assert!(shown.starts_with("2026-12-01 ") || shown.starts_with("2026-11-30 "), "{shown}");
    }
}
