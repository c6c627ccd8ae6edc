//! What an instance is told about itself (issue 30): its host name, the SSH keys that may log in,
//! its user data and metadata, and its address on its project's subnet. Checked here, before any
//! node is claimed; written onto the config drive by `config_drive.rs` (ARCHITECTURE.md, "Instances
//! a project can log into").

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::ParseError;

/// The most user data an instance takes (as OpenStack's Nova does).
pub const MAX_USER_DATA: usize = 64 * 1024;
/// The most SSH keys on one instance, and the longest key line.
pub const MAX_SSH_KEYS: usize = 32;
pub const MAX_SSH_KEY_LEN: usize = 16 * 1024;
/// The most metadata pairs, and the longest key or value (Nova's limits).
pub const MAX_META: usize = 128;
pub const MAX_META_LEN: usize = 255;

/// An instance's host name (RFC 1123): dot-separated labels of letters, digits and inner hyphens,
/// at most 63 characters each and 253 in all, not only digits; kept lower-case.
pub fn host_name(s: &str) -> Result<String, ParseError> {
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && !l.starts_with('-') && !l.ends_with('-')
    };
    let numeric = s.chars().all(|c| c.is_ascii_digit() || c == '.');
    if s.len() <= 253 && !numeric && s.split('.').all(label_ok) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(ParseError(format!(
            "{s:?} is not a host name: dot-separated labels of letters, digits and inner hyphens (at most 63 each, 253 in all), not only digits"
        )))
    }
}

/// A host name made from an instance's name when none was given: what is not a letter, digit or
/// hyphen becomes a hyphen, cut to one label.
pub fn host_name_from(name: &str) -> String {
    let mut label: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' }).take(63).collect();
    label = label.trim_matches('-').to_owned();
    if label.is_empty() || label.chars().all(|c| c.is_ascii_digit()) { format!("instance-{label}").trim_end_matches('-').to_owned() } else { label }
}

/// One OpenSSH public key line (`ssh-ed25519 AAAA... comment`), parsed for real: its type, its
/// key data and their agreement. Returned trimmed.
pub fn ssh_key(line: &str) -> Result<String, ParseError> {
    let line = line.trim();
    if line.is_empty() || line.len() > MAX_SSH_KEY_LEN || line.contains('\n') {
        return Err(ParseError(format!("an SSH public key is one line of 1-{MAX_SSH_KEY_LEN} characters")));
    }
    match ssh_key::PublicKey::from_openssh(line) {
        Ok(_) => Ok(line.to_owned()),
        Err(e) => {
            let start: String = line.chars().take(24).collect();
            Err(ParseError(format!("{start:?}... is not an OpenSSH public key ({e})")))
        }
    }
}

/// User data: at most 64 KiB; cloud-config (`#cloud-config` on the first line) must be YAML whose
/// top level is a mapping, as cloud-init requires (anything else, a script say, is passed on).
pub fn user_data(text: &str) -> Result<(), ParseError> {
    if text.len() > MAX_USER_DATA {
        return Err(ParseError(format!("{} bytes is more than the {MAX_USER_DATA} allowed", text.len())));
    }
    let first = text.lines().next().unwrap_or("").trim_end();
    if first == "#cloud-config" {
        let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| ParseError(format!("#cloud-config that is not valid YAML: {e}")))?;
        match docs.first() {
            None | Some(yaml_rust2::Yaml::Hash(_)) | Some(yaml_rust2::Yaml::Null) => {}
            Some(_) => return Err(ParseError("#cloud-config must be a YAML mapping (key: value) at the top".into())),
        }
        if docs.len() > 1 {
            return Err(ParseError("#cloud-config must be one YAML document".into()));
        }
    }
    Ok(())
}

/// Metadata: at most 128 string pairs, keys of 1-255 characters, values of at most 255.
pub fn meta(pairs: &BTreeMap<String, String>) -> Result<(), ParseError> {
    if pairs.len() > MAX_META {
        return Err(ParseError(format!("{} pairs is more than the {MAX_META} allowed", pairs.len())));
    }
    for (key, value) in pairs {
        if key.is_empty() || key.len() > MAX_META_LEN || value.len() > MAX_META_LEN {
            return Err(ParseError(format!("key {key:?}: keys are 1-{MAX_META_LEN} characters and values at most {MAX_META_LEN}")));
        }
    }
    Ok(())
}

/// A project network's IPv4 subnet: its prefix, the gateway its instances route through, and the
/// DNS servers they are given. Instances get addresses from it, never the network's own, its
/// broadcast or the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<IpAddr>,
}

