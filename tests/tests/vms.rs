//! End to end with real machines: two QEMU VMs behind ipmi_sim BMCs PXE-boot the bootstrap image
//! through the daemon's supervised dnsmasq, the real musl agent writes the deployed OS to their
//! disks, and they boot it from disk; one is destroyed and cleaned, then given a corrupt image,
//! while the other keeps running undisturbed. See `metalhost_tests::vm_lab` for the lab.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use metalhost_conformance::sims::netns::Netns;
use metalhost_tests::capture::Capture;
use metalhost_tests::console::TmuxPane;
use metalhost_tests::daemon::TOKEN;
use metalhost_tests::vm_lab::{self, LabNetns, PROVISIONING_VLAN, TENANT_VLAN, VmLab, VmOptions, in_lab_netns};

const DEPLOY: Duration = Duration::from_secs(360);

/// Placed inside an image that is uploaded and deployed: the capture must not show it.
const MARKER: &[u8] = b"metalhost-capture-marker-5b1f0e2a9c7d4e38-inside-the-image";

#[test]
fn two_vms_deploy_boot_from_disk_destroy_and_a_corrupt_image_fails_alone() {
    vm_lab::prepare();
    let netns = in_lab_netns(2, || async {
        // Everything on the lab's wire, from enrolment to the end (issue 31): tcpdump on every
        // interface of the lab's namespace (br0, the taps, loopback to the BMCs and the switch).
        let mut capture = Capture::start();
        // The native IPMI plugin drives the BMCs, and their Serial over LAN carries each VM's
        // console to the daemon (recorded into the console log, and `node console`).
        let lab = VmLab::start(VmOptions { power_driver: "ipmi-lan", sol: true, ..VmOptions::default() }).await;
        let (image, gz) = lab.demo_os_gz();
        let image_sha = hex::encode(Sha256::digest(&image));
        let uploaded = lab.upload("demo-os", &gz);
        assert_eq!(uploaded["compression"], "gzip", "{uploaded}");

        // Deploy both at once.
        for name in ["web-a", "web-b"] {
            let (status, body) = lab.daemon.post("/v1/instances", &json!({"image": "demo-os", "name": name})).await;
            assert_eq!(status, 201, "{body}");
        }
        for vm in &lab.nodes {
            let n = lab.daemon.wait_node(&vm.name, &["active"], DEPLOY).await;
            assert_eq!(n["state"], "active", "{}: {n}\n{}", vm.name, lab.post_mortem());
        }
        for vm in &lab.nodes {
            // The VM booted the deployed OS from its disk: the marker names its own NIC.
            let console = wait_os_boot(&lab, vm).await;
            assert!(console.contains(&format!("metalhost-demo-os: booted mac={}", vm.mac)), "{}: {console}", vm.name);
            // The bootstrap before it got its reservation from the supervised dnsmasq.
            assert!(console.contains(&format!("dhcp: eth0 is {}/24", vm.ip)), "{}: {console}", vm.name);
            assert_eq!(hex::encode(Sha256::digest(vm.disk_head(image.len()))), image_sha, "{}: image bytes on disk", vm.name);
            assert_eq!(lab.switch.port_vlan(&vm.port), Some(TENANT_VLAN), "{}", vm.name);
            // ipmi_sim hands the hook "default" for `bootdev disk`; qemu-vm.sh boots the disk for anything but pxe.
            assert_eq!(vm.sim.boot_device().as_deref(), Some("default"), "{}", vm.name);
            assert!(vm.sim.powered(), "{}", vm.name);
        }

        // The daemon recorded each VM's serial console: the bootstrap's DHCP line and, after the
        // workflow ended, the deployed OS's first boot.
        for vm in &lab.nodes {
            let marker = format!("metalhost-demo-os: booted mac={}", vm.mac);
            let log = serial_log_with(&lab, &vm.name, &marker).await;
            assert!(log.iter().any(|l| l.contains(&marker)), "{}: no OS marker in the console log:\n{}", vm.name, log.join("\n"));
            assert!(log.iter().any(|l| l.contains(&format!("dhcp: eth0 is {}/24", vm.ip))), "{}: no bootstrap line:\n{}", vm.name, log.join("\n"));
        }
        // `metalhost node console` in a terminal: the screen so far, then a shell on the VM's
        // serial port answers what is typed; Ctrl-] detaches and the CLI exits cleanly.
        let vm = &lab.nodes[1];
        let pane = TmuxPane::start(
            &format!("{} node console {}", metalhost_tests::paths::host_binary("metalhost").display(), vm.name),
            &[
                ("METALHOST_URL", lab.daemon.url.as_str()),
                ("METALHOST_TOKEN", TOKEN),
                ("METALHOST_CA", lab.daemon.ca_file.as_ref().and_then(|c| c.to_str()).expect("the daemon's CA")),
            ],
        );
        let screen = pane.wait_for("attached to", Duration::from_secs(30)).await;
        assert!(screen.contains("attached to"), "{screen}");
        let mut answered = String::new();
        for _ in 0..10 {
            pane.send_keys(&["echo sum=$((6*7))", "Enter"]);
            answered = pane.wait_for("sum=42", Duration::from_secs(6)).await;
            if answered.contains("sum=42") {
                break;
            }
        }
        assert!(answered.contains("sum=42"), "the VM's shell did not answer through SOL:\n{answered}\n{}", lab.post_mortem());
        pane.send_keys(&["C-]"]);
        let screen = pane.wait_for("[exit status", Duration::from_secs(10)).await;
        assert!(screen.contains("detached") && screen.contains("[exit status 0]"), "{screen}");
        drop(pane);

        // Destroy one: cleaned, back on provisioning, powered off; the other is left alone.
        let (a, b) = (&lab.nodes[0], &lab.nodes[1]);
        let b_events = lab.events(&b.name).await.len();
        let (status, body) = lab.daemon.delete("/v1/instances/web-a").await;
        assert!(status.is_success(), "{body}");
        let n = lab.daemon.wait_node(&a.name, &["available"], DEPLOY).await;
        assert_eq!(n["state"], "available", "{n}\n{}", lab.post_mortem());
        let head = a.disk_head(1 << 20);
        assert!(head.iter().all(|&b| b == 0), "{}: the first MiB is not zeroed after cleaning", a.name);
        assert_eq!(lab.switch.port_vlan(&a.port), Some(PROVISIONING_VLAN));
        assert!(!a.sim.powered(), "{} must be off after cleaning", a.name);

        // A corrupt image on the freed VM: error with the agent's message, port never on tenant.
        let images_dir = lab.daemon.data_path().join("images");
        let stored_before = stored_files(&images_dir);
        // Uncompressed, so the flipped byte is caught by the sha256 (in a gzip stream its CRC would).
        // The demo OS shares its kernel with the bootstrap (fetched in clear), so the capture check
        // below looks for a marker placed in the image's last, unused KiB instead of its bytes.
        let mut marked = std::fs::read(metalhost_tests::paths::demo_os_image()).expect("read the demo image");
        let at = marked.len() - 1024;
        marked[at..at + MARKER.len()].copy_from_slice(MARKER);
        let marked_path = lab.dir.path().join("bad-os.img");
        std::fs::write(&marked_path, &marked).expect("write the marked image");
        let bad = lab.upload("bad-os", &marked_path);
        let stored = stored_files(&images_dir).into_iter().find(|f| !stored_before.contains(f)).expect("the new image's file");
        let mut bytes = std::fs::read(&stored).expect("read stored image");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&stored, bytes).expect("corrupt");
        let (status, body) = lab.daemon.post("/v1/instances", &json!({"image": "bad-os", "name": "web-c"})).await;
        assert_eq!(status, 201, "{body}");
        let n = lab.daemon.wait_node(&a.name, &["error"], DEPLOY).await;
        let error = metalhost_tests::daemon::failure_line(&n["last_error"]);
        assert_eq!(n["state"], "error", "{n}\n{}", lab.post_mortem());
        assert!(error.contains("sha256 mismatch") && error.contains(bad["sha256"].as_str().unwrap_or("?")), "{error}");
        assert_eq!(lab.switch.port_vlan(&a.port), Some(PROVISIONING_VLAN), "a failed deploy must not reach the tenant VLAN");
        assert_eq!(a.os_boots(), 1, "{} must not boot the corrupt image", a.name);

        // The other VM: still active, booted once, no new events, port still on the tenant VLAN.
        let (_, nb) = lab.daemon.get(&format!("/v1/nodes/{}", b.name)).await;
        assert_eq!(nb["state"], "active", "{nb}");
        assert_eq!(b.os_boots(), 1, "{} was rebooted", b.name);
        assert_eq!(lab.events(&b.name).await.len(), b_events, "{} saw events while the other VM was busy", b.name);
        assert_eq!(lab.switch.port_vlan(&b.port), Some(TENANT_VLAN));
        assert!(b.sim.powered());

        // Nothing secret crossed the wire in clear: the bootstrap's files did (firmware cannot
        // check a certificate), the rest went over TLS, RMCP+ or SSH.
        let wire = capture.stop();
        assert!(wire.contains(b"GET /v1/agent/binary", false), "the capture missed the bootstrap's plain-HTTP fetch: did it capture?");
        for (secret, what) in [
            (TOKEN.as_bytes(), "the operator token"),
            (vm_lab::BMC_PASSWORD.as_bytes(), "the BMC password"),
            (vm_lab::SWITCH_PASSWORD.as_bytes(), "the switch password"),
            // Not "authorization:" alone: the agent binary, fetched in clear, holds "Proxy-Authorization: basic".
            (b"authorization: bearer".as_slice(), "an Authorization header (the agent's and the operator's tokens travel in one)"),
        ] {
            assert!(!wire.contains(secret, true), "{what} crossed the wire in clear");
        }
        assert!(!wire.contains(MARKER, false), "the marker inside the (uncompressed) bad-os image crossed the wire in clear");
        eprintln!("figure: {} bytes captured over deploy, console, destroy and a failed deploy; no secret in them", wire.bytes);
    });
    assert!(!LabNetns::exists(&netns), "the lab netns {netns} is left behind");
}

