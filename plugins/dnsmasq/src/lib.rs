//! metalhost netboot plugin for dnsmasq: per node, a dhcp-host file (MAC → fixed IP, plus a tag) in
//! dnsmasq's `dhcp-hostsdir`, and an iPXE script the daemon serves over HTTP.
//!
//! It sees only the directories the operator granted (WASI preopens). Files are written to a
//! dot-file and renamed into place, so dnsmasq (which ignores dot-files) never reads half a file.
//! Removing a host asks the host to reload dnsmasq: inotify alone does not drop deleted hosts.

use std::cell::RefCell;
use std::path::PathBuf;

wit_bindgen::generate!({ world: "netboot-backend", path: "../../wit" });

use exports::metalhost::drivers::netboot::BootEntry;
use exports::metalhost::drivers::{netboot, plugin};
use metalhost::drivers::service;
use metalhost::drivers::types::{DriverError, PluginInfo, PluginKind};

#[derive(Clone)]
struct Settings {
    hostsdir: PathBuf,
    scriptsdir: PathBuf,
    tag: String,
}

thread_local! {
    static SETTINGS: RefCell<Option<Settings>> = const { RefCell::new(None) };
}

fn settings() -> Result<Settings, DriverError> {
    SETTINGS.with(|s| s.borrow().clone()).ok_or_else(|| DriverError::InvalidConfig("hostsdir and scriptsdir must be configured".into()))
}

fn mac_file_name(mac: &str) -> Result<String, DriverError> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if ok { Ok(mac.to_ascii_lowercase().replace(':', "-")) } else { Err(DriverError::InvalidConfig(format!("invalid MAC {mac:?}"))) }
}

/// Values end up in dnsmasq and iPXE files: no separators, newlines or shell-ish surprises.
fn check(field: &str, value: &str, allowed: impl Fn(char) -> bool) -> Result<(), DriverError> {
    if !value.is_empty() && value.chars().all(&allowed) {
        Ok(())
    } else {
        Err(DriverError::InvalidConfig(format!("invalid {field} {value:?}")))
    }
}

fn write_atomically(dir: &PathBuf, name: &str, contents: &str) -> Result<(), DriverError> {
    let temp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    std::fs::write(&temp, contents).map_err(|e| DriverError::CommandFailed(format!("write {}: {e}", temp.display())))?;
    std::fs::rename(&temp, &target).map_err(|e| DriverError::CommandFailed(format!("rename to {}: {e}", target.display())))
}

fn remove(path: PathBuf) -> Result<(), DriverError> {
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::CommandFailed(format!("remove {}: {e}", path.display()))),
    }
}

struct Dnsmasq;

impl plugin::Guest for Dnsmasq {
    fn info() -> PluginInfo {
        PluginInfo { name: "dnsmasq".into(), version: env!("CARGO_PKG_VERSION").into(), kind: PluginKind::Netboot }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), DriverError> {
        let (mut hostsdir, mut scriptsdir, mut tag) = (None, None, "metalhost".to_owned());
        for (key, value) in config {
            match key.as_str() {
                "hostsdir" => hostsdir = Some(PathBuf::from(value)),
                "scriptsdir" => scriptsdir = Some(PathBuf::from(value)),
                "tag" => {
                    check("tag", &value, |c| c.is_ascii_alphanumeric() || c == '-' || c == '_')?;
                    tag = value;
                }
                other => return Err(DriverError::InvalidConfig(format!("unknown key {other:?} (known: hostsdir, scriptsdir, tag)"))),
            }
        }
        let (Some(hostsdir), Some(scriptsdir)) = (hostsdir, scriptsdir) else {
            return Err(DriverError::InvalidConfig("hostsdir and scriptsdir are required".into()));
        };
        SETTINGS.with(|s| *s.borrow_mut() = Some(Settings { hostsdir, scriptsdir, tag }));
        Ok(())
    }
}

impl netboot::Guest for Dnsmasq {
    fn put_host(entry: BootEntry) -> Result<(), DriverError> {
        let s = settings()?;
        let name = mac_file_name(&entry.mac)?;
        entry.ip.parse::<std::net::IpAddr>().map_err(|_| DriverError::InvalidConfig(format!("invalid IP {:?}", entry.ip)))?;
        check("hostname", &entry.hostname, |c| c.is_ascii_alphanumeric() || c == '-')?;
        let url_char = |c: char| c.is_ascii_graphic() && c != '"' && c != '\'' && c != '\\';
        check("kernel url", &entry.kernel_url, url_char)?;
        check("initrd url", &entry.initrd_url, url_char)?;
        if entry.kernel_args.chars().any(|c| c.is_control()) {
            return Err(DriverError::InvalidConfig("kernel args must be one line".into()));
        }
        let mac = entry.mac.to_ascii_lowercase();
        write_atomically(&s.hostsdir, &name, &format!("{mac},set:{},{},{}\n", s.tag, entry.ip, entry.hostname))?;
        let script = format!(
            "#!ipxe\necho metalhost: bootstrap for {} ({mac})\nkernel {} {}\ninitrd {}\nboot\n",
            entry.hostname, entry.kernel_url, entry.kernel_args, entry.initrd_url
        );
        write_atomically(&s.scriptsdir, &format!("{name}.ipxe"), &script)
    }

    fn remove_host(mac: String) -> Result<(), DriverError> {
        let s = settings()?;
        let name = mac_file_name(&mac)?;
        remove(s.hostsdir.join(&name))?;
        remove(s.scriptsdir.join(format!("{name}.ipxe")))?;
        service::reload().map_err(|e| DriverError::CommandFailed(format!("dnsmasq reload: {e}")))
    }
}

export!(Dnsmasq);
