//! The dnsmasq netboot plugin through the plugin runtime: it writes and removes dhcp-host entries
//! and iPXE scripts atomically in its granted dirs only, and asks the host to reload dnsmasq; a real
//! dnsmasq in a private netns serves what it writes and forgets what it removes.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metalhost_conformance::sims::dnsmasq::Dnsmasq;
use metalhost_conformance::sims::netns::Netns;
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
        config: [("hostsdir".to_owned(), hosts.display().to_string()), ("scriptsdir".to_owned(), scripts.display().to_string())].into(),
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
    for bad in [
        entry("52:54:00:aa:00:02", "node2\ndhcp-boot=evil"),
        entry("../../etc/x", "n"),
        BootEntry { kernel_args: "a\nshell".into(), ..entry("52:54:00:aa:00:03", "n3") },
    ] {
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

    let netns = Netns::with_bridge(&format!("mhnb{}", std::process::id())).expect("lab netns (needs root and iproute2)");
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
    let mut dnsmasq = Dnsmasq::run(&netns.name, &conf, root.path().join("dnsmasq.log")).expect("start dnsmasq (apt install dnsmasq-base)");

    let host = PluginHost::new(&root.path().join("cache")).expect("runtime");
    let pid = dnsmasq.pid().to_string();
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
    let before = tokio::task::block_in_place(|| netns.dhcp_lease(mac).expect("dhcp probe"));
    assert!(before.as_deref().is_some_and(|ip| ip.starts_with("10.99.0.1") && ip != "10.99.0.11"), "{before:?}\n{}", dnsmasq.log());

    driver.put_host(&entry(mac, "node1")).await.expect("put");
    dnsmasq.wait_log("52-54-00-aa-00-01", Duration::from_secs(5)).expect("dnsmasq read the entry");
    let reserved = tokio::task::block_in_place(|| netns.dhcp_lease(mac).expect("dhcp probe"));
    assert_eq!(reserved.as_deref(), Some("10.99.0.11"), "dnsmasq log:\n{}", dnsmasq.log());

    driver.remove_host(mac).await.expect("remove");
    // The SIGHUP is handled asynchronously: ask again for a little while. Without the reload
    // dnsmasq would keep serving the deleted reservation forever (inotify does not drop it), so this still fails.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let lease = tokio::task::block_in_place(|| netns.dhcp_lease(mac).expect("dhcp probe"));
        if lease.as_deref() != Some("10.99.0.11") || Instant::now() > deadline {
            break lease;
        }
    };
    assert!(after.as_deref().is_some_and(|ip| ip != "10.99.0.11"), "still reserved after removal: {after:?}\n{}", dnsmasq.log());
    assert!(dnsmasq.alive(), "dnsmasq died after the SIGHUP:\n{}", dnsmasq.log());
}
