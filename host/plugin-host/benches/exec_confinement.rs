//! Cost of exec confinement per program run: spawn + wait of `/bin/true` as the runtime starts it
//! (cleared env, private working dir, piped output) without and with the confinement (user switch,
//! process group, rlimits, no_new_privs, Landlock ruleset, seccomp filter), median and p99 of 1,000
//! each, interleaved in one run so both see the same machine.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use metalhost_plugin_host::{Confiner, ExecPolicy};

const RUNS: usize = 1000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

async fn spawn_once(program: &Path, confiner: Option<&Confiner>) -> Duration {
    let workdir = tempfile::Builder::new().prefix("metalhost-exec-").tempdir().expect("workdir");
    let started = Instant::now();
    let mut command = tokio::process::Command::new(program);
    command.env_clear().env("PATH", "/usr/bin:/bin").current_dir(workdir.path()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(confiner) = confiner {
        confiner.apply(&mut command, workdir.path(), program, None).expect("confine");
    }
    let status = command.output().await.expect("spawn").status;
    assert!(status.success());
    started.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let program = Path::new("/bin/true");
    let confiner = Confiner::new(&ExecPolicy::default()).expect("confiner");
    println!("confinement: {}", confiner.summary().summary());
    let (mut plain, mut confined) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..20 {
        spawn_once(program, None).await;
        spawn_once(program, Some(&confiner)).await;
    }
    for _ in 0..RUNS {
        plain.push(spawn_once(program, None).await);
        confined.push(spawn_once(program, Some(&confiner)).await);
    }
    plain.sort();
    confined.sort();
    let (p50, c50) = (percentile(&plain, 0.5), percentile(&confined, 0.5));
    println!("exec of /bin/true, {RUNS} runs each (interleaved)");
    println!(
        "  baseline (no confinement)   median {:>8.1} µs   p99 {:>8.1} µs",
        p50.as_secs_f64() * 1e6,
        percentile(&plain, 0.99).as_secs_f64() * 1e6
    );
    println!(
        "  confined                    median {:>8.1} µs   p99 {:>8.1} µs",
        c50.as_secs_f64() * 1e6,
        percentile(&confined, 0.99).as_secs_f64() * 1e6
    );
    println!(
        "  confined / baseline (median) {:.2}x, +{:.1} µs per exec",
        c50.as_secs_f64() / p50.as_secs_f64(),
        (c50.as_secs_f64() - p50.as_secs_f64()) * 1e6
    );
}
