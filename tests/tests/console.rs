//! Serial consoles through the daemon (`GET /v1/nodes/{id}/console`, `metalhost node console`):
//! the ipmi-lan plugin describes `ipmitool sol activate`, the daemon runs it on a pty under its
//! console grant, and ipmi_sim's Serial over LAN reaches a TCP console that answers in upper case.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::SinkExt;
use metalhost_tests::console::{UppercaseConsole, attach, open, sol_programs, type_until, wait_no_sol_program};
use metalhost_tests::daemon::{Daemon, TOKEN, node_body, switch_body};
use metalhost_tests::ipmi_sim::IpmiSim;
use metalhost_tests::paths::{host_binary, plugin_wasm};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::Message;

const BMC_PASSWORD: &str = "sol-s3cret-pw";

/// ipmi-lan with and without a console grant, and the 0.1.0 ipmitool plugin.
fn daemon() -> Daemon {
    Daemon::start_with(&format!(
        "[[plugin]]\nname = \"ipmi-lan\"\nkind = \"power\"\npath = \"{lan}\"\nconsole = [\"ipmitool\"]\nconfig = {{ cipher-suites = \"3\" }}\n\
         \n[[plugin]]\nname = \"ipmi-lan-no-console\"\nkind = \"power\"\npath = \"{lan}\"\n\
         \n[[plugin]]\nname = \"ipmitool\"\nkind = \"power\"\npath = \"{tool}\"\nexec = [\"ipmitool\"]\n",
        lan = plugin_wasm("ipmi-lan").display(),
        tool = plugin_wasm("ipmitool").display(),
    ))
}

