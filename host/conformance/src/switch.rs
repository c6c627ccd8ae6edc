//! The switch suite: every `switch` operation against the fake-switches Juniper emulator, each
//! change checked by an independent NETCONF read of the running config; error mapping; the
//! password (which only the host holds) kept out of logs.

use std::time::Duration;

use metalhost_netconf::{Session, Target};
use metalhost_plugin_host::{CallError, SwitchSession, Vlan};

use crate::capture::Capture;
use crate::sims::argv::ArgvWatch;
use crate::sims::fake_switch::{FakeSwitch, free_tcp_port};
use crate::{Check, Error, Options, Report, canary, expect_error, load, shown, timed};

const PORT: &str = "ge-0/0/3";
const MISSING_PORT: &str = "ge-0/0/99";

fn target(port: u16, password: &str) -> Target {
    Target {
        address: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: password.into(),
        expected_host_key: None,
        connect_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_secs(10),
    }
}

/// The texts of every `<tag>` in `doc`, any namespace prefix.
fn values(doc: &str, tag: &str) -> Vec<String> {
    doc.split('<')
        .filter_map(|piece| {
            let (name, text) = piece.split_once('>')?;
            let local = name.split_whitespace().next()?.rsplit(':').next()?;
            (local == tag).then(|| text.trim().to_owned())
        })
        .collect()
}

/// Reads the running config with its own NETCONF session, not through the plugin.
struct Checker {
    target: Target,
}

impl Checker {
    async fn get(&self, filter: &str) -> Result<String, String> {
        let mut session = Session::connect(&self.target).await.map_err(|e| format!("independent read: {e}"))?;
        let reply = session
            .rpc(&format!(
                "<get-config><source><running/></source><filter type=\"subtree\"><configuration>{filter}</configuration></filter></get-config>"
            ))
            .await
            .map_err(|e| format!("independent read: {e}"));
        let _ = session.close().await;
        reply
    }

    async fn members(&self, port: &str) -> Result<Vec<String>, String> {
        Ok(values(&self.get(&format!("<interfaces><interface><name>{port}</name></interface></interfaces>")).await?, "members"))
    }

    async fn vlan_ids(&self) -> Result<Vec<String>, String> {
        Ok(values(&self.get("<vlans/>").await?, "vlan-id"))
    }
}

pub async fn run(opts: &Options, capture: &Capture, report: &mut Report) -> Result<(), Error> {
    // Switch plugins get no exec grant: their world cannot even import it.
    let Some(loaded) = load(opts, Vec::new(), Vec::new(), opts.config.clone(), report).await? else { return Ok(()) };
    let driver = loaded.host.switch(&loaded.name).map_err(|e| Error::Setup(e.to_string()))?;
    let password = canary("sw");
    let switch = FakeSwitch::start(&opts.fake_switches, &opts.switch_model, "admin", &password)?;
    let watch = ArgvWatch::start(vec![switch.pid()]);
    let checker = Checker { target: target(switch.port, &password) };
    let session = driver.session(target(switch.port, &password));

    operations(&session, &checker, &password, report).await;
    session.close().await;

    let wrong = driver.session(target(switch.port, &canary("wrong")));
    let (out, elapsed) = timed(wrong.describe()).await;
    report.push(Check::new("error mapping: wrong password is auth-failed", expect(out, "auth-failed", &password), Some(elapsed)));
    wrong.close().await;
    let nobody = driver.session(target(free_tcp_port()?, &password));
    let (out, elapsed) = timed(nobody.describe()).await;
    report.push(Check::new("error mapping: no switch listening is unreachable", expect(out, "unreachable", &password), Some(elapsed)));
    nobody.close().await;

    let argv = watch.finish();
    drop(switch);
    let events = capture.events();
    let leaks = events.iter().filter(|e| e.text.contains(&password)).count() + argv.iter().filter(|c| c.contains(&password)).count();
    report.push(if leaks == 0 {
        Check::pass(
            "secrets: never in logs or argv",
            format!("{} log events, {} child command lines, none holds the password", events.len(), argv.len()),
            None,
        )
    } else {
        Check::fail(
            "secrets: never in logs or argv",
            format!("the switch password appears {leaks} times in the plugin's logs or a child's argv"),
            None,
        )
    });
    Ok(())
}

