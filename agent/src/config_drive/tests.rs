//! The config drive judged by the real tools (scripts/setup installs them): disks built with
//! sfdisk the way a deploy leaves them (the image's tables, the disk bigger than the image),
//! then `sfdisk --json`, `sgdisk -v`, `blkid`, `fsck.fat -n` and `mcopy` on the result.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;

const MIB: u64 = 1 << 20;
const BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";

fn tool(name: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e} (scripts/setup installs fdisk, gdisk, dosfstools, mtools, util-linux)"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(name: &str, args: &[&str]) -> Output {
    let out = tool(name, args, None);
    assert!(out.status.success(), "{name} {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// A disk of `disk_mib` as a deploy leaves it: an image of `image_mib` (partitioned by the
/// sfdisk `script`, its partitions full of a pattern) written at its start, old bytes after it.
fn deployed(dir: &Path, name: &str, image_mib: u64, disk_mib: u64, script: &str) -> PathBuf {
    let image = dir.join(format!("{name}.image"));
    let pattern: Vec<u8> = (0..251u32).map(|i| (i * 31 % 251) as u8).collect();
    fs::write(&image, &pattern.repeat((image_mib * MIB) as usize / 251 + 1)[..(image_mib * MIB) as usize]).unwrap();
    let out = tool("sfdisk", &["--quiet", "--no-reread", "--no-tell-kernel", image.to_str().unwrap()], Some(script));
    assert!(out.status.success(), "sfdisk: {}", String::from_utf8_lossy(&out.stderr));
    // Old bytes after the image, as on a used disk.
    let disk = dir.join(name);
    fs::write(&disk, vec![0xEE; (disk_mib * MIB) as usize]).unwrap();
    redeploy(&image, &disk);
    disk
}

/// Writes the image over the disk's start (a deploy, or a redeploy), keeping what is after it.
fn redeploy(image: &Path, disk: &Path) {
    let f = fs::OpenOptions::new().write(true).open(disk).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &fs::read(image).unwrap(), 0).unwrap();
}

