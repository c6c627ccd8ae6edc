//! Which version of the plugin contract a component was built for: one type, where the runtime
//! used to compare version strings (ARCHITECTURE.md, `wit/`).

use crate::spec::PluginKind;

/// A frozen version of the `metalhost:drivers` package that this host loads. The runtime speaks the
/// newest one's types; an older one reaches them through its adapter (`v0_1.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contract {
    /// `wit/drivers.wit`: a world for every plugin kind; power plugins run granted programs.
    V0_1,
    /// `wit/drivers-0.2.0.wit`: power plugins only, reaching their BMC through `http` and
    /// `datagram`; graceful actions, boot mode, described consoles.
    V0_2,
}

impl Contract {
    /// Every contract this host loads components of, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1, Contract::V0_2];

    /// The package name and version, as the API, `plugin list` and `plugin test` show it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Contract::V0_1 => "metalhost:drivers@0.1.0",
            Contract::V0_2 => "metalhost:drivers@0.2.0",
        }
    }

    /// The version alone, as a component's export names carry it (`metalhost:drivers/power@0.2.0`).
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// Whether this contract has a world for plugins of `kind` (0.2.0 has a power world only).
    pub fn has_world(self, kind: PluginKind) -> bool {
        self == Contract::V0_1 || kind == PluginKind::Power
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_packages_of_the_wit_files() {
        for (contract, wit) in
            [(Contract::V0_1, include_str!("../../../wit/drivers.wit")), (Contract::V0_2, include_str!("../../../wit/drivers-0.2.0.wit"))]
        {
            let package = wit.lines().find_map(|l| l.strip_prefix("package ")).map(|p| p.trim_end_matches(';'));
            assert_eq!(package, Some(contract.as_str()));
            assert_eq!(contract.as_str().rsplit('@').next(), Some(contract.version()));
        }
    }
}
