//! The power suite for `metalhost:drivers@0.2.0` plugins, which speak HTTP to their BMC through
//! the host: every operation against sushy-emulator (Redfish, fake backend, HTTPS with a CA made
//! for it, bcrypt Basic auth), read back through the emulator's own API; error mapping (wrong
//! password, untrusted certificate, nothing listening); the plugin reaching nothing but the BMC
//! of the call; the password in no log line or error.

use std::future::Future;

use metalhost_plugin_host::{Bmc, BootDevice, BootMode, CallError, Credentials, NetworkSpec, PowerAction, PowerDriver, PowerState};

use crate::capture::Capture;
use crate::sims::fake_switch::free_tcp_port;
use crate::sims::sushy::Sushy;
use crate::sims::test_ca::TestCa;
use crate::{Check, Error, Loaded, Options, Report, canary, expect_error, shown, timed};

pub async fn run(opts: &Options, loaded: Loaded, capture: &Capture, report: &mut Report) -> Result<(), Error> {
    let password = canary("pw");
    let program = opts.sushy_emulator.clone();
    let pw = password.clone();
    let sushy = tokio::task::spawn_blocking(move || Sushy::start(&program, "admin", &pw))
        .await
        .map_err(|e| Error::Setup(format!("starting sushy-emulator: {e}")))??;
    let trusted = NetworkSpec { ca: Some(sushy.ca.cert.clone()), ..Default::default() };
    if !reload(&loaded, Some(trusted.clone()), report).await {
        return Ok(());
    }
    let driver = loaded.host.power(&loaded.name).map_err(|e| Error::Setup(e.to_string()))?;
    let bmc = Bmc { host: "127.0.0.1".into(), port: sushy.port };
    let creds = Credentials { username: "admin".into(), password: password.clone() };

    lifecycle(&driver, &sushy, &bmc, &creds, report).await;
    report.push(crate::power::console_description(&driver, &bmc, &creds).await);

    let wrong = Credentials { username: "admin".into(), password: canary("wrong") };
    let (out, elapsed) = timed(driver.get_power_state(&bmc, &wrong)).await;
    let outcome = match out {
        Ok(state) => Err(format!("a wrong password was accepted (answered {state:?})")),
        Err(e) => expect_error(&e, "auth-failed", &wrong.password),
    };
    report.push(Check::new("error mapping: wrong password is auth-failed", outcome, Some(elapsed)));

    // Nothing listens at the call's BMC while the emulator still runs: a plugin that went
    // anywhere but the call's BMC (a remembered or built-in address) would reach the emulator.
    let before = requests(&sushy);
    let nobody = Bmc { host: "127.0.0.1".into(), port: free_tcp_port()? };
    let (out, elapsed) = timed(driver.get_power_state(&nobody, &creds)).await;
    let outcome = match out {
        Ok(state) => Err(format!("a BMC that does not exist answered {state:?}")),
        Err(e) => expect_error(&e, "unreachable", &password),
    };
    report.push(Check::new("error mapping: no BMC listening is unreachable", outcome, Some(elapsed)));
    let strays = requests(&sushy).saturating_sub(before);
    report.push(if strays == 0 {
        Check::pass(
            "network: only the call's BMC",
            format!("while its BMC was {}, the plugin reached nothing else (the emulator saw no request)", nobody.port),
            None,
        )
    } else {
        Check::fail("network: only the call's BMC", format!("the emulator saw {strays} requests during a call about another BMC"), None)
    });

    let tmp = tempfile::tempdir().map_err(|e| Error::Setup(format!("temp dir: {e}")))?;
    let other = TestCa::create(tmp.path(), "other-ca")?;
    if reload(&loaded, Some(NetworkSpec { ca: Some(other.cert.clone()), ..Default::default() }), report).await {
        let driver = loaded.host.power(&loaded.name).map_err(|e| Error::Setup(e.to_string()))?;
        let (out, elapsed) = timed(driver.get_power_state(&bmc, &creds)).await;
        let outcome = match out {
            Ok(state) => Err(format!("a BMC whose certificate the host does not trust answered {state:?}")),
            Err(e) => match expect_error(&e, "invalid-config", &password) {
                Ok(m) if m.contains("TLS") => Ok(m),
                Ok(m) => Err(format!("the error does not say it is TLS: {m}")),
                Err(m) => Err(m),
            },
        };
        report.push(Check::new("error mapping: untrusted certificate is a TLS invalid-config", outcome, Some(elapsed)));
    }
    drop(sushy);

    let events = capture.events();
    let in_logs = events.iter().filter(|e| e.text.contains(&password)).count();
    report.push(if in_logs == 0 {
        Check::pass("secrets: never in logs", format!("{} log events, none holds the password", events.len()), None)
    } else {
        Check::fail("secrets: never in logs", format!("{in_logs} log events hold the BMC password"), None)
    });
    Ok(())
}

