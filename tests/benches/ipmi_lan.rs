//! The native IPMI plugin (`ipmi-lan`, RMCP+ in the sandbox) measured two ways, each against a
//! baseline from the same run:
//! - one power-status round trip against one ipmi_sim, native vs the ipmitool plugin (which forks
//!   `ipmitool -I lanplus` per call), through the PluginHost;
//! - a power-sync sweep: get-power-state of many BMCs (default 10,000) simulated by the lab BMC
//!   (`tests/lab/ipmi_bmc.py --bmcs`, several processes) on loopback, through the PluginHost
//!   directly (the daemon's power-sync loop calls the same `PowerDriver`), with bounded concurrency;
//! - the same sweep through the real daemon: as many nodes enrolled over REST, each with its own lab
//!   BMC, and the daemon's own power-sync loop (its default concurrency and jitter) timed from its
//!   "power sync sweep" log line.
//!
//! Run with `bench/ipmi_lan.sh` (release daemon). BENCH_ROUNDS, BENCH_BMCS, BENCH_RESPONDERS,
//! BENCH_CONCURRENCY.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use metalhost_plugin_host::{Bmc, Credentials, PluginHost, PluginKind, PluginSpec, PowerState};
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use metalhost_tests::ipmi_bmc::{LabBmc, LabBmcOptions};
use metalhost_tests::ipmi_sim::IpmiSim;
use metalhost_tests::paths::{plugin_spec, plugin_wasm};
use reqwest::StatusCode;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median_p99(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

async fn host() -> (PluginHost, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(dir.path()).expect("runtime");
    let specs = [
        PluginSpec { exec: vec!["ipmitool".into()], ..plugin_spec("ipmitool", PluginKind::Power) },
        PluginSpec { call_timeout_s: 60, ..plugin_spec("ipmi-lan", PluginKind::Power) },
    ];
    for s in host.load(&specs).await {
        assert!(s.loaded, "{}: {:?}", s.name, s.error);
    }
    (host, dir)
}

/// Median and p99 of `rounds` interleaved status reads of `bmc`, native then ipmitool.
async fn interleaved(host: &PluginHost, bmc: &Bmc, creds: &Credentials, rounds: usize) -> ((f64, f64), (f64, f64)) {
    let (native, tool) = (host.power("ipmi-lan").expect("ipmi-lan"), host.power("ipmitool").expect("ipmitool"));
    for _ in 0..5 {
        assert_eq!(native.get_power_state(bmc, creds).await.expect("native"), PowerState::Off);
        assert_eq!(tool.get_power_state(bmc, creds).await.expect("ipmitool"), PowerState::Off);
    }
    let (mut n, mut t) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        native.get_power_state(bmc, creds).await.expect("native");
        n.push(started.elapsed());
        let started = Instant::now();
        tool.get_power_state(bmc, creds).await.expect("ipmitool");
        t.push(started.elapsed());
    }
    (median_p99(n), median_p99(t))
}

async fn status_round_trip(host: &PluginHost, rounds: usize) {
    let sim = IpmiSim::start("admin", "bench-ipmi-pw");
    let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
    let creds = Credentials { username: "admin".into(), password: "bench-ipmi-pw".into() };
    let ((nm, np), (tm, tp)) = interleaved(host, &bmc, &creds, rounds).await;
    // What every power read costs ipmi_sim whoever asks: it popen()s the lab's chassis hook (a
    // shell script forking date, mkdir, cat), timed here on its own.
    let mut hook = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let out = std::process::Command::new("sh")
            .arg(metalhost_tests::paths::workspace_root().join("tests/lab/chassis-control.sh"))
            .arg(sim.state_dir())
            .args(["0x20", "get", "power"])
            .output()
            .expect("chassis hook");
        hook.push(started.elapsed());
        assert!(String::from_utf8_lossy(&out.stdout).contains("power:0"));
    }
    let (hm, hp) = median_p99(hook);
    println!("power status against one ipmi_sim (suite 3), {rounds} rounds each, interleaved, through the PluginHost:");
    println!("  ipmi-lan (RMCP+ in the sandbox, datagram capability): median {nm:.2} ms, p99 {np:.2} ms");
    println!("  ipmitool plugin (exec ipmitool -I lanplus):          median {tm:.2} ms, p99 {tp:.2} ms");
    println!("  ratio ipmitool/ipmi-lan (median): {:.1}x", tm / nm);
    println!("  ipmi_sim's chassis hook alone (one per power read, paid by both): median {hm:.2} ms, p99 {hp:.2} ms");
    // The same pair against a BMC with no hook (the lab BMC keeps power in memory), suite 3 only so
    // both plugins run the same handshake.
    let lab = LabBmc::start(&LabBmcOptions { suites: "3".into(), password: "bench-ipmi-pw".into(), ..Default::default() });
    let bmc = Bmc { host: "127.0.0.1".into(), port: lab.port };
    let ((nm, np), (tm, tp)) = interleaved(host, &bmc, &creds, rounds).await;
    println!("power status against the lab BMC (suite 3, no hook), {rounds} rounds each, interleaved:");
    println!("  ipmi-lan: median {nm:.2} ms, p99 {np:.2} ms; ipmitool plugin: median {tm:.2} ms, p99 {tp:.2} ms; ratio {:.1}x", tm / nm);
}

