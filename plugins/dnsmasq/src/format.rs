//! The pure part of the dnsmasq plugin: settings, validation and the exact text of the two files per
//! node. No I/O and no bindings, so it is unit-tested on the host target.
//!
//! Every value lands in a line-oriented file (dnsmasq's dhcp-hostsdir entry, an iPXE script), so the
//! rules here are what keeps a hostname or URL from adding lines of its own.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// A refused value, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Linux x86 command line limit; iPXE passes `kernel` arguments through unchanged.
const MAX_KERNEL_ARGS: usize = 2048;
const MAX_URL: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// dnsmasq's `dhcp-hostsdir`, as preopened inside the guest.
    pub hostsdir: PathBuf,
    /// Where the per-node iPXE scripts go; the daemon serves them over HTTP.
    pub scriptsdir: PathBuf,
    /// An extra dnsmasq tag on every reservation (`set:TAG`); none by default. dnsmasq already tags
    /// every host with a dhcp-host entry `known`, and dnsmasq 2.86-2.90 aborts on SIGHUP (our reload)
    /// when a host entry has a `set:` tag and a lease (measured here: exit 134; the upstream bug frees
    /// the tag list on reload). Set it only with a dnsmasq that has the fix.
    pub tag: Option<String>,
}

impl Settings {
    pub fn parse(config: &[(String, String)]) -> Result<Self, Invalid> {
        let (mut hostsdir, mut scriptsdir, mut tag) = (None, None, None);
        for (key, value) in config {
            match key.as_str() {
                "hostsdir" => hostsdir = Some(absolute("hostsdir", value)?),
                "scriptsdir" => scriptsdir = Some(absolute("scriptsdir", value)?),
                "tag" => {
                    let ok = !value.is_empty() && value.len() <= 32 && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                    if !ok {
                        return Err(Invalid(format!("invalid tag {value:?}: 1-32 of a-z, A-Z, 0-9, '-', '_'")));
                    }
                    tag = Some(value.clone());
                }
                other => return Err(Invalid(format!("unknown config key {other:?} (known: hostsdir, scriptsdir, tag)"))),
            }
        }
        match (hostsdir, scriptsdir) {
            (Some(hostsdir), Some(scriptsdir)) => Ok(Settings { hostsdir, scriptsdir, tag }),
            _ => Err(Invalid("hostsdir and scriptsdir are required".into())),
        }
    }
}

fn absolute(key: &str, value: &str) -> Result<PathBuf, Invalid> {
    if value.starts_with('/') && !value.chars().any(char::is_control) {
        Ok(PathBuf::from(value))
    } else {
        Err(Invalid(format!("{key} must be an absolute path, got {value:?}")))
    }
}

/// A MAC as `aa:bb:cc:dd:ee:ff` (any case on input, lower case out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mac(String);

impl Mac {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let parts: Vec<&str> = text.split(':').collect();
        let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if ok { Ok(Mac(text.to_ascii_lowercase())) } else { Err(Invalid(format!("invalid MAC {text:?}: expected aa:bb:cc:dd:ee:ff"))) }
    }

    /// The file name for this node: iPXE's `${mac:hexhyp}`, e.g. `52-54-00-aa-00-01`.
    pub fn file_name(&self) -> String {
        self.0.replace(':', "-")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One node's boot entry, validated: safe to write into dnsmasq and iPXE files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub hostname: String,
    pub kernel_url: String,
    pub initrd_url: String,
    pub kernel_args: String,
}

