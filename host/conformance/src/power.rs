//! The power suite: every `power` operation against `ipmi_sim`, checked by what the BMC's chassis
//! hook recorded; error mapping; the password kept off argv and out of logs; only granted programs.

use std::future::Future;
use std::time::{Duration, Instant};

use metalhost_plugin_host::{Bmc, BootDevice, CallError, Credentials, PowerAction, PowerDriver, PowerState};

use crate::capture::Capture;
use crate::sims::argv::ArgvWatch;
use crate::sims::ipmi_sim::{IpmiSim, free_udp_port};
use crate::{Check, Error, Options, Report, canary, expect_error, load, refused_program, shown, timed};

pub async fn run(opts: &Options, capture: &Capture, report: &mut Report) -> Result<(), Error> {
    let Some(loaded) = load(opts, opts.exec.clone(), Vec::new(), opts.config.clone(), report).await? else { return Ok(()) };
    // A 0.2.0 plugin speaking IPMI over LAN runs the same checks against ipmi_sim with no exec
    // grant: its datagrams are its only way out (ARCHITECTURE.md, plugin-host).
    let datagram = loaded.contract == metalhost_plugin_host::Contract::V0_2.as_str();
    if datagram && opts.power_bmc != crate::PowerBmc::Ipmi {
        return crate::power_http::run(opts, loaded, capture, report).await;
    }
    if datagram {
        let spec = metalhost_plugin_host::PluginSpec { exec: Vec::new(), ..loaded.spec.clone() };
        if let Some(s) = loaded.host.load(std::slice::from_ref(&spec)).await.into_iter().next().filter(|s| !s.loaded) {
            report.push(Check::fail("load without exec", s.error.unwrap_or_default(), None));
            return Ok(());
        }
    }
    let driver = loaded.host.power(&loaded.name).map_err(|e| Error::Setup(e.to_string()))?;
    let password = canary("pw");
    // SOL configured (to a port nothing listens on): a plugin can describe its console.
    let sim = IpmiSim::start_with_sol("admin", &password, Some(unused_tcp_port()))?;
    let watch = ArgvWatch::start(vec![sim.pid()]);
    let bmc = Bmc { host: "127.0.0.1".into(), port: sim.port };
    let creds = Credentials { username: "admin".into(), password: password.clone() };

    lifecycle(&driver, &sim, &bmc, &creds, report).await;
    error_mapping(&driver, &sim, &bmc, &password, report).await?;
    if datagram {
        report.push(console_description(&driver, &bmc, &creds).await);
    }

    let argv = watch.finish();
    drop(sim);
    let leaked: Vec<String> = argv.iter().filter(|c| c.contains(&password)).map(|c| c.replace(&password, "<password>")).collect();
    report.push(if datagram && argv.is_empty() {
        Check::pass("secrets: never on argv", "contract 0.2.0 has no exec: the plugin started no program", None)
    } else if !leaked.is_empty() {
        Check::fail(
            "secrets: never on argv",
            format!("the BMC password reached the argv of {} child command lines (pass it in env or a file), e.g. {}", leaked.len(), leaked[0]),
            None,
        )
    } else if argv.is_empty() {
        Check::fail("secrets: never on argv", "the plugin started no program: a power plugin drives the BMC through a granted tool", None)
    } else {
        Check::pass("secrets: never on argv", format!("{} distinct command lines watched, none holds the password", argv.len()), None)
    });

    let events = capture.events();
    let in_logs = events.iter().filter(|e| e.text.contains(&password)).count();
    report.push(if in_logs == 0 {
        Check::pass("secrets: never in logs", format!("{} log events, none holds the password", events.len()), None)
    } else {
        Check::fail("secrets: never in logs", format!("{in_logs} log events hold the BMC password"), None)
    });

    let refused: std::collections::BTreeSet<String> =
        events.iter().filter(|e| e.message.starts_with("exec refused")).filter_map(|e| e.program.clone()).collect();
    let ran: std::collections::BTreeSet<String> = events.iter().filter(|e| e.message == "exec").filter_map(|e| e.program.clone()).collect();
    let granted = opts.exec.join(", ");
    report.push(if datagram {
        Check::pass("grants: only granted programs", "no exec grant: the plugin reached its BMC through the datagram capability only", None)
    } else if refused.is_empty() {
        Check::pass("grants: only granted programs", format!("granted [{granted}]; ran [{}]", ran.into_iter().collect::<Vec<_>>().join(", ")), None)
    } else {
        Check::fail(
            "grants: only granted programs",
            format!("not permitted: the plugin ran {} beyond its grants [{granted}]", refused.into_iter().collect::<Vec<_>>().join(", ")),
            None,
        )
    });
    Ok(())
}