/// Loads the plugin again with these network settings (the CA is only known once the emulator
/// made it); false (and a failed check) when it does not load.
async fn reload(loaded: &Loaded, network: Option<NetworkSpec>, report: &mut Report) -> bool {
    let spec = metalhost_plugin_host::PluginSpec { exec: Vec::new(), network, ..loaded.spec.clone() };
    let status = loaded.host.load(std::slice::from_ref(&spec)).await;
    match status.into_iter().next() {
        Some(s) if s.loaded => true,
        Some(s) => {
            report.push(Check::fail("load with the emulator's CA", s.error.unwrap_or_default(), None));
            false
        }
        None => false,
    }
}

/// Requests the emulator logged so far (werkzeug writes one line per request).
fn requests(sushy: &Sushy) -> usize {
    sushy.log().lines().filter(|l| l.contains("\"GET ") || l.contains("\"POST ") || l.contains("\"PATCH ")).count()
}

async fn check<T, F>(report: &mut Report, name: &str, password: &str, call: impl Future<Output = Result<T, CallError>>, verify: F)
where
    F: FnOnce(T) -> Result<String, String>,
{
    let (out, elapsed) = timed(call).await;
    let outcome = match out {
        Ok(v) => verify(v),
        Err(e) => Err(shown(&e, password)),
    };
    report.push(Check::new(name, outcome, Some(elapsed)));
}

/// The system's `PowerState` and `Boot` as the emulator reports them.
fn emulator(sushy: &Sushy, password: &str) -> Result<(String, serde_json::Value), String> {
    let system = sushy.system(password).map_err(|e| format!("reading the emulator back: {e}"))?;
    let power = system.get("PowerState").and_then(|p| p.as_str()).unwrap_or("?").to_owned();
    Ok((power, system.get("Boot").cloned().unwrap_or_default()))
}

async fn lifecycle(driver: &PowerDriver<'_>, sushy: &Sushy, bmc: &Bmc, creds: &Credentials, report: &mut Report) {
    let pw = creds.password.as_str();
    let state =
        |want: PowerState| move |got: PowerState| if got == want { Ok(format!("{got:?}")) } else { Err(format!("expected {want:?}, got {got:?}")) };
    let power_is = |want: &'static str| {
        move |()| match emulator(sushy, pw) {
            Ok((power, _)) if power == want => Ok(format!("the emulator reports PowerState {power}")),
            Ok((power, _)) => Err(format!("the call returned but the emulator reports PowerState {power}, expected {want}")),
            Err(e) => Err(e),
        }
    };
    check(report, "get-power-state (off)", pw, driver.get_power_state(bmc, creds), state(PowerState::Off)).await;
    check(report, "set-power-state on", pw, driver.set_power_state(bmc, creds, PowerAction::On), power_is("On")).await;
    check(report, "get-power-state (on)", pw, driver.get_power_state(bmc, creds), state(PowerState::On)).await;
    check(report, "set-power-state off", pw, driver.set_power_state(bmc, creds, PowerAction::Off), power_is("Off")).await;
    check(report, "set-power-state reboot (from off)", pw, driver.set_power_state(bmc, creds, PowerAction::Reboot), power_is("On")).await;
    check(report, "set-power-state reboot (from on)", pw, driver.set_power_state(bmc, creds, PowerAction::Reboot), power_is("On")).await;
    for (device, persistent, mode, target, name) in [
        (BootDevice::Pxe, false, Some(BootMode::Uefi), "Pxe", "set-boot-device pxe (next boot, uefi)"),
        (BootDevice::Disk, true, Some(BootMode::Legacy), "Hdd", "set-boot-device disk (persistent, legacy)"),
        (BootDevice::Pxe, true, None, "Pxe", "set-boot-device pxe (persistent)"),
    ] {
        check(report, name, pw, driver.set_boot_device_in(bmc, creds, device, persistent, mode), |()| {
            let (_, boot) = emulator(sushy, pw)?;
            let got = boot.get("BootSourceOverrideTarget").and_then(|t| t.as_str()).unwrap_or("?");
            let got_mode = boot.get("BootSourceOverrideMode").and_then(|t| t.as_str()).unwrap_or("?");
            let want_mode = match mode {
                Some(BootMode::Uefi) => Some("UEFI"),
                Some(BootMode::Legacy) => Some("Legacy"),
                None => None,
            };
            if got != target {
                Err(format!("the emulator boots {got}, expected {target}"))
            } else if want_mode.is_some_and(|m| m != got_mode) {
                Err(format!("the emulator's boot mode is {got_mode}, expected {}", want_mode.unwrap_or("?")))
            } else {
                Ok(format!("the emulator boots {got} ({got_mode})"))
            }
        })
        .await;
    }
}
