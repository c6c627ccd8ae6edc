//! metalhost switch plugin for Juniper switches over NETCONF (Junos XML).
//!
//! The host owns the SSH session; this plugin only sends RPCs. Every change is: lock the
//! candidate, edit-config, commit, unlock (discard-changes and unlock on any error), then read the
//! running config back to check it. Two syntaxes: legacy EX (`port-mode`) and ELS/QFX
//! (`interface-mode`), picked by the plugin config `syntax = "legacy" | "els"`.

use std::cell::Cell;

wit_bindgen::generate!({ world: "switch-manager", path: "../../wit" });

use exports::metalhost::drivers::switch::{SwitchDescription, Vlan};
use exports::metalhost::drivers::{plugin, switch};
use metalhost::drivers::log::{Level, log};
use metalhost::drivers::netconf;
use metalhost::drivers::types::{DriverError, PluginInfo, PluginKind};

mod xml;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// EX series before ELS: `family ethernet-switching port-mode access`.
    Legacy,
    /// ELS (QFX, newer EX): `family ethernet-switching interface-mode access`.
    Els,
}

thread_local! {
    static SYNTAX: Cell<Syntax> = const { Cell::new(Syntax::Legacy) };
}

fn syntax() -> Syntax {
    SYNTAX.with(Cell::get)
}

fn rpc(operation: &str) -> Result<String, DriverError> {
    let reply = netconf::rpc(operation).map_err(|e| match e {
        netconf::NetconfError::Unreachable(m) => DriverError::Unreachable(m),
        netconf::NetconfError::AuthFailed(m) => DriverError::AuthFailed(m),
        netconf::NetconfError::Transport(m) => DriverError::CommandFailed(format!("netconf session failed: {m}")),
    })?;
    match xml::rpc_error(&reply) {
        Some(message) => Err(DriverError::CommandFailed(message)),
        None => Ok(reply),
    }
}

/// Port names and VLAN names go into XML: allow only what Junos allows.
fn check_name(what: &str, value: &str) -> Result<(), DriverError> {
    let ok = !value.is_empty() && value.len() <= 64 && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c));
    if ok { Ok(()) } else { Err(DriverError::InvalidConfig(format!("invalid {what} {value:?}"))) }
}

/// The switch's physical interfaces, so an edit never names a port that does not exist.
fn require_port(port: &str) -> Result<(), DriverError> {
    check_name("port", port)?;
    let reply = rpc("<get-interface-information><terse/></get-interface-information>")?;
    let names = xml::values(&reply, "name");
    let base = port.split('.').next().unwrap_or(port);
    if names.iter().any(|n| n == base) {
        Ok(())
    } else {
        Err(DriverError::NotFound(format!("the switch has no port {port}")))
    }
}

/// lock → edit-config → commit → unlock; on failure discard-changes and unlock.
fn change(config: &str) -> Result<(), DriverError> {
    rpc("<lock><target><candidate/></target></lock>").map_err(|e| match e {
        DriverError::CommandFailed(m) => DriverError::CommandFailed(format!("cannot lock the candidate config: {m}")),
        other => other,
    })?;
    let outcome = rpc(&format!("<edit-config><target><candidate/></target><config><configuration>{config}</configuration></config></edit-config>"))
        .and_then(|_| rpc("<commit/>"));
    match outcome {
        Ok(_) => {
            rpc("<unlock><target><candidate/></target></unlock>")?;
            Ok(())
        }
        Err(e) => {
            log(Level::Warn, &format!("change failed, discarding: {e:?}"));
            let _ = rpc("<discard-changes/>");
            let _ = rpc("<unlock><target><candidate/></target></unlock>");
            Err(e)
        }
    }
}

fn read_port_vlan(port: &str) -> Result<Option<u16>, DriverError> {
    let reply = rpc(&format!(
        "<get-config><source><running/></source><filter type=\"subtree\"><configuration><interfaces><interface><name>{port}</name></interface></interfaces></configuration></filter></get-config>"
    ))?;
    let members = xml::values(&reply, "members");
    match members.first() {
        None => Ok(None),
        Some(m) => m.parse().map(Some).map_err(|_| DriverError::ParseError(format!("port {port} has a non-numeric VLAN member {m:?}"))),
    }
}

