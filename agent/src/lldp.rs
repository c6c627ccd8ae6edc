//! LLDP (IEEE 802.1AB) frames: the pure parser of what a switch announces on a node's NIC. The
//! listening itself (a raw socket per NIC) is in `sys.rs`; this module only reads bytes.

/// The LLDP ethertype.
pub const ETHERTYPE: u16 = 0x88cc;
const ETHERTYPE_VLAN: u16 = 0x8100;

const TLV_END: u8 = 0;
const TLV_CHASSIS_ID: u8 = 1;
const TLV_PORT_ID: u8 = 2;
const TLV_SYSTEM_NAME: u8 = 5;

/// Chassis id subtypes 4 (MAC) and 5 (network address); port id subtypes 3 (MAC), 4 (network
/// address) and 5 (interface name). A network address starts with its IANA family (1 = IPv4).
const CHASSIS_SUBTYPE_MAC: u8 = 4;
const CHASSIS_SUBTYPE_ADDRESS: u8 = 5;
const PORT_SUBTYPE_MAC: u8 = 3;
const PORT_SUBTYPE_ADDRESS: u8 = 4;
#[cfg(test)]
const PORT_SUBTYPE_INTERFACE_NAME: u8 = 5;

/// What one LLDP frame says about the switch port at the other end of the cable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub chassis_id: String,
    pub port_id: String,
    pub system_name: Option<String>,
}

/// Parses a whole Ethernet frame (destination, source, optional 802.1Q tag, ethertype, LLDPDU).
/// None when it is not LLDP or lacks the mandatory chassis id and port id TLVs.
pub fn parse_frame(frame: &[u8]) -> Option<Announcement> {
    let mut offset = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(offset)?, *frame.get(offset + 1)?]);
    if ethertype == ETHERTYPE_VLAN {
        offset += 4;
        ethertype = u16::from_be_bytes([*frame.get(offset)?, *frame.get(offset + 1)?]);
    }
    if ethertype != ETHERTYPE {
        return None;
    }
    parse_lldpdu(frame.get(offset + 2..)?)
}

/// Parses the TLVs of an LLDPDU. Each TLV has a 7-bit type and a 9-bit length, then its value.
pub fn parse_lldpdu(mut data: &[u8]) -> Option<Announcement> {
    let (mut chassis_id, mut port_id, mut system_name) = (None, None, None);
    while data.len() >= 2 {
        let header = u16::from_be_bytes([data[0], data[1]]);
        let kind = (header >> 9) as u8;
        let len = usize::from(header & 0x01ff);
        let value = data.get(2..2 + len)?;
        match kind {
            TLV_END => break,
            TLV_CHASSIS_ID => chassis_id = Some(id_text(value, CHASSIS_SUBTYPE_MAC, CHASSIS_SUBTYPE_ADDRESS)?),
            TLV_PORT_ID => port_id = Some(id_text(value, PORT_SUBTYPE_MAC, PORT_SUBTYPE_ADDRESS)?),
            TLV_SYSTEM_NAME => system_name = Some(text(value)).filter(|s| !s.is_empty()),
            _ => {}
        }
        data = &data[2 + len..];
    }
    Some(Announcement { chassis_id: chassis_id?, port_id: port_id?, system_name })
}

/// An id TLV's value: a subtype byte, then the id. MACs become `aa:bb:..`, IPv4 addresses dotted
/// quads, everything else (interface names, locally assigned ids) text.
fn id_text(value: &[u8], mac_subtype: u8, address_subtype: u8) -> Option<String> {
    let (&subtype, id) = value.split_first()?;
    if id.is_empty() {
        return None;
    }
    Some(match (subtype, id) {
        (s, [a, b, c, d, e, f]) if s == mac_subtype => format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}"),
        (s, [1, a, b, c, d]) if s == address_subtype => format!("{a}.{b}.{c}.{d}"),
        _ => text(id),
    })
}