/// The VM's serial file once the deployed OS booted (within 120 s), or the lab's post-mortem.
async fn wait_os_boot(lab: &VmLab, vm: &metalhost_tests::vm_lab::VmNode) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while vm.os_boots() < 1 {
        assert!(tokio::time::Instant::now() < deadline, "{}: the deployed OS did not boot within 120 s\n{}", vm.name, lab.post_mortem());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    vm.console()
}

/// The node's console-log lines recorded from its serial console, once one holds `needle` (or
/// after 120 s).
async fn serial_log_with(lab: &VmLab, node: &str, needle: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, lines) = lab.daemon.get(&format!("/v1/nodes/{node}/console-log")).await;
        let serial: Vec<String> =
            lines.as_array().into_iter().flatten().filter(|l| l["source"] == "serial").map(|l| l["text"].as_str().unwrap_or("").to_owned()).collect();
        if serial.iter().any(|l| l.contains(needle)) || tokio::time::Instant::now() >= deadline {
            return serial;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn stored_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).expect("images dir").flatten().map(|e| e.path()).collect()
}

#[test]
fn a_panicking_lab_still_removes_its_netns_and_processes() {
    let name = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = name.clone();
    let result = std::panic::catch_unwind(|| {
        in_lab_netns(1, move || async move {
            let netns = std::fs::read_link("/proc/thread-self/ns/net").expect("ns");
            *seen.lock().expect("lock") = format!("{}", netns.display());
            // A process in the namespace that would outlive the test if nobody stopped it: never
            // waited for on purpose, the namespace's teardown must stop it.
            #[allow(clippy::zombie_processes)]
            std::process::Command::new("sleep").arg("600").spawn().expect("sleep");
            panic!("the lab failed on purpose");
        })
    });
    assert!(result.is_err(), "the panic must reach the caller");
    let inode = name.lock().expect("lock").clone();
    assert!(inode.starts_with("net:["), "{inode}");
    // Nothing of ours is left in a namespace with that identity.
    let leftover = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .any(|p| std::fs::read_link(p.path().join("ns/net")).map(|l| l.display().to_string() == inode).unwrap_or(false));
    assert!(!leftover, "a process is still running in the lab netns {inode}");
}