impl Subnet {
    /// `cidr` like `10.77.0.0/24` (prefix 8-30; host bits must be zero), a gateway inside it, DNS
    /// servers as IP addresses.
    pub fn parse(cidr: &str, gateway: Option<&str>, dns: &[String]) -> Result<Subnet, ParseError> {
        let bad = || ParseError(format!("{cidr:?} is not an IPv4 subnet like 10.77.0.0/24 (prefix 8-30)"));
        let (address, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let subnet = Subnet { network, prefix, gateway: None, dns: Vec::new() };
        if u32::from(network) & !subnet.mask() != 0 {
            return Err(ParseError(format!(
                "{cidr:?} has host bits set: the subnet is {}/{prefix}",
                Ipv4Addr::from(u32::from(network) & subnet.mask())
            )));
        }
        let gateway = gateway
            .map(|g| {
                let ip: Ipv4Addr = g.parse().map_err(|_| ParseError(format!("gateway {g:?} is not an IPv4 address")))?;
                if !subnet.is_host(ip) {
                    return Err(ParseError(format!("gateway {ip} is not a host address of {cidr}")));
                }
                Ok(ip)
            })
            .transpose()?;
        if dns.len() > 3 {
            return Err(ParseError("at most 3 DNS servers (what resolv.conf takes)".into()));
        }
        let dns =
            dns.iter().map(|d| d.parse().map_err(|_| ParseError(format!("DNS server {d:?} is not an IP address")))).collect::<Result<_, _>>()?;
        Ok(Subnet { gateway, dns, ..subnet })
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    /// Inside the subnet, and neither its network address nor its broadcast.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        let (ip, net) = (u32::from(ip), u32::from(self.network));
        ip & self.mask() == net && ip != net && ip != net | !self.mask()
    }

    /// How many addresses instances can have: the hosts less the gateway.
    pub fn capacity(&self) -> u32 {
        (!self.mask()) - 1 - u32::from(self.gateway.is_some())
    }

    /// The lowest host address that is not the gateway and not in `used`.
    pub fn first_free(&self, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        let net = u32::from(self.network);
        (net + 1..net | !self.mask()).map(Ipv4Addr::from).find(|ip| Some(*ip) != self.gateway && !used.contains(ip))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_rfc_1123() {
        assert_eq!(host_name("Web-1.example").unwrap(), "web-1.example");
        for bad in ["", "-a", "a-", "a..b", "a_b", "1234", "1.2.3.4", &"a".repeat(64), "a b"] {
            assert!(host_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(host_name_from("My_Box 1"), "my-box-1");
        assert_eq!(host_name_from("__"), "instance");
        assert_eq!(host_name_from("42"), "instance-42");
        assert!(host_name(&host_name_from(&"x_".repeat(100))).is_ok());
    }

    #[test]
    fn ssh_keys_are_parsed_not_pattern_matched() {
        let good = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8zNljC/Nju6+bVvAwE9j4y+dnoL7u4XrXuIEIUGuMa me@laptop";
        assert_eq!(ssh_key(&format!("  {good}\n")).unwrap(), good);
        // The right prefix, a body of the wrong type, a truncated body, two lines.
        let wrong_type = "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIM8zNljC/Nju6+bVvAwE9j4y+dnoL7u4XrXuIEIUGuMa";
        for bad in ["", "ssh-ed25519", wrong_type, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8zNljC", &format!("{good}\n{good}")] {
            assert!(ssh_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cloud_config_must_be_a_yaml_mapping() {
        assert!(user_data("#cloud-config\nruncmd:\n  - echo hi\n").is_ok());
        assert!(user_data("#!/bin/sh\necho [unbalanced\n").is_ok(), "a script is not YAML");
        assert!(user_data("#cloud-config\nruncmd: [unclosed\n").is_err());
        assert!(user_data("#cloud-config\n- a list\n").is_err());
        assert!(user_data(&"x".repeat(MAX_USER_DATA + 1)).is_err());
        assert!(user_data(&"x".repeat(MAX_USER_DATA)).is_ok());
    }

    #[test]
    fn subnets_hand_out_hosts_but_not_the_gateway() {
        let s = Subnet::parse("10.77.0.0/29", Some("10.77.0.1"), &["10.77.0.1".into()]).unwrap();
        assert_eq!((s.to_string(), s.netmask(), s.capacity()), ("10.77.0.0/29".into(), Ipv4Addr::new(255, 255, 255, 248), 5));
        let mut used = Vec::new();
        while let Some(ip) = s.first_free(&used) {
            used.push(ip);
        }
        assert_eq!(used.len(), 5);
        assert_eq!(used[0], Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(used[4], Ipv4Addr::new(10, 77, 0, 6), "never the broadcast .7");
        for (cidr, gw) in [
            ("10.77.0.1/24", None),
            ("10.77.0.0/31", None),
            ("10.77.0.0", None),
            ("10.77.0.0/24", Some("10.78.0.1")),
            ("10.77.0.0/24", Some("10.77.0.255")),
        ] {
            assert!(Subnet::parse(cidr, gw, &[]).is_err(), "{cidr} {gw:?}");
        }
        assert!(Subnet::parse("10.77.0.0/24", None, &["dns.example".into()]).is_err());
    }

    #[test]
    fn metadata_has_limits() {
        let mut pairs = BTreeMap::new();
        pairs.insert("role".to_owned(), "web".to_owned());
        assert!(meta(&pairs).is_ok());
        pairs.insert(String::new(), "x".to_owned());
        assert!(meta(&pairs).is_err());
    }
}
