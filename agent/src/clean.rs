//! Disk cleaning: discard where the device supports it, zero the start of every partition (where
//! filesystem, LVM and RAID signatures sit), then the first and last MiB of the disk (MBR, both
//! GPT copies, end-of-disk RAID and ZFS labels) and the whole config drive's place before the disk's
//! last MiB (its user data is the tenant's secret), and fsync.

use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use metalhost_wire::{CleanMethod, CleanTask};

use crate::error::{Error, Result};
use crate::{disks, log, sys};

const MIB: u64 = 1 << 20;
/// How much of the disk's end is zeroed: the config drive, its alignment and the GPT's backup.
const END_ZEROED: u64 = crate::config_drive::SIZE + 2 * MIB;

pub fn run(work: &CleanTask, disk_override: Option<&Path>) -> Result<String> {
    let CleanMethod::Metadata = work.method;
    let sys_block = Path::new("/sys/block");
    let targets: Vec<(PathBuf, Vec<u64>)> = match disk_override {
        // Tests: the file is the only disk; it has no partitions sysfs knows of.
        Some(file) => vec![(file.to_owned(), Vec::new())],
        None => {
            let names: Vec<String> = if work.disks.is_empty() {
                disks::list(sys_block).into_iter().filter(|d| !d.removable && d.size_bytes > 0).map(|d| d.name).collect()
            } else {
                work.disks.iter().map(|d| disks::resolve_name(d)).collect()
            };
            names.iter().map(|n| (disks::device_path(n), disks::partition_starts(sys_block, n))).collect()
        }
    };
    if targets.is_empty() {
        return Err(Error::NoDisk("no disk to clean".into()));
    }
    for (path, partitions) in &targets {
        clean_one(path, partitions).map_err(|source| Error::Clean { path: path.clone(), source })?;
    }
    Ok(format!("cleaned {}", targets.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", ")))
}

fn clean_one(path: &Path, partition_starts: &[u64]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    let size = file.seek(SeekFrom::End(0))?;
    if file.metadata()?.file_type().is_block_device() {
        match sys::discard(&file, 0, size) {
            Ok(()) => log(format!("discarded all {size} bytes of {}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => log(format!("{} does not support discard", path.display())),
            Err(e) => return Err(io::Error::new(e.kind(), format!("discard: {e}"))),
        }
    }
    // Discarded blocks need not read back as zeroes, so the metadata areas are zeroed regardless.
    for start in partition_starts {
        zero(&file, *start, MIB.min(size.saturating_sub(*start)))?;
    }
    zero(&file, 0, MIB.min(size))?;
    // The last MiB, and before it where config_drive::write puts its partition (the disk's end).
    let tail = size.saturating_sub(END_ZEROED).max(MIB.min(size));
    zero(&file, tail, size - tail)?;
    file.sync_all()?;
    log(format!(
        "cleaned {} ({size} bytes; first MiB, last {} MiB and {} partition starts zeroed)",
        path.display(),
        END_ZEROED / MIB,
        partition_starts.len()
    ));
    Ok(())
}

fn zero(file: &std::fs::File, start: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; len.min(MIB) as usize];
    let mut at = start;
    while at < start + len {
        let n = (start + len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Zeroes `len` bytes at `start` of an existing disk or file, and syncs.
pub fn zero_range(path: &Path, start: u64, len: u64) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    let size = file.seek(SeekFrom::End(0))?;
    zero(&file, start.min(size), len.min(size.saturating_sub(start)))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk_file(size: usize, fill: u8) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![fill; size]).unwrap();
        (dir, path)
    }

    fn task() -> CleanTask {
        CleanTask { disks: Vec::new(), method: CleanMethod::Metadata }
    }

    #[test]
    fn zeroes_both_ends_and_leaves_the_middle() {
        let mib = MIB as usize;
        let size = 40 * mib + 123;
        let end = END_ZEROED as usize;
        let (_dir, path) = disk_file(size, 0x5a);
        let message = run(&task(), Some(&path)).unwrap();
        assert!(message.contains("cleaned"), "{message}");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), size, "the disk keeps its size");
        assert!(bytes[..mib].iter().all(|b| *b == 0), "first MiB");
        assert!(bytes[size - end..].iter().all(|b| *b == 0), "the end, where the config drive goes");
        assert!(bytes[mib..size - end].iter().all(|b| *b == 0x5a), "middle untouched");
    }

    #[test]
    fn a_config_drive_is_gone_after_cleaning() {
        let mib = MIB as usize;
        let (_dir, path) = disk_file(64 * mib, 0);
        // An MBR image of one partition, then its config drive with a secret in the user data.
        let status = std::process::Command::new("sfdisk")
            .arg("-q")
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().map(|mut i| i.write_all(b"label: dos\nstart=2048, size=20480, type=83\n")).transpose()?;
                child.wait()
            })
            .unwrap();
        assert!(status.success());
        let secret = b"#cloud-config\n# the tenant's secret 7f3a9c\n";
        crate::config_drive::write(&path, &[("openstack/latest/user_data", secret)]).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert!(before.windows(secret.len()).any(|w| w == secret), "the drive holds the user data");
        run(&task(), Some(&path)).unwrap();
        let after = std::fs::read(&path).unwrap();
        assert!(!after.windows(secret.len()).any(|w| w == secret), "the user data survived cleaning");
        assert!(!after.windows(8).any(|w| w == b"config-2"), "the drive's label survived cleaning");
    }

    #[test]
    fn partition_starts_are_zeroed_too() {
        let mib = MIB as usize;
        let size = 60 * mib;
        let end = size - END_ZEROED as usize;
        let (_dir, path) = disk_file(size, 0x77);
        clean_one(&path, &[3 * MIB, 20 * MIB, 60 * MIB - 512]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[3 * mib..4 * mib].iter().all(|b| *b == 0));
        assert!(bytes[20 * mib..21 * mib].iter().all(|b| *b == 0));
        assert!(bytes[4 * mib..20 * mib].iter().all(|b| *b == 0x77));
        assert!(bytes[21 * mib..end].iter().all(|b| *b == 0x77));
        assert!(bytes[mib..3 * mib].iter().all(|b| *b == 0x77));
        assert!(bytes[end..].iter().all(|b| *b == 0), "a start near the end is clipped to the disk");
    }

    #[test]
    fn disks_smaller_than_two_mib_are_zeroed_whole() {
        for size in [0usize, 1000, MIB as usize + 4096] {
            let (_dir, path) = disk_file(size, 1);
            run(&task(), Some(&path)).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len(), size);
            assert!(bytes.iter().all(|b| *b == 0), "size {size}");
        }
    }

    #[test]
    fn a_missing_disk_is_an_error_naming_it() {
        let e = run(&task(), Some(Path::new("/nonexistent/disk"))).unwrap_err().to_string();
        assert!(e.starts_with("cleaning /nonexistent/disk: "), "{e}");
    }
}