/// The daemon's dnsmasq children (by parent PID and name).
fn dnsmasq_children(daemon_pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|p| p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ..."
            let comm_ok = stat.contains("(dnsmasq)");
            let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
            comm_ok && ppid == Some(daemon_pid)
        })
        .collect()
}

#[test]
fn the_supervised_dnsmasq_is_restarted_when_it_dies() {
    vm_lab::prepare();
    in_lab_netns(1, || async {
        let lab = VmLab::start(VmOptions { vms: 0, ..VmOptions::default() }).await;
        let pid = lab.daemon.pid().expect("daemon pid");
        let first = wait_for(|| dnsmasq_children(pid).first().copied(), "dnsmasq to start").await;
        assert!(Command::new("kill").args(["-KILL", &first.to_string()]).status().expect("kill").success());
        let second = wait_for(|| dnsmasq_children(pid).into_iter().find(|p| *p != first), "dnsmasq to be restarted").await;
        assert_ne!(first, second);
        assert!(lab.daemon.log().contains("dnsmasq exited: restarting"), "{}", lab.daemon.log());
    });
}

#[test]
fn a_hosts_dir_dnsmasq_cannot_reach_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tmp"); // 0700: `nobody` cannot get in
    let config = dir.path().join("metalhost.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}/data\"\ntoken = \"t0123456789abcdef\"\n[netboot]\ndnsmasq = true\n", dir.path().display()),
    )
    .expect("config");
    let out = Command::new(metalhost_tests::paths::host_binary("metalhost"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run metalhost serve");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the daemon must not run with an unreachable hosts dir:\n{text}");
    assert!(text.contains("dnsmasq runs as nobody and cannot reach the hosts dir") && text.contains("hosts_dir"), "{text}");
}

