//! The node's hardware as the agent sees it: its MAC addresses and disks, read from sysfs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// MACs of every real NIC, from `/sys/class/net`: not `lo`, not all-zero (tunnels, bonds' slaves
/// report theirs), lower case, sorted, no duplicates.
pub fn local_macs(sys_class_net: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys_class_net) else { return Vec::new() };
    let mut macs: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_name() != "lo")
        .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty() && m != "00:00:00:00:00:00")
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// A disk candidate from /sys/block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub name: String,
    pub size_bytes: u64,
    pub removable: bool,
}

/// Block devices that can hold an OS: not loop, RAM, optical or floppy devices.
pub fn list(sys_block: &Path) -> Vec<Disk> {
    let Ok(entries) = std::fs::read_dir(sys_block) else { return Vec::new() };
    let mut disks: Vec<Disk> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if ["loop", "ram", "zram", "sr", "fd", "md", "dm-", "nbd"].iter().any(|p| name.starts_with(p)) {
                return None;
            }
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok().map(|s| s.trim().to_owned());
            let sectors: u64 = read("size")?.parse().ok()?;
            Some(Disk { name, size_bytes: sectors * 512, removable: read("removable").as_deref() == Some("1") })
        })
        .collect();
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    disks
}

/// A disk name from a hint: `sda`, `/dev/sda`, or a symlink such as `/dev/disk/by-id/...`.
pub fn resolve_name(hint: &str) -> String {
    let hint = hint.trim();
    let resolved = if hint.starts_with("/dev/") { std::fs::canonicalize(hint).ok() } else { None };
    let path = resolved.as_deref().and_then(|p| p.to_str()).unwrap_or(hint);
    path.trim_start_matches("/dev/").to_owned()
}

/// The hint when given; otherwise the first non-removable disk of at least `min_bytes`.
pub fn pick(disks: &[Disk], hint: Option<&str>, min_bytes: u64) -> Result<String> {
    if let Some(hint) = hint.filter(|h| !h.trim().is_empty()) {
        let name = resolve_name(hint);
        return match disks.iter().find(|d| d.name == name) {
            Some(d) if d.size_bytes < min_bytes => {
                Err(Error::NoDisk(format!("the requested disk {hint} holds {} bytes, the image needs {min_bytes}", d.size_bytes)))
            }
            Some(d) => Ok(d.name.clone()),
            None => Err(Error::NoDisk(format!("the requested disk {hint} does not exist (disks: {})", names(disks)))),
        };
    }
    disks
        .iter()
        .find(|d| !d.removable && d.size_bytes > 0 && d.size_bytes >= min_bytes)
        .map(|d| d.name.clone())
        .ok_or_else(|| Error::NoDisk(format!("no non-removable disk of at least {min_bytes} bytes (disks: {})", names(disks))))
}

/// Byte offsets where the disk's partitions start, from `/sys/block/<disk>/<partition>/start`.
pub fn partition_starts(sys_block: &Path, disk: &str) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(sys_block.join(disk)) else { return Vec::new() };
    let mut starts: Vec<u64> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(disk))
        .filter_map(|e| std::fs::read_to_string(e.path().join("start")).ok()?.trim().parse::<u64>().ok())
        .map(|sectors| sectors * 512)
        .collect();
    starts.sort_unstable();
    starts
}

fn names(disks: &[Disk]) -> String {
    if disks.is_empty() {
        return "none".into();
    }
    disks.iter().map(|d| format!("{} {} B{}", d.name, d.size_bytes, if d.removable { " removable" } else { "" })).collect::<Vec<_>>().join(", ")
}

/// The device node of a disk name.
pub fn device_path(name: &str) -> PathBuf {
    PathBuf::from("/dev").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sys(disks: &[(&str, u64, bool)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, sectors, removable) in disks {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
            std::fs::write(d.join("removable"), if *removable { "1\n" } else { "0\n" }).unwrap();
        }
        dir
    }

    #[test]
    fn picks_the_first_fixed_disk_big_enough() {
        let sys = fake_sys(&[("loop0", 1 << 30, false), ("sda", 1000, true), ("sdb", 100, false), ("vda", 1 << 21, false)]);
        let disks = list(sys.path());
        assert_eq!(disks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["sda", "sdb", "vda"]);
        assert_eq!(pick(&disks, None, 1 << 20).unwrap(), "vda");
        assert_eq!(pick(&disks, None, 1).unwrap(), "sdb");
        assert_eq!(pick(&disks, Some("/dev/sda"), 0).unwrap(), "sda");
        assert_eq!(pick(&disks, Some(" "), 1).unwrap(), "sdb", "a blank hint is no hint");
        let e = pick(&disks, Some("nvme0n1"), 0).unwrap_err().to_string();
        assert_eq!(
            e,
            "no disk to write to: the requested disk nvme0n1 does not exist (disks: sda 512000 B removable, sdb 51200 B, vda 1073741824 B)"
        );
        assert!(pick(&disks, Some("sdb"), 1 << 20).unwrap_err().to_string().contains("holds 51200 bytes, the image needs 1048576"));
        assert!(pick(&disks, None, 1 << 40).unwrap_err().to_string().contains("no non-removable disk of at least"));
    }

    #[test]
    fn empty_and_virtual_devices_are_never_candidates() {
        let sys =
            fake_sys(&[("sr0", 2048, true), ("zram0", 1 << 20, false), ("ram0", 1 << 20, false), ("nvme0n1", 0, false), ("nvme1n1", 4096, false)]);
        let disks = list(sys.path());
        assert_eq!(disks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["nvme0n1", "nvme1n1"]);
        assert_eq!(pick(&disks, None, 1).unwrap(), "nvme1n1", "an empty card reader or a size-0 disk is skipped");
    }

    #[test]
    fn partition_starts_come_from_sysfs() {
        let sys = fake_sys(&[("sda", 1 << 21, false)]);
        for (part, start) in [("sda2", "4096"), ("sda1", "2048")] {
            std::fs::create_dir(sys.path().join("sda").join(part)).unwrap();
            std::fs::write(sys.path().join("sda").join(part).join("start"), format!("{start}\n")).unwrap();
        }
        std::fs::create_dir(sys.path().join("sda").join("queue")).unwrap();
        assert_eq!(partition_starts(sys.path(), "sda"), [2048 * 512, 4096 * 512]);
        assert!(partition_starts(sys.path(), "sdz").is_empty());
    }

    #[test]
    fn macs_skip_loopback_and_zero_addresses() {
        let dir = tempfile::tempdir().unwrap();
        for (nic, mac) in [
            ("lo", "00:00:00:00:00:00"),
            ("eth1", "52:54:00:AA:00:02\n"),
            ("eth0", "52:54:00:aa:00:01\n"),
            ("tun0", "00:00:00:00:00:00\n"),
            ("br0", "52:54:00:aa:00:01\n"),
        ] {
            std::fs::create_dir(dir.path().join(nic)).unwrap();
            std::fs::write(dir.path().join(nic).join("address"), mac).unwrap();
        }
        assert_eq!(local_macs(dir.path()), ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]);
        assert!(local_macs(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn hints_resolve_to_names() {
        assert_eq!(resolve_name("/dev/vda"), "vda");
        assert_eq!(resolve_name("nvme0n1"), "nvme0n1");
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("by-id");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        assert_eq!(resolve_name(link.to_str().unwrap()), link.to_str().unwrap(), "only /dev paths are resolved");
    }
}