impl Entry {
    pub fn parse(mac: &str, ip: &str, hostname: &str, kernel_url: &str, initrd_url: &str, kernel_args: &str) -> Result<Self, Invalid> {
        let mac = Mac::parse(mac)?;
        // PXE firmware asks for its address over DHCPv4, so the reservation is IPv4.
        let ip = ip.parse::<Ipv4Addr>().map_err(|_| Invalid(format!("invalid IPv4 address {ip:?}")))?;
        check_hostname(hostname)?;
        check_url("kernel url", kernel_url)?;
        check_url("initrd url", initrd_url)?;
        if kernel_args.chars().any(char::is_control) {
            return Err(Invalid("kernel args must be a single line without control characters".into()));
        }
        if kernel_args.len() > MAX_KERNEL_ARGS {
            return Err(Invalid(format!("kernel args are {} bytes, more than {MAX_KERNEL_ARGS}", kernel_args.len())));
        }
        Ok(Entry {
            mac,
            ip,
            hostname: hostname.to_owned(),
            kernel_url: kernel_url.to_owned(),
            initrd_url: initrd_url.to_owned(),
            kernel_args: kernel_args.trim().to_owned(),
        })
    }

    /// The dhcp-hostsdir file: `MAC,IP,HOSTNAME`, or `MAC,set:TAG,IP,HOSTNAME` with a tag.
    pub fn host_line(&self, tag: Option<&str>) -> String {
        match tag {
            Some(tag) => format!("{},set:{tag},{},{}\n", self.mac.as_str(), self.ip, self.hostname),
            None => format!("{},{},{}\n", self.mac.as_str(), self.ip, self.hostname),
        }
    }

    /// The node's iPXE script, chained from the generic one.
    pub fn ipxe_script(&self) -> String {
        let kernel = if self.kernel_args.is_empty() { self.kernel_url.clone() } else { format!("{} {}", self.kernel_url, self.kernel_args) };
        format!(
            "#!ipxe\necho metalhost: bootstrap for {} ({})\nkernel {kernel}\ninitrd {}\nboot\n",
            self.hostname,
            self.mac.as_str(),
            self.initrd_url
        )
    }
}

/// One DNS label (RFC 1123): what dnsmasq accepts as a dhcp-host name without a domain.
fn check_hostname(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { Ok(()) } else { Err(Invalid(format!("invalid hostname {name:?}: one DNS label of a-z, 0-9, '-'"))) }
}

