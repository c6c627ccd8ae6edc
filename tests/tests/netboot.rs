//! The dnsmasq netboot plugin through the plugin runtime: it writes and removes dhcp-host entries
//! and iPXE scripts atomically in its granted dirs only, and asks the host to reload dnsmasq; a real
//! dnsmasq in a private netns serves what it writes and forgets what it removes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metalhost_plugin_host::{BootEntry, DriverError, PluginHost, PluginKind, PluginSpec};
use metalhost_tests::paths::{plugin_spec, workspace_root};

fn entry(mac: &str, hostname: &str) -> BootEntry {
    BootEntry {
        mac: mac.into(),
        ip: "10.99.0.11".into(),
        hostname: hostname.into(),
        kernel_url: "http://10.99.0.1:8080/v1/bootstrap/vmlinuz".into(),
        initrd_url: "http://10.99.0.1:8080/v1/bootstrap/initrd.gz".into(),
        kernel_args: "console=ttyS0 metalhost.api=http://10.99.0.1:8080".into(),
    }
}

#[tokio::test]
async fn writes_and_removes_entries_in_its_dirs_only() {
    let root = tempfile::tempdir().expect("tmp");
    let hosts = root.path().join("hosts");
    let scripts = root.path().join("scripts");
    std::fs::create_dir_all(&hosts).expect("hosts");
    std::fs::create_dir_all(&scripts).expect("scripts");
    let host = PluginHost::new(&root.path().join("cache")).expect("runtime");
    let reloads = Arc::new(AtomicUsize::new(0));
    let counter = reloads.clone();
    host.set_netboot_reload(Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    let spec = PluginSpec {
        dirs: vec![hosts.clone(), scripts.clone()],
        memory_mb: 32,
        call_timeout_s: 10,
        config: [
            ("hostsdir".to_owned(), hosts.display().to_string()),
            ("scriptsdir".to_owned(), scripts.display().to_string()),
        ]
        .into(),
        ..plugin_spec("dnsmasq", PluginKind::Netboot)
    };
    let status = host.load(std::slice::from_ref(&spec)).await;
    assert!(status[0].loaded, "{:?}", status[0].error);
    let driver = host.netboot("dnsmasq").expect("driver");

    driver.put_host(&entry("52:54:00:AA:00:01", "node1")).await.expect("put");
    let host_file = std::fs::read_to_string(hosts.join("52-54-00-aa-00-01")).expect("host entry");
    // No set: tag: dnsmasq 2.90 aborts on SIGHUP with a tagged entry that has a lease.
    assert_eq!(host_file, "52:54:00:aa:00:01,10.99.0.11,node1\n");
    let script = std::fs::read_to_string(scripts.join("52-54-00-aa-00-01.ipxe")).expect("script");
    assert!(script.starts_with("#!ipxe\n") && script.contains("kernel http://10.99.0.1:8080/v1/bootstrap/vmlinuz console=ttyS0 metalhost.api="));
    assert!(script.contains("initrd http://10.99.0.1:8080/v1/bootstrap/initrd.gz\nboot\n"));
    let leftovers: Vec<_> = std::fs::read_dir(&hosts).expect("dir").flatten().filter(|e| e.file_name().to_string_lossy().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temp files left behind");

    // Injection attempts are refused and write nothing.
    for bad in [entry("52:54:00:aa:00:02", "node2\ndhcp-boot=evil"), entry("../../etc/x", "n"), BootEntry { kernel_args: "a\nshell".into(), ..entry("52:54:00:aa:00:03", "n3") }] {
        let err = driver.put_host(&bad).await.expect_err("refused");
        assert!(matches!(err.driver(), Some(DriverError::InvalidConfig(_))), "{err}");
    }
    assert_eq!(std::fs::read_dir(&hosts).expect("dir").count(), 1);

    driver.remove_host("52:54:00:aa:00:01").await.expect("remove");
    assert!(!hosts.join("52-54-00-aa-00-01").exists() && !scripts.join("52-54-00-aa-00-01.ipxe").exists());
    assert_eq!(reloads.load(Ordering::SeqCst), 1, "removal asks for a dnsmasq reload");
    driver.remove_host("52:54:00:aa:00:01").await.expect("removing twice is fine");

    // Pointed at a dir it was not granted, it cannot write there.
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    let sneaky = PluginSpec {
        name: "sneaky".into(),
        config: [("hostsdir".to_owned(), outside.display().to_string()), ("scriptsdir".to_owned(), scripts.display().to_string())].into(),
        ..spec
    };
    assert!(host.load(&[sneaky]).await[0].loaded);
    let err = host.netboot("sneaky").expect("driver").put_host(&entry("52:54:00:aa:00:09", "n9")).await.expect_err("not granted");
    assert!(err.to_string().contains("write"), "{err}");
    assert_eq!(std::fs::read_dir(&outside).expect("dir").count(), 0);
}

/// A private network namespace from tests/lab/netns-up.sh (bridge br0 at 10.99.0.1/24), removed
/// with whatever still runs in it when dropped.
struct Netns(String);

impl Netns {
    fn create(name: String) -> Netns {
        let lab = workspace_root().join("tests/lab");
        let status = Command::new(lab.join("netns-up.sh")).args([&name, "0"]).env("BR_ADDR", "10.99.0.1/24").status().expect("netns-up.sh");
        assert!(status.success(), "netns-up.sh {name} failed (needs root and iproute2)");
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new(workspace_root().join("tests/lab/netns-down.sh")).arg(&self.0).status();
    }
}

/// dnsmasq in the foreground in a netns (tests/lab/dnsmasq-run.sh execs it: the child's PID is
/// dnsmasq's), killed by PID when dropped.
struct Dnsmasq {
    child: Child,
    log: PathBuf,
}

impl Dnsmasq {
    fn start(ns: &str, conf: &Path, log: PathBuf) -> Dnsmasq {
        let out = std::fs::File::create(&log).expect("dnsmasq log");
        let child = Command::new(workspace_root().join("tests/lab/dnsmasq-run.sh"))
            .args([ns, &conf.display().to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("start dnsmasq (apt install dnsmasq-base)");
        let mut d = Dnsmasq { child, log };
        d.wait_log("DHCP, IP range", Duration::from_secs(10));
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(self.child.try_wait().expect("wait").is_none(), "dnsmasq exited:\n{}", self.log());
            assert!(Instant::now() < deadline, "no {needle:?} in the dnsmasq log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DHCP client without a VM (LAB.md `dhcp-probe.sh`): a veth from a throwaway netns into br0,
/// busybox udhcpc with the node's MAC. Returns the address it was offered and acked.
fn dhcp_lease(lab: &str, client: &str, mac: &str) -> Option<String> {
    // The lab end of a deleted veth goes away asynchronously: a fresh name per probe.
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let veth = format!("vnb{}", PROBES.fetch_add(1, Ordering::SeqCst));
    let _ns = Netns::create_client(client);
    let run = |args: &[&str]| {
        let s = Command::new("ip").args(args).status().expect("ip");
        assert!(s.success(), "ip {args:?}");
    };
    run(&["link", "add", &veth, "netns", lab, "type", "veth", "peer", "name", "eth0", "netns", client]);
    run(&["netns", "exec", lab, "ip", "link", "set", &veth, "master", "br0", "up"]);
    run(&["netns", "exec", client, "ip", "link", "set", "eth0", "address", mac]);
    run(&["netns", "exec", client, "ip", "link", "set", "eth0", "up"]);
    let out = Command::new("ip")
        .args(["netns", "exec", client, "busybox", "udhcpc", "-i", "eth0", "-q", "-f", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"])
        .stdin(Stdio::null())
        .output()
        .expect("udhcpc");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().find_map(|l| l.split("lease of ").nth(1)).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned)
}

impl Netns {
    /// A bare namespace (no bridge) for a DHCP client; dropping it removes its end of the veth.
    fn create_client(name: &str) -> Netns {
        let status = Command::new("ip").args(["netns", "add", name]).status().expect("ip netns add");
        assert!(status.success(), "ip netns add {name}");
        Netns(name.to_owned())
    }
}

/// The whole plugin ↔ dnsmasq contract with a real dnsmasq (config from tests/lab/dnsmasq-conf.sh):
/// a reservation the plugin writes is served at once (inotify), and after remove-host, whose
/// service.reload sends SIGHUP, dnsmasq forgets it and the MAC gets a pool address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_dnsmasq_serves_the_reservation_and_forgets_it_after_removal() {
    let root = tempfile::tempdir().expect("tmp");
    // dnsmasq drops to "nobody" and reads the hostsdir from then on: the tree must be readable.
    std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let hosts = root.path().join("hosts");
    let scripts = root.path().join("scripts");
    std::fs::create_dir_all(&hosts).expect("hosts");
    std::fs::create_dir_all(&scripts).expect("scripts");

    let lab = format!("mhnb{}", std::process::id());
    let client = format!("mhnbc{}", std::process::id());
    let netns = Netns::create(lab.clone());
    let conf = root.path().join("dnsmasq.conf");
    let generated = Command::new(workspace_root().join("tests/lab/dnsmasq-conf.sh"))
        .env("HOSTSDIR", &hosts)
        .env("LEASEFILE", root.path().join("dnsmasq.leases"))
        .env("BOOT_URL", "http://10.99.0.1:8080/v1/boot/boot.ipxe")
        .env("RA", "0")
        .output()
        .expect("dnsmasq-conf.sh");
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    std::fs::write(&conf, &generated.stdout).expect("conf");
    let mut dnsmasq = Dnsmasq::start(&netns.0, &conf, root.path().join("dnsmasq.log"));

    let host = PluginHost::new(&root.path().join("cache")).expect("runtime");
    let pid = dnsmasq.child.id().to_string();
    host.set_netboot_reload(Arc::new(move || {
        let status = Command::new("kill").args(["-HUP", &pid]).status().map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("kill -HUP {pid}: {status}")) }
    }));
    let spec = PluginSpec {
        dirs: vec![hosts.clone(), scripts.clone()],
        memory_mb: 32,
        call_timeout_s: 10,
        config: [("hostsdir".to_owned(), hosts.display().to_string()), ("scriptsdir".to_owned(), scripts.display().to_string())].into(),
        ..plugin_spec("dnsmasq", PluginKind::Netboot)
    };
    assert!(host.load(&[spec]).await[0].loaded);
    let driver = host.netboot("dnsmasq").expect("driver");
    let mac = "52:54:00:aa:00:01";

    // Before: a MAC without a reservation gets a pool address.
    let before = tokio::task::block_in_place(|| dhcp_lease(&lab, &client, mac));
    assert!(before.as_deref().is_some_and(|ip| ip.starts_with("10.99.0.1") && ip != "10.99.0.11"), "{before:?}\n{}", dnsmasq.log());

    driver.put_host(&entry(mac, "node1")).await.expect("put");
    dnsmasq.wait_log("52-54-00-aa-00-01", Duration::from_secs(5));
    let reserved = tokio::task::block_in_place(|| dhcp_lease(&lab, &client, mac));
    assert_eq!(reserved.as_deref(), Some("10.99.0.11"), "dnsmasq log:\n{}", dnsmasq.log());

    driver.remove_host(mac).await.expect("remove");
    // The SIGHUP is handled asynchronously: ask again for a little while. Without the reload
    // dnsmasq would keep serving the deleted reservation forever (LAB.md Q3), so this still fails.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let lease = tokio::task::block_in_place(|| dhcp_lease(&lab, &client, mac));
        if lease.as_deref() != Some("10.99.0.11") || Instant::now() > deadline {
            break lease;
        }
    };
    assert!(after.as_deref().is_some_and(|ip| ip != "10.99.0.11"), "still reserved after removal: {after:?}\n{}", dnsmasq.log());
    assert!(dnsmasq.child.try_wait().expect("wait").is_none(), "dnsmasq died after the SIGHUP:\n{}", dnsmasq.log());
}
