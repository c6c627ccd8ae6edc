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

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` UTC (civil-from-days, no calendar crate needed).
pub fn timestamp(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{millis:03}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Prints `rows` (JSON objects) as a table of the given (header, field) columns; `at` and
/// `*_at` fields (Unix milliseconds) are shown as UTC times.
pub fn table(rows: &Value, columns: &[(&str, &str)]) {
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    let show = |row: &Value, field: &str| match row.get(field) {
        Some(Value::Number(n)) if field == "at" || field.ends_with("_at") => n.as_i64().map(timestamp).unwrap_or_else(|| n.to_string()),
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
            println!("{key:<width$}  {}", cell(Some(v)));
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
    fn formats_unix_milliseconds() {
        assert_eq!(super::timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(super::timestamp(1_795_595_890_296), "2026-11-25 08:38:10.296");
        assert_eq!(super::timestamp(951_782_400_000), "2000-02-29 00:00:00.000");
    }
}
