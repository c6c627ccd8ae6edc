//! The dnsmasq netboot plugin through the plugin runtime: it writes and removes dhcp-host entries
//! and iPXE scripts atomically in its granted dirs only, and asks the host to reload dnsmasq.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use metalhost_plugin_host::{BootEntry, DriverError, PluginHost, PluginKind, PluginSpec};
use metalhost_tests::paths::plugin_wasm;

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
        name: "dnsmasq".into(),
        kind: PluginKind::Netboot,
        path: plugin_wasm("dnsmasq"),
        sha256: None,
        exec: vec![],
        dirs: vec![hosts.clone(), scripts.clone()],
        memory_mb: 32,
        call_timeout_s: 10,
        config: [
            ("hostsdir".to_owned(), hosts.display().to_string()),
            ("scriptsdir".to_owned(), scripts.display().to_string()),
        ]
        .into(),
    };
    let status = host.load(&[spec.clone()]).await;
    assert!(status[0].loaded, "{:?}", status[0].error);
    let driver = host.netboot("dnsmasq").expect("driver");

    driver.put_host(&entry("52:54:00:AA:00:01", "node1")).await.expect("put");
    let host_file = std::fs::read_to_string(hosts.join("52-54-00-aa-00-01")).expect("host entry");
    assert_eq!(host_file, "52:54:00:aa:00:01,set:metalhost,10.99.0.11,node1\n");
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
