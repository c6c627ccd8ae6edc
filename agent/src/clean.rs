//! Disk cleaning: discard where supported, then zero the first and last MiB of each disk, which
//! holds the MBR, both GPT copies and most filesystem and RAID signatures.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use metalhost_wire::CleanTask;

use crate::{disks, log};

const MIB: u64 = 1 << 20;

pub fn run(work: &CleanTask, disk_override: Option<&Path>) -> Result<String, String> {
    let targets: Vec<PathBuf> = match disk_override {
        Some(file) => vec![file.to_owned()],
        None if !work.disks.is_empty() => work.disks.iter().map(|d| disks::device_path(d.trim_start_matches("/dev/"))).collect(),
        None => disks::list(Path::new("/sys/block")).into_iter().filter(|d| !d.removable).map(|d| disks::device_path(&d.name)).collect(),
    };
    if targets.is_empty() {
        return Err("no disk to clean".into());
    }
    for target in &targets {
        if disk_override.is_none() {
            discard(target);
        }
        wipe_ends(target).map_err(|e| format!("cleaning {}: {e}", target.display()))?;
        log(format!("cleaned {}", target.display()));
    }
    Ok(format!("cleaned {}", targets.iter().map(|t| t.display().to_string()).collect::<Vec<_>>().join(", ")))
}

/// Whole-device discard; devices without support just say so.
fn discard(device: &Path) {
    match std::process::Command::new("blkdiscard").arg(device).output() {
        Ok(out) if out.status.success() => log(format!("discarded {}", device.display())),
        Ok(out) => log(format!("discard not done on {}: {}", device.display(), String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => log(format!("discard not available: {e}")),
    }
}

/// Zeroes the first and the last MiB (the whole device if it is smaller than 2 MiB).
pub fn wipe_ends(path: &Path) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    let size = file.seek(SeekFrom::End(0))?;
    let zeros = vec![0u8; MIB as usize];
    let head = size.min(MIB);
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&zeros[..head as usize])?;
    if size > MIB {
        let tail_start = size.saturating_sub(MIB).max(MIB);
        file.seek(SeekFrom::Start(tail_start))?;
        file.write_all(&zeros[..(size - tail_start) as usize])?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroes_both_ends_and_leaves_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        let size = 5 * MIB as usize + 123;
        std::fs::write(&path, vec![0x5a; size]).unwrap();
        wipe_ends(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mib = MIB as usize;
        assert!(bytes[..mib].iter().all(|b| *b == 0));
        assert!(bytes[size - mib..].iter().all(|b| *b == 0));
        assert!(bytes[mib..size - mib].iter().all(|b| *b == 0x5a));
    }

    #[test]
    fn a_small_disk_is_zeroed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![1u8; 1000]).unwrap();
        wipe_ends(&path).unwrap();
        assert!(std::fs::read(&path).unwrap().iter().all(|b| *b == 0));
    }
}
