//! The netboot suite: `put-host` and `remove-host` against a real dnsmasq in a private network
//! namespace (a DHCP client must get the reservation, then lose it after removal and the reload
//! the plugin asks for), the iPXE script where the daemon serves it from, and input validation.
//! The plugin gets only its two granted dirs, passed as config `hostsdir` and `scriptsdir`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metalhost_plugin_host::{BootEntry, CallError, DriverError, NetbootDriver};

use crate::sims::dnsmasq::Dnsmasq;
use crate::sims::netns::Netns;
use crate::{Check, Error, Options, Report, load};

const MAC: &str = "52:54:00:aa:00:01";
const RESERVED_IP: &str = "10.99.0.11";
/// The daemon serves `GET /v1/boot/nodes/<mac:hexhyp>.ipxe` from the scripts dir by this name.
const SCRIPT: &str = "52-54-00-aa-00-01.ipxe";

fn entry(hostname: &str) -> BootEntry {
    BootEntry {
        mac: MAC.into(),
        ip: RESERVED_IP.into(),
        hostname: hostname.into(),
        kernel_url: "http://10.99.0.1:8080/v1/bootstrap/vmlinuz".into(),
        initrd_url: "http://10.99.0.1:8080/v1/bootstrap/initrd.gz".into(),
        kernel_args: "console=ttyS0 metalhost.api=http://10.99.0.1:8080".into(),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").map(|r| r.split_whitespace().nth(1) == Some("0"))))
        .unwrap_or(false)
}

/// Names of the files in `dir`, dot-files included.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn shown(e: CallError) -> String {
    e.to_string()
}

/// DHCP until `done` says the lease is what we wait for, for a few seconds (dnsmasq picks up
/// hostsdir changes through inotify, and a SIGHUP asynchronously).
fn lease_until(netns: &Netns, done: impl Fn(Option<&str>) -> bool) -> Result<Option<String>, Error> {
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let lease = netns.dhcp_lease(MAC)?;
        if done(lease.as_deref()) || Instant::now() > deadline {
            return Ok(lease);
        }
    }
}

pub async fn run(opts: &Options, report: &mut Report) -> Result<(), Error> {
    if !is_root() {
        return Err(Error::Setup("the netboot suite needs root: it creates a network namespace for dnsmasq".into()));
    }
    let root = tempfile::tempdir().map_err(|e| Error::Setup(format!("temp dir: {e}")))?;
    // dnsmasq drops to "nobody" and reads the hosts dir from then on.
    std::fs::set_permissions(root.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(|e| Error::Setup(format!("chmod: {e}")))?;
    let (hosts, scripts) = (root.path().join("hosts"), root.path().join("scripts"));
    for dir in [&hosts, &scripts] {
        std::fs::create_dir_all(dir).map_err(|e| Error::Setup(format!("create {}: {e}", dir.display())))?;
    }
    let netns = Netns::with_bridge(&format!("mhct{}", std::process::id()))?;
    let mut dnsmasq = Dnsmasq::start(&netns.name, root.path(), &hosts)?;

    let mut config = opts.config.clone();
    config.insert("hostsdir".into(), hosts.display().to_string());
    config.insert("scriptsdir".into(), scripts.display().to_string());
    let Some(loaded) = load(opts, Vec::new(), vec![hosts.clone(), scripts.clone()], config, report).await? else { return Ok(()) };
    let reloads = Arc::new(AtomicUsize::new(0));
    let (counter, pid) = (reloads.clone(), dnsmasq.pid().to_string());
    loaded.host.set_netboot_reload(Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let status = Command::new("kill").args(["-HUP", &pid]).status().map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err(format!("kill -HUP {pid}: {status}")) }
    }));
    let driver = loaded.host.netboot(&loaded.name).map_err(|e| Error::Setup(e.to_string()))?;

    check_put_host(&driver, &netns, &hosts, &scripts, report).await?;
    check_refuses_injection(&driver, &hosts, &scripts, report).await;
    check_remove_host(&driver, &netns, &mut dnsmasq, &scripts, &reloads, report).await?;
    drop(dnsmasq);
    drop(netns);
    Ok(())
}