/// http(s) URLs with no whitespace, quotes, backslashes or `$` (iPXE would expand `${...}`).
fn check_url(field: &str, url: &str) -> Result<(), Invalid> {
    let scheme = url.starts_with("http://") || url.starts_with("https://");
    let chars = url.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '$' | '`'));
    if scheme && chars && url.len() <= MAX_URL {
        Ok(())
    } else {
        Err(Invalid(format!("invalid {field} {url:?}: an http(s) URL without spaces, quotes or '$'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn entry(mac: &str, ip: &str, hostname: &str, args: &str) -> Result<Entry, Invalid> {
        Entry::parse(mac, ip, hostname, "http://10.99.0.1:8080/v1/bootstrap/vmlinuz", "http://10.99.0.1:8080/v1/bootstrap/initrd.gz", args)
    }

    #[test]
    fn settings_need_both_dirs_and_have_no_tag_by_default() {
        let s = Settings::parse(&kv(&[("hostsdir", "/h"), ("scriptsdir", "/s")])).unwrap();
        assert_eq!(s, Settings { hostsdir: "/h".into(), scriptsdir: "/s".into(), tag: None });
        assert_eq!(Settings::parse(&kv(&[("hostsdir", "/h"), ("scriptsdir", "/s"), ("tag", "lab_1")])).unwrap().tag.as_deref(), Some("lab_1"));
        assert_eq!(Settings::parse(&kv(&[("hostsdir", "/h")])).unwrap_err().0, "hostsdir and scriptsdir are required");
        assert_eq!(
            Settings::parse(&kv(&[("hostsdir", "/h"), ("scriptsdir", "/s"), ("hostdir", "/x")])).unwrap_err().0,
            "unknown config key \"hostdir\" (known: hostsdir, scriptsdir, tag)"
        );
        assert!(Settings::parse(&kv(&[("hostsdir", "relative"), ("scriptsdir", "/s")])).unwrap_err().0.contains("absolute path"));
        for bad in ["", "a,b", "a b", "x\nset:evil"] {
            assert!(Settings::parse(&kv(&[("hostsdir", "/h"), ("scriptsdir", "/s"), ("tag", bad)])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn macs_are_normalised_to_lower_case_and_named_like_ipxe_hexhyp() {
        let mac = Mac::parse("52:54:00:AA:0b:01").unwrap();
        assert_eq!(mac.as_str(), "52:54:00:aa:0b:01");
        assert_eq!(mac.file_name(), "52-54-00-aa-0b-01");
        for bad in ["", "52:54:00:aa:0b", "52:54:00:aa:0b:01:02", "52-54-00-aa-0b-01", "../../etc/x", "52:54:00:aa:0b:0g", "52:54:00:aa:0b:1"] {
            assert!(Mac::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_host_line_is_what_dnsmasq_reads() {
        let e = entry("52:54:00:AA:00:01", "10.99.0.11", "node1", "console=ttyS0").unwrap();
        assert_eq!(e.host_line(None), "52:54:00:aa:00:01,10.99.0.11,node1\n");
        assert_eq!(e.host_line(Some("lab")), "52:54:00:aa:00:01,set:lab,10.99.0.11,node1\n");
    }

    #[test]
    fn the_ipxe_script_boots_the_bootstrap_with_its_args() {
        let e = entry("52:54:00:aa:00:01", "10.99.0.11", "node1", " console=ttyS0 quiet metalhost.api=http://10.99.0.1:8080 ").unwrap();
        assert_eq!(
            e.ipxe_script(),
            "#!ipxe\n\
             echo metalhost: bootstrap for node1 (52:54:00:aa:00:01)\n\
             kernel http://10.99.0.1:8080/v1/bootstrap/vmlinuz console=ttyS0 quiet metalhost.api=http://10.99.0.1:8080\n\
             initrd http://10.99.0.1:8080/v1/bootstrap/initrd.gz\n\
             boot\n"
        );
        let bare = entry("52:54:00:aa:00:01", "10.99.0.11", "node1", "").unwrap();
        assert!(bare.ipxe_script().contains("\nkernel http://10.99.0.1:8080/v1/bootstrap/vmlinuz\n"));
    }

    #[test]
    fn values_that_could_add_lines_or_fields_are_refused() {
        for (ip, host, args) in [
            ("10.99.0.11", "node1\ndhcp-boot=evil", ""),
            ("10.99.0.11", "node1,set:other", ""),
            ("10.99.0.11", "node 1", ""),
            ("10.99.0.11", "-node", ""),
            ("10.99.0.11", "", ""),
            ("10.99.0.11", &"n".repeat(64), ""),
            ("10.99.0.11", "node.example", ""),
            ("10.99.0.11,set:evil", "node1", ""),
            ("fd99::11", "node1", ""),
            ("10.99.0.256", "node1", ""),
            ("10.99.0.11", "node1", "a\nshell"),
            ("10.99.0.11", "node1", "a\rb"),
            ("10.99.0.11", "node1", &"a".repeat(2049)),
        ] {
            assert!(entry("52:54:00:aa:00:01", ip, host, args).is_err(), "{ip:?} {host:?} {args:?}");
        }
        for url in ["ftp://x/vmlinuz", "http://x/a b", "http://x/${evil}", "http://x/\"", "http://x/\nshell", "vmlinuz"] {
            let err = Entry::parse("52:54:00:aa:00:01", "10.99.0.11", "n", url, "http://x/i", "").unwrap_err();
            assert!(err.0.starts_with("invalid kernel url"), "{url:?}: {err}");
            assert!(Entry::parse("52:54:00:aa:00:01", "10.99.0.11", "n", "http://x/k", url, "").is_err(), "{url:?}");
        }
    }
}