struct Juniper;

impl plugin::Guest for Juniper {
    fn info() -> PluginInfo {
        PluginInfo { name: "juniper".into(), version: env!("CARGO_PKG_VERSION").into(), kind: PluginKind::Switch }
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), DriverError> {
        let mut chosen = Syntax::Legacy;
        for (key, value) in config {
            match (key.as_str(), value.as_str()) {
                ("syntax", "legacy") => chosen = Syntax::Legacy,
                ("syntax", "els") => chosen = Syntax::Els,
                ("syntax", other) => return Err(DriverError::InvalidConfig(format!("syntax must be \"legacy\" or \"els\", not {other:?}"))),
                (other, _) => return Err(DriverError::InvalidConfig(format!("unknown key {other:?} (known: syntax)"))),
            }
        }
        SYNTAX.with(|s| s.set(chosen));
        Ok(())
    }
}

impl switch::Guest for Juniper {
    fn describe() -> Result<SwitchDescription, DriverError> {
        let capabilities = netconf::server_capabilities().map_err(|e| match e {
            netconf::NetconfError::Unreachable(m) => DriverError::Unreachable(m),
            netconf::NetconfError::AuthFailed(m) => DriverError::AuthFailed(m),
            netconf::NetconfError::Transport(m) => DriverError::CommandFailed(m),
        })?;
        let model = match syntax() {
            Syntax::Legacy => "juniper ex (legacy port-mode syntax)",
            Syntax::Els => "juniper els/qfx (interface-mode syntax)",
        };
        Ok(SwitchDescription { model: model.into(), capabilities })
    }

    fn ensure_vlan(vlan: Vlan) -> Result<(), DriverError> {
        check_name("VLAN name", &vlan.name)?;
        if !(1..=4094).contains(&vlan.id) {
            return Err(DriverError::InvalidConfig(format!("VLAN id {} out of range", vlan.id)));
        }
        change(&format!("<vlans><vlan><name>{}</name><vlan-id>{}</vlan-id></vlan></vlans>", vlan.name, vlan.id))?;
        let reply = rpc(&format!(
            "<get-config><source><running/></source><filter type=\"subtree\"><configuration><vlans><vlan><name>{}</name></vlan></vlans></configuration></filter></get-config>",
            vlan.name
        ))?;
        if xml::values(&reply, "vlan-id").iter().any(|v| *v == vlan.id.to_string()) {
            Ok(())
        } else {
            Err(DriverError::CommandFailed(format!("VLAN {} ({}) is not in the running config after commit", vlan.name, vlan.id)))
        }
    }

    fn set_access_vlan(port: String, vlan: Vlan) -> Result<(), DriverError> {
        require_port(&port)?;
        let mode = match syntax() {
            Syntax::Legacy => "<port-mode>access</port-mode>",
            Syntax::Els => "<interface-mode>access</interface-mode>",
        };
        // `replace` so a move drops the old VLAN instead of adding a second member.
        change(&format!(
            "<interfaces><interface><name>{port}</name><unit><name>0</name><family><ethernet-switching>{mode}<vlan operation=\"replace\"><members>{}</members></vlan></ethernet-switching></family></unit></interface></interfaces>",
            vlan.id
        ))?;
        match read_port_vlan(&port)? {
            Some(id) if id == vlan.id => Ok(()),
            other => Err(DriverError::CommandFailed(format!("port {port} reads back VLAN {other:?} after the move to {}", vlan.id))),
        }
    }

    fn clear_port(port: String) -> Result<(), DriverError> {
        require_port(&port)?;
        if read_port_vlan(&port)?.is_none() {
            return Ok(());
        }
        change(&format!("<interfaces><interface><name>{port}</name><unit operation=\"delete\"><name>0</name></unit></interface></interfaces>"))?;
        match read_port_vlan(&port)? {
            None => Ok(()),
            Some(id) => Err(DriverError::CommandFailed(format!("port {port} still has VLAN {id} after clearing"))),
        }
    }

    fn get_port_vlan(port: String) -> Result<Option<u16>, DriverError> {
        require_port(&port)?;
        read_port_vlan(&port)
    }
}

export!(Juniper);