/// `put-host`: dnsmasq serves the reservation, the iPXE script is where the daemon serves it from,
/// and a second call replaces the first.
async fn check_put_host(driver: &NetbootDriver<'_>, netns: &Netns, hosts: &Path, scripts: &Path, report: &mut Report) -> Result<(), Error> {
    let started = Instant::now();
    let out = driver.put_host(&entry("node1")).await;
    let elapsed = started.elapsed();
    let outcome = match out {
        Err(e) => Err(shown(e)),
        Ok(()) => match lease_until(netns, |l| l == Some(RESERVED_IP))? {
            Some(ip) if ip == RESERVED_IP => Ok(format!("dnsmasq leases {ip} to {MAC}")),
            other => {
                Err(format!("dnsmasq does not serve the reservation: {MAC} got {other:?}, expected {RESERVED_IP} (hosts dir: {:?})", files(hosts)))
            }
        },
    };
    report.push(Check::new("put-host (dnsmasq serves the reservation)", outcome, Some(elapsed)));

    let script = std::fs::read_to_string(scripts.join(SCRIPT)).unwrap_or_default();
    let e = entry("node1");
    report.push(
        if script.starts_with("#!ipxe") && script.contains(&e.kernel_url) && script.contains(&e.initrd_url) && script.contains(&e.kernel_args) {
            Check::pass("put-host (iPXE script)", format!("{SCRIPT} boots the kernel and initrd with the args"), None)
        } else {
            Check::fail(
                "put-host (iPXE script)",
                format!("scripts dir must hold {SCRIPT}: #!ipxe, kernel URL + args, initrd URL (it has {:?})", files(scripts)),
                None,
            )
        },
    );

    let started = Instant::now();
    let out = driver.put_host(&entry("node1-renamed")).await;
    report.push(Check::new("put-host (replace)", out.map(|()| "replaced".into()).map_err(shown), Some(started.elapsed())));

    Ok(())
}

/// A hostname holding a dnsmasq directive is refused as invalid-config and writes nothing.
async fn check_refuses_injection(driver: &NetbootDriver<'_>, hosts: &Path, scripts: &Path, report: &mut Report) {
    let before = (files(hosts), files(scripts));
    let started = Instant::now();
    let out = driver.put_host(&BootEntry { mac: "52:54:00:aa:00:02".into(), ..entry("node2\ndhcp-boot=evil") }).await;
    let elapsed = started.elapsed();
    let outcome = match out {
        Ok(()) => Err("a hostname holding a newline (a dnsmasq directive) was accepted".into()),
        Err(e) if !matches!(e.driver(), Some(DriverError::InvalidConfig(_))) => Err(format!("wrong error mapping: expected invalid-config, got {e}")),
        Err(_) if (files(hosts), files(scripts)) != before => Err("refused, but files were written".into()),
        Err(e) => Ok(e.to_string()),
    };
    report.push(Check::new("put-host refuses injection (invalid-config)", outcome, Some(elapsed)));

    let leftovers: Vec<String> = files(hosts).into_iter().chain(files(scripts)).filter(|f| f.starts_with('.')).collect();
    report.push(if leftovers.is_empty() {
        Check::pass("no temp files left", "no dot-files in the granted dirs", None)
    } else {
        Check::fail("no temp files left", format!("left behind: {leftovers:?}"), None)
    });
}

/// `remove-host`: the reservation is forgotten after the reload the plugin asks for, and removing
/// what is not there is fine.
async fn check_remove_host(
    driver: &NetbootDriver<'_>,
    netns: &Netns,
    dnsmasq: &mut Dnsmasq,
    scripts: &Path,
    reloads: &AtomicUsize,
    report: &mut Report,
) -> Result<(), Error> {
    let started = Instant::now();
    let out = driver.remove_host(MAC).await;
    let elapsed = started.elapsed();
    let outcome = match out {
        Err(e) => Err(shown(e)),
        Ok(()) if reloads.load(Ordering::SeqCst) == 0 => {
            Err("remove-host must ask the host to reload dnsmasq (service.reload): deleted reservations stay served until then".into())
        }
        Ok(()) if scripts.join(SCRIPT).exists() => Err(format!("{SCRIPT} is still there")),
        Ok(()) => match lease_until(netns, |l| l != Some(RESERVED_IP))? {
            Some(ip) if ip == RESERVED_IP => Err(format!("dnsmasq still leases the reservation {ip} after removal")),
            lease if !dnsmasq.alive() => Err(format!("dnsmasq died after the reload (lease {lease:?}): {}", dnsmasq.log())),
            lease => Ok(format!("reservation forgotten ({MAC} now gets {lease:?})")),
        },
    };
    report.push(Check::new("remove-host (dnsmasq forgets it)", outcome, Some(elapsed)));

    let started = Instant::now();
    let out = driver.remove_host(MAC).await;
    report.push(Check::new("remove-host (nothing there is fine)", out.map(|()| "ok".into()).map_err(shown), Some(started.elapsed())));
    Ok(())
}
