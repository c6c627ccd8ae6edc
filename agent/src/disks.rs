//! The node's hardware as the agent sees it: MAC addresses, disks, and powering off.

use std::path::{Path, PathBuf};

/// MACs of every real NIC, from sysfs.
pub fn local_macs() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else { return Vec::new() };
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

/// The hint when given; otherwise the first non-removable disk of at least `min_bytes`.
pub fn pick(disks: &[Disk], hint: Option<&str>, min_bytes: u64) -> Result<String, String> {
    if let Some(hint) = hint {
        let name = hint.trim_start_matches("/dev/");
        return disks
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.name.clone())
            .ok_or_else(|| format!("the requested disk {hint} does not exist (disks: {})", names(disks)));
    }
    disks
        .iter()
        .find(|d| !d.removable && d.size_bytes > 0 && d.size_bytes >= min_bytes)
        .map(|d| d.name.clone())
        .ok_or_else(|| format!("no non-removable disk of at least {min_bytes} bytes (disks: {})", names(disks)))
}

fn names(disks: &[Disk]) -> String {
    if disks.is_empty() {
        return "none".into();
    }
    disks.iter().map(|d| format!("{} {} B{}", d.name, d.size_bytes, if d.removable { " removable" } else { "" })).collect::<Vec<_>>().join(", ")
}

/// The device path for a disk name, or the test override.
pub fn device_path(name: &str) -> PathBuf {
    PathBuf::from("/dev").join(name)
}

/// Flushes and powers the node off (busybox or util-linux `poweroff -f`).
pub fn power_off() {
    crate::log("powering off");
    let _ = std::process::Command::new("sync").status();
    for cmd in ["/sbin/poweroff", "/bin/poweroff", "poweroff"] {
        if std::process::Command::new(cmd).arg("-f").status().is_ok() {
            return;
        }
    }
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
        assert!(pick(&disks, Some("nvme0n1"), 0).unwrap_err().contains("does not exist"));
        assert!(pick(&disks, None, 1 << 40).unwrap_err().contains("no non-removable disk"));
    }
}
