//! {{name}}: a metalhost switch plugin. As generated it drives a Juniper EX switch (legacy
//! `port-mode` syntax) over NETCONF; replace the XML with your switch's own.
//!
//! The host owns the SSH session and the password: the plugin sends RPC bodies and reads the
//! replies. Each change is lock, edit-config, commit, unlock (discard and unlock on failure).
//! The conformance suite (`metalhost plugin test --kind switch`) reads the running config back
//! on its own after every change.

use metalhost_plugin_sdk::switch::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin, log, xml};

struct {{struct}};

const UNLOCK: &str = "<unlock><target><candidate/></target></unlock>";

fn running(filter: &str) -> Result<String, DriverError> {
    netconf::call(&format!("<get-config><source><running/></source><filter type=\"subtree\"><configuration>{filter}</configuration></filter></get-config>"))
}

/// lock → edit-config → commit → unlock; on failure discard the candidate and unlock.
fn change(config: &str) -> Result<(), DriverError> {
    netconf::call("<lock><target><candidate/></target></lock>")?;
    let edit = format!("<edit-config><target><candidate/></target><config><configuration>{config}</configuration></config></edit-config>");
    match netconf::call(&edit).and_then(|_| netconf::call("<commit/>")) {
        Ok(_) => netconf::call(UNLOCK).map(|_| ()),
        Err(e) => {
            log::warn(&format!("change failed, discarding: {e:?}"));
            let _ = netconf::call("<discard-changes/>");
            let _ = netconf::call(UNLOCK);
            Err(e)
        }
    }
}

/// `not-found` unless the switch has this physical port; the name must need no XML escaping.
fn require_port(port: &str) -> Result<(), DriverError> {
    if port.is_empty() || !port.chars().all(|c| c.is_ascii_alphanumeric() || "-/:.".contains(c)) {
        return Err(DriverError::InvalidConfig(format!("invalid port name {port:?}")));
    }
    let reply = netconf::call("<get-interface-information><terse/></get-interface-information>")?;
    if xml::values(&reply, "name").iter().any(|n| n == port) { Ok(()) } else { Err(DriverError::NotFound(format!("the switch has no port {port}"))) }
}

fn members(port: &str) -> Result<Vec<String>, DriverError> {
    let reply = running(&format!("<interfaces><interface><name>{port}</name></interface></interfaces>"))?;
    Ok(xml::elements(&reply, "vlan").into_iter().flat_map(|v| xml::values(v, "members")).collect())
}

impl Plugin for {{struct}} {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(config: Config) -> Result<Self, DriverError> {
        config.finish()?;
        Ok({{struct}})
    }
}

impl SwitchManager for {{struct}} {
    fn describe(&self) -> Result<SwitchDescription, DriverError> {
        Ok(SwitchDescription { model: "juniper ex (legacy port-mode syntax)".into(), capabilities: netconf::capabilities()? })
    }

    fn ensure_vlan(&self, vlan: Vlan) -> Result<(), DriverError> {
        let existing = xml::values(&running("<vlans/>")?, "vlan-id");
        if existing.contains(&vlan.id.to_string()) {
            return Ok(());
        }
        change(&format!("<vlans><vlan><name>{}</name><vlan-id>{}</vlan-id></vlan></vlans>", xml::escape(&vlan.name), vlan.id))
    }

    fn set_access_vlan(&self, port: &str, vlan: Vlan) -> Result<(), DriverError> {
        require_port(port)?;
        // operation="replace" drops the old member instead of adding a second one.
        change(&format!(
            "<interfaces><interface><name>{port}</name><unit><name>0</name><family><ethernet-switching><port-mode>access</port-mode><vlan operation=\"replace\"><members>{}</members></vlan></ethernet-switching></family></unit></interface></interfaces>",
            vlan.id
        ))
    }

    fn clear_port(&self, port: &str) -> Result<(), DriverError> {
        require_port(port)?;
        if members(port)?.is_empty() {
            return Ok(());
        }
        change(&format!("<interfaces><interface><name>{port}</name><unit operation=\"delete\"><name>0</name></unit></interface></interfaces>"))
    }

    fn get_port_vlan(&self, port: &str) -> Result<Option<u16>, DriverError> {
        require_port(port)?;
        match members(port)?.as_slice() {
            [] => Ok(None),
            [one] => one.parse().map(Some).map_err(|_| DriverError::ParseError(format!("non-numeric VLAN member {one:?}"))),
            many => Err(DriverError::Unsupported(format!("port {port} has several VLANs: {many:?}"))),
        }
    }
}

metalhost_plugin_sdk::export_switch!({{struct}});
