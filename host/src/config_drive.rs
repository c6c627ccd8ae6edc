//! The files of an instance's config drive, in the OpenStack layout cloud-init's ConfigDrive
//! source reads: `openstack/latest/meta_data.json` (who it is, its keys), `user_data`, and
//! `network_data.json` generated from what metalhost knows (the NICs inspection saw, the one cabled
//! to the switch port, the project's VLAN and subnet, the address given). Pure: the store reads the
//! inputs, the agent writes the partition (ARCHITECTURE.md, "Instances a project can log into").

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use metalhost_wire::{ConfigDrive, ConfigDriveFile};
use serde_json::{Value, json};

use crate::domain::MacAddr;
use crate::domain::identity::Subnet;

/// Where the files go on the partition.
pub const META_DATA: &str = "openstack/latest/meta_data.json";
pub const USER_DATA: &str = "openstack/latest/user_data";
pub const NETWORK_DATA: &str = "openstack/latest/network_data.json";

/// Everything the drive says, as the store read it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Unique per instance, ever: cloud-init runs its once-per-instance modules again for a new one.
    pub uuid: String,
    pub name: String,
    pub hostname: String,
    pub ssh_keys: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub user_data: Option<String>,
    /// The project's name and VLAN, or none (an admin's instance on `[network] tenant_vlan`).
    pub project: Option<(String, u16)>,
    pub network: Network,
}

/// The node's side of the network.
#[derive(Debug, Clone)]
pub struct Network {
    /// Every NIC inspection saw (or only the enrolled MAC when the node was never inspected).
    pub nics: Vec<MacAddr>,
    /// The NIC cabled to the node's switch port: the one moved to the project's VLAN.
    pub cabled: MacAddr,
    /// The instance's address and its subnet; none: the cabled NIC asks DHCP.
    pub address: Option<(Ipv4Addr, Subnet)>,
}

/// The drive's files.
pub fn render(identity: &Identity) -> ConfigDrive {
    let mut files = vec![
        ConfigDriveFile { path: META_DATA.into(), content: pretty(&meta_data(identity)) },
        ConfigDriveFile { path: NETWORK_DATA.into(), content: pretty(&network_data(identity)) },
    ];
    if let Some(user_data) = &identity.user_data {
        files.push(ConfigDriveFile { path: USER_DATA.into(), content: user_data.clone() });
    }
    ConfigDrive { files }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into())
}

fn meta_data(identity: &Identity) -> Value {
    let keys: serde_json::Map<String, Value> =
        identity.ssh_keys.iter().enumerate().map(|(i, key)| (format!("key-{i}"), Value::String(key.clone()))).collect();
    let keys_list: Vec<Value> =
        identity.ssh_keys.iter().enumerate().map(|(i, key)| json!({"name": format!("key-{i}"), "type": "ssh", "data": key})).collect();
    json!({
        "uuid": identity.uuid,
        "name": identity.name,
        "hostname": identity.hostname,
        "launch_index": 0,
        "availability_zone": "metalhost",
        "project_id": identity.project.as_ref().map(|(name, _)| name),
        "public_keys": keys,
        "keys": keys_list,
        "meta": identity.meta,
    })
}

