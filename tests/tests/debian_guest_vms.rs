//! Instances a project can log into (issue 30), end to end: a real Debian 12 guest built from
//! Debian's packages (`tests/lab/debian-guest.sh`) deployed by the real agent onto QEMU VMs, one
//! SeaBIOS and one OVMF, with a key, a host name, a `runcmd` marker and an address on the project's
//! VLAN; cloud-init reads the config drive and the test logs in over SSH with that key only. A
//! redeploy with a new key: the old key is refused and the disk holds one config drive.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use metalhost_tests::disk_probe::config_drives;
use metalhost_tests::paths;
use metalhost_tests::vm_lab::{self, VmLab, VmNode, VmOptions, in_lab_netns};
use serde_json::{Value, json};

/// What a deploy of the guest may take under TCG: the bootstrap, 544 MiB written, cloud-init.
const ACTIVE: Duration = Duration::from_secs(600);
const LOGIN: Duration = Duration::from_secs(420);
/// The project's subnet, its gateway (the test's side of the VLAN) and the first two addresses.
const SUBNET: &str = "10.77.0.0/24";
const GATEWAY: &str = "10.77.0.1";

struct Key {
    private: PathBuf,
    public: String,
}

fn ssh_key(dir: &Path, name: &str) -> Key {
    let private = dir.join(name);
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&private).output().expect("ssh-keygen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(private.with_extension("pub")).expect("pub").trim().to_owned();
    Key { private, public }
}

/// `ssh` as the guest's cloud user with `key` only (no agent, no password, no known hosts).
fn ssh(key: &Key, address: &str, command: &str) -> Output {
    Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-i"])
        .arg(&key.private)
        .arg(format!("debian@{address}"))
        .arg(command)
        .output()
        .expect("run ssh")
}

