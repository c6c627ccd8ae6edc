//! The QEMU lab driven by the real daemon: real VMs PXE-boot the real bootstrap image through the
//! daemon's supervised dnsmasq, run the real musl agent and boot the deployed OS from disk.
//!
//! Everything lives in a private network namespace made for the lab (`tests/lab/netns-up.sh`:
//! bridge br0 10.99.0.1/24 + fd99::1/64, one tap per VM, nothing routed out). The test thread
//! itself enters it, so the daemon (listening on 10.99.0.1), dnsmasq, the ipmi_sim BMCs, the
//! fake-switches switch and every VM the BMCs start are in it, and the test reaches them all. Each
//! BMC's power-on runs `tests/lab/qemu-vm.sh` with the BMC's boot device (pxe → iPXE, disk → the
//! disk), and power-off kills that VM. Tearing the namespace down stops whatever still runs in it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::fake_switch::FakeSwitch;
use crate::ipmi_sim::IpmiSim;
use crate::paths;
use crate::switch_follower::{self, SwitchFollower};

pub const BMC_PASSWORD: &str = "vm-lab-bmc-pw";
pub const SWITCH_PASSWORD: &str = "vm-lab-switch-pw";
/// Each VM's disk (the demo OS image is 32 MiB).
pub const DISK_BYTES: u64 = 64 << 20;
/// What the demo OS prints on ttyS0 once it has booted from disk.
pub const OS_MARKER: &str = "metalhost-demo-os: booted";
/// The LLDP chassis id the lab's switch is registered with (what a test's LLDP frames announce).
pub const SWITCH_CHASSIS_ID: &str = "02:00:00:99:00:01";
pub const PROVISIONING_VLAN: u16 = 100;
pub const TENANT_VLAN: u16 = 200;

/// br0: the provisioning VLAN's bridge (10.99.0.1), the one netns-up.sh makes.
pub const HOME_BRIDGE: &str = "br0";

/// The switch port cabled to tap `n` (tap0 is ge-0/0/1, the first node's port; the emulator has
/// ge-0/0/1..4).
pub fn switch_port_of_tap(n: usize) -> String {
    format!("ge-0/0/{}", n + 1)
}

/// (switch port, tap) for each of this netns's taps in br0 (call it before anything moves them).
fn cables() -> Vec<(String, String)> {
    let mut taps: Vec<usize> =
        switch_follower::tap_vlans(HOME_BRIDGE, PROVISIONING_VLAN).keys().filter_map(|t| t.strip_prefix("tap")?.parse().ok()).collect();
    taps.sort_unstable();
    // fake-switches' Juniper models have four ge- ports: more taps stay on br0.
    taps.into_iter().filter(|n| *n < 4).map(|n| (switch_port_of_tap(n), format!("tap{n}"))).collect()
}

/// A lab network namespace; on drop every process still in it is stopped and it is deleted.
pub struct LabNetns {
    pub name: String,
}

impl LabNetns {
    /// A new namespace with `taps` taps (tap0..), named after this process so parallel runs differ.
    pub fn create(taps: usize) -> LabNetns {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("mhvm{}-{}", std::process::id(), COUNT.fetch_add(1, Ordering::SeqCst));
        let out =
            Command::new(paths::workspace_root().join("tests/lab/netns-up.sh")).args([&name, &taps.to_string()]).output().expect("run netns-up.sh");
        assert!(out.status.success(), "netns-up.sh {name}: {}", String::from_utf8_lossy(&out.stderr));
        LabNetns { name }
    }

    /// Moves the calling thread into this namespace (see `enter_netns`).
    pub fn enter_this_thread(&self) {
        enter_netns(&self.name);
    }

    pub fn exists(name: &str) -> bool {
        Path::new("/run/netns").join(name).exists()
    }
}

/// Moves the calling thread, and only it, into the named namespace: the sockets it opens and the
/// processes it starts from now on live there.
#[allow(unsafe_code)]
pub fn enter_netns(name: &str) {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/run/netns/{name}")).expect("open the netns");
    // SAFETY: setns(2) takes a valid open fd and a flag; it changes only this thread's netns.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {name}: {}", std::io::Error::last_os_error());
}

