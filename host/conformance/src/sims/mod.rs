//! The simulators the suites run plugins against, each owning what it starts and stopping it by
//! PID on drop.

pub mod argv;
pub mod dnsmasq;
pub mod fake_switch;
pub mod ipmi_sim;
pub mod netns;
pub mod sushy;
pub mod test_ca;

use std::path::{Path, PathBuf};

/// `program` as found on PATH (or the sbin dirs root has), if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(["/usr/local/sbin", "/usr/sbin", "/sbin"]).map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}