/// Checks one call: `verify` turns its outcome into the check's detail or failure.
async fn check<T, F>(report: &mut Report, name: &str, password: &str, call: impl Future<Output = Result<T, CallError>>, verify: F)
where
    F: FnOnce(T) -> Result<String, String>,
{
    let (out, elapsed) = timed(call).await;
    let outcome = match out {
        Ok(v) => verify(v),
        Err(e) => Err(match e.driver().and_then(|d| refused_program(&d.to_string())) {
            Some(program) => format!(
                "exec of {program} is not permitted: grant it with --exec {program} (operators: exec = [\"{program}\"]): {}",
                shown(&e, password)
            ),
            None => shown(&e, password),
        }),
    };
    report.push(Check::new(name, outcome, Some(elapsed)));
}

async fn lifecycle(driver: &PowerDriver<'_>, sim: &IpmiSim, bmc: &Bmc, creds: &Credentials, report: &mut Report) {
    let pw = creds.password.as_str();
    let state =
        |want: PowerState| move |got: PowerState| if got == want { Ok(format!("{got:?}")) } else { Err(format!("expected {want:?}, got {got:?}")) };
    check(report, "get-power-state (off)", pw, driver.get_power_state(bmc, creds), state(PowerState::Off)).await;
    check(report, "set-power-state on", pw, driver.set_power_state(bmc, creds, PowerAction::On), |()| {
        if sim.powered() { Ok("the BMC is on".into()) } else { Err("the call succeeded but the BMC is still off".into()) }
    })
    .await;
    check(report, "get-power-state (on)", pw, driver.get_power_state(bmc, creds), state(PowerState::On)).await;
    check(report, "set-power-state off", pw, driver.set_power_state(bmc, creds, PowerAction::Off), |()| {
        if sim.powered() { Err("the call succeeded but the BMC is still on".into()) } else { Ok("the BMC is off".into()) }
    })
    .await;
    check(report, "set-power-state reboot (from off)", pw, driver.set_power_state(bmc, creds, PowerAction::Reboot), |()| {
        if sim.powered() { Ok("an off node is powered on".into()) } else { Err("reboot of an off node must power it on".into()) }
    })
    .await;
    let before = sim.calls().lines().count();
    let (out, elapsed) = timed(driver.set_power_state(bmc, creds, PowerAction::Reboot)).await;
    let outcome = match out {
        Err(e) => Err(shown(&e, pw)),
        Ok(()) => {
            let calls: Vec<String> = sim.calls().lines().skip(before).map(str::to_owned).collect();
            let cycled = calls.iter().any(|c| c.contains("set power 0") || c.contains("set reset"));
            // ipmi_sim powers the node back on a moment after a cycle.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !sim.powered() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match (cycled, sim.powered()) {
                (true, true) => Ok("cycled, and on again".into()),
                (false, _) => Err(format!("reboot of an on node must cycle or reset it; the BMC saw: {}", calls.join("; "))),
                (true, false) => Err("cycled, but the node did not come back on".into()),
            }
        }
    };
    report.push(Check::new("set-power-state reboot (from on)", outcome, Some(elapsed)));
    for (device, persistent, expected, name) in [
        (BootDevice::Pxe, false, "pxe", "set-boot-device pxe (next boot)"),
        (BootDevice::Disk, true, "default", "set-boot-device disk (persistent)"),
        (BootDevice::Pxe, true, "pxe", "set-boot-device pxe (persistent)"),
    ] {
        check(report, name, pw, driver.set_boot_device(bmc, creds, device, persistent), |()| match sim.boot_device() {
            Some(d) if d == expected => Ok(format!("the BMC boots {d}")),
            other => Err(format!("the BMC was set to boot {other:?}, expected {expected}")),
        })
        .await;
    }
}