impl Drop for LabNetns {
    fn drop(&mut self) {
        let _ = Command::new(paths::workspace_root().join("tests/lab/netns-down.sh")).arg(&self.name).status();
    }
}

/// Runs `body` on a new thread inside a new lab namespace with `taps` taps, on that thread's own
/// single-threaded runtime (so every socket and child stays in the namespace). The namespace and
/// everything in it are removed when `body` ends, also when it panics; the panic is re-raised.
/// Returns the namespace's name, so callers can check it is gone.
pub fn in_lab_netns<F, Fut>(taps: usize, body: F) -> String
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let netns = LabNetns::create(taps);
    let name = netns.name.clone();
    let inside = name.clone();
    let result = std::thread::Builder::new()
        .name(format!("lab-{name}"))
        .spawn(move || {
            enter_netns(&inside);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(body());
        })
        .expect("spawn the lab thread")
        .join();
    drop(netns);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    name
}

/// Builds what the lab needs (host binaries, plugins, the musl agent, the bootstrap image, the demo
/// OS). Call it before `in_lab_netns`: the namespace has no way out to the package registries.
pub fn prepare() {
    paths::host_binary("metalhost");
    paths::plugin_wasm("dnsmasq");
    paths::musl_agent();
    paths::demo_os_image();
}

pub struct VmNode {
    pub id: i64,
    pub name: String,
    pub mac: String,
    pub ip: String,
    pub port: String,
    pub sim: IpmiSim,
    pub disk: PathBuf,
    /// The VM's serial console, appended across power cycles.
    pub serial: PathBuf,
    /// With SOL: the wire between the BMC's serial port and the VM's (`tests/lab/serial_wire.py`).
    _wire: Option<SerialWire>,
}

/// `tests/lab/serial_wire.py`, killed by PID on drop.
struct SerialWire(std::process::Child);

impl SerialWire {
    /// ipmi_sim connects to `bmc_port`; the wire connects to the VM's QEMU on `vm_port`.
    fn start(bmc_port: u16, vm_port: u16) -> SerialWire {
        let child = Command::new("python3")
            .arg(paths::workspace_root().join("tests/lab/serial_wire.py"))
            .args([bmc_port.to_string(), vm_port.to_string()])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start tests/lab/serial_wire.py");
        // Listening before ipmi_sim first connects.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", bmc_port)).is_err() {
            assert!(Instant::now() < deadline, "serial_wire.py did not listen on {bmc_port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        SerialWire(child)
    }
}

impl Drop for SerialWire {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl VmNode {
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// How many times the deployed OS has booted on this VM.
    pub fn os_boots(&self) -> usize {
        self.console().matches(OS_MARKER).count()
    }

