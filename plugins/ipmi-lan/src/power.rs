//! The power operations in IPMI terms, on any [`Transport`]: chassis status, chassis control with
//! the 0.2.0 contract's semantics (on/off return once the BMC reports the result; reboot of an off
//! node powers it on, of an on node is one hard reset, never repeated by a retransmission), and
//! boot flags (parameter 5).

use std::time::{Duration, Instant};

use crate::codec::commands::{self, BootTarget, Control};
use crate::session::{Options, Session, SessionError, Transport};

/// What a power call does, independent of the generated contract types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    On,
    Off,
    Reboot,
    GracefulOff,
    GracefulReboot,
}

/// One call's parameters: the session options and how long to wait for the chassis to settle.
pub struct Driver {
    pub options: Options,
    pub power_wait: Duration,
    pub poll: Duration,
}

impl Driver {
    fn session<'t, T: Transport>(&self, t: &'t mut T, user: &str, password: &str) -> Result<Session<'t, T>, SessionError> {
        Session::open(t, self.options.clone(), user, password)
    }

    /// Readies the BMC for a console program: opens a session (which checks the credentials and
    /// learns the cipher suite the program must use too) and frees a Serial over LAN payload a
    /// dead session left active, as Ironic's IPMI consoles do before `sol activate`.
    pub fn prepare_console<T: Transport>(&self, t: &mut T, user: &str, password: &str) -> Result<crate::codec::suite::Suite, SessionError> {
        let mut s = self.session(t, user, password)?;
        let tolerated = [commands::SOL_NOT_ACTIVE, commands::INVALID_COMMAND];
        let (completion, _) = s.call_tolerating("Deactivate Payload (SOL)", &commands::deactivate_sol(), &tolerated)?;
        if completion == commands::INVALID_COMMAND {
            return Err(SessionError::Unsupported("the BMC has no Serial over LAN (it does not know Deactivate Payload)".into()));
        }
        Ok(s.suite())
    }

    pub fn power_is_on<T: Transport>(&self, t: &mut T, user: &str, password: &str) -> Result<bool, SessionError> {
        let mut s = self.session(t, user, password)?;
        is_on(&mut s)
    }

    pub fn set_power<T: Transport>(&self, t: &mut T, user: &str, password: &str, action: Action) -> Result<(), SessionError> {
        let mut s = self.session(t, user, password)?;
        let on = is_on(&mut s)?;
        let (control, want) = match (action, on) {
            (Action::On, true) | (Action::Off, false) => return Ok(()),
            (Action::On | Action::Reboot | Action::GracefulReboot, false) => (Control::On, true),
            (Action::Off, true) => (Control::Off, false),
            (Action::Reboot, true) => (Control::HardReset, true),
            (Action::GracefulOff, false) => return Ok(()),
            (Action::GracefulOff, true) => {
                s.call("Chassis Control (soft off)", &commands::chassis_control(Control::SoftOff))?;
                return Ok(());
            }
            (Action::GracefulReboot, true) => {
                return Err(SessionError::Unsupported(
                    "IPMI has no graceful restart: the OS can be asked to shut down (graceful-off), then powered on".into(),
                ));
            }
        };
        let name = format!("Chassis Control ({control:?})");
        if control == Control::HardReset {
            // A reset cannot be read back from the chassis state, so it is never sent twice: a
            // BMC still answering after every copy went unanswered lost our reply, not the reset.
            if s.call_at_most_once(&name, &commands::chassis_control(control))?.is_none() {
                is_on(&mut s)?;
            }
            return Ok(());
        }
        // On and off are idempotent: resending them is harmless, and they are polled until the BMC
        // reports the new state.
        s.call(&name, &commands::chassis_control(control))?;
        let deadline = Instant::now() + self.power_wait;
        loop {
            if is_on(&mut s)? == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let state = if want { "on" } else { "off" };
                return Err(SessionError::CommandFailed(format!(
                    "the BMC accepted {control:?} but did not report power {state} within {} s",
                    self.power_wait.as_secs()
                )));
            }
            std::thread::sleep(self.poll);
        }
    }

    /// Boot flags parameter 5. `efi: None` keeps the EFI bit the BMC has now.
    pub fn set_boot<T: Transport>(
        &self,
        t: &mut T,
        user: &str,
        password: &str,
        target: BootTarget,
        persistent: bool,
        efi: Option<bool>,
    ) -> Result<(), SessionError> {
        let mut s = self.session(t, user, password)?;
        let efi = match efi {
            Some(efi) => efi,
            // A BMC that cannot say gets legacy, the bit's zero value and most BMCs' default.
            None => match s.call("Get System Boot Options (boot flags)", &commands::get_boot_flags()) {
                Ok(data) => commands::boot_flags_efi(&data).unwrap_or(false),
                Err(SessionError::CommandFailed(_)) => false,
                Err(e) => return Err(e),
            },
        };
        s.call("Set System Boot Options (boot flags)", &commands::set_boot_flags(target, persistent, efi))?;
        Ok(())
    }
}

fn is_on<T: Transport>(s: &mut Session<'_, T>) -> Result<bool, SessionError> {
    let data = s.call("Get Chassis Status", &commands::chassis_status())?;
    commands::power_is_on(&data).map_err(|e| SessionError::Parse(e.to_string()))
}
