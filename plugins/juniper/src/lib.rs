//! metalhost switch plugin for Juniper switches over NETCONF (Junos XML).
//!
//! The host owns the SSH session; this plugin only sends RPCs. Every change is: lock the
//! candidate, edit-config, commit, unlock (discard-changes and unlock on any error), then read the
//! running config back to check it. Two syntaxes: legacy EX (`port-mode`) and ELS/QFX
//! (`interface-mode`), picked by the plugin config `syntax = "legacy" | "els"`.
//! A port is looked up before any edit: a switch without it gets no edit at all (the emulator
//! even drops the connection on one).

mod junos;

use metalhost_plugin_sdk::netconf::call as rpc;
use metalhost_plugin_sdk::switch::*;
use metalhost_plugin_sdk::{Config, DriverError, Plugin, log};

use junos::{PortState, Syntax};

struct Juniper {
    syntax: Syntax,
}

fn invalid(message: String) -> DriverError {
    DriverError::InvalidConfig(message)
}

/// Fails with `not-found` unless the switch has this physical port.
fn require_port(port: &str) -> Result<(), DriverError> {
    junos::check_port(port).map_err(invalid)?;
    let reply = rpc("<get-interface-information><terse/></get-interface-information>")?;
    if junos::physical_ports(&reply).iter().any(|p| p == port) {
        Ok(())
    } else {
        Err(DriverError::NotFound(format!("the switch has no port {port}")))
    }
}

fn read_port(port: &str) -> Result<PortState, DriverError> {
    let reply = rpc(&junos::get_running(&junos::interface_filter(port)))?;
    Ok(PortState::parse(&reply, port))
}

/// lock → edit-config → commit → unlock; on failure discard-changes and unlock.
fn change(what: &str, config: &str) -> Result<(), DriverError> {
    // Not locked means not ours to discard or unlock: someone else holds it.
    rpc("<lock><target><candidate/></target></lock>").map_err(|e| match e {
        DriverError::CommandFailed(m) => DriverError::CommandFailed(format!("cannot lock the candidate configuration: {m}")),
        other => other,
    })?;
    let outcome = rpc(&junos::edit_config(config)).and_then(|_| rpc("<commit/>"));
    match outcome {
        Ok(_) => {
            rpc("<unlock><target><candidate/></target></unlock>").map_err(|e| match e {
                DriverError::CommandFailed(m) => DriverError::CommandFailed(format!("{what} committed, but unlocking failed: {m}")),
                other => other,
            })?;
            log::info(&format!("committed: {what}"));
            Ok(())
        }
        Err(e) => {
            log::warn(&format!("{what} failed, discarding the candidate: {e:?}"));
            if let Err(d) = rpc("<discard-changes/>") {
                log::error(&format!("discard-changes failed: {d:?}"));
            }
            if let Err(u) = rpc("<unlock><target><candidate/></target></unlock>") {
                log::error(&format!("unlock failed: {u:?}"));
            }
            Err(e)
        }
    }
}

fn read_back_failed(message: String) -> DriverError {
    DriverError::CommandFailed(format!("read-back after commit: {message}"))
}

impl Plugin for Juniper {
    const NAME: &'static str = "juniper";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn configure(config: Config) -> Result<Self, DriverError> {
        Ok(Juniper { syntax: Syntax::from_config(config.pairs()).map_err(invalid)? })
    }
}

impl SwitchManager for Juniper {
    fn describe(&self) -> Result<SwitchDescription, DriverError> {
        Ok(SwitchDescription { model: self.syntax.model().into(), capabilities: netconf::capabilities()? })
    }

    /// The VLAN id is what ports refer to: an id that exists under another name is kept as it
    /// is; a name that exists with another id is an error rather than a silent renumbering.
    fn ensure_vlan(&self, vlan: Vlan) -> Result<(), DriverError> {
        junos::check_vlan(vlan.id, &vlan.name).map_err(invalid)?;
        let existing = junos::parse_vlans(&rpc(&junos::get_running(junos::vlans_filter()))?);
        if let Some((name, _)) = existing.iter().find(|(_, id)| *id == Some(vlan.id)) {
            if *name != vlan.name {
                log::info(&format!("VLAN {} exists as {name:?}; keeping that name", vlan.id));
            }
            return Ok(());
        }
        if let Some((_, id)) = existing.iter().find(|(name, _)| *name == vlan.name) {
            return Err(DriverError::CommandFailed(format!("VLAN name {:?} already has id {id:?}, not {}", vlan.name, vlan.id)));
        }
        change(&format!("create VLAN {} ({})", vlan.name, vlan.id), &junos::vlan_config(vlan.id, &vlan.name))?;
        let after = junos::parse_vlans(&rpc(&junos::get_running(junos::vlans_filter()))?);
        if after.iter().any(|(name, id)| *name == vlan.name && *id == Some(vlan.id)) {
            Ok(())
        } else {
            Err(read_back_failed(format!("VLAN {} ({}) is not in the running config", vlan.name, vlan.id)))
        }
    }

    fn set_access_vlan(&self, port: &str, vlan: Vlan) -> Result<(), DriverError> {
        junos::check_vlan(vlan.id, &vlan.name).map_err(invalid)?;
        require_port(port)?;
        let syntax = self.syntax;
        let before = read_port(port)?;
        if before.is_access_on(syntax, vlan.id) {
            return Ok(());
        }
        change(&format!("port {port} access VLAN {} (was {:?})", vlan.id, before.members), &junos::access_config(syntax, port, vlan.id))?;
        let after = read_port(port)?;
        if after.is_access_on(syntax, vlan.id) {
            Ok(())
        } else {
            Err(read_back_failed(format!(
                "port {port} has members {:?} and mode {:?}, expected {} access on VLAN {} (is syntax = {:?} right for this switch?)",
                after.members,
                after.mode,
                syntax.mode_leaf(),
                vlan.id,
                if syntax == Syntax::Els { "els" } else { "legacy" },
            )))
        }
    }

    fn clear_port(&self, port: &str) -> Result<(), DriverError> {
        require_port(port)?;
        if read_port(port)?.is_empty() {
            return Ok(());
        }
        change(&format!("clear port {port}"), &junos::clear_config(port))?;
        let after = read_port(port)?;
        if after.is_empty() { Ok(()) } else { Err(read_back_failed(format!("port {port} still has {after:?}"))) }
    }

    fn get_port_vlan(&self, port: &str) -> Result<Option<u16>, DriverError> {
        require_port(port)?;
        read_port(port)?.access_vlan().map_err(|m| DriverError::Unsupported(format!("port {port}: {m}")))
    }
}

metalhost_plugin_sdk::export_switch!(Juniper);