    /// Waits until the deployed OS has booted `count` times in all; returns the console.
    pub async fn wait_os_boots(&self, count: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let console = self.console();
            if console.matches(OS_MARKER).count() >= count {
                return console;
            }
            assert!(Instant::now() < deadline, "{}: the deployed OS did not boot within {timeout:?}; console:\n{console}", self.name);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The first `len` bytes of the VM's disk.
    pub fn disk_head(&self, len: usize) -> Vec<u8> {
        use std::io::Read;
        let mut bytes = vec![0u8; len];
        let mut file = std::fs::File::open(&self.disk).expect("open disk");
        file.read_exact(&mut bytes).expect("read disk");
        bytes
    }
}

/// A TCP port nobody listens on right now (in the lab netns: the test thread is in it).
fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("probe a free tcp port")
}

pub struct VmOptions {
    pub vms: usize,
    /// How long the agent has to write (or clean) the disk.
    pub agent_timeout_s: u64,
    /// Destroy without the cleaning boot (benchmarks that only measure deploys).
    pub skip_clean: bool,
    /// More `[netboot]` settings, e.g. `tftp_root = "..."`.
    pub netboot_extra: String,
    /// The nodes' power plugin: `ipmi-lan` (RMCP+ in the sandbox) or `ipmitool`; both are loaded.
    pub power_driver: &'static str,
    /// Each VM's serial console also on a TCP port its BMC's Serial over LAN reaches (needs the
    /// `ipmi-lan` driver, which describes the console; QEMU waits for the BMC to connect).
    pub sol: bool,
    /// Each VM's CPUs and memory (QEMU `-smp`, `-m`).
    pub smp: u32,
    pub mem_mb: u32,
    /// Which VMs (by index) boot OVMF instead of SeaBIOS.
    pub uefi: Vec<usize>,
    /// More daemon config: whole sections (`[inspection]`, `[discovery]`).
    pub extra_config: String,
    /// Each tap follows its switch port's VLAN (`switch_follower`): a node on the tenant VLAN
    /// no longer shares a segment with br0 (dnsmasq, the daemon) or with other VLANs' nodes.
    /// Off, every tap stays on br0 whatever the switch says.
    pub follow_switch: bool,
    /// Each VM's disk (a sparse file), in bytes.
    pub disk_bytes: u64,
}

impl Default for VmOptions {
    fn default() -> Self {
        VmOptions {
            vms: 2,
            agent_timeout_s: 300,
            skip_clean: false,
            netboot_extra: String::new(),
            power_driver: "ipmitool",
            smp: 1,
            mem_mb: 512,
            uefi: Vec::new(),
            extra_config: String::new(),
            sol: false,
            follow_switch: true,
            disk_bytes: DISK_BYTES,
        }
    }
}

/// A VM nobody enrolled, PXE-booting on its own (no BMC); stopped by PID on drop.
pub struct UnknownVm {
    pub mac: String,
    pub serial: PathBuf,
    child: std::process::Child,
}

impl UnknownVm {
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// Whether QEMU has ended (the guest powered off).
    pub fn ended(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for UnknownVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lab: the daemon, one switch, `vms` VMs behind their BMCs. Must be started inside a lab
/// namespace (`in_lab_netns`) with at least `vms` taps.
pub struct VmLab {
    /// Dropped first: it reads the switch.
    pub follower: Option<SwitchFollower>,
    pub daemon: Daemon,
    pub switch: FakeSwitch,
    pub nodes: Vec<VmNode>,
    pub dir: tempfile::TempDir,
}

impl VmLab {
    pub async fn start(opts: VmOptions) -> VmLab {
        let dir = tempfile::tempdir().expect("tmp");
        // dnsmasq drops to `nobody` and must reach its hosts dir (a fresh temp dir is 0700).
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let hosts = dir.path().join("netboot/hosts");
        let scripts = dir.path().join("netboot/scripts");
        let switch = FakeSwitch::start("juniper_generic", "admin", SWITCH_PASSWORD);
        let follower = opts
            .follow_switch
            .then(cables)
            .filter(|cables| !cables.is_empty())
            .map(|cables| SwitchFollower::start(&switch, &cables, HOME_BRIDGE, PROVISIONING_VLAN));
        let config = format!(
            r#"listen = "10.99.0.1:0"

[agent]
binary = "{agent}"
poll_interval_s = 1
heartbeat_interval_s = 2
heartbeat_timeout_s = 60

[network]
provisioning_vlan = {PROVISIONING_VLAN}
tenant_vlan = {TENANT_VLAN}

[deploy]
netboot_plugin = "dnsmasq"
step_timeout_s = 60
agent_timeout_s = {agent_timeout}
clean_timeout_s = {agent_timeout}
skip_clean = {skip_clean}

[netboot]
bootstrap_dir = "{bootstrap}"
dnsmasq = true
interface = "br0"
hosts_dir = "{hosts}"
scripts_dir = "{scripts}"
{netboot_extra}

{extra_config}

{plugins}
[[plugin]]
name = "dnsmasq"
kind = "netboot"
path = "{dnsmasq}"
dirs = ["{hosts}", "{scripts}"]
config = {{ hostsdir = "{hosts}", scriptsdir = "{scripts}" }}
"#,
            agent = paths::musl_agent().display(),
            agent_timeout = opts.agent_timeout_s,
            skip_clean = opts.skip_clean,
            netboot_extra = opts.netboot_extra,
            extra_config = opts.extra_config,
            bootstrap = paths::bootstrap_dir().display(),
            hosts = hosts.display(),
            scripts = scripts.display(),
            plugins = paths::lab_plugins_toml(),
            dnsmasq = paths::plugin_wasm("dnsmasq").display(),
        );
        let daemon = Daemon::start_with(&config);
        let (status, sw) = daemon
            .post(
                "/v1/switches",
                &json!({"name": "tor1", "address": "127.0.0.1", "port": switch.port, "username": "admin",
                        "password": SWITCH_PASSWORD, "driver": "juniper", "chassis_id": SWITCH_CHASSIS_ID}),
            )
            .await;
        assert_eq!(status, 201, "{sw}");
        let qemu_vm = paths::workspace_root().join("tests/lab/qemu-vm.sh");
        let mut nodes = Vec::new();
        for i in 1..=opts.vms {
            // With SOL, the BMC's serial port is wired to the VM's for good (a QEMU per power cycle).
            let sol_port = opts.sol.then(free_tcp_port);
            let wire = sol_port.map(|vm_port| {
                let bmc_port = free_tcp_port();
                (bmc_port, SerialWire::start(bmc_port, vm_port))
            });
            let sim = match &wire {
                Some((bmc_port, _)) => IpmiSim::start_with_sol("admin", BMC_PASSWORD, *bmc_port),
                None => IpmiSim::start("admin", BMC_PASSWORD),
            };
            let serial_tcp = sol_port.map(|p| format!(" --serial-tcp {p}")).unwrap_or_default();
            let name = format!("vm{i}");
            let mac = format!("52:54:00:00:99:{i:02x}");
            let ip = format!("10.99.0.{}", 10 + i);
            let disk = dir.path().join(format!("{name}.disk"));
            std::fs::File::create(&disk).and_then(|f| f.set_len(opts.disk_bytes)).expect("disk");
            let serial = dir.path().join(format!("{name}.serial"));
            // Foreground on purpose: the hook kills this PID on power-off and sees a guest
            // poweroff as the process ending.
            let uefi =
                if opts.uefi.contains(&(i - 1)) { format!(" --uefi {}", dir.path().join(format!("{name}.vars")).display()) } else { String::new() };
            sim.on_power_on(&format!(
                "#!/bin/sh\nexec {} \"$1\" --name {name} --net tap:tap{} --mac {mac} --disk {} --serial {} --smp {} --mem {}{uefi}{serial_tcp}\n",
                qemu_vm.display(),
                i - 1,
                disk.display(),
                serial.display(),
                opts.smp,
                opts.mem_mb
            ));
            let port = switch_port_of_tap(i - 1);
            let (status, node) = daemon
                .post(
                    "/v1/nodes",
                    &json!({"name": name, "mac": mac, "ip": ip, "cpus": 1, "ram_mb": 512, "disk_gb": 1,
                            "bmc_address": "127.0.0.1", "bmc_port": sim.port, "bmc_username": "admin",
                            "bmc_password": BMC_PASSWORD, "power_driver": opts.power_driver, "switch_id": sw["id"],
                            "switch_port": port}),
                )
                .await;
            assert_eq!(status, 201, "{node}");
            assert_eq!(node["state"], "available", "{node}");
            let _wire = wire.map(|(_, wire)| wire);
            nodes.push(VmNode { id: node["id"].as_i64().expect("id"), name, mac, ip, port, sim, disk, serial, _wire });
        }
        VmLab { follower, daemon, switch, nodes, dir }
    }

    /// Starts a VM with a MAC no node has on tap `tap`, PXE-booting (as an unknown machine that
    /// someone just cabled and powered on), with the lab's CPUs and memory and a disk of DISK_BYTES.
    pub fn boot_unknown(&self, tap: usize, mac: &str, smp: u32, mem_mb: u32) -> UnknownVm {
        let name = format!("unknown{tap}");
        let disk = self.dir.path().join(format!("{name}.disk"));
        std::fs::File::create(&disk).and_then(|f| f.set_len(DISK_BYTES)).expect("disk");
        let serial = self.dir.path().join(format!("{name}.serial"));
        let child = Command::new(paths::workspace_root().join("tests/lab/qemu-vm.sh"))
            .arg("pxe")
            .args(["--name", &name, "--net", &format!("tap:tap{tap}"), "--mac", mac, "--smp", &smp.to_string(), "--mem", &mem_mb.to_string()])
            .arg("--disk")
            .arg(&disk)
            .arg("--serial")
            .arg(&serial)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start qemu-vm.sh");
        UnknownVm { mac: mac.to_owned(), serial, child }
    }

    /// Uploads a file as an image through the CLI; returns its JSON.
    pub fn upload(&self, name: &str, path: &Path) -> Value {
        let out = self.daemon.cli(&["image", "add", path.to_str().expect("utf8"), "--name", name, "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// The demo OS image, gzip-compressed into the lab dir (what a vendor would ship); returns
    /// the raw image's bytes and the compressed file.
    pub fn demo_os_gz(&self) -> (Vec<u8>, PathBuf) {
        let raw = paths::demo_os_image();
        let gz = self.dir.path().join("demo-os.img.gz");
        if !gz.exists() {
            let out = Command::new("gzip").arg("-1").arg("-c").arg(&raw).output().expect("gzip");
            assert!(out.status.success(), "gzip failed");
            std::fs::write(&gz, out.stdout).expect("write gz");
        }
        (std::fs::read(&raw).expect("read image"), gz)
    }

    /// Each tap's VLAN as the kernel has it (which bridge it is in; see `switch_follower`).
    pub fn tap_vlans(&self) -> BTreeMap<String, u16> {
        switch_follower::tap_vlans(HOME_BRIDGE, PROVISIONING_VLAN)
    }

    /// Waits until the follower has put each tap on the VLAN `want` names (tap → VLAN); returns
    /// the kernel's table then. Panics after `timeout`, or at once without a follower.
    pub async fn wait_taps_on(&self, want: &BTreeMap<String, u16>, timeout: Duration) -> BTreeMap<String, u16> {
        let follower = self.follower.as_ref().expect("this lab does not follow its switch (VmOptions::follow_switch)");
        let deadline = Instant::now() + timeout;
        loop {
            let applied = follower.applied();
            if want.iter().all(|(tap, vlan)| applied.get(tap) == Some(vlan)) {
                return self.tap_vlans();
            }
            assert!(follower.errors().is_empty(), "switch follower: {:?}", follower.errors());
            assert!(Instant::now() < deadline, "taps not on {want:?} within {timeout:?}: {applied:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn node(&self, name: &str) -> &VmNode {
        self.nodes.iter().find(|n| n.name == name).expect("lab node")
    }

    /// The node's events, oldest first.
    pub async fn events(&self, node: &str) -> Vec<Value> {
        let (_, events) = self.daemon.get(&format!("/v1/nodes/{node}/events")).await;
        events.as_array().cloned().unwrap_or_default()
    }

    /// What to show when something went wrong: each VM's console and the daemon log's tail.
    pub fn post_mortem(&self) -> String {
        let mut text = String::new();
        for n in &self.nodes {
            let qemu = std::fs::read_to_string(n.serial.with_extension("serial.qemu")).unwrap_or_default();
            text.push_str(&format!(
                "--- {} console ---\n{}\n--- {} BMC hook ---\n{}\n--- {} BMC calls ---\n{}\n--- {} qemu ---\n{qemu}\n",
                n.name,
                n.console(),
                n.name,
                n.sim.hook_log(),
                n.name,
                n.sim.calls(),
                n.name
            ));
        }
        if let Some(follower) = &self.follower {
            text.push_str(&format!(
                "--- switch follower: taps {:?}, {} moves, errors {:?}; the kernel's {:?} ---\n",
                follower.applied(),
                follower.moves(),
                follower.errors(),
                self.tap_vlans()
            ));
        }
        let log = self.daemon.log();
        let consoles: Vec<&str> = log.lines().filter(|l| l.contains("console") && !l.contains("datagram")).collect();
        text.push_str("--- daemon log: consoles ---\n");
        text.push_str(&consoles.join("\n"));
        text.push('\n');
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        text.push_str("--- daemon log (tail) ---\n");
        for line in tail.iter().rev() {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}
