//! The node lifecycle (see ARCHITECTURE.md) and the other small state enums, with their string forms.

use std::fmt;
use std::str::FromStr;

use super::ParseError;

/// Generates `as_str`, `Display` and `FromStr` from one table of variants and their wire names.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            #[allow(dead_code)] // tests walk every enum; the metrics use some
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError(format!(
                        concat!("invalid ", stringify!($name), " {:?}: expected one of {}"),
                        s,
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
    };
}

string_enum!(
    /// Where a node is in its life. Persisted before any side effect.
    ProvisionState {
        Enrolled => "enrolled",
        Available => "available",
        Deploying => "deploying",
        WaitAgent => "wait-agent",
        Activating => "activating",
        Active => "active",
        Deleting => "deleting",
        Cleaning => "cleaning",
        Inspecting => "inspecting",
        Error => "error",
    }
);

impl ProvisionState {
    /// States in which a workflow is running: each has a deadline and ends in a stable state or `error`.
    pub fn is_transitional(self) -> bool {
        matches!(self, Self::Deploying | Self::WaitAgent | Self::Activating | Self::Deleting | Self::Cleaning | Self::Inspecting)
    }

    /// States in which the node's agent may call in. `deploying` and `deleting` count because the
    /// agent can boot before the host has recorded the next state.
    pub fn expects_agent(self) -> bool {
        matches!(self, Self::Deploying | Self::WaitAgent | Self::Deleting | Self::Cleaning | Self::Inspecting)
    }

    /// States an inspection may start from, and returns to.
    pub fn can_be_inspected(self) -> bool {
        matches!(self, Self::Enrolled | Self::Available)
    }

    /// The lifecycle's edges. Any state may fail into `error`.
    pub fn can_become(self, to: ProvisionState) -> bool {
        use ProvisionState::*;
        if to == Error {
            return true;
        }
        matches!(
            (self, to),
            (Enrolled, Available)
                | (Available, Enrolled)
                | (Available, Deploying)
                | (Deploying, WaitAgent)
                | (WaitAgent, Activating)
                | (Activating, Active)
                | (Active, Deleting)
                | (Deleting, Cleaning)
                | (Deleting, Available)
                | (Cleaning, Available)
                | (Error, Deleting)
                | (Error, Cleaning)
                | (Error, Available)
                | (Error, Enrolled)
                | (Enrolled, Inspecting)
                | (Available, Inspecting)
                | (Inspecting, Enrolled)
                | (Inspecting, Available)
        )
    }
}

string_enum!(
    /// The last power state read from (or set on) the BMC.
    PowerState {
        On => "on",
        Off => "off",
        Unknown => "unknown",
    }
);

impl NetworkKind {
    /// The networks a node's port can be moved to (`unknown` is only ever read from a switch).
    pub const MOVABLE: &'static [NetworkKind] = &[NetworkKind::Provisioning, NetworkKind::Tenant];
}

string_enum!(
    /// Which network a node's switch port is on.
    NetworkKind {
        Provisioning => "provisioning",
        Tenant => "tenant",
        Unknown => "unknown",
    }
);

string_enum!(
    TaskKind {
        Deploy => "deploy",
        Clean => "clean",
        Inspect => "inspect",
    }
);

string_enum!(
    /// An agent task: pending until the agent fetches it, running until it reports.
    TaskState {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
);

string_enum!(
    /// An instance's state, following its node's workflow.
    InstanceState {
        Deploying => "deploying",
        Active => "active",
        Deleting => "deleting",
        Error => "error",
    }
);

string_enum!(
    /// How an image's bytes are compressed.
    Compression {
        None => "none",
        Gzip => "gzip",
        Zstd => "zstd",
    }
);

impl Compression {
    /// Guesses the compression of an image from its first bytes.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

string_enum!(
    /// What an image file is: a disk as it is (perhaps compressed whole), or qcow2, which the agent
    /// converts while it writes. Told from the file's bytes when the image is added.
    ImageFormat {
        Raw => "raw",
        Qcow2 => "qcow2",
    }
);

string_enum!(
    /// What an operator or a workflow asks of a node's power: the plugin contract's `power-action`
    /// (`metalhost:drivers@0.2.0`), case for case. `reboot` powers an off node on and cycles an on
    /// one, so "make sure it boots now" is one call; the graceful ones ask the operating system
    /// (ACPI), and only a 0.2.0 plugin can (a 0.1.0 one answers `unsupported`).
    PowerAction {
        On => "on",
        Off => "off",
        Reboot => "reboot",
        GracefulOff => "graceful-off",
        GracefulReboot => "graceful-reboot",
    }
);

impl PowerAction {
    /// What an operator may ask through the API. The graceful actions are not offered there: a
    /// 0.1.0 plugin cannot do them, and the power state a node ends in is its OS's choice.
    pub const OPERATOR: &'static [PowerAction] = &[PowerAction::On, PowerAction::Off, PowerAction::Reboot];
}

string_enum!(
    /// How a node's firmware boots: legacy BIOS or UEFI. `Legacy` is the plugin contract's name
    /// (`boot-mode`); it is stored and shown as `bios`. Set by the operator or learnt by inspection.
    BootMode {
        Legacy => "bios",
        Uefi => "uefi",
    }
);

string_enum!(
    BootDevice {
        Pxe => "pxe",
        Disk => "disk",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_strings() {
        for s in ProvisionState::ALL {
            assert_eq!(s.as_str().parse::<ProvisionState>().unwrap(), *s);
        }
        assert!("bogus".parse::<ProvisionState>().is_err());
    }

    #[test]
    fn lifecycle_edges() {
        use ProvisionState::*;
        let path = [Enrolled, Available, Deploying, WaitAgent, Activating, Active, Deleting, Cleaning, Available];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{} -> {}", pair[0], pair[1]);
        }
        assert!(!Available.can_become(Active));
        assert!(!Active.can_become(Available));
        assert!(Active.can_become(Error));
        for from in [Enrolled, Available] {
            assert!(from.can_be_inspected() && from.can_become(Inspecting) && Inspecting.can_become(from));
        }
        assert!(!Active.can_become(Inspecting) && !Inspecting.can_become(Active));
        assert!(Inspecting.is_transitional() && Inspecting.expects_agent());
    }

    #[test]
    fn small_enums_round_trip() {
        for s in InstanceState::ALL {
            assert_eq!(s.as_str().parse::<InstanceState>().unwrap(), *s);
        }
        for c in Compression::ALL {
            assert_eq!(c.as_str().parse::<Compression>().unwrap(), *c);
        }
        assert!("bzip2".parse::<Compression>().is_err());
        assert_eq!("reboot".parse::<PowerAction>().unwrap(), PowerAction::Reboot);
        assert!("cycle".parse::<PowerAction>().is_err());
        assert_eq!("pxe".parse::<BootDevice>().unwrap(), BootDevice::Pxe);
        for a in PowerAction::ALL {
            assert_eq!(a.as_str().parse::<PowerAction>().unwrap(), *a);
        }
        assert_eq!("bios".parse::<BootMode>().unwrap(), BootMode::Legacy);
        assert_eq!(BootMode::Legacy.as_str(), "bios");
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(Compression::sniff(b"\xebX\x90"), Compression::None);
        assert_eq!(Compression::sniff(b""), Compression::None);
    }
}