async fn add_node(daemon: &Daemon, i: u32, switch: i64, bmc_port: u16, driver: &str) -> String {
    let mut body = node_body(i, switch, BMC_PASSWORD);
    body["bmc_port"] = json!(bmc_port);
    body["power_driver"] = json!(driver);
    let (status, node) = daemon.post("/v1/nodes", &body).await;
    assert!(status.is_success(), "{status} {node}");
    node["name"].as_str().expect("name").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_console_types_through_ipmi_sol_and_ends_with_its_last_viewer() {
    let console = UppercaseConsole::start("");
    let bmc = IpmiSim::start_with_sol("admin", BMC_PASSWORD, console.port);
    let daemon = daemon();
    let (_, switch) = daemon.post("/v1/switches", &switch_body("sw1", "sw-pw")).await;
    let node = add_node(&daemon, 1, switch["id"].as_i64().expect("id"), bmc.port, "ipmi-lan").await;

    let mut typist = attach(&daemon, &node, "").await;
    let seen = type_until(&mut typist, b"hello sol\r", "HELLO SOL", Duration::from_secs(40)).await;
    assert!(seen.contains("HELLO SOL"), "the console never answered: {seen:?}\n{}", daemon.log());

    // The program is ipmitool from the grant, with the password in its environment only.
    let programs = sol_programs(bmc.port);
    assert_eq!(programs.len(), 1, "one console program per node: {programs:?}");
    assert!(programs[0].1.iter().all(|a| !a.contains(BMC_PASSWORD)), "the password is on argv: {:?}", programs[0].1);
    assert!(!daemon.log().contains(BMC_PASSWORD), "the password reached the daemon's log");

    // One typist per node; watchers join the same session and see what is typed.
    let (status, message) = open(&daemon, &node, "", Some(TOKEN)).await.expect_err("a second typist is refused");
    assert_eq!(status, 409, "{message}");
    assert!(message.contains("in use"), "{message}");
    let mut watcher = attach(&daemon, &node, "?mode=watch").await;
    let typed = type_until(&mut typist, b"second line\r", "SECOND LINE", Duration::from_secs(20)).await;
    assert!(typed.contains("SECOND LINE"), "{typed:?}");
    let watched = type_until(&mut watcher, b"", "SECOND LINE", Duration::from_secs(10)).await;
    assert!(watched.contains("SECOND LINE"), "the watcher did not see the typist's session: {watched:?}");
    assert_eq!(sol_programs(bmc.port).len(), 1, "the watcher started a second program");

    // A watcher cannot type.
    watcher.send(Message::Binary(b"from the watcher\r".to_vec().into())).await.expect("send");
    let after = type_until(&mut typist, b"", "FROM THE WATCHER", Duration::from_secs(3)).await;
    assert!(!after.contains("FROM THE WATCHER"), "a watcher typed: {after:?}");

    // The last viewer leaving ends the program; ipmitool's quit sequence frees the BMC's SOL
    // payload, so the console opens again at once.
    drop(typist);
    drop(watcher);
    wait_no_sol_program(bmc.port).await;
    let mut again = attach(&daemon, &node, "").await;
    let seen = type_until(&mut again, b"again\r", "AGAIN", Duration::from_secs(30)).await;
    assert!(seen.contains("AGAIN"), "the console did not open a second time: {seen:?}\n{}", daemon.log());
    // A console program killed outright leaves the BMC's SOL payload active: viewers are told
    // the console ended, and the next attach frees the payload (Deactivate Payload) and works.
    let programs = sol_programs(bmc.port);
    let killed = programs.first().expect("a console program").0;
    let _ = Command::new("kill").args(["-KILL", &killed.to_string()]).status();
    let mut ended = String::new();
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut again)).await {
        match message {
            Ok(Message::Close(Some(frame))) => {
                ended = frame.reason.to_string();
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(ended.contains("console ended"), "viewers were not told: {ended:?}");
    let mut after_kill = attach(&daemon, &node, "").await;
    let seen = type_until(&mut after_kill, b"after kill\r", "AFTER KILL", Duration::from_secs(30)).await;
    assert!(seen.contains("AFTER KILL"), "a stale SOL payload kept the console shut: {seen:?}\n{}", daemon.log());
    let _ = after_kill.close(None).await;
    wait_no_sol_program(bmc.port).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consoles_are_refused_with_a_clear_error() {
    let bmc = IpmiSim::start("admin", BMC_PASSWORD);
    let daemon = daemon();
    let (_, switch) = daemon.post("/v1/switches", &switch_body("sw1", "sw-pw")).await;
    let switch = switch["id"].as_i64().expect("id");
    let granted = add_node(&daemon, 1, switch, bmc.port, "ipmi-lan").await;
    let ungranted = add_node(&daemon, 2, switch, bmc.port, "ipmi-lan-no-console").await;
    let old_contract = add_node(&daemon, 3, switch, bmc.port, "ipmitool").await;

    let (status, _) = open(&daemon, &granted, "", None).await.expect_err("no token");
    assert_eq!(status, 401);
    let (status, message) = open(&daemon, &ungranted, "", Some(TOKEN)).await.expect_err("no grant");
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("console grant") && message.contains("ipmitool"), "{message}");
    let (status, message) = open(&daemon, &old_contract, "", Some(TOKEN)).await.expect_err("0.1.0");
    assert_eq!(status, 501, "{message}");
    assert!(message.contains("0.2.0"), "{message}");
    let (status, message) = open(&daemon, "no-such-node", "", Some(TOKEN)).await.expect_err("unknown");
    assert_eq!(status, 404, "{message}");
    let (status, message) = open(&daemon, &granted, "?mode=shout", Some(TOKEN)).await.expect_err("bad mode");
    assert_eq!(status, 400, "{message}");
    // This BMC has no Serial over LAN: the plugin says so before any program runs.
    let (status, message) = open(&daemon, &granted, "", Some(TOKEN)).await.expect_err("no SOL");
    assert_eq!(status, 501, "{message}");
    assert!(message.contains("no Serial over LAN"), "{message}");
    // A wrong BMC password: the plugin's session check fails before any program runs.
    let (_, node) = daemon.patch(&format!("/v1/nodes/{granted}"), &json!({ "bmc_password": "wrong-pw" })).await;
    assert!(node["name"].is_string(), "{node}");
    let (status, message) = open(&daemon, &granted, "", Some(TOKEN)).await.expect_err("auth");
    assert_eq!(status, 502, "{message}");
    assert!(message.contains("auth-failed"), "{message}");
    assert!(sol_programs(bmc.port).is_empty());
    // Without the upgrade, the route says what it speaks (426 Upgrade Required).
    let (status, body) = daemon.get(&format!("/v1/nodes/{granted}/console")).await;
    assert_eq!(status, 426, "{body}");
    assert!(body.to_string().contains("WebSocket"), "{body}");
}

/// `metalhost node console` in a terminal (`script` gives it a pty): what is typed reaches the
/// console, Ctrl-] detaches, and the terminal is left as it was.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_attaches_a_terminal_and_detaches_on_ctrl_bracket() {
    let console = UppercaseConsole::start("");
    let bmc = IpmiSim::start_with_sol("admin", BMC_PASSWORD, console.port);
    let daemon = daemon();
    let (_, switch) = daemon.post("/v1/switches", &switch_body("sw1", "sw-pw")).await;
    let node = add_node(&daemon, 1, switch["id"].as_i64().expect("id"), bmc.port, "ipmi-lan").await;

    let command = format!("{} node console {node}", host_binary("metalhost").display());
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("METALHOST_URL", &daemon.url)
        .env("METALHOST_CA", daemon.ca_file.as_ref().expect("TLS"))
        .env("METALHOST_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = output.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().expect("lock").extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&output.lock().expect("lock")).into_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !text().contains("TYPED IN A TERMINAL") && std::time::Instant::now() < deadline {
        stdin.write_all(b"typed in a terminal\r").expect("type");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(text().contains("TYPED IN A TERMINAL"), "{}\n{}", text(), daemon.log());
    stdin.write_all(&[0x1d]).expect("ctrl-]");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    let _ = reader.join();
    assert!(status.success(), "node console exited with {status}: {}", text());
    assert!(text().contains("detached"), "{}", text());
    wait_no_sol_program(bmc.port).await;
}
