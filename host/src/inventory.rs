//! An agent's inventory report (inspection or enlistment), checked once at the edge and reduced to
//! the facts the node record keeps: CPUs, RAM, disk, boot mode, its NICs' MACs, its boot NIC and
//! what LLDP says about its switch port. Pure: the API parses, this checks, the store writes.

use std::net::Ipv4Addr;

use metalhost_wire::{FirmwareBootMode, InventoryReport};

use crate::domain::{BootMode, ChassisId, MacAddr, SwitchPort};

const MAX_TEXT: usize = 256;
const MAX_CPUS: u32 = 65_536;
const MAX_MEMORY_BYTES: u64 = 1 << 50;
const MAX_DISKS: usize = 256;
const MAX_NICS: usize = 64;
const MAX_NEIGHBOURS: usize = 64;

/// Why a report was refused: its message is the 400's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid inventory report: {0}")]
pub struct Invalid(String);

/// One LLDP neighbour whose ids are usable to find a switch port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub chassis: ChassisId,
    pub port: SwitchPort,
}

/// What the node record takes from a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub cpus: u32,
    pub ram_mb: u64,
    /// The largest disk in whole GiB, at least 1 (a node must have one to be deployed to).
    pub disk_gb: u64,
    pub boot_mode: BootMode,
    /// Every NIC's MAC.
    pub macs: Vec<MacAddr>,
    /// The NIC that booted: the one holding an IPv4 address, else the first with a link, else the first.
    pub boot_mac: MacAddr,
    pub boot_ip: Option<Ipv4Addr>,
    /// Neighbours in the order the agent heard them.
    pub neighbours: Vec<Neighbour>,
}