/// The table as `sfdisk --json` reads it, and what sfdisk said on stderr (warnings).
fn table(disk: &Path) -> (Value, String) {
    let out = ok("sfdisk", &["--json", disk.to_str().unwrap()]);
    (serde_json::from_slice::<Value>(&out.stdout).unwrap()["partitiontable"].clone(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn partitions(t: &Value) -> Vec<Value> {
    t["partitions"].as_array().cloned().unwrap_or_default()
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

fn files(host: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "openstack/latest/meta_data.json".into(),
            format!(r#"{{"uuid": "3c1e0a52-0000-4000-8000-{host:0>12}", "hostname": "{host}"}}"#).into_bytes(),
        ),
        ("openstack/latest/user_data".into(), format!("#cloud-config\nruncmd:\n  - echo {host} > /run/marker\n").into_bytes()),
        ("openstack/latest/network_data.json".into(), br#"{"links": [], "networks": [], "services": []}"#.to_vec()),
    ]
}

fn write_files(disk: &Path, files: &[(String, Vec<u8>)]) -> Result<Written, Error> {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
    write(disk, &refs)
}

/// Everything the tools can say about the config drive at `start`: its label and type, a clean
/// fsck, and each file's bytes as mtools reads them.
fn assert_config_drive(dir: &Path, disk: &Path, start: u64, expected: &[(String, Vec<u8>)]) {
    let d = disk.to_str().unwrap();
    let probe = |tag: &str| {
        let out = ok("blkid", &["-p", "-O", &start.to_string(), "-o", "value", "-s", tag, d]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(probe("LABEL"), "config-2");
    assert_eq!(probe("TYPE"), "vfat");
    let part = dir.join("config-2.fat");
    let bytes = fs::read(disk).unwrap();
    fs::write(&part, &bytes[start as usize..(start + SIZE) as usize]).unwrap();
    // Exit status 0: no error found (1 would be errors, and `ok` fails on it); no warning either.
    let fsck = ok("fsck.fat", &["-n", "-V", part.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    assert_eq!(said.lines().count(), 4, "fsck.fat -n -V: {said}");
    let image = format!("{d}@@{start}");
    for (path, data) in expected {
        let out = ok("mcopy", &["-n", "-i", &image, &format!("::{path}"), "-"]);
        assert_eq!(out.stdout, *data, "{path} as mcopy reads it");
    }
    let listing = ok("mdir", &["-i", &image, "-/", "-b", "::"]);
    let mut listed: Vec<String> =
        String::from_utf8_lossy(&listing.stdout).lines().filter(|l| !l.ends_with('/')).map(|l| l.trim_start_matches("::/").to_owned()).collect();
    let mut wanted: Vec<String> = expected.iter().map(|(p, _)| p.clone()).collect();
    listed.sort();
    wanted.sort();
    assert_eq!(listed, wanted, "the files, no others");
}

const GPT_SCRIPT: &str = "label: gpt\nsize=8MiB, type=U, name=esp\ntype=L, name=root\n";
const MBR_SCRIPT: &str = "label: dos\n,8MiB,ef,*\n,,83\n";

/// The image's partitions hold the same bytes after as before.
fn assert_partitions_untouched(before: &[u8], disk: &Path, parts: &[Value]) {
    let after = fs::read(disk).unwrap();
    for p in parts {
        let (start, size) = (p["start"].as_u64().unwrap() * 512, p["size"].as_u64().unwrap() * 512);
        let range = start as usize..(start + size) as usize;
        assert!(before[range.clone()] == after[range], "partition {} changed", p["node"]);
    }
}

#[test]
fn gpt_image_smaller_than_the_disk_gets_config2_last_and_its_backup_moved_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let disk = deployed(dir.path(), "gpt", 24, 64, GPT_SCRIPT);
    let (before_table, _) = table(&disk);
    let before = fs::read(&disk).unwrap();
    let old_backup = 24 * MIB - 512;
    assert_eq!(&before[old_backup as usize..][..8], b"EFI PART", "the image's backup header, mid-disk");

    let content = files("node-1");
    let written = write_files(&disk, &content).unwrap();
    assert_eq!((written.table, written.number, written.replaced), (TableKind::Gpt, 3, false));

    let sgdisk = ok("sgdisk", &["-v", disk.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&sgdisk.stdout);
    assert!(said.contains("No problems found"), "sgdisk -v: {said}");
    let (t, warnings) = table(&disk);
    assert!(warnings.trim().is_empty(), "sfdisk warns: {warnings}");
    let sectors = 64 * MIB / 512;
    assert_eq!(t["lastlba"].as_u64(), Some(sectors - 34), "the backup table is at the disk's end");
    let parts = partitions(&t);
    assert_eq!(parts.len(), 3);
    let last = &parts[2];
    assert_eq!(last["name"], "config-2");
    assert_eq!(last["type"], BASIC_DATA);
    assert_eq!(last["size"].as_u64(), Some(SIZE / 512));
    let start = last["start"].as_u64().unwrap();
    assert_eq!(start * 512, written.start);
    assert_eq!(start % 2048, 0, "1 MiB aligned");
    assert!(start + SIZE / 512 <= sectors - 33 && start + SIZE / 512 + 2048 > sectors - 33, "at the disk's end");
    assert_eq!(partitions(&before_table)[..2], parts[..2], "the image's entries are as they were");
    assert_partitions_untouched(&before, &disk, &parts[..2]);
    let after = fs::read(&disk).unwrap();
    assert!(after[old_backup as usize..][..512].iter().all(|b| *b == 0), "the image's backup header is erased");
    assert_config_drive(dir.path(), &disk, written.start, &content);
}

#[test]
fn mbr_image_smaller_than_the_disk_gets_config2_as_the_next_primary() {
    let dir = tempfile::tempdir().unwrap();
    let disk = deployed(dir.path(), "mbr", 24, 64, MBR_SCRIPT);
    let before = fs::read(&disk).unwrap();
    let content = files("node-2");
    let written = write_files(&disk, &content).unwrap();
    assert_eq!((written.table, written.number, written.replaced), (TableKind::Mbr, 3, false));

    let verify = ok("sfdisk", &["--verify", disk.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&verify.stdout).into_owned() + &String::from_utf8_lossy(&verify.stderr);
    assert!(said.contains("No errors detected"), "sfdisk --verify: {said}");
    let (t, warnings) = table(&disk);
    assert!(warnings.trim().is_empty(), "sfdisk warns: {warnings}");
    assert_eq!(t["label"], "dos");
    let parts = partitions(&t);
    assert_eq!(parts.len(), 3);
    let last = &parts[2];
    assert_eq!(last["type"], "e");
    assert_eq!(last["size"].as_u64(), Some(SIZE / 512));
    assert_eq!(last["start"].as_u64().unwrap() * 512, written.start);
    assert_eq!(written.start + SIZE, 64 * MIB, "at the disk's end");
    assert_eq!(parts[0]["bootable"], true, "the boot flag stays");
    assert_eq!(&before[..446], &fs::read(&disk).unwrap()[..446], "the boot code stays");
    assert_partitions_untouched(&before, &disk, &parts[..2]);
    assert_config_drive(dir.path(), &disk, written.start, &content);
}

/// Twice in a row, and after the image is written again over a disk that has one: one config-2,
/// holding the last files.
#[test]
fn a_second_run_and_a_redeploy_leave_exactly_one_config2() {
    for (name, script) in [("gpt", GPT_SCRIPT), ("mbr", MBR_SCRIPT)] {
        let dir = tempfile::tempdir().unwrap();
        let disk = deployed(dir.path(), name, 24, 64, script);
        let first = write_files(&disk, &files("first")).unwrap();
        let once = sha(&disk);
        let again = write_files(&disk, &files("first")).unwrap();
        assert!(again.replaced, "{name}: the first one is found");
        assert_eq!((again.number, again.start), (first.number, first.start), "{name}");
        assert_eq!(sha(&disk), once, "{name}: the same files write the same disk");

        let second = files("second");
        assert!(write_files(&disk, &second).unwrap().replaced);
        redeploy(&dir.path().join(format!("{name}.image")), &disk);
        let third = files("third");
        let after_redeploy = write_files(&disk, &third).unwrap();
        assert!(!after_redeploy.replaced, "{name}: the image's table has no config-2");
        let (t, warnings) = table(&disk);
        assert!(warnings.trim().is_empty(), "{name}: sfdisk warns: {warnings}");
        let parts = partitions(&t);
        assert_eq!(parts.len(), 3, "{name}: {parts:?}");
        if name == "gpt" {
            assert_eq!(parts.iter().filter(|p| p["name"] == "config-2").count(), 1);
            assert!(String::from_utf8_lossy(&ok("sgdisk", &["-v", disk.to_str().unwrap()]).stdout).contains("No problems found"));
        }
        assert_config_drive(dir.path(), &disk, after_redeploy.start, &third);
    }
}

/// An MBR disk whose config-2 is the third of three, then written over by an image with four
/// partitions that do not reach its slot: the earlier config-2 is recognised by its label and
/// its slot reused, not taken for an image partition.
#[test]
fn an_earlier_config2_in_another_slot_is_replaced_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let disk = deployed(dir.path(), "mbr", 24, 64, "label: dos\n,8MiB,83\n");
    let first = write_files(&disk, &files("first")).unwrap();
    assert_eq!(first.number, 2);
    // Another tool's layout: the same partition moved to entry 4, entry 2 empty.
    let mut mbr = fs::read(&disk).unwrap()[..512].to_vec();
    let entry: Vec<u8> = mbr[462..478].to_vec();
    mbr[462..478].fill(0);
    mbr[494..510].copy_from_slice(&entry);
    std::os::unix::fs::FileExt::write_all_at(&fs::OpenOptions::new().write(true).open(&disk).unwrap(), &mbr, 0).unwrap();
    let again = write_files(&disk, &files("again")).unwrap();
    assert!(again.replaced);
    let parts = partitions(&table(&disk).0);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_config_drive(dir.path(), &disk, again.start, &files("again"));
}

#[test]
fn no_room_after_the_image_is_an_error_and_the_disk_is_unchanged() {
    for (name, script) in [("gpt", GPT_SCRIPT), ("mbr", MBR_SCRIPT)] {
        let dir = tempfile::tempdir().unwrap();
        let disk = deployed(dir.path(), name, 56, 64, script);
        let before = sha(&disk);
        let err = write_files(&disk, &files("x")).unwrap_err();
        assert!(matches!(err, Error::NoRoom { .. }), "{name}: {err}");
        assert_eq!(err.kind(), metalhost_wire::AgentFailureKind::Disk, "a bigger disk would do");
        assert!(err.to_string().contains("no room"), "{err}");
        assert_eq!(sha(&disk), before, "{name}: nothing written");
    }
}

#[test]
fn full_tables_are_an_error_and_the_disk_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mbr = deployed(dir.path(), "mbr", 24, 64, "label: dos\n,4MiB,83\n,4MiB,83\n,4MiB,83\n,4MiB,83\n");
    let gpt = deployed(dir.path(), "gpt", 24, 64, "label: gpt\ntable-length: 4\n,4MiB\n,4MiB\n,4MiB\n,4MiB\n");
    for (disk, kind) in [(mbr, TableKind::Mbr), (gpt, TableKind::Gpt)] {
        let before = sha(&disk);
        let err = write_files(&disk, &files("x")).unwrap_err();
        assert!(matches!(err, Error::TableFull { table, .. } if table == kind), "{err}");
        assert_eq!(err.kind(), metalhost_wire::AgentFailureKind::Verify, "the image's table would refuse it anywhere");
        assert_eq!(sha(&disk), before, "{kind}: nothing written");
    }
}

/// A GPT whose entry array is not the usual 128 entries: the moved backup keeps its size.
#[test]
fn a_short_gpt_entry_array_is_moved_whole() {
    let dir = tempfile::tempdir().unwrap();
    let disk = deployed(dir.path(), "gpt", 24, 64, "label: gpt\ntable-length: 8\n,8MiB\n");
    let written = write_files(&disk, &files("short")).unwrap();
    assert_eq!(written.number, 2);
    let said = String::from_utf8_lossy(&ok("sgdisk", &["-v", disk.to_str().unwrap()]).stdout).into_owned();
    assert!(said.contains("No problems found"), "{said}");
    assert_config_drive(dir.path(), &disk, written.start, &files("short"));
}

#[test]
fn disks_without_a_table_and_bad_paths_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank");
    fs::write(&blank, vec![0u8; (64 * MIB) as usize]).unwrap();
    assert!(matches!(write_files(&blank, &files("x")), Err(Error::NoTable { .. })));
    // A filesystem on the whole disk ends its first sector in 55 AA too.
    let floppy = dir.path().join("floppy");
    fs::write(&floppy, vec![0u8; (64 * MIB) as usize]).unwrap();
    ok("mkfs.fat", &[floppy.to_str().unwrap()]);
    let before = sha(&floppy);
    assert!(matches!(write_files(&floppy, &files("x")), Err(Error::NoTable { .. })));
    assert_eq!(sha(&floppy), before);

    let disk = deployed(dir.path(), "gpt", 24, 64, GPT_SCRIPT);
    let before = sha(&disk);
    for bad in ["/openstack/latest/x", "openstack/../x", "openstack//x", "a:b", ""] {
        assert!(matches!(write(&disk, &[(bad, b"x")]), Err(Error::BadPath(_))), "{bad:?}");
    }
    let huge = vec![0u8; MAX_CONTENT + 1];
    assert!(matches!(write(&disk, &[("openstack/latest/user_data", &huge)]), Err(Error::TooBig(_))));
    assert_eq!(sha(&disk), before);
}

/// The FAT writer beyond the three usual files: a directory over several clusters, long and
/// non-ASCII names, an empty file, files of a cluster and across clusters, a deeper tree.
#[test]
fn many_files_long_names_and_odd_sizes_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let disk = deployed(dir.path(), "mbr", 24, 64, MBR_SCRIPT);
    let mut content: Vec<(String, Vec<u8>)> =
        (0..90).map(|i| (format!("openstack/latest/file-number-{i:03}.json"), format!("{{\"n\": {i}}}").into_bytes())).collect();
    content.push(("openstack/content/0000".into(), Vec::new()));
    content.push(("openstack/content/one-cluster".into(), vec![7u8; 2048]));
    content.push(("openstack/content/across".into(), (0..5000u32).map(|i| (i % 253) as u8).collect()));
    content.push(("ünïcødé-名前 with spaces.txt".into(), b"unicode".to_vec()));
    content.push(("ec2/2009-04-04/meta-data.json".into(), b"{}".to_vec()));
    let written = write_files(&disk, &content).unwrap();
    assert_config_drive(dir.path(), &disk, written.start, &content);
}
