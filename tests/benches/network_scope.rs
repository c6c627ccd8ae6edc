//! Per-call cost of the network scope (issue 28): `ipmitool chassis power status` against a real
//! `ipmi_sim`, exec'd the way the runtime runs a granted program (confined: user, process group,
//! rlimits, Landlock, seccomp), without and with the scope (a fresh cgroup per call with its BPF
//! filters loaded and attached, the program moved in before exec, the cgroup emptied and removed
//! afterwards). Median of 200 each, interleaved in one run so both see the same machine.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use metalhost_plugin_host::{Confiner, ExecPolicy};
use metalhost_tests::ipmi_sim::IpmiSim;

const RUNS: usize = 200;
const PASSWORD: &str = "bench-s3cret";

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

async fn power_status(ipmitool: &Path, port: u16, confiner: &Confiner, scoped: Option<&[SocketAddr]>) -> Duration {
    let workdir = tempfile::Builder::new().prefix("metalhost-exec-").tempdir().expect("workdir");
    let started = Instant::now();
    let scope = scoped.map(|reach| confiner.scope(reach).expect("scope").expect("this kernel scopes"));
    let mut command = tokio::process::Command::new(ipmitool);
    command
        .args(["-I", "lanplus", "-H", "127.0.0.1", "-p", &port.to_string(), "-U", "admin", "-E", "-C", "3", "chassis", "power", "status"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("IPMI_PASSWORD", PASSWORD)
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    confiner.apply(&mut command, workdir.path(), ipmitool, scope.as_ref()).expect("confine");
    let out = command.output().await.expect("spawn");
    drop(scope);
    let elapsed = started.elapsed();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Chassis Power is"), "{out:?}");
    elapsed
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sim = IpmiSim::start("admin", PASSWORD);
    let ipmitool = Path::new("/usr/bin/ipmitool");
    let confiner = Confiner::new(&ExecPolicy::default()).expect("confiner");
    println!("confinement: {}", confiner.summary().summary());
    let reach = [SocketAddr::from(([127, 0, 0, 1], sim.port))];
    for _ in 0..10 {
        power_status(ipmitool, sim.port, &confiner, None).await;
        power_status(ipmitool, sim.port, &confiner, Some(&reach)).await;
    }
    let (mut plain, mut scoped) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        plain.push(power_status(ipmitool, sim.port, &confiner, None).await);
        scoped.push(power_status(ipmitool, sim.port, &confiner, Some(&reach)).await);
    }
    let (p, s) = (median(plain), median(scoped));
    println!("ipmitool chassis power status against ipmi_sim, {RUNS} runs each (interleaved), confined both ways");
    println!("  without the network scope   median {:>8.2} ms", p.as_secs_f64() * 1e3);
    println!("  with the network scope      median {:>8.2} ms", s.as_secs_f64() * 1e3);
    println!(
        "  scoped / unscoped (median)  {:.3}x, {:+.0} µs per call (goal <= 1.10)",
        s.as_secs_f64() / p.as_secs_f64(),
        (s.as_secs_f64() - p.as_secs_f64()) * 1e6
    );
}