async fn wait_for<T>(mut probe: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PXE firmware that is not iPXE (no DHCP option 175) is handed `undionly.kpxe`, and the supervised
/// dnsmasq serves it over TFTP. QEMU's NIC ROM already is iPXE, so a DHCP/TFTP client on a veth
/// into the bridge plays that firmware.
#[test]
fn plain_pxe_firmware_gets_undionly_kpxe_over_tftp() {
    const UNDIONLY: &str = "/usr/lib/ipxe/undionly.kpxe";
    vm_lab::prepare();
    let tftp = tempfile::tempdir().expect("tmp");
    // dnsmasq serves TFTP as nobody: the tree must be readable by others.
    std::fs::set_permissions(tftp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::copy(UNDIONLY, tftp.path().join("undionly.kpxe")).expect("copy undionly.kpxe (apt install ipxe)");
    let tftp_root = tftp.path().to_owned();
    in_lab_netns(0, move || async move {
        let netboot_extra = format!("tftp_root = \"{}\"", tftp_root.display());
        let lab = VmLab::start(VmOptions { vms: 0, netboot_extra, ..VmOptions::default() }).await;
        wait_for(|| lab.daemon.log().contains("TFTP root is").then_some(()), "dnsmasq's TFTP server").await;

        // The "firmware": its own netns, a veth into br0, busybox udhcpc (sends no option 175).
        let client = Netns::create(&format!("mhpxe{}", std::process::id())).expect("client netns");
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip");
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ip(&["link", "add", "vpxe0", "type", "veth", "peer", "name", "eth0", "netns", &client.name]);
        ip(&["link", "set", "vpxe0", "master", "br0", "up"]);
        ip(&["netns", "exec", &client.name, "ip", "link", "set", "eth0", "address", "52:54:00:00:ee:01", "up"]);
        let script = lab.dir.path().join("udhcpc.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nip addr add \"$ip/$mask\" dev \"$interface\"\necho \"OFFER boot_file=$boot_file siaddr=$siaddr\"\n",
        )
        .expect("script");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let in_client = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &client.name])
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run in client netns")
        };
        let dhcp = in_client(&["busybox", "udhcpc", "-i", "eth0", "-q", "-f", "-n", "-t", "5", "-T", "1", "-s", script.to_str().expect("utf8")]);
        let said = String::from_utf8_lossy(&dhcp.stdout).into_owned() + &String::from_utf8_lossy(&dhcp.stderr);
        assert!(said.contains("OFFER boot_file=undionly.kpxe siaddr=10.99.0.1"), "{said}\n{}", lab.daemon.log());

        let fetched = lab.dir.path().join("fetched.kpxe");
        let tftp = in_client(&["busybox", "tftp", "-g", "-r", "undionly.kpxe", "-l", fetched.to_str().expect("utf8"), "10.99.0.1"]);
        assert!(tftp.status.success(), "tftp: {}\n{}", String::from_utf8_lossy(&tftp.stderr), lab.daemon.log());
        assert_eq!(std::fs::read(&fetched).expect("fetched"), std::fs::read(UNDIONLY).expect("source"), "TFTP served other bytes");
    });
}
