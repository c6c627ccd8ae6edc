//! Builds, once, what the tests' labs share, where the tests look for it: the host binaries, the
//! plugins, the static musl agent, the bootstrap image, the demo OS image, and the lab plugins
//! compiled for the daemon (see `daemon::plugin_cache`). `scripts/test` runs it before the test
//! binaries, which then run several at a time: each would otherwise make these on first use, several
//! side by side.

use metalhost_tests::daemon::Daemon;
use metalhost_tests::paths;

fn main() {
    metalhost_tests::vm_lab::prepare();
    println!("lab-artifacts: bootstrap {}", paths::bootstrap_dir().display());
    println!("lab-artifacts: musl agent {}", paths::musl_agent().display());
    println!("lab-artifacts: demo OS image {}", paths::demo_os_image().display());
    // A daemon loading the plugins every lab daemon loads compiles them into the shared cache.
    let dir = tempfile::tempdir().expect("tmp");
    let (hosts, scripts) = (dir.path().join("hosts"), dir.path().join("scripts"));
    for granted in [&hosts, &scripts] {
        std::fs::create_dir_all(granted).expect("dnsmasq's dirs");
    }
    let config = format!(
        "{}\n[[plugin]]\nname = \"dnsmasq\"\nkind = \"netboot\"\npath = \"{}\"\ndirs = [\"{hosts}\", \"{scripts}\"]\nconfig = {{ hostsdir = \"{hosts}\", scriptsdir = \"{scripts}\" }}\n",
        paths::lab_plugins_toml(),
        paths::plugin_wasm("dnsmasq").display(),
        hosts = hosts.display(),
        scripts = scripts.display(),
    );
    let daemon = Daemon::start_with(&config);
    let loaded = daemon.log().matches("plugin loaded").count();
    assert_eq!(loaded, 4, "the lab plugins did not all load:\n{}", daemon.log());
    println!("lab-artifacts: {loaded} lab plugins compiled for the test daemons");
}
