//! metalhost netboot plugin for dnsmasq: per node, a dhcp-host file (MAC → fixed IP, plus a tag) in
//! dnsmasq's `dhcp-hostsdir`, and an iPXE script the daemon serves over HTTP.
//!
//! It sees only the directories the operator granted (WASI preopens, mounted at the same paths as
//! on the host). Files are written to a dot-file and renamed into place, so dnsmasq (which ignores
//! dot-files) and the HTTP server never read half a file. Removing a host asks the host to reload
//! dnsmasq: inotify alone does not drop deleted hosts (`tests/tests/netboot.rs` shows it). Entries carry no
//! `set:` tag by default: dnsmasq 2.90 aborts on that reload when one does (see `format::Settings`).

mod format;

use std::path::Path;

use format::{Entry, Invalid, Mac, Settings};
use metalhost_plugin_sdk::netboot::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin};

struct Dnsmasq {
    settings: Settings,
}

impl From<Invalid> for DriverError {
    fn from(e: Invalid) -> Self {
        DriverError::InvalidConfig(e.0)
    }
}

fn write_atomically(dir: &Path, name: &str, contents: &str) -> Result<(), DriverError> {
    let temp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    if let Err(e) = std::fs::write(&temp, contents) {
        let _ = std::fs::remove_file(&temp);
        return Err(DriverError::CommandFailed(format!("write {}: {e}", temp.display())));
    }
    std::fs::rename(&temp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        DriverError::CommandFailed(format!("rename {} to {}: {e}", temp.display(), target.display()))
    })
}

fn remove(path: &Path) -> Result<(), DriverError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::CommandFailed(format!("remove {}: {e}", path.display()))),
    }
}

impl Plugin for Dnsmasq {
    const NAME: &'static str = "dnsmasq";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(config: Config) -> Result<Self, DriverError> {
        Ok(Dnsmasq { settings: Settings::parse(config.pairs())? })
    }
}

impl NetbootBackend for Dnsmasq {
    fn put_host(&self, entry: BootEntry) -> Result<(), DriverError> {
        let s = &self.settings;
        let e = Entry::parse(&entry.mac, &entry.ip, &entry.hostname, &entry.kernel_url, &entry.initrd_url, &entry.kernel_args)?;
        let name = e.mac.file_name();
        // Script first: once the reservation exists the node may DHCP and ask for its script at once.
        write_atomically(&s.scriptsdir, &format!("{name}.ipxe"), &e.ipxe_script())?;
        write_atomically(&s.hostsdir, &name, &e.host_line(s.tag.as_deref()))
    }

    fn remove_host(&self, mac: &str) -> Result<(), DriverError> {
        let s = &self.settings;
        let name = Mac::parse(mac)?.file_name();
        remove(&s.hostsdir.join(&name))?;
        remove(&s.scriptsdir.join(format!("{name}.ipxe")))?;
        // Always, even when nothing was there: an earlier removal whose reload failed is retried.
        service::reload()
    }
}

metalhost_plugin_sdk::export_netboot!(Dnsmasq);