fn network_data(identity: &Identity) -> Value {
    let net = &identity.network;
    let link_id = |mac: &MacAddr| format!("nic-{}", mac.to_string().replace(':', ""));
    let mut nics = net.nics.clone();
    if !nics.contains(&net.cabled) {
        nics.insert(0, net.cabled);
    }
    // The switch port is an access port on the project's VLAN: the node sees untagged frames, so
    // the cabled NIC is a plain physical link, not a VLAN one.
    let links: Vec<Value> = nics.iter().map(|mac| json!({"id": link_id(mac), "type": "phy", "ethernet_mac_address": mac.to_string()})).collect();
    let network_id = match &identity.project {
        Some((name, vlan)) => format!("{name}-vlan{vlan}"),
        None => "tenant".to_owned(),
    };
    let (network, services) = match &net.address {
        Some((ip, subnet)) => {
            let services: Vec<Value> = subnet.dns.iter().map(|d| json!({"type": "dns", "address": d.to_string()})).collect();
            let routes: Vec<Value> =
                subnet.gateway.iter().map(|g| json!({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": g.to_string()})).collect();
            let network = json!({
                "id": "network0",
                "type": "ipv4",
                "link": link_id(&net.cabled),
                "ip_address": ip.to_string(),
                "netmask": subnet.netmask().to_string(),
                "routes": routes,
                "network_id": network_id,
                "services": services,
            });
            (network, services)
        }
        None => (json!({"id": "network0", "type": "ipv4_dhcp", "link": link_id(&net.cabled), "network_id": network_id}), Vec::new()),
    };
    json!({"links": links, "networks": [network], "services": services})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(address: Option<(Ipv4Addr, Subnet)>) -> Identity {
        let mac = |s: &str| s.parse::<MacAddr>().unwrap();
        Identity {
            uuid: "0b5a3c1e-0000-4000-8000-000000000001".into(),
            name: "web".into(),
            hostname: "web-1".into(),
            ssh_keys: vec!["ssh-ed25519 AAAA one".into(), "ssh-ed25519 AAAA two".into()],
            meta: BTreeMap::from([("role".to_owned(), "web".to_owned())]),
            user_data: Some("#cloud-config\n{}\n".into()),
            project: Some(("red".into(), 201)),
            network: Network { nics: vec![mac("52:54:00:00:00:02"), mac("52:54:00:00:00:01")], cabled: mac("52:54:00:00:00:01"), address },
        }
    }

    fn file<'a>(drive: &'a ConfigDrive, path: &str) -> Option<&'a str> {
        drive.files.iter().find(|f| f.path == path).map(|f| f.content.as_str())
    }

    #[test]
    fn a_static_address_goes_on_the_cabled_nic_with_its_route_and_dns() {
        let subnet = Subnet::parse("10.77.0.0/24", Some("10.77.0.1"), &["10.77.0.53".into()]).unwrap();
        let drive = render(&identity(Some((Ipv4Addr::new(10, 77, 0, 2), subnet))));
        let net: Value = serde_json::from_str(file(&drive, NETWORK_DATA).unwrap()).unwrap();
        assert_eq!(net["links"].as_array().unwrap().len(), 2);
        assert_eq!(net["networks"][0]["link"], "nic-525400000001");
        assert_eq!(net["networks"][0]["ip_address"], "10.77.0.2");
        assert_eq!(net["networks"][0]["netmask"], "255.255.255.0");
        assert_eq!(net["networks"][0]["routes"][0]["gateway"], "10.77.0.1");
        assert_eq!(net["networks"][0]["network_id"], "red-vlan201");
        assert_eq!(net["services"][0]["address"], "10.77.0.53");
        let meta: Value = serde_json::from_str(file(&drive, META_DATA).unwrap()).unwrap();
        assert_eq!(meta["public_keys"]["key-1"], "ssh-ed25519 AAAA two");
        assert_eq!((meta["hostname"].as_str(), meta["meta"]["role"].as_str()), (Some("web-1"), Some("web")));
        assert_eq!(file(&drive, USER_DATA), Some("#cloud-config\n{}\n"));
    }

    #[test]
    fn without_an_address_the_cabled_nic_asks_dhcp_and_no_user_data_means_no_file() {
        let mut id = identity(None);
        id.user_data = None;
        id.network.nics.clear();
        let drive = render(&id);
        let net: Value = serde_json::from_str(file(&drive, NETWORK_DATA).unwrap()).unwrap();
        assert_eq!(net["networks"][0]["type"], "ipv4_dhcp");
        assert_eq!(net["links"][0]["ethernet_mac_address"], "52:54:00:00:00:01", "the cabled NIC even if never inspected");
        assert!(file(&drive, USER_DATA).is_none());
    }
}
