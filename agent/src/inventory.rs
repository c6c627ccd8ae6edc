//! Inspection: the node's hardware read from sysfs and procfs (CPUs, memory, disks, NICs, DMI,
//! firmware boot mode), plus the LLDP neighbours heard on its NICs within a few seconds.
//!
//! Every reader takes its root directory, so the unit tests feed it a made-up tree.

use std::path::Path;
use std::time::Duration;

use metalhost_wire::{CpuInfo, DiskInfo, FirmwareBootMode, InventoryReport, LldpNeighbor, NicInfo, SystemInfo};

/// Cuts what goes in the report to the host's limits: a long string from firmware must not make
/// the whole report refused.
const MAX_TEXT: usize = 128;
const MAX_DISKS: usize = 64;
const MAX_NICS: usize = 32;

/// Reads everything and listens for LLDP for `lldp_wait` on each NIC with a link.
pub fn gather(lldp_wait: Duration) -> InventoryReport {
    let nics = nics(Path::new("/sys/class/net"));
    let listening: Vec<&str> = nics.iter().filter(|n| n.link).map(|n| n.name.as_str()).collect();
    let lldp = if lldp_wait.is_zero() { Vec::new() } else { listen_lldp(&listening, lldp_wait) };
    InventoryReport {
        cpu: cpu(Path::new("/proc/cpuinfo")),
        memory_bytes: memory(Path::new("/sys/devices/system/memory"), Path::new("/proc/meminfo")),
        disks: disks(Path::new("/sys/block")),
        nics,
        system: system(Path::new("/sys/class/dmi/id")),
        boot_mode: boot_mode(Path::new("/sys/firmware/efi")),
        lldp,
    }
}

fn read(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text: String = text.trim().chars().filter(|c| !c.is_control()).take(MAX_TEXT).collect();
    (!text.is_empty()).then_some(text)
}

/// Logical CPUs (`processor` entries) and the first model name.
pub fn cpu(cpuinfo: &Path) -> CpuInfo {
    let text = std::fs::read_to_string(cpuinfo).unwrap_or_default();
    let count = text.lines().filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor")).count();
    let model =
        text.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == "model name").map(|(_, v)| v.trim().to_owned())).unwrap_or_default();
    CpuInfo { count: u32::try_from(count).unwrap_or(u32::MAX), model: model.chars().take(MAX_TEXT).collect() }
}

/// Installed memory: the online memory blocks times the block size (what the machine has, as
/// QEMU's `-m` says it), else MemTotal (what is left after the kernel's reservations).
pub fn memory(sys_memory: &Path, meminfo: &Path) -> u64 {
    let block = read(&sys_memory.join("block_size_bytes")).and_then(|h| u64::from_str_radix(&h, 16).ok());
    if let (Some(block), Ok(entries)) = (block, std::fs::read_dir(sys_memory)) {
        let online = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("memory"))
            .filter(|e| read(&e.path().join("online")).as_deref() == Some("1"))
            .count() as u64;
        if online > 0 {
            return online * block;
        }
    }
    let text = std::fs::read_to_string(meminfo).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Disks as `disks::list` sees them, with model, serial, WWN and whether they spin.
pub fn disks(sys_block: &Path) -> Vec<DiskInfo> {
    crate::disks::list(sys_block)
        .into_iter()
        .take(MAX_DISKS)
        .map(|d| {
            let dir = sys_block.join(&d.name);
            let device = dir.join("device");
            DiskInfo {
                size_bytes: d.size_bytes,
                model: read(&device.join("model")),
                serial: read(&device.join("serial")).or_else(|| read(&dir.join("serial"))),
                rotational: read(&dir.join("queue/rotational")).as_deref() == Some("1"),
                wwn: read(&device.join("wwid")).or_else(|| read(&dir.join("wwid"))).or_else(|| read(&device.join("wwn"))),
                name: d.name,
            }
        })
        .collect()
}

/// Every NIC but `lo` and those without a MAC, with driver, carrier and speed.
pub fn nics(sys_class_net: &Path) -> Vec<NicInfo> {
    let Ok(entries) = std::fs::read_dir(sys_class_net) else { return Vec::new() };
    let mut nics: Vec<NicInfo> = entries
        .flatten()
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| {
            let dir = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let mac = read(&dir.join("address"))?.to_ascii_lowercase();
            if mac == "00:00:00:00:00:00" || mac.len() != 17 {
                return None;
            }
            let driver = std::fs::read_link(dir.join("device/driver")).ok().and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
            let link = read(&dir.join("carrier")).as_deref() == Some("1");
            // -1 (or an error) when the link is down or the driver does not say.
            let speed_mbps = read(&dir.join("speed")).and_then(|s| s.parse::<i64>().ok()).and_then(|s| u32::try_from(s).ok()).filter(|s| *s > 0);
            let ipv4 = crate::sys::ipv4_of(&name).map(|a| a.to_string());
            Some(NicInfo { name, mac, driver, link, speed_mbps, ipv4 })
        })
        .collect();
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    nics.truncate(MAX_NICS);
    nics
}

pub fn system(dmi: &Path) -> SystemInfo {
    SystemInfo { vendor: read(&dmi.join("sys_vendor")), product: read(&dmi.join("product_name")), serial: read(&dmi.join("product_serial")) }
}