fn text(field: &str, value: &str) -> Result<(), Invalid> {
    if value.chars().count() > MAX_TEXT {
        return Err(Invalid(format!("{field} is longer than {MAX_TEXT} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid(format!("{field} holds control characters")));
    }
    Ok(())
}

fn opt_text(field: &str, value: Option<&String>) -> Result<(), Invalid> {
    value.map_or(Ok(()), |v| text(field, v))
}

/// Checks every field against its limits and derives the facts; nothing is written on refusal.
pub fn check(report: &InventoryReport) -> Result<Facts, Invalid> {
    if report.cpu.count == 0 || report.cpu.count > MAX_CPUS {
        return Err(Invalid(format!("cpu.count must be 1..{MAX_CPUS}, got {}", report.cpu.count)));
    }
    text("cpu.model", &report.cpu.model)?;
    if report.memory_bytes < (1 << 20) || report.memory_bytes > MAX_MEMORY_BYTES {
        return Err(Invalid(format!("memory_bytes must be at least 1 MiB and at most 1 PiB, got {}", report.memory_bytes)));
    }
    if report.disks.len() > MAX_DISKS || report.nics.len() > MAX_NICS || report.lldp.len() > MAX_NEIGHBOURS {
        return Err(Invalid(format!("at most {MAX_DISKS} disks, {MAX_NICS} NICs and {MAX_NEIGHBOURS} LLDP neighbours")));
    }
    for d in &report.disks {
        text("disk name", &d.name)?;
        opt_text("disk model", d.model.as_ref())?;
        opt_text("disk serial", d.serial.as_ref())?;
        opt_text("disk wwn", d.wwn.as_ref())?;
    }
    let mut macs = Vec::new();
    let mut boot_ip = None;
    let (mut with_ip, mut with_link) = (None, None);
    for n in &report.nics {
        text("nic name", &n.name)?;
        opt_text("nic driver", n.driver.as_ref())?;
        let mac: MacAddr = n.mac.parse().map_err(|e| Invalid(format!("nic {:?}: {e}", n.name)))?;
        if let Some(ip) = &n.ipv4 {
            let ip: Ipv4Addr = ip.parse().map_err(|_| Invalid(format!("nic {:?}: invalid IPv4 address {ip:?}", n.name)))?;
            if with_ip.is_none() {
                with_ip = Some(mac);
                boot_ip = Some(ip);
            }
        }
        if n.link && with_link.is_none() {
            with_link = Some(mac);
        }
        macs.push(mac);
    }
    let boot_mac = with_ip.or(with_link).or_else(|| macs.first().cloned()).ok_or_else(|| Invalid("no NIC with a MAC address".into()))?;
    let mut neighbours = Vec::new();
    for l in &report.lldp {
        text("lldp interface", &l.interface)?;
        text("lldp chassis_id", &l.chassis_id)?;
        text("lldp port_id", &l.port_id)?;
        opt_text("lldp system_name", l.system_name.as_ref())?;
        // A neighbour whose ids are not usable as ours is kept in the report but matches nothing.
        if let (Ok(chassis), Ok(port)) = (l.chassis_id.parse(), l.port_id.parse()) {
            neighbours.push(Neighbour { chassis, port });
        }
    }
    text("system vendor", report.system.vendor.as_deref().unwrap_or(""))?;
    text("system product", report.system.product.as_deref().unwrap_or(""))?;
    text("system serial", report.system.serial.as_deref().unwrap_or(""))?;
    let largest = report.disks.iter().map(|d| d.size_bytes).max().unwrap_or(0);
    Ok(Facts {
        cpus: report.cpu.count,
        ram_mb: (report.memory_bytes >> 20).max(1),
        disk_gb: (largest >> 30).max(1),
        boot_mode: match report.boot_mode {
            FirmwareBootMode::Bios => BootMode::Legacy,
            FirmwareBootMode::Uefi => BootMode::Uefi,
        },
        macs,
        boot_mac,
        boot_ip,
        neighbours,
    })
}

impl Facts {
    /// One line for the node's events.
    pub fn summary(&self) -> String {
        format!("{} CPUs, {} MiB RAM, {} GiB disk, {} firmware", self.cpus, self.ram_mb, self.disk_gb, self.boot_mode)
    }
}

#[cfg(test)]
mod tests {
    use metalhost_wire::{CpuInfo, DiskInfo, LldpNeighbor, NicInfo};

    use super::*;

    fn report() -> InventoryReport {
        InventoryReport {
            cpu: CpuInfo { count: 2, model: "QEMU Virtual CPU".into() },
            memory_bytes: 512 << 20,
            disks: vec![
                DiskInfo { name: "vda".into(), size_bytes: 64 << 20, ..DiskInfo::default() },
                DiskInfo { name: "vdb".into(), size_bytes: 3 << 30, ..DiskInfo::default() },
            ],
            nics: vec![
                NicInfo { name: "eth0".into(), mac: "52:54:00:00:99:01".into(), link: true, ..NicInfo::default() },
                NicInfo { name: "eth1".into(), mac: "52:54:00:00:99:02".into(), link: true, ipv4: Some("10.99.0.150".into()), ..NicInfo::default() },
            ],
            boot_mode: FirmwareBootMode::Uefi,
            lldp: vec![
                LldpNeighbor { interface: "eth1".into(), chassis_id: "not a port".into(), port_id: "has spaces".into(), system_name: None },
                LldpNeighbor { interface: "eth1".into(), chassis_id: "00:1C:73:AA:BB:01".into(), port_id: "ge-0/0/7".into(), system_name: None },
            ],
            ..InventoryReport::default()
        }
    }

    #[test]
    fn facts_from_a_good_report() {
        let f = check(&report()).unwrap();
        assert_eq!((f.cpus, f.ram_mb, f.disk_gb, f.boot_mode), (2, 512, 3, BootMode::Uefi));
        assert_eq!(f.boot_mac.to_string(), "52:54:00:00:99:02", "the NIC with an address booted");
        assert_eq!(f.boot_ip, Some(Ipv4Addr::new(10, 99, 0, 150)));
        assert_eq!(f.macs.len(), 2);
        assert_eq!(f.neighbours.len(), 1, "the unusable neighbour matches nothing");
        assert_eq!((f.neighbours[0].chassis.as_str(), f.neighbours[0].port.as_str()), ("00:1c:73:aa:bb:01", "ge-0/0/7"));
    }

    #[test]
    fn a_tiny_disk_still_counts_as_one_gib_and_no_address_falls_back_to_the_link() {
        let mut r = report();
        r.disks.truncate(1);
        r.nics[1].ipv4 = None;
        r.nics[0].link = false;
        let f = check(&r).unwrap();
        assert_eq!(f.disk_gb, 1);
        assert_eq!((f.boot_mac.to_string().as_str(), f.boot_ip), ("52:54:00:00:99:02", None));
    }

    #[test]
    fn refuses_what_does_not_describe_a_machine() {
        type Spoil = Box<dyn Fn(&mut InventoryReport)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("cpu.count", Box::new(|r| r.cpu.count = 0)),
            ("memory_bytes", Box::new(|r| r.memory_bytes = 0)),
            ("no NIC", Box::new(|r| r.nics.clear())),
            ("invalid MAC", Box::new(|r| r.nics[0].mac = "52:54:00".into())),
            ("IPv4", Box::new(|r| r.nics[1].ipv4 = Some("10.99.0.999".into()))),
            ("control characters", Box::new(|r| r.cpu.model = "x\ny".into())),
            ("longer than", Box::new(|r| r.disks[0].serial = Some("s".repeat(300)))),
            ("at most", Box::new(|r| r.disks = vec![DiskInfo::default(); 300])),
        ];
        for (expected, spoil) in cases {
            let mut r = report();
            spoil(&mut r);
            let e = check(&r).unwrap_err().to_string();
            assert!(e.contains(expected), "{expected}: {e}");
        }
    }
}
