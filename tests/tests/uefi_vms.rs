//! UEFI and BIOS machines in one run: an OVMF VM (Debian `ovmf`, its own VARS copy) and a SeaBIOS VM
//! netboot through the daemon's dnsmasq (plain UEFI PXE gets the EFI iPXE by client arch over TFTP),
//! the OVMF one is inspected and learns it boots UEFI, and both are deployed three times with the
//! demo OS image, which each boots from disk (syslinux for BIOS, systemd-boot for UEFI). The BMCs are
//! driven by the 0.2.0 `ipmi-lan` plugin, so the UEFI node's boot device calls carry the EFI flag
//! (ipmi_sim clears the boot flags once it has booted, so they cannot be read back afterwards).
//! Prints the `instance create` → OS booted figures (median of 3 each).

use std::time::{Duration, Instant};

use metalhost_tests::vm_lab::{self, LabNetns, VmLab, VmOptions, in_lab_netns};
use serde_json::json;

const ROUNDS: usize = 3;
const DEPLOY: Duration = Duration::from_secs(420);

#[test]
fn an_ovmf_and_a_seabios_vm_deploy_and_boot_from_disk_again_and_again() {
    vm_lab::prepare();
    let netns = in_lab_netns(2, || async {
        let opts = VmOptions {
            vms: 2,
            uefi: vec![0],
            skip_clean: true,
            netboot_extra: "tftp_root = \"/usr/lib/ipxe\"\n".into(),
            extra_config: "[inspection]\nlldp_wait_s = 1\n".into(),
            power_driver: "ipmi-lan",
            ..VmOptions::default()
        };
        let lab = VmLab::start(opts).await;
        let (uefi, bios) = (&lab.nodes[0], &lab.nodes[1]);

        // Inspection learns the firmware: the OVMF VM's bootstrap runs under UEFI.
        let out = lab.daemon.cli(&["node", "inspect", &uefi.name]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let n = lab.daemon.wait_node(&uefi.name, &["available"], DEPLOY).await;
        assert_eq!((n["state"].as_str(), n["boot_mode"].as_str()), (Some("available"), Some("uefi")), "{n}\n{}", lab.post_mortem());
        let (_, b) = lab.daemon.get(&format!("/v1/nodes/{}", bios.name)).await;
        assert_eq!(b["boot_mode"], "bios");
        // dnsmasq handed OVMF's own PXE (client arch 7) the EFI iPXE.
        assert!(lab.daemon.log().contains("ipxe.efi"), "no EFI iPXE was sent:\n{}", lab.post_mortem());

        let (_, gz) = lab.demo_os_gz();
        lab.upload("demo-os", &gz);
        let mut took: [Vec<u128>; 2] = [Vec::new(), Vec::new()];
        for round in 1..=ROUNDS {
            let started = Instant::now();
            for vm in [uefi, bios] {
                let (status, body) =
                    lab.daemon.post("/v1/instances", &json!({"image": "demo-os", "name": format!("{}-{round}", vm.name), "node": vm.name})).await;
                assert_eq!(status, 201, "{body}");
            }
            let mut booted = [None, None];
            while booted.iter().any(Option::is_none) {
                for (i, vm) in [uefi, bios].iter().enumerate() {
                    if booted[i].is_none() && vm.os_boots() >= round {
                        booted[i] = Some(started.elapsed().as_millis());
                    }
                }
                assert!(started.elapsed() < DEPLOY, "round {round}: booted {booted:?}\n{}", lab.post_mortem());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for (i, vm) in [uefi, bios].iter().enumerate() {
                took[i].push(booted[i].unwrap_or_default());
                let n = lab.daemon.wait_node(&vm.name, &["active"], DEPLOY).await;
                assert_eq!(n["state"], "active", "{n}");
                assert!(vm.console().contains(&format!("metalhost-demo-os: booted mac={}", vm.mac)), "{}", vm.name);
            }
            for vm in [uefi, bios] {
                let (status, body) = lab.daemon.delete(&format!("/v1/instances/{}-{round}", vm.name)).await;
                assert!(status.is_success(), "{body}");
            }
            for vm in [uefi, bios] {
                let n = lab.daemon.wait_node(&vm.name, &["available"], DEPLOY).await;
                assert_eq!(n["state"], "available", "{n}");
            }
        }
        // The OVMF VM's disk boots came from the EFI loader, the SeaBIOS VM's from syslinux.
        assert!(uefi.console().contains("BdsDxe: starting"), "{}", uefi.console());
        assert!(!bios.console().contains("BdsDxe"), "{}", bios.console());
        let median = |v: &mut Vec<u128>| {
            v.sort_unstable();
            v[v.len() / 2]
        };
        let (mut u, mut b) = (took[0].clone(), took[1].clone());
        eprintln!(
            "instance create -> deployed OS booted (QEMU TCG, both at once): OVMF {:?} ms, median {} ms; SeaBIOS {:?} ms, median {} ms",
            took[0],
            median(&mut u),
            took[1],
            median(&mut b)
        );
    });
    assert!(!LabNetns::exists(&netns), "the lab netns {netns} is left behind");
}