/// `ssh` again while the connection itself fails (not the login: that is an answer): cloud-init
/// restarts sshd while it configures it, so a guest that let us in a moment ago may refuse the next
/// connection briefly.
fn ssh_settled(key: &Key, address: &str, command: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let out = ssh(key, address, command);
        let said = String::from_utf8_lossy(&out.stderr).to_lowercase();
        let no_connection =
            ["connection refused", "timed out", "no route to host", "connection reset", "closed by remote host"].iter().any(|s| said.contains(s));
        if !no_connection || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Logs in as soon as the guest lets us; returns when it first did.
async fn first_login(key: &Key, address: &str, vm: &VmNode, lab: &VmLab) -> Instant {
    let deadline = Instant::now() + LOGIN;
    loop {
        let out = ssh(key, address, "true");
        if out.status.success() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{}: no SSH login to {address} within {LOGIN:?}: {}\nconsole:\n{}\n{}",
            vm.name,
            String::from_utf8_lossy(&out.stderr),
            vm.console(),
            lab.post_mortem()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// From the deploy task's result the agent printed (its console lines, as the host keeps them):
/// the image write's seconds and the config drive's milliseconds, as the agent measured them.
async fn agent_times(lab: &VmLab, node: &str) -> (f64, f64) {
    let (_, lines) = lab.daemon.get(&format!("/v1/nodes/{node}/console-log")).await;
    let message = lines
        .as_array()
        .expect("console lines")
        .iter()
        .rev()
        .filter_map(|l| l["text"].as_str())
        .find(|m| m.contains("succeeded") && m.contains("config drive written"))
        .unwrap_or_else(|| panic!("{node}: no deploy result with a config drive in the console log: {lines}"))
        .to_owned();
    let number_before = |unit: &str| -> f64 {
        let at = message.find(unit).unwrap_or_else(|| panic!("{unit:?} in {message}"));
        message[..at].rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("a number before {unit:?} in {message}"))
    };
    (number_before(" s, "), number_before(" ms"))
}

struct Deployed {
    address: String,
    created: Instant,
}

async fn create(lab: &VmLab, name: &str, vm: &VmNode, key: &Key, marker: &str) -> Deployed {
    let user_data = format!("#cloud-config\nruncmd:\n  - echo {marker} > /dev/ttyS0\n  - echo {marker} > /var/tmp/marker\n");
    let body = json!({"image": "debian", "project": "red", "name": name, "node": vm.name, "hostname": format!("{name}.lab"),
        "ssh_keys": [key.public], "user_data": user_data});
    let created = Instant::now();
    let (status, instance) = lab.daemon.post("/v1/instances", &body).await;
    assert_eq!(status, 201, "{instance}");
    Deployed { address: instance["address"].as_str().expect("an address from the subnet").to_owned(), created }
}

/// The test's own address on the project's VLAN (its bridge in the lab), as the gateway would be.
fn join_vlan(vlan: u16) {
    let bridge = format!("brv{vlan}");
    let out = Command::new("ip").args(["addr", "replace", &format!("{GATEWAY}/24"), "dev", &bridge]).output().expect("ip addr");
    assert!(out.status.success(), "{bridge}: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("ip").args(["link", "set", &bridge, "up"]).output().expect("ip link");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Everything the guest should be after cloud-init: its host name, its address on the NIC cabled
/// to the switch, the marker, cloud-init done, and no password login.
fn check_guest(vm: &VmNode, key: &Key, deployed: &Deployed, hostname: &str, marker: &str) {
    // Once cloud-init is done, nothing restarts sshd any more.
    let out = ssh_settled(key, &deployed.address, "cloud-init status --wait");
    assert!(out.status.success(), "{}: {}{}", vm.name, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let out = ssh_settled(key, &deployed.address, "hostname -f; ip -4 -o addr show; cloud-init status; cat /var/tmp/marker");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}: {text}{}", vm.name, String::from_utf8_lossy(&out.stderr));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(hostname), "{}: {text}", vm.name);
    assert!(text.contains(&format!("inet {}/24", deployed.address)), "{}: the address is not on a NIC: {text}", vm.name);
    assert!(text.contains("status: done"), "{}: {text}", vm.name);
    assert!(text.lines().any(|l| l == marker), "{}: no marker: {text}", vm.name);
    assert!(vm.console().contains(marker), "{}: the runcmd marker is not on the console", vm.name);
    // The NIC with the address is the one whose MAC metalhost knows.
    let out = ssh_settled(key, &deployed.address, &format!("ip -o link | grep -i {}", vm.mac));
    assert!(out.status.success(), "{}: no NIC with {}", vm.name, vm.mac);
    // No password login: the server offers none.
    let out = Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5"])
        .arg(format!("debian@{}", deployed.address))
        .arg("true")
        .output()
        .expect("ssh");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("Permission denied (publickey)"), "{}: a password login was offered: {said}", vm.name);
}

#[test]
fn cloud_init_in_a_real_debian_guest_on_bios_and_uefi() {
    vm_lab::prepare();
    let image = paths::debian_guest_image();
    let keys = tempfile::tempdir().expect("tmp");
    let (old_key, new_key) = (ssh_key(keys.path(), "old"), ssh_key(keys.path(), "new"));
    in_lab_netns(2, move || async move {
        // OVMF's own PXE gets the EFI iPXE over TFTP; the 0.2.0 power plugin sets the EFI boot flag.
        let opts = VmOptions {
            vms: 2,
            uefi: vec![1],
            mem_mb: 768,
            disk_bytes: 1 << 30,
            agent_timeout_s: 600,
            netboot_extra: "tftp_root = \"/usr/lib/ipxe\"\n".into(),
            extra_config: "[inspection]\nlldp_wait_s = 1\n".into(),
            power_driver: "ipmi-lan",
            ..VmOptions::default()
        };
        let lab = VmLab::start(opts).await;
        // Inspection: the UEFI node learns its firmware, and its NICs come from its own report (the
        // network config is generated from them).
        let out = lab.daemon.cli(&["node", "inspect", &lab.nodes[1].name]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let n = lab.daemon.wait_node(&lab.nodes[1].name, &["available"], ACTIVE).await;
        assert_eq!((n["state"].as_str(), n["boot_mode"].as_str()), (Some("available"), Some("uefi")), "{n}\n{}", lab.post_mortem());
        lab.upload("debian", &image);
        let subnet = json!({"cidr": SUBNET, "gateway": GATEWAY, "dns": [GATEWAY]});
        let (status, red) = lab.daemon.post("/v1/projects", &json!({"name": "red", "quota": 4, "subnet": subnet})).await;
        assert_eq!(status, 201, "{red}");
        let vlan = u16::try_from(red["vlan"].as_u64().expect("vlan")).expect("u16");
        let (bios, uefi) = (&lab.nodes[0], &lab.nodes[1]);

        let on_bios = create(&lab, "bios1", bios, &old_key, "marker-bios-7d1").await;
        let on_uefi = create(&lab, "uefi1", uefi, &old_key, "marker-uefi-3c9").await;
        assert_eq!((on_bios.address.as_str(), on_uefi.address.as_str()), ("10.77.0.2", "10.77.0.3"));
        for vm in [bios, uefi] {
            let node = lab.daemon.wait_node(&vm.name, &["active"], ACTIVE).await;
            assert_eq!(node["state"], "active", "{}: {node}\n{}", vm.name, lab.post_mortem());
        }
        join_vlan(vlan);
        let mut figures = Vec::new();
        for (vm, deployed, hostname, marker) in [(bios, &on_bios, "bios1.lab", "marker-bios-7d1"), (uefi, &on_uefi, "uefi1.lab", "marker-uefi-3c9")] {
            let login = first_login(&old_key, &deployed.address, vm, &lab).await;
            check_guest(vm, &old_key, deployed, hostname, marker);
            let (write_s, drive_ms) = agent_times(&lab, &vm.name).await;
            figures.push(format!(
                "{}: create -> first SSH login {:.0} s; image write {write_s:.1} s; config drive {drive_ms:.0} ms ({:.3} % of the deploy)",
                if vm.name == bios.name { "BIOS" } else { "UEFI" },
                (login - deployed.created).as_secs_f64(),
                drive_ms / 10.0 / (login - deployed.created).as_secs_f64()
            ));
        }

        // Redeploy the BIOS node with a new key: the old key no longer gets in, one config drive.
        assert_eq!(lab.daemon.delete("/v1/instances/bios1").await.0, 202);
        let node = lab.daemon.wait_node(&bios.name, &["available"], ACTIVE).await;
        assert_eq!(node["state"], "available", "{node}\n{}", lab.post_mortem());
        let again = create(&lab, "bios2", bios, &new_key, "marker-bios-again-5e0").await;
        assert_eq!(again.address, "10.77.0.2", "bios1's address was freed and is the lowest");
        let node = lab.daemon.wait_node(&bios.name, &["active"], ACTIVE).await;
        assert_eq!(node["state"], "active", "{node}\n{}", lab.post_mortem());
        join_vlan(vlan);
        first_login(&new_key, &again.address, bios, &lab).await;
        check_guest(bios, &new_key, &again, "bios2.lab", "marker-bios-again-5e0");
        let refused = ssh_settled(&old_key, &again.address, "true");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && said.contains("Permission denied (publickey)"), "the old key after the redeploy: {said}");
        let drives = config_drives(&bios.disk);
        assert_eq!(drives.len(), 1, "a redeploy leaves exactly one config drive");
        let meta: Value = serde_json::from_str(drives[0]["meta_data.json"].as_deref().expect("meta_data.json")).expect("json");
        assert_eq!(meta["public_keys"].as_object().map(|k| k.values().cloned().collect::<Vec<_>>()), Some(vec![json!(new_key.public)]));
        for line in figures {
            eprintln!("debian guest: {line}");
        }
    });
}
