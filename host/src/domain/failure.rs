//! What kind of failure stopped a step: the driver contract's error kinds, the two transient cases
//! the host recognises inside `command-failed`, and the host's own. Decides retry and HTTP status.

use std::fmt;
use std::str::FromStr;

use super::ParseError;

/// Generated like the state enums: one table of variants and their wire names.
macro_rules! kinds {
    ($($(#[$meta:meta])* $variant:ident => $text:literal),+ $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FailureKind { $($(#[$meta])* $variant),+ }

        impl FailureKind {
            #[cfg(test)]
            pub const ALL: &'static [FailureKind] = &[$(FailureKind::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(FailureKind::$variant => $text),+ }
            }
        }

        impl FromStr for FailureKind {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(FailureKind::$variant),)+
                    _ => Err(ParseError(format!("invalid failure kind {s:?}"))),
                }
            }
        }
    };
}

kinds! {
    /// The device did not answer (no route, refused, silent).
    Unreachable => "unreachable",
    /// The session to the device broke after it was set up.
    Transport => "transport",
    /// The device refused the credentials.
    AuthFailed => "auth-failed",
    /// The device answered but refused or failed the command.
    CommandFailed => "command-failed",
    /// The switch's candidate configuration is locked or being edited by someone else.
    SwitchLocked => "switch-locked",
    /// The BMC said it is busy.
    BmcBusy => "bmc-busy",
    /// The device's answer could not be understood.
    ParseError => "parse-error",
    /// The device has no such port, VLAN or object.
    NotFound => "not-found",
    /// The driver cannot do this on this device.
    Unsupported => "unsupported",
    /// The plugin's or the node's configuration is wrong.
    InvalidConfig => "invalid-config",
    /// A plugin call, or the whole state, ran out of time.
    Deadline => "deadline",
    /// The plugin trapped or passed its memory cap.
    PluginFault => "plugin-fault",
    /// The plugin named by the node or the config is not loaded.
    NotLoaded => "not-loaded",
    /// The agent on the node reported its task failed.
    Agent => "agent",
    /// The daemon itself failed (its database).
    Internal => "internal",
}

impl FailureKind {
    /// Worth another try after a pause: the device may answer, unlock or calm down. Everything
    /// else (a wrong password, a bad config, a missing port) fails the same way every time.
    pub fn is_transient(self) -> bool {
        matches!(self, FailureKind::Unreachable | FailureKind::Transport | FailureKind::SwitchLocked | FailureKind::BmcBusy | FailureKind::Deadline)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_only_some_are_transient() {
        for k in FailureKind::ALL {
            assert_eq!(k.as_str().parse::<FailureKind>().unwrap(), *k);
        }
        let transient: Vec<&str> = FailureKind::ALL.iter().filter(|k| k.is_transient()).map(|k| k.as_str()).collect();
        assert_eq!(transient, ["unreachable", "transport", "switch-locked", "bmc-busy", "deadline"]);
    }
}
