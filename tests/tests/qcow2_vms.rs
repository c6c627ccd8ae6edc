//! A qcow2 image on a real machine (issue 32): the demo OS image as qcow2 with zstd clusters, made
//! by `qemu-img`, deployed through the daemon to a QEMU VM whose musl agent converts it while it
//! streams; the VM then boots it from its disk. See `metalhost_tests::vm_lab` for the lab.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use metalhost_tests::vm_lab::{self, LabNetns, VmLab, VmOptions, in_lab_netns};

/// How long a deployed OS may take to boot once its node is active: under a full run several TCG VMs
/// share the two cores (a fresh-clone run saw more than 120 s beside the Debian guest's VMs).
const OS_BOOT: Duration = Duration::from_secs(300);

#[test]
fn a_qcow2_image_deploys_to_a_vm_that_boots_it_from_disk() {
    vm_lab::prepare();
    let netns = in_lab_netns(1, || async {
        let lab = VmLab::start(VmOptions { vms: 1, ..VmOptions::default() }).await;
        let raw = metalhost_tests::paths::demo_os_image();
        let qcow2 = lab.dir.path().join("demo-os.qcow2");
        let out = Command::new("qemu-img")
            .args(["convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd"])
            .arg(&raw)
            .arg(&qcow2)
            .output()
            .expect("qemu-img (scripts/setup installs qemu-utils)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let uploaded = lab.upload("demo-os", &qcow2);
        assert_eq!((uploaded["format"].as_str(), uploaded["verdict"].as_str()), (Some("qcow2"), Some("accepted")), "{uploaded}");

        let (status, body) = lab.daemon.post("/v1/instances", &json!({"image": "demo-os", "name": "web-q"})).await;
        assert_eq!(status, 201, "{body}");
        let vm = &lab.nodes[0];
        let n = lab.daemon.wait_node(&vm.name, &["active"], Duration::from_secs(360)).await;
        assert_eq!(n["state"], "active", "{}: {n}\n{}", vm.name, lab.post_mortem());
        let console = vm.wait_os_boots(1, OS_BOOT).await;
        assert!(console.contains(&format!("metalhost-demo-os: booted mac={}", vm.mac)), "{console}\n{}", lab.post_mortem());
        let image = std::fs::read(&raw).expect("demo image");
        assert_eq!(hex::encode(Sha256::digest(vm.disk_head(image.len()))), hex::encode(Sha256::digest(&image)), "the disk holds the raw image");
    });
    assert!(!LabNetns::exists(&netns), "the lab netns {netns} is left behind");
}
