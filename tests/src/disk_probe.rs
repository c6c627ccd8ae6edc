//! A node's disk read the way the guest's tools read it, not through metalhost's code: its
//! partitions by sfdisk, and each `config-2` filesystem's files by mtools.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// The disk's partitions as sfdisk reads them: (start in bytes, type).
pub fn partitions(disk: &Path) -> Vec<(u64, String)> {
    let out = Command::new("sfdisk").arg("--json").arg(disk).output().expect("sfdisk --json");
    assert!(out.status.success(), "sfdisk --json {}: {}", disk.display(), String::from_utf8_lossy(&out.stderr));
    let table: Value = serde_json::from_slice(&out.stdout).expect("sfdisk's json");
    let sector = table["partitiontable"]["sectorsize"].as_u64().unwrap_or(512);
    table["partitiontable"]["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| (p["start"].as_u64().expect("start") * sector, p["type"].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// The files cloud-init reads from a config drive.
pub const DRIVE_FILES: [&str; 3] = ["meta_data.json", "network_data.json", "user_data"];

/// Every partition whose FAT label is `config-2`, with the text of each of `DRIVE_FILES` it holds
/// under `openstack/latest/`.
pub fn config_drives(disk: &Path) -> Vec<BTreeMap<&'static str, Option<String>>> {
    let mut found = Vec::new();
    for (start, _) in partitions(disk) {
        let image = format!("{}@@{start}", disk.display());
        let label = Command::new("mlabel").args(["-s", "-i", &image, "::"]).env("MTOOLS_SKIP_CHECK", "1").output().expect("mlabel");
        if !String::from_utf8_lossy(&label.stdout).to_ascii_lowercase().contains("config-2") {
            continue;
        }
        let mut files = BTreeMap::new();
        for name in DRIVE_FILES {
            let out = Command::new("mtype")
                .args(["-i", &image, &format!("::openstack/latest/{name}")])
                .env("MTOOLS_SKIP_CHECK", "1")
                .output()
                .expect("mtype");
            files.insert(name, out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned()));
        }
        found.push(files);
    }
    found
}