async fn error_mapping(driver: &PowerDriver<'_>, sim: &IpmiSim, bmc: &Bmc, password: &str, report: &mut Report) -> Result<(), Error> {
    let wrong = Credentials { username: bmc_user(), password: canary("wrong") };
    let (out, elapsed) = timed(driver.get_power_state(bmc, &wrong)).await;
    let outcome = match out {
        Ok(state) => Err(format!("a wrong password was accepted (answered {state:?})")),
        Err(e) => expect_error(&e, "auth-failed", &wrong.password),
    };
    report.push(Check::new("error mapping: wrong password is auth-failed", outcome, Some(elapsed)));

    // Nothing listens at the call's BMC while the simulator still runs: a plugin (or its program)
    // that went anywhere but the call's BMC would reach the simulator, whose chassis hook records
    // every call. The host's network scope refuses such a program; this says whether one tried
    // and got through.
    let before = sim.calls().lines().count();
    let nobody = Bmc { host: "127.0.0.1".into(), port: free_udp_port()? };
    let creds = Credentials { username: bmc_user(), password: password.to_owned() };
    let (out, elapsed) = timed(driver.get_power_state(&nobody, &creds)).await;
    let outcome = match out {
        Ok(state) => Err(format!("a BMC that does not exist answered {state:?}")),
        Err(e) => expect_error(&e, "unreachable", password),
    };
    report.push(Check::new("error mapping: no BMC listening is unreachable", outcome, Some(elapsed)));
    let strays = sim.calls().lines().count().saturating_sub(before);
    report.push(if strays == 0 {
        Check::pass(
            "network: only the call's BMC",
            format!("while its BMC was port {}, nothing reached the simulator (its programs may reach the call's BMC only)", nobody.port),
            None,
        )
    } else {
        Check::fail("network: only the call's BMC", format!("the simulator saw {strays} calls during a call about another BMC"), None)
    });
    Ok(())
}

/// A 0.2.0 plugin's `describe-console`: `unsupported`, or a program for the host to run with the
/// password in its environment only (argv is world-readable) and the BMC it was asked about.
pub(crate) async fn console_description(driver: &PowerDriver<'_>, bmc: &Bmc, creds: &Credentials) -> Check {
    const NAME: &str = "describe-console: password only in the environment";
    let (outcome, elapsed) = timed(driver.describe_console(bmc, creds)).await;
    let result = match outcome {
        Err(e) if matches!(e.driver(), Some(metalhost_plugin_host::DriverError::Unsupported(_))) => {
            return Check::pass(NAME, format!("no console (unsupported: {})", e.failure), Some(elapsed));
        }
        Err(e) => Err(format!("describe-console failed: {e}")),
        Ok(cmd) if cmd.args.iter().any(|a| a.contains(&creds.password)) => {
            Err(format!("the password is in the console program's argv ({} ...): pass it in its env", cmd.program))
        }
        Ok(cmd) if cmd.program.contains('/') => Err(format!("the program {:?} must be a name from the console grant, not a path", cmd.program)),
        Ok(cmd) if let Some(why) = metalhost_plugin_host::console_refusal(bmc, creds, &cmd).await => {
            Err(format!("the host refuses this console before running it: {why}"))
        }
        Ok(cmd) => {
            Ok(format!("{} {} (env: {})", cmd.program, cmd.args.join(" "), cmd.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")))
        }
    };
    match result {
        Ok(detail) => Check::pass(NAME, detail, Some(elapsed)),
        Err(detail) => Check::fail(NAME, detail, Some(elapsed)),
    }
}

fn unused_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9)
}

fn bmc_user() -> String {
    "admin".into()
}
