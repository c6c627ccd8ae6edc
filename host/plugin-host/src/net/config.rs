//! The operator's network settings for a 0.2.0 power plugin: `network = { ... }` in its
//! `[[plugin]]` entry. They apply to every BMC the plugin drives.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the host talks HTTP to the BMCs of one plugin.
///
/// ```toml
/// network = { ca = "/etc/metalhost/bmc-ca.pem" }            # verify against this CA bundle
/// network = { cert_sha256 = "5f:1a:..." }                   # or pin the BMC's certificate
/// network = { insecure = true }                              # or verify nothing (shown as such)
/// network = { scheme = "http" }                              # or no TLS at all (shown as such)
/// ```
/// Without a `ca` or a pin, certificates are verified against the system roots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    #[serde(default)]
    pub scheme: Scheme,
    /// A PEM bundle of the CAs that sign the BMCs' certificates, instead of the system roots.
    pub ca: Option<PathBuf>,
    /// The sha256 of the BMC certificate (DER), hex with or without colons. It replaces chain and
    /// name verification: the certificate either is this one or the connection fails.
    pub cert_sha256: Option<String>,
    /// Skip certificate verification: anyone on the path can read the BMC password. Logged at
    /// load and shown in `metalhost plugin list`.
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Https,
    /// Plain text: for BMCs without TLS (and the password crosses the network readable).
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

impl NetworkSpec {
    /// The pin as 32 bytes, if set; a malformed one is a config error.
    pub(crate) fn pin(&self) -> Result<Option<[u8; 32]>, String> {
        let Some(text) = &self.cert_sha256 else { return Ok(None) };
        let hex: String = text.trim().trim_start_matches("sha256:").chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&hex).map_err(|e| format!("network.cert_sha256 {text:?} is not hex: {e}"))?;
        <[u8; 32]>::try_from(bytes.as_slice()).map(Some).map_err(|_| format!("network.cert_sha256 {text:?} is not 32 bytes (a sha256)"))
    }

    /// One line for `plugin list` and the load log: how BMC connections are verified.
    pub fn describe(&self) -> String {
        match (self.scheme, self.insecure, &self.cert_sha256, &self.ca) {
            (Scheme::Http, ..) => "http (no TLS: the BMC password crosses the network readable)".into(),
            (Scheme::Https, true, ..) => "https, certificates NOT verified (insecure = true)".into(),
            (Scheme::Https, false, Some(pin), _) => format!("https, certificate pinned (sha256 {pin})"),
            (Scheme::Https, false, None, Some(ca)) => format!("https, verified against the CA bundle {}", ca.display()),
            (Scheme::Https, false, None, None) => "https, verified against the system roots".into(),
        }
    }

    /// Settings that contradict each other are refused rather than resolved by a rule nobody reads.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let set = [self.ca.is_some(), self.cert_sha256.is_some(), self.insecure].iter().filter(|x| **x).count();
        if set > 1 {
            return Err("network: give at most one of ca, cert_sha256 and insecure".into());
        }
        if self.scheme == Scheme::Http && set > 0 {
            return Err("network: ca, cert_sha256 and insecure apply to scheme = \"https\" only".into());
        }
        self.pin().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_with_or_without_colons_and_contradictions_are_refused() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        for text in [hex.clone(), colons, format!("sha256:{hex}")] {
            let spec = NetworkSpec { cert_sha256: Some(text), ..Default::default() };
            assert_eq!(spec.pin(), Ok(Some([0xab; 32])));
        }
        assert!(NetworkSpec { cert_sha256: Some("abcd".into()), ..Default::default() }.validate().is_err());
        assert!(NetworkSpec { insecure: true, ca: Some("/x".into()), ..Default::default() }.validate().is_err());
        assert!(NetworkSpec { scheme: Scheme::Http, insecure: true, ..Default::default() }.validate().is_err());
        assert!(NetworkSpec::default().validate().is_ok());
    }
}
