//! Junos configuration XML for the two switching dialects, and reading it back. Pure text in
//! and out, so it is unit-tested on the host; `lib.rs` sends it.

use metalhost_plugin_sdk::xml;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// EX series before ELS: `family ethernet-switching port-mode access`.
    Legacy,
    /// ELS (QFX, newer EX): `family ethernet-switching interface-mode access`.
    Els,
}

impl Syntax {
    /// The plugin config: only `syntax = "legacy" | "els"` (default legacy).
    pub fn from_config(config: &[(String, String)]) -> Result<Syntax, String> {
        let mut chosen = Syntax::Legacy;
        for (key, value) in config {
            match (key.as_str(), value.as_str()) {
                ("syntax", "legacy") => chosen = Syntax::Legacy,
                ("syntax", "els") => chosen = Syntax::Els,
                ("syntax", other) => return Err(format!("syntax must be \"legacy\" or \"els\", not {other:?}")),
                (other, _) => return Err(format!("unknown key {other:?} (known: syntax)")),
            }
        }
        Ok(chosen)
    }

    /// The leaf that puts a port in access mode.
    pub fn mode_leaf(self) -> &'static str {
        match self {
            Syntax::Legacy => "port-mode",
            Syntax::Els => "interface-mode",
        }
    }

    pub fn model(self) -> &'static str {
        match self {
            Syntax::Legacy => "juniper ex (legacy port-mode syntax)",
            Syntax::Els => "juniper els/qfx (interface-mode syntax)",
        }
    }
}

/// A physical port name as Junos spells them (`ge-0/0/3`, `xe-1/0/47`, `ae1`): no unit suffix,
/// nothing that needs escaping in XML.
pub fn check_port(port: &str) -> Result<(), String> {
    let ok = !port.is_empty() && port.len() <= 64 && port.chars().all(|c| c.is_ascii_alphanumeric() || "-/:".contains(c));
    if ok { Ok(()) } else { Err(format!("invalid port name {port:?} (name the physical port, like ge-0/0/3, without a unit)")) }
}

/// Junos VLAN names: letters, digits, `-`, `_`, `.`; at most 255 characters.
pub fn check_vlan(id: u16, name: &str) -> Result<(), String> {
    if !(1..=4094).contains(&id) {
        return Err(format!("VLAN id {id} out of range 1..=4094"));
    }
    let ok = !name.is_empty() && name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok { Ok(()) } else { Err(format!("invalid VLAN name {name:?}")) }
}

pub fn edit_config(config: &str) -> String {
    format!("<edit-config><target><candidate/></target><config><configuration>{config}</configuration></config></edit-config>")
}

pub fn get_running(filter: &str) -> String {
    format!("<get-config><source><running/></source><filter type=\"subtree\"><configuration>{filter}</configuration></filter></get-config>")
}

pub fn vlans_filter() -> &'static str {
    "<vlans/>"
}

pub fn interface_filter(port: &str) -> String {
    format!("<interfaces><interface><name>{}</name></interface></interfaces>", xml::escape(port))
}

pub fn vlan_config(id: u16, name: &str) -> String {
    format!("<vlans><vlan><name>{}</name><vlan-id>{id}</vlan-id></vlan></vlans>", xml::escape(name))
}

/// Access mode on one VLAN. `operation="replace"` on `<vlan>` drops any old member: a plain merge
/// would add a second member on a real switch (and fail the commit). Members are numeric: names
/// work on Junos but crash the emulator.
pub fn access_config(syntax: Syntax, port: &str, id: u16) -> String {
    format!(
        "<interfaces><interface><name>{}</name><unit><name>0</name><family><ethernet-switching><{leaf}>access</{leaf}><vlan operation=\"replace\"><members>{id}</members></vlan></ethernet-switching></family></unit></interface></interfaces>",
        xml::escape(port),
        leaf = syntax.mode_leaf()
    )
}

/// Removes the port's unit 0, and with it its switching config.
pub fn clear_config(port: &str) -> String {
    format!("<interfaces><interface><name>{}</name><unit operation=\"delete\"><name>0</name></unit></interface></interfaces>", xml::escape(port))
}

/// A port's switching config as the running datastore has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortState {
    pub members: Vec<String>,
    /// The mode leaf found (`port-mode` or `interface-mode`) and its value.
    pub mode: Option<(String, String)>,
}

impl PortState {
    /// Reads the `<interface>` named `port` out of a get-config reply; `<data/>` means no config.
    pub fn parse(reply: &str, port: &str) -> PortState {
        let mut state = PortState::default();
        for interface in xml::elements(reply, "interface") {
            if xml::first_value(interface, "name").as_deref() != Some(port) {
                continue;
            }
            for switching in xml::elements(interface, "ethernet-switching") {
                for vlan in xml::elements(switching, "vlan") {
                    state.members.extend(xml::values(vlan, "members"));
                }
                for leaf in ["port-mode", "interface-mode"] {
                    if let Some(value) = xml::first_value(switching, leaf) {
                        state.mode = Some((leaf.to_owned(), value));
                    }
                }
            }
        }
        state
    }

    /// The single access VLAN, None without members; an error for several or a non-numeric one.
    pub fn access_vlan(&self) -> Result<Option<u16>, String> {
        match self.members.as_slice() {
            [] => Ok(None),
            [one] => one.parse().map(Some).map_err(|_| format!("non-numeric VLAN member {one:?}")),
            many => Err(format!("{} VLAN members {many:?}, not one access VLAN", many.len())),
        }
    }