async fn sweep(host: Arc<(PluginHost, tempfile::TempDir)>, bmcs: usize, responders: usize, concurrency: usize) {
    let per = bmcs.div_ceil(responders);
    let labs: Vec<LabBmc> =
        (0..responders).map(|_| LabBmc::start(&LabBmcOptions { bmcs: per as u32, password: "sweep-pw".into(), ..Default::default() })).collect();
    let ports: Vec<u16> = labs.iter().flat_map(|l| l.ports()).take(bmcs).collect();
    assert_eq!(ports.len(), bmcs, "the responders bound {} ports", ports.len());
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(bmcs);
    for port in ports {
        let (host, permit) = (host.clone(), semaphore.clone().acquire_owned().await.expect("semaphore"));
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let bmc = Bmc { host: "127.0.0.1".into(), port };
            let creds = Credentials { username: "admin".into(), password: "sweep-pw".into() };
            host.0.power("ipmi-lan").expect("driver").get_power_state(&bmc, &creds).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap_or(false));
    }
    let wall = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300)); // let the responders write their last counters
    let datagrams: u64 = labs.iter().map(LabBmc::received).sum();
    println!("power-sync sweep of {bmcs} BMCs ({responders} lab BMC processes, suite 17), {concurrency} calls in flight, through the PluginHost:");
    println!("  wall {wall:.2} s (goal 10 s), {ok}/{bmcs} answered, {:.0} BMCs/s", bmcs as f64 / wall);
    println!(
        "  BMC side: {datagrams} datagrams, {:.0} requests/s ({:.1} per status: auth caps, cipher suites, open, RAKP 1, RAKP 3, privilege, chassis status, close)",
        datagrams as f64 / wall,
        datagrams as f64 / bmcs as f64
    );
}

/// `(checked, failed, elapsed_ms)` of the first logged sweep that checked `nodes` nodes.
fn full_sweep(log: &str, nodes: usize) -> Option<(usize, usize, u64)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        let rest = line.split(&format!(" {name}=")).nth(1)?;
        rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
    };
    log.lines().filter(|l| l.contains("power sync sweep")).find_map(|l| {
        let checked = usize::try_from(field(l, "checked")?).ok()?;
        (checked == nodes).then_some((checked, usize::try_from(field(l, "failed")?).ok()?, field(l, "elapsed_ms")?))
    })
}

async fn daemon_sweep(bmcs: usize, responders: usize) {
    let per = bmcs.div_ceil(responders);
    let labs: Vec<LabBmc> =
        (0..responders).map(|_| LabBmc::start(&LabBmcOptions { bmcs: per as u32, password: "sweep-pw".into(), ..Default::default() })).collect();
    let ports: Vec<u16> = labs.iter().flat_map(|l| l.ports()).take(bmcs).collect();
    assert_eq!(ports.len(), bmcs, "the responders bound {} ports", ports.len());
    // The daemon's own sweep settings (concurrency, jitter) are its defaults; a sweep every 5 s, so
    // the first one after enrolment sees every node.
    let config = format!(
        "[power_sync]\ninterval_s = 5\n[[plugin]]\nname = \"ipmi-lan\"\nkind = \"power\"\npath = \"{}\"\n",
        plugin_wasm("ipmi-lan").display()
    );
    let daemon = Daemon::start_with(&config);
    let (status, sw) = daemon.post("/v1/switches", &switch_body("bench-sw", "pw-bench")).await;
    assert_eq!(status, StatusCode::CREATED);
    let sw = sw["id"].as_i64().expect("id");
    let enrolled: Vec<StatusCode> = futures::stream::iter(ports.iter().enumerate())
        .map(|(i, port)| {
            let mut body = node_body(i as u32 + 1, sw, "sweep-pw");
            body["bmc_port"] = serde_json::json!(port);
            body["power_driver"] = serde_json::json!("ipmi-lan");
            let d = &daemon;
            async move { d.post("/v1/nodes", &body).await.0 }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(enrolled.iter().all(|s| *s == StatusCode::CREATED), "some enrolments failed");
    let deadline = Instant::now() + Duration::from_secs(600);
    let (checked, failed, elapsed_ms) = loop {
        if let Some(found) = full_sweep(&daemon.log(), bmcs) {
            break found;
        }
        assert!(Instant::now() < deadline, "no full power-sync sweep logged in 10 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wall = elapsed_ms as f64 / 1e3;
    println!(
        "power-sync sweep of {bmcs} nodes through the daemon (release; its own loop, default concurrency and jitter; {responders} lab BMC processes):"
    );
    println!("  wall {wall:.2} s (goal 10 s), {}/{checked} answered, {:.0} BMCs/s", checked - failed, checked as f64 / wall.max(1e-3));
}

#[tokio::main]
async fn main() {
    let host = Arc::new(host().await);
    status_round_trip(&host.0, env("BENCH_ROUNDS", 100)).await;
    sweep(host, env("BENCH_BMCS", 10_000), env("BENCH_RESPONDERS", 4), env("BENCH_CONCURRENCY", 64)).await;
    daemon_sweep(env("BENCH_BMCS", 10_000), env("BENCH_RESPONDERS", 4)).await;
}
