//! Printing API answers: aligned tables and key/value blocks for people, raw JSON for scripts.

use serde_json::Value;

/// Renders a JSON scalar the way a person wants to read it in a table.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Prints `rows` (JSON objects) as a table of the given (header, field) columns.
pub fn table(rows: &Value, columns: &[(&str, &str)]) {
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    let cells: Vec<Vec<String>> =
        rows.iter().map(|row| columns.iter().map(|(_, field)| cell(row.get(*field))).collect()).collect();
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
