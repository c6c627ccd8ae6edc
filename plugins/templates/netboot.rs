//! {{name}}: a metalhost netboot plugin. As generated it writes dnsmasq `dhcp-hostsdir` entries
//! and iPXE scripts into the two directories the operator grants (config `hostsdir`,
//! `scriptsdir`); replace the file formats with your DHCP/PXE service's own.
//!
//! The plugin sees only the granted directories. Files are written to a dot-file and renamed,
//! so the service never reads half a file; removal asks the host to reload the service.

use std::path::{Path, PathBuf};

use metalhost_plugin_sdk::netboot::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};

struct {{struct}} {
    hostsdir: PathBuf,
    scriptsdir: PathBuf,
}

fn invalid(message: String) -> DriverError {
    DriverError::InvalidConfig(message)
}

/// `52:54:00:AA:00:01` → `52-54-00-aa-00-01`, the file name the daemon serves scripts by.
fn file_name(mac: &str) -> Result<String, DriverError> {
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 || !parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())) {
        return Err(invalid(format!("invalid MAC address {mac:?}")));
    }
    Ok(parts.join("-").to_ascii_lowercase())
}

/// Values end up in config lines and scripts: nothing that could start another line or directive.
fn plain(what: &str, value: &str, extra: &str) -> Result<(), DriverError> {
    let ok = value.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    if ok && !value.is_empty() { Ok(()) } else { Err(invalid(format!("invalid {what} {value:?}"))) }
}

fn write_atomically(dir: &Path, name: &str, contents: &str) -> Result<(), DriverError> {
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, contents)
        .and_then(|()| std::fs::rename(&temp, dir.join(name)))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            DriverError::CommandFailed(format!("write {name} in {}: {e}", dir.display()))
        })
}

fn remove(path: &Path) -> Result<(), DriverError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DriverError::CommandFailed(format!("remove {}: {e}", path.display()))),
        _ => Ok(()),
    }
}

impl Plugin for {{struct}} {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(mut config: Config) -> Result<Self, DriverError> {
        let dir = |value: Option<String>, key: &str| match value {
            Some(v) if v.starts_with('/') => Ok(PathBuf::from(v)),
            _ => Err(invalid(format!("{key} must be set to an absolute path (a granted dir)"))),
        };
        let hostsdir = dir(config.get("hostsdir"), "hostsdir")?;
        let scriptsdir = dir(config.get("scriptsdir"), "scriptsdir")?;
        config.finish()?;
        Ok({{struct}} { hostsdir, scriptsdir })
    }
}

impl NetbootBackend for {{struct}} {
    fn put_host(&self, entry: BootEntry) -> Result<(), DriverError> {
        let name = file_name(&entry.mac)?;
        plain("IP address", &entry.ip, ".")?;
        plain("hostname", &entry.hostname, "-")?;
        for url in [&entry.kernel_url, &entry.initrd_url] {
            plain("URL", url, ":/._-?=&%~+")?;
        }
        plain("kernel args", &entry.kernel_args.replace(' ', ""), ":/._-=,+@")?;
        let script = format!("#!ipxe\nkernel {} {}\ninitrd {}\nboot\n", entry.kernel_url, entry.kernel_args, entry.initrd_url);
        // The script first: once the reservation exists the node may ask for it at once.
        write_atomically(&self.scriptsdir, &format!("{name}.ipxe"), &script)?;
        write_atomically(&self.hostsdir, &name, &format!("{},{},{}\n", entry.mac.to_ascii_lowercase(), entry.ip, entry.hostname))
    }

    fn remove_host(&self, mac: &str) -> Result<(), DriverError> {
        let name = file_name(mac)?;
        remove(&self.hostsdir.join(&name))?;
        remove(&self.scriptsdir.join(format!("{name}.ipxe")))?;
        // dnsmasq only forgets a deleted reservation when told to re-read.
        service::reload()
    }
}

metalhost_plugin_sdk::export_netboot!({{struct}});