/// Text from a TLV, without control characters and trailing NULs some switches send.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().filter(|c| !c.is_control()).collect::<String>().trim().to_owned()
}

/// An LLDP frame as a switch sends it: chassis id a MAC, port id an interface name, a TTL.
#[cfg(test)]
pub fn frame(source: [u8; 6], chassis_mac: [u8; 6], port: &str, system_name: &str) -> Vec<u8> {
    let mut f = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
    f.extend_from_slice(&source);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    let mut tlv = |kind: u8, value: &[u8]| {
        let header = (u16::from(kind) << 9) | value.len() as u16;
        f.extend_from_slice(&header.to_be_bytes());
        f.extend_from_slice(value);
    };
    tlv(TLV_CHASSIS_ID, &[[CHASSIS_SUBTYPE_MAC].as_slice(), &chassis_mac].concat());
    tlv(TLV_PORT_ID, &[[PORT_SUBTYPE_INTERFACE_NAME].as_slice(), port.as_bytes()].concat());
    tlv(3, &120u16.to_be_bytes());
    tlv(TLV_SYSTEM_NAME, system_name.as_bytes());
    tlv(TLV_END, &[]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: [u8; 6] = [0x00, 0x1c, 0x73, 0xaa, 0xbb, 0x01];

    #[test]
    fn reads_chassis_mac_port_name_and_system_name() {
        let f = frame([2, 0, 0, 0, 0, 1], SWITCH, "ge-0/0/7", "tor1.lab");
        let a = parse_frame(&f).unwrap();
        assert_eq!(a, Announcement { chassis_id: "00:1c:73:aa:bb:01".into(), port_id: "ge-0/0/7".into(), system_name: Some("tor1.lab".into()) });
    }

    #[test]
    fn reads_a_frame_behind_a_vlan_tag() {
        let mut f = frame([2, 0, 0, 0, 0, 1], SWITCH, "Ethernet12", "");
        f.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        let a = parse_frame(&f).unwrap();
        assert_eq!((a.port_id.as_str(), a.system_name), ("Ethernet12", None));
    }

    #[test]
    fn port_mac_and_network_address_ids() {
        // chassis: network address 10.0.0.1 (subtype 5); port: a MAC (subtype 3).
        let pdu = [&[0x02, 0x06, 5, 1, 10, 0, 0, 1][..], &[0x04, 0x07, 3, 0xde, 0xad, 0xbe, 0xef, 0, 1], &[0x00, 0x00]].concat();
        let a = parse_lldpdu(&pdu).unwrap();
        assert_eq!((a.chassis_id.as_str(), a.port_id.as_str()), ("10.0.0.1", "de:ad:be:ef:00:01"));
    }

    #[test]
    fn refuses_other_ethertypes_truncated_tlvs_and_missing_ids() {
        let mut ipv4 = frame([2, 0, 0, 0, 0, 1], SWITCH, "p1", "s");
        ipv4[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(parse_frame(&ipv4), None);
        let f = frame([2, 0, 0, 0, 0, 1], SWITCH, "p1", "s");
        assert_eq!(parse_frame(&f[..20]), None, "a TLV longer than the frame");
        assert_eq!(parse_frame(&f[..10]), None);
        // Only a chassis id, then the end.
        assert_eq!(parse_lldpdu(&[0x02, 0x07, 4, 0, 1, 2, 3, 4, 5, 0, 0]), None);
        // An empty id.
        assert_eq!(parse_lldpdu(&[0x02, 0x01, 4, 0x04, 0x01, 7, 0, 0]), None);
    }

    #[test]
    fn text_ids_lose_control_characters() {
        let pdu = [&[0x02, 0x04, 7, b'a', 0, b'b'][..], &[0x04, 0x04, 7, b'x', b'\n', b'y'], &[0, 0]].concat();
        let a = parse_lldpdu(&pdu).unwrap();
        assert_eq!((a.chassis_id.as_str(), a.port_id.as_str()), ("ab", "xy"));
    }
}