/// The kernel has `/sys/firmware/efi` only when UEFI firmware started it.
pub fn boot_mode(efi: &Path) -> FirmwareBootMode {
    if efi.is_dir() { FirmwareBootMode::Uefi } else { FirmwareBootMode::Bios }
}

/// Listens on every named NIC at once for `wait`; one neighbour per (NIC, chassis, port).
fn listen_lldp(interfaces: &[&str], wait: Duration) -> Vec<LldpNeighbor> {
    let frames = match crate::sys::receive_lldp(interfaces, wait) {
        Ok(frames) => frames,
        Err(e) => {
            crate::log(format!("lldp: cannot listen: {e}"));
            return Vec::new();
        }
    };
    let mut seen: Vec<LldpNeighbor> = Vec::new();
    for (interface, frame) in frames {
        let Some(a) = crate::lldp::parse_frame(&frame) else { continue };
        let neighbour = LldpNeighbor {
            interface,
            chassis_id: a.chassis_id.chars().take(MAX_TEXT).collect(),
            port_id: a.port_id.chars().take(MAX_TEXT).collect(),
            system_name: a.system_name.map(|s| s.chars().take(MAX_TEXT).collect()),
        };
        if !seen.iter().any(|n| n.interface == neighbour.interface && n.chassis_id == neighbour.chassis_id && n.port_id == neighbour.port_id) {
            seen.push(neighbour);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn cpu_counts_processors_and_takes_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("cpuinfo");
        std::fs::write(
            &info,
            "processor\t: 0\nmodel name\t: QEMU Virtual CPU version 2.5+\n\nprocessor\t: 1\nmodel name\t: QEMU Virtual CPU version 2.5+\n",
        )
        .unwrap();
        assert_eq!(cpu(&info), CpuInfo { count: 2, model: "QEMU Virtual CPU version 2.5+".into() });
    }

    #[test]
    fn memory_counts_online_blocks_else_memtotal() {
        let dir = tempfile::tempdir().unwrap();
        let mem = dir.path().join("memory");
        write(&mem, "block_size_bytes", "8000000\n");
        for (i, online) in ["1", "1", "1", "0"].iter().enumerate() {
            write(&mem, &format!("memory{i}/online"), online);
        }
        let meminfo = dir.path().join("meminfo");
        std::fs::write(&meminfo, "MemTotal:         480000 kB\nMemFree: 1 kB\n").unwrap();
        assert_eq!(memory(&mem, &meminfo), 3 * 128 * 1024 * 1024);
        assert_eq!(memory(&dir.path().join("none"), &meminfo), 480000 * 1024);
    }

    #[test]
    fn disks_carry_model_serial_wwn_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path();
        write(b, "sda/size", "2048\n");
        write(b, "sda/removable", "0");
        write(b, "sda/queue/rotational", "1\n");
        write(b, "sda/device/model", "ST4000NM  \n");
        write(b, "sda/device/wwid", "naa.5000c500a1b2c3d4\n");
        write(b, "sda/device/serial", "ZC1ABC\n");
        write(b, "vda/size", "131072\n");
        write(b, "vda/queue/rotational", "0\n");
        write(b, "vda/serial", "disk-serial\n");
        write(b, "loop0/size", "8");
        let found = disks(b);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0],
            DiskInfo {
                name: "sda".into(),
                size_bytes: 2048 * 512,
                model: Some("ST4000NM".into()),
                serial: Some("ZC1ABC".into()),
                rotational: true,
                wwn: Some("naa.5000c500a1b2c3d4".into())
            }
        );
        assert_eq!((found[1].size_bytes, found[1].serial.as_deref(), found[1].rotational), (64 << 20, Some("disk-serial"), false));
    }

    #[test]
    fn nics_skip_lo_and_read_carrier_and_speed() {
        let dir = tempfile::tempdir().unwrap();
        let n = dir.path();
        write(n, "lo/address", "00:00:00:00:00:00");
        write(n, "eth0/address", "52:54:00:AA:00:01\n");
        write(n, "eth0/carrier", "1\n");
        write(n, "eth0/speed", "1000\n");
        write(n, "eth1/address", "52:54:00:aa:00:02\n");
        write(n, "eth1/speed", "-1\n");
        let found = nics(n);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].mac.as_str(), found[0].link, found[0].speed_mbps), ("52:54:00:aa:00:01", true, Some(1000)));
        assert_eq!((found[1].link, found[1].speed_mbps), (false, None));
    }

    #[test]
    fn dmi_and_boot_mode() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "dmi/sys_vendor", "QEMU\n");
        write(dir.path(), "dmi/product_name", "Standard PC (i440FX + PIIX, 1996)\n");
        let s = system(&dir.path().join("dmi"));
        assert_eq!((s.vendor.as_deref(), s.serial), (Some("QEMU"), None));
        assert_eq!(boot_mode(&dir.path().join("efi")), FirmwareBootMode::Bios);
        std::fs::create_dir(dir.path().join("efi")).unwrap();
        assert_eq!(boot_mode(&dir.path().join("efi")), FirmwareBootMode::Uefi);
    }
}
