//! Inspection and enlistment of real machines: QEMU VMs PXE-boot the real bootstrap through the
//! daemon's dnsmasq and the real musl agent reports what QEMU gave them; the test plays the switch
//! and writes LLDP frames into a VM's tap. One lab for both (each VM boot costs time).

use std::time::{Duration, Instant};

use metalhost_tests::lldp::{Announcer, frame};
use metalhost_tests::vm_lab::{self, DISK_BYTES, LabNetns, SWITCH_CHASSIS_ID, VmLab, VmOptions, in_lab_netns};
use serde_json::{Value, json};

const SMP: u32 = 2;
const MEM_MB: u32 = 640;
const BOOT: Duration = Duration::from_secs(300);

#[test]
fn a_vm_is_inspected_with_its_lldp_neighbour_and_an_unknown_vm_is_enlisted() {
    vm_lab::prepare();
    let netns = in_lab_netns(2, || async {
        let extra_config = "[inspection]\nlldp_wait_s = 3\n\n[discovery]\nenabled = true\n".to_owned();
        let lab = VmLab::start(VmOptions { vms: 1, smp: SMP, mem_mb: MEM_MB, extra_config, ..VmOptions::default() }).await;
        let vm = &lab.nodes[0];
        assert_eq!(vm.port, "ge-0/0/1");

        // The switch announces itself on the VM's cable: port ge-0/0/4, not the one enrolled.
        let chassis: Vec<u8> = SWITCH_CHASSIS_ID.split(':').map(|h| u8::from_str_radix(h, 16).expect("hex")).collect();
        let chassis: [u8; 6] = chassis.try_into().expect("six bytes");
        let announcer = Announcer::start("tap0", frame(chassis, "ge-0/0/4", "tor1.lab"), Duration::from_millis(300));
        let started = Instant::now();
        let out = lab.daemon.cli(&["node", "inspect", &vm.name]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let n = lab.daemon.wait_node(&vm.name, &["available"], BOOT).await;
        let took = started.elapsed();
        let sent = announcer.stop();
        assert_eq!(n["state"], "available", "{n}\n{}", lab.post_mortem());
        eprintln!("inspection of {} (QEMU TCG, {SMP} CPUs, {MEM_MB} MiB, 3 s LLDP): {} ms; {sent} LLDP frames sent", vm.name, took.as_millis());

        // Exactly what QEMU was given.
        assert_eq!((n["cpus"].as_u64(), n["ram_mb"].as_u64(), n["disk_gb"].as_u64()), (Some(SMP.into()), Some(MEM_MB.into()), Some(1)), "{n}");
        assert_eq!(n["boot_mode"], "bios");
        let (_, inventory) = lab.daemon.get(&format!("/v1/nodes/{}/inventory", vm.name)).await;
        let report = &inventory["report"];
        assert_eq!(report["memory_bytes"].as_u64(), Some(u64::from(MEM_MB) << 20), "{report:#}");
        let disk = report["disks"].as_array().expect("disks").iter().find(|d| d["name"] == "vda").cloned().unwrap_or(Value::Null);
        assert_eq!(disk["size_bytes"].as_u64(), Some(DISK_BYTES), "{report:#}");
        let nic = report["nics"].as_array().expect("nics").iter().find(|x| x["mac"] == vm.mac.as_str()).cloned().unwrap_or(Value::Null);
        assert_eq!((nic["driver"].as_str(), nic["link"].as_bool()), (Some("virtio_net"), Some(true)), "{report:#}");
        assert_eq!(nic["ipv4"].as_str(), Some(vm.ip.as_str()), "{report:#}");
        assert_eq!(report["system"]["vendor"], "QEMU", "{report:#}");
        assert_eq!(
            report["lldp"],
            json!([{"interface": nic["name"], "chassis_id": SWITCH_CHASSIS_ID, "port_id": "ge-0/0/4", "system_name": "tor1.lab"}]),
            "{report:#}"
        );
        // The neighbour is the registered switch: the node's port follows it; the VM is off again.
        assert_eq!(n["switch_port"], "ge-0/0/4", "{n}");
        assert!(!vm.sim.powered(), "{} must be off after inspection", vm.name);

        // A machine nobody enrolled PXE-boots on the second cable: it is enlisted with its facts.
        let mut unknown = lab.boot_unknown(1, "52:54:00:00:99:77", SMP, MEM_MB);
        let started = Instant::now();
        let node = loop {
            let (_, nodes) = lab.daemon.get("/v1/nodes").await;
            if let Some(found) = nodes.as_array().expect("nodes").iter().find(|x| x["mac"] == unknown.mac.as_str()) {
                break found.clone();
            }
            assert!(started.elapsed() < BOOT, "the unknown VM was not enlisted; console:\n{}\n{}", unknown.console(), lab.post_mortem());
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        eprintln!("enlistment of an unknown VM: {} ms from power-on", started.elapsed().as_millis());
        assert_eq!(node["state"], "enrolled", "{node}");
        assert_eq!(
            (node["cpus"].as_u64(), node["ram_mb"].as_u64(), node["disk_gb"].as_u64()),
            (Some(SMP.into()), Some(MEM_MB.into()), Some(1)),
            "{node}"
        );
        assert!(node["ip"].as_str().unwrap_or("").starts_with("10.99.0.1"), "a lease from the dynamic range: {node}");
        // Why it waits is recorded by the validation that follows the enlistment: a moment later.
        let mut error = metalhost_tests::daemon::failure_line(&node["last_error"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !error.contains("BMC credentials") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (_, again) = lab.daemon.get(&format!("/v1/nodes/{}", node["id"])).await;
            error = metalhost_tests::daemon::failure_line(&again["last_error"]);
        }
        assert!(error.contains("BMC credentials") && error.contains("switch port"), "{error}");
        // Its agent powers it off once enlisted.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !unknown.ended() {
            assert!(Instant::now() < deadline, "the enlisted VM did not power off; console:\n{}", unknown.console());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(unknown.console().contains("enlisted as node"), "{}", unknown.console());
    });
    assert!(!LabNetns::exists(&netns), "the lab netns {netns} is left behind");
}
