//! The operator's plugin config (`config = { ... }` in `[[plugin]]`), read key by key. The contract
//! says unknown keys must be refused: `finish` does that, naming the keys the plugin asked for.

use std::str::FromStr;

use crate::DriverError;

pub struct Config {
    entries: Vec<(String, String)>,
    known: Vec<String>,
}

impl Config {
    pub fn new(entries: Vec<(String, String)>) -> Config {
        Config { entries, known: Vec::new() }
    }

    /// The raw pairs, for plugins that parse their config themselves (they must refuse unknown keys).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The value of `key`, if set.
    pub fn get(&mut self, key: &str) -> Option<String> {
        self.known.push(key.to_owned());
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// The value of `key` parsed, if set; a value that does not parse is `invalid-config`.
    pub fn parse<T: FromStr>(&mut self, key: &str) -> Result<Option<T>, DriverError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key).map(|v| v.parse().map_err(|e| DriverError::InvalidConfig(format!("invalid value {v:?} for {key}: {e}")))).transpose()
    }

    /// The value of `key` if it is one of `allowed`.
    pub fn one_of(&mut self, key: &str, allowed: &[&str]) -> Result<Option<String>, DriverError> {
        match self.get(key) {
            Some(v) if !allowed.contains(&v.as_str()) => {
                Err(DriverError::InvalidConfig(format!("invalid value {v:?} for {key} (one of: {})", allowed.join(", "))))
            }
            other => Ok(other),
        }
    }

    /// Refuses any key the plugin did not ask for.
    pub fn finish(self) -> Result<(), DriverError> {
        match self.entries.iter().find(|(k, _)| !self.known.contains(k)) {
            None => Ok(()),
            Some((key, _)) => Err(DriverError::InvalidConfig(format!(
                "unknown key {key:?} (known: {})",
                if self.known.is_empty() { "none".to_owned() } else { self.known.join(", ") }
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn message(e: DriverError) -> String {
        match e {
            DriverError::InvalidConfig(m) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn known_keys_parse_and_unknown_keys_are_refused() {
        let mut c = config(&[("timeout-ms", "500"), ("mode", "lan")]);
        assert_eq!(c.parse::<u32>("timeout-ms").ok().flatten(), Some(500));
        assert_eq!(c.one_of("mode", &["lan", "lanplus"]).ok().flatten().as_deref(), Some("lan"));
        assert!(c.finish().is_ok());

        let mut c = config(&[("colour", "red")]);
        assert_eq!(c.get("mode"), None);
        assert_eq!(message(c.finish().expect_err("refused")), "unknown key \"colour\" (known: mode)");
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let mut c = config(&[("timeout-ms", "soon"), ("mode", "serial")]);
        assert!(message(c.parse::<u32>("timeout-ms").expect_err("nan")).contains("\"soon\" for timeout-ms"));
        assert!(message(c.one_of("mode", &["lan"]).expect_err("not allowed")).contains("\"serial\" for mode (one of: lan)"));
    }
}