    /// True when the port is in access mode on exactly `id`, spelled in `syntax`'s dialect.
    pub fn is_access_on(&self, syntax: Syntax, id: u16) -> bool {
        let mode_ok = self.mode.as_ref().is_some_and(|(leaf, value)| leaf == syntax.mode_leaf() && value == "access");
        mode_ok && self.access_vlan() == Ok(Some(id))
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.mode.is_none()
    }
}

/// The VLANs (name, vlan-id) in a get-config reply of `<vlans/>`.
pub fn parse_vlans(reply: &str) -> Vec<(String, Option<u16>)> {
    let mut out = Vec::new();
    for vlans in xml::elements(reply, "vlans") {
        for vlan in xml::elements(vlans, "vlan") {
            let name = xml::first_value(vlan, "name").unwrap_or_default();
            let id = xml::first_value(vlan, "vlan-id").and_then(|v| v.parse().ok());
            out.push((name, id));
        }
    }
    out
}

/// The physical port names in a `<get-interface-information><terse/>` reply.
pub fn physical_ports(reply: &str) -> Vec<String> {
    xml::elements(reply, "physical-interface").into_iter().filter_map(|p| xml::first_value(p, "name")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fake-switches emulator's get-config of an EX access port, as captured from it.
    const EX_PORT: &str = r#"<rpc-reply xmlns:junos="http://xml.juniper.net/junos/11.4R1/junos" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="103">
  <data>
    <configuration xmlns="http://xml.juniper.net/xnm/1.1/xnm" junos:commit-user="admin">
      <interfaces>
        <interface>
          <name>ge-0/0/3</name>
          <unit>
            <name>0</name>
            <family>
              <ethernet-switching>
                <port-mode>access</port-mode>
                <vlan>
                  <members>100</members>
                </vlan>
              </ethernet-switching>
            </family>
          </unit>
        </interface>
      </interfaces>
      <vlans>
        <vlan>
          <name>VLAN100</name>
          <vlan-id>100</vlan-id>
        </vlan>
        <vlan><name>no-id</name></vlan>
      </vlans>
    </configuration>
  </data>
</rpc-reply>"#;

    #[test]
    fn reads_an_access_port() {
        let state = PortState::parse(EX_PORT, "ge-0/0/3");
        assert_eq!(state.members, ["100"]);
        assert_eq!(state.mode, Some(("port-mode".into(), "access".into())));
        assert_eq!(state.access_vlan(), Ok(Some(100)));
        assert!(state.is_access_on(Syntax::Legacy, 100));
        assert!(!state.is_access_on(Syntax::Legacy, 200));
        assert!(!state.is_access_on(Syntax::Els, 100), "the ELS dialect expects interface-mode");
        assert!(PortState::parse(EX_PORT, "ge-0/0/4").is_empty(), "another port's config is not this one's");
    }

    #[test]
    fn empty_data_means_no_config() {
        let reply = "<rpc-reply message-id=\"5\">\n  <data/>\n</rpc-reply>";
        let state = PortState::parse(reply, "ge-0/0/1");
        assert!(state.is_empty());
        assert_eq!(state.access_vlan(), Ok(None));
    }

    #[test]
    fn several_members_are_not_an_access_vlan() {
        let state = PortState { members: vec!["100".into(), "200".into()], mode: None };
        assert!(state.access_vlan().is_err());
        let named = PortState { members: vec!["tenant".into()], mode: None };
        assert!(named.access_vlan().is_err());
    }

    #[test]
    fn reads_vlans_and_ports() {
        assert_eq!(parse_vlans(EX_PORT), [("VLAN100".to_owned(), Some(100)), ("no-id".to_owned(), None)]);
        let terse = "<rpc-reply><interface-information style=\"terse\"><physical-interface><name>\nge-0/0/1\n</name><logical-interface><name>\nge-0/0/1.16386\n</name></logical-interface></physical-interface><physical-interface><name>ae1</name></physical-interface></interface-information></rpc-reply>";
        assert_eq!(physical_ports(terse), ["ge-0/0/1", "ae1"]);
    }

    #[test]
    fn builds_both_dialects() {
        assert!(
            access_config(Syntax::Legacy, "ge-0/0/3", 200)
                .contains("<port-mode>access</port-mode><vlan operation=\"replace\"><members>200</members>")
        );
        assert!(access_config(Syntax::Els, "ge-0/0/3", 200).contains("<interface-mode>access</interface-mode>"));
        assert_eq!(vlan_config(100, "prov"), "<vlans><vlan><name>prov</name><vlan-id>100</vlan-id></vlan></vlans>");
    }

    #[test]
    fn checks_names_and_config() {
        assert!(check_port("ge-0/0/3").is_ok() && check_port("ae12").is_ok());
        for bad in ["", "ge-0/0/3.0", "ge 0", "<x>", "a\"b"] {
            assert!(check_port(bad).is_err(), "{bad:?}");
        }
        assert!(check_vlan(100, "provisioning").is_ok());
        assert!(check_vlan(0, "x").is_err() && check_vlan(4095, "x").is_err() && check_vlan(5, "a b").is_err());
        let config = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(Syntax::from_config(&[]), Ok(Syntax::Legacy));
        assert_eq!(Syntax::from_config(&config("syntax", "els")), Ok(Syntax::Els));
        assert!(Syntax::from_config(&config("syntax", "qfx")).is_err());
        assert!(Syntax::from_config(&config("colour", "blue")).is_err());
    }
}