fn expect<T: std::fmt::Debug>(out: Result<T, CallError>, want: &str, password: &str) -> Result<String, String> {
    match out {
        Ok(v) => Err(format!("expected {want}, the call succeeded with {v:?}")),
        Err(e) => expect_error(&e, want, password),
    }
}

async fn operations(session: &SwitchSession<'_>, checker: &Checker, password: &str, report: &mut Report) {
    let (out, elapsed) = timed(session.describe()).await;
    let outcome = match out {
        Ok(d) if d.capabilities.is_empty() => Err(format!("model {:?} but no capabilities (pass on the switch's hello)", d.model)),
        Ok(d) => Ok(format!("{} ({} capabilities)", d.model, d.capabilities.len())),
        Err(e) => Err(shown(&e, password)),
    };
    report.push(Check::new("describe", outcome, Some(elapsed)));

    for (vlan, name) in [
        (Vlan { id: 100, name: "provisioning".into() }, "ensure-vlan"),
        (Vlan { id: 100, name: "provisioning".into() }, "ensure-vlan (again: idempotent)"),
        (Vlan { id: 200, name: "tenant".into() }, "ensure-vlan (second VLAN)"),
    ] {
        let (out, elapsed) = timed(session.ensure_vlan(&vlan)).await;
        let outcome = match out {
            Err(e) => Err(shown(&e, password)),
            Ok(()) => match checker.vlan_ids().await {
                Ok(ids) if ids.contains(&vlan.id.to_string()) => Ok(format!("VLAN {} in the running config", vlan.id)),
                Ok(ids) => Err(format!("VLAN {} is not in the running config (it has {ids:?})", vlan.id)),
                Err(e) => Err(e),
            },
        };
        report.push(Check::new(name, outcome, Some(elapsed)));
    }

    for id in [100u16, 200] {
        let vlan = Vlan { id, name: if id == 100 { "provisioning".into() } else { "tenant".into() } };
        let (out, elapsed) = timed(session.set_access_vlan(PORT, &vlan)).await;
        let outcome = match out {
            Err(e) => Err(shown(&e, password)),
            Ok(()) => match checker.members(PORT).await {
                Ok(m) if m == [id.to_string()] => Ok(format!("{PORT} is on VLAN {id} only")),
                Ok(m) => Err(format!("{PORT} has VLAN members {m:?}, expected exactly [{id}] (the old VLAN must be replaced)")),
                Err(e) => Err(e),
            },
        };
        report.push(Check::new(&format!("set-access-vlan {id}"), outcome, Some(elapsed)));
        let (out, elapsed) = timed(session.get_port_vlan(PORT)).await;
        let outcome = match out {
            Ok(Some(got)) if got == id => Ok(format!("{PORT} is on {got}")),
            Ok(other) => Err(format!("expected Some({id}), got {other:?}")),
            Err(e) => Err(shown(&e, password)),
        };
        report.push(Check::new(&format!("get-port-vlan (on {id})"), outcome, Some(elapsed)));
    }

    let (out, elapsed) = timed(session.clear_port(PORT)).await;
    let outcome = match out {
        Err(e) => Err(shown(&e, password)),
        Ok(()) => match checker.members(PORT).await {
            Ok(m) if m.is_empty() => Ok(format!("{PORT} has no VLAN")),
            Ok(m) => Err(format!("{PORT} still has VLAN members {m:?}")),
            Err(e) => Err(e),
        },
    };
    report.push(Check::new("clear-port", outcome, Some(elapsed)));
    let (out, elapsed) = timed(session.get_port_vlan(PORT)).await;
    let outcome = match out {
        Ok(None) => Ok("none".into()),
        Ok(other) => Err(format!("expected none after clear-port, got {other:?}")),
        Err(e) => Err(shown(&e, password)),
    };
    report.push(Check::new("get-port-vlan (cleared)", outcome, Some(elapsed)));

    let (out, elapsed) = timed(session.get_port_vlan(MISSING_PORT)).await;
    report.push(Check::new("error mapping: unknown port is not-found", expect(out, "not-found", password), Some(elapsed)));
}
