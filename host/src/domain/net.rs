//! Network-facing values parsed at the edge: MAC addresses, host names, VLANs, switch ports.

use std::fmt;
use std::str::FromStr;

use super::ParseError;

/// An Ethernet MAC address; displayed lower-case and colon-separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// What the parser accepts, for the API document (api/schema.rs): six hex octets, all
    /// separated by `:` or all by `-`.
    pub const PATTERN: &'static str = "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}$";
}

impl FromStr for MacAddr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError(format!("invalid MAC address {s:?}: expected six hex octets like 52:54:00:12:34:56"));
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut octets = [0u8; 6];
        let mut parts = s.split(sep);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A BMC or switch address: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostname(String);

impl Hostname {
    /// The longest host name (RFC 1035).
    pub const MAX_LEN: usize = 253;
    /// A host name as the parser accepts one (an IP address is the other choice): dot-separated
    /// labels of letters, digits and inner hyphens, and not only digits and dots (that is a
    /// mistyped IPv4 address).
    pub const NAME_PATTERN: &'static str =
        r"^(?![0-9.]+$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Hostname {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.parse::<std::net::IpAddr>().is_ok() {
            return Ok(Hostname(s.to_owned()));
        }
        let label_ok = |l: &str| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-')
        };
        // A name made only of digits and dots is a mistyped IPv4 address, not a host name.
        let looks_numeric = s.chars().all(|c| c.is_ascii_digit() || c == '.');
        if s.len() <= Self::MAX_LEN && !looks_numeric && s.split('.').all(label_ok) {
            Ok(Hostname(s.to_ascii_lowercase()))
        } else {
            Err(ParseError(format!("invalid address {s:?}: expected an IP address or a host name")))
        }
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An 802.1Q VLAN id (1-4094).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vlan(u16);

impl Vlan {
    /// VLAN 1, every switch's default VLAN.
    pub const DEFAULT: Vlan = Vlan(1);

    pub fn new(id: i64) -> Result<Self, ParseError> {
        match u16::try_from(id) {
            Ok(v) if (1..=4094).contains(&v) => Ok(Vlan(v)),
            _ => Err(ParseError(format!("invalid VLAN id {id}: expected 1-4094"))),
        }
    }

    pub fn id(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Vlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A switch port name such as `ge-0/0/3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SwitchPort(String);

/// What an enlisted node's port is called until LLDP or the operator says which it is.
const UNKNOWN_PORT_PREFIX: &str = "unknown-";

impl SwitchPort {
    pub const MAX_LEN: usize = 64;
    /// What the parser accepts, for the API document.
    pub const PATTERN: &'static str = "^[A-Za-z0-9/:._-]+$";

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stand-in port of a node enlisted without an LLDP match: unique per MAC.
    pub fn unknown_for(mac: &MacAddr) -> SwitchPort {
        SwitchPort(format!("{UNKNOWN_PORT_PREFIX}{}", mac.to_string().replace(':', "")))
    }

    /// Whether a stored port name is such a stand-in.
    pub fn is_unknown(port: &str) -> bool {
        port.starts_with(UNKNOWN_PORT_PREFIX)
    }
}

impl FromStr for SwitchPort {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty() && s.len() <= Self::MAX_LEN && s.chars().all(|c| c.is_ascii_alphanumeric() || "-/:._".contains(c));
        if ok {
            Ok(SwitchPort(s.to_owned()))
        } else {
            Err(ParseError(format!("invalid switch port {s:?}: expected a port name like ge-0/0/3 (letters, digits, - / : . _)")))
        }
    }
}

impl fmt::Display for SwitchPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a switch announces as its LLDP chassis id: a MAC (normalised like `MacAddr`), else up to
/// 128 characters of text. A node's LLDP neighbour is matched to a switch by this.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChassisId(String);

impl ChassisId {
    pub const MAX_LEN: usize = 128;
    /// Printable text with something other than white space (a MAC is such text too), for the
    /// API document; the parser also trims white space around it.
    pub const PATTERN: &'static str = r"^(?=.*\S)[^\x00-\x1F\x7F-\x9F]+$";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ChassisId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(mac) = s.parse::<MacAddr>() {
            return Ok(ChassisId(mac.to_string()));
        }
        if s.is_empty() || s.chars().count() > Self::MAX_LEN || s.chars().any(char::is_control) {
            return Err(ParseError(format!("invalid chassis id {s:?}: a MAC or 1-128 printable characters")));
        }
        Ok(ChassisId(s.to_owned()))
    }
}

impl fmt::Display for ChassisId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis_ids_normalise_macs_and_keep_text() {
        assert_eq!("00-1C-73-AA-BB-01".parse::<ChassisId>().unwrap().as_str(), "00:1c:73:aa:bb:01");
        assert_eq!(" tor1.lab ".parse::<ChassisId>().unwrap().as_str(), "tor1.lab");
        assert!("".parse::<ChassisId>().is_err());
        assert!("a\nb".parse::<ChassisId>().is_err());
    }

    #[test]
    fn mac_parses_both_separators_and_normalises() {
        let mac: MacAddr = "52-54-00-AB-cd-01".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:01");
        assert_eq!("52:54:00:ab:cd:01".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn mac_rejects_malformed() {
        for bad in ["", "52:54:00:ab:cd", "52:54:00:ab:cd:01:02", "52:54:00:ab:cd:zz", "525400abcd01", "5:54:00:ab:cd:011"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn hostname_accepts_ips_and_names_only() {
        assert!("10.0.0.1".parse::<Hostname>().is_ok());
        assert!("fd99::1".parse::<Hostname>().is_ok());
        assert!("bmc-1.rack4.example".parse::<Hostname>().is_ok());
        for bad in ["10.0.0.300", "1.2.3", "", "bad host", "-x.example", "a..b"] {
            assert!(bad.parse::<Hostname>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn vlan_range() {
        assert!(Vlan::new(0).is_err());
        assert!(Vlan::new(4095).is_err());
        assert_eq!(Vlan::new(100).unwrap().id(), 100);
    }

    #[test]
    fn switch_port_rejects_markup() {
        assert!("ge-0/0/3".parse::<SwitchPort>().is_ok());
        assert!("ge-0/0/3<x>".parse::<SwitchPort>().is_err());
    }
}
