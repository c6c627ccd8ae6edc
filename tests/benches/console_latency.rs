//! Console latency benchmark (issue 17): a byte typed → its echo back, median over many bytes,
//! through the daemon (WebSocket → console session → `ipmitool sol activate` on a pty → ipmi_sim's
//! Serial over LAN → a TCP console that echoes in upper case) against the same chain without the
//! daemon (`ipmitool sol activate` on a pty of our own, under `script`), in the same run.
//!
//! Run with `bench/console_latency.sh` (release build of the daemon).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use metalhost_tests::console::{UppercaseConsole, attach, type_until, wait_no_sol_program};
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use metalhost_tests::ipmi_sim::IpmiSim;
use metalhost_tests::paths::plugin_wasm;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::Message;

const PASSWORD: &str = "bench-sol-pw";
const SAMPLES: usize = 60;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Lower-case letters cycle, so each echo is told from the last by its upper case.
fn letter(i: usize) -> u8 {
    b'a' + (i % 26) as u8
}

#[tokio::main]
async fn main() {
    let console = UppercaseConsole::start("");
    let bmc = IpmiSim::start_with_sol("admin", PASSWORD, console.port);
    let mut daemon = Daemon::start_with(&format!(
        "[[plugin]]\nname = \"ipmi-lan\"\nkind = \"power\"\npath = \"{}\"\nconsole = [\"ipmitool\"]\nconfig = {{ cipher-suites = \"3\" }}\n",
        plugin_wasm("ipmi-lan").display()
    ));
    daemon.skip_document_checks();
    let (_, sw) = daemon.post("/v1/switches", &switch_body("sw", "pw")).await;
    let mut body = node_body(1, sw["id"].as_i64().expect("id"), PASSWORD);
    body["bmc_port"] = json!(bmc.port);
    body["power_driver"] = json!("ipmi-lan");
    let (_, node) = daemon.post("/v1/nodes", &body).await;
    let name = node["name"].as_str().expect("name").to_owned();

    // Through the daemon.
    let mut socket = attach(&daemon, &name, "").await;
    let ready = type_until(&mut socket, b"ready\r", "READY", Duration::from_secs(40)).await;
    assert!(ready.contains("READY"), "the console never answered: {ready:?}");
    let mut via_daemon = Vec::new();
    for i in 0..SAMPLES {
        let typed = letter(i);
        let started = Instant::now();
        socket.send(Message::Binary(vec![typed].into())).await.expect("type");
        loop {
            match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(Message::Binary(bytes)))) if bytes.contains(&typed.to_ascii_uppercase()) => break,
                Ok(Some(Ok(_))) => {}
                other => panic!("no echo of {:?}: {other:?}", typed as char),
            }
        }
        via_daemon.push(started.elapsed());
    }
    let _ = socket.close(None).await;
    wait_no_sol_program(bmc.port).await;

    // The same chain without the daemon: ipmitool on a pty of `script`'s.
    let mut child = Command::new("script")
        .args(["-q", "-c", &format!("ipmitool -I lanplus -H 127.0.0.1 -p {} -U admin -E -C 3 sol activate", bmc.port), "/dev/null"])
        .env("IPMI_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    // Wait until the session answers.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("READY") {
        assert!(Instant::now() < deadline, "direct ipmitool never answered: {}", String::from_utf8_lossy(&seen));
        stdin.write_all(b"ready\r").expect("type");
        while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(1)) {
            seen.extend_from_slice(&chunk);
        }
    }
    let mut direct = Vec::new();
    for i in 0..SAMPLES {
        let typed = letter(i);
        let started = Instant::now();
        stdin.write_all(&[typed]).expect("type");
        loop {
            let chunk = rx.recv_timeout(Duration::from_secs(5)).expect("echo");
            if chunk.contains(&typed.to_ascii_uppercase()) {
                break;
            }
        }
        direct.push(started.elapsed());
    }
    let _ = stdin.write_all(b"\r~.");
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();

    let (d, b) = (median(via_daemon), median(direct));
    println!("console latency, a byte typed -> echoed, median of {SAMPLES}:");
    println!("  direct ipmitool sol activate on a pty (baseline): {:.2} ms", b.as_secs_f64() * 1e3);
    println!("  through the daemon's WebSocket console:           {:.2} ms", d.as_secs_f64() * 1e3);
    println!("  ratio daemon / direct: {:.2}", d.as_secs_f64() / b.as_secs_f64());
}
