//! The Debian package, installed on this machine as an operator would: `scripts/package-deb`, then
//! `dpkg -i`, `systemd-analyze verify` of the unit, the installed daemon started with the installed
//! config (as the unit runs it: user metalhost with only the unit's ambient capabilities) on a temp
//! data dir, a node enrolled and its BMC asked through a confined ipmitool, then `dpkg --purge`
//! leaving only the system user (Debian policy keeps it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use metalhost_tests::daemon::TOKEN;
use metalhost_tests::ipmi_sim::IpmiSim;
use metalhost_tests::paths::{host_binary, workspace_root};

/// What the package installs; every path must be gone after a purge.
const INSTALLED: &[&str] =
    &["/usr/bin/metalhost", "/usr/lib/metalhost", "/etc/metalhost", "/lib/systemd/system/metalhost.service", "/usr/share/doc/metalhost"];

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// Purges the package when the test ends, whatever happened.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "metalhost"]).stdout(Stdio::null()).status();
    }
}

struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cgroup systemd gives the unit (`Delegate=yes`): a cgroup v2 dir the service user owns, with
/// its `cgroup.procs`, where the daemon makes each plugin program's network scope. Removed, with
/// whatever the daemon left in it, on drop.
struct DelegatedCgroup(PathBuf);

impl DelegatedCgroup {
    fn new() -> DelegatedCgroup {
        let dir = PathBuf::from(format!("/sys/fs/cgroup/unified/metalhost-package-test-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("make the unit's cgroup");
        for path in [dir.clone(), dir.join("cgroup.procs"), dir.join("cgroup.subtree_control"), dir.join("cgroup.threads")] {
            run(Command::new("chown").arg("metalhost:metalhost").arg(&path));
        }
        DelegatedCgroup(dir)
    }
}

impl Drop for DelegatedCgroup {
    fn drop(&mut self) {
        fn remove(dir: &Path) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    remove(&entry.path());
                }
            }
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        remove(&self.0);
    }
}

/// `metalhost serve` from the package, as user metalhost with the unit's ambient capabilities, in
/// a cgroup delegated to it as the unit's is.
fn serve_installed(data: &Path, log: &Path, cgroup: &DelegatedCgroup) -> Served {
    let caps = "+setuid,+setgid,+chown,+kill,+bpf,+net_admin";
    let enter = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", cgroup.0.display());
    let child = Command::new("sh")
        .args(["-c", &enter, "sh", "setpriv"])
        .args(["--reuid", "metalhost", "--regid", "metalhost", "--init-groups"])
        .args(["--inh-caps", caps, "--ambient-caps", caps, "--"])
        .args(["/usr/bin/metalhost", "serve", "--config", "/etc/metalhost/metalhost.toml", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("METALHOST_TOKEN", TOKEN)
        .stdout(std::fs::File::create(log).expect("log"))
        .stderr(std::fs::File::options().append(true).open(log).expect("log"))
        .spawn()
        .expect("start the installed daemon");
    let mut served = Served { child, url: String::new() };
    // A fresh plugin cache: the release daemon compiles five plugins first, which took over a
    // minute beside two VMs and clippy.
    let until = Instant::now() + Duration::from_secs(240);
    while served.url.is_empty() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(url) = text.lines().find(|l| l.contains("metalhost is serving")).and_then(|l| l.split(" url=").nth(1)) {
            served.url = url.split_whitespace().next().unwrap_or_default().to_owned();
        }
        assert!(served.child.try_wait().expect("wait").is_none(), "the installed daemon exited: {text}");
        assert!(Instant::now() < until, "the installed daemon did not start: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    served
}

fn cli(url: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    // The package's daemon serves TLS under the CA it made in /etc/metalhost/tls.
    let text = run(Command::new("/usr/bin/metalhost")
        .args(["--url", url, "--token", TOKEN, "--ca", "/etc/metalhost/tls/ca.pem", "--json"])
        .args(args)
        .envs(env.iter().copied()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn the_package_installs_runs_confined_and_purges_clean() {
    let already = Command::new("dpkg-query").args(["-W", "-f=${Status}", "metalhost"]).output().expect("dpkg-query");
    assert!(
        !String::from_utf8_lossy(&already.stdout).contains("install ok installed"),
        "a metalhost package is installed on this machine; this test installs and purges its own"
    );
    let out = tempfile::tempdir().expect("tmp");
    let built =
        run(Command::new(workspace_root().join("scripts/package-deb")).arg("--binary").arg(host_binary("metalhost")).arg("--out").arg(out.path()));
    let deb = PathBuf::from(built.lines().rev().find(|l| l.starts_with('/') && l.ends_with(".deb")).expect("the script prints the package path"));
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/metalhost",
        "./usr/lib/metalhost/metalhost-agent",
        "./usr/lib/metalhost/bootstrap/initrd.gz",
        "./usr/lib/metalhost/plugins/ipmitool.wasm",
        "./usr/lib/metalhost/plugins/ipmi_lan.wasm",
        "./usr/lib/metalhost/plugins/redfish.wasm",
        "./etc/metalhost/metalhost.toml",
    ] {
        assert!(contents.contains(path), "{path} missing from the package:\n{contents}");
    }
    let conffiles = run(Command::new("dpkg-deb").arg("--info").arg(&deb).arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/metalhost/metalhost.toml", "the config is a conffile");

    let _installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    let verify = run(Command::new("systemd-analyze").args(["verify", "/lib/systemd/system/metalhost.service"]));
    assert!(!verify.contains("Unknown") && !verify.contains("Failed"), "{verify}");
    let file = run(Command::new("file").arg("-L").arg("/usr/bin/metalhost"));
    assert!(file.contains(", stripped"), "{file}");
    let key = std::fs::metadata("/etc/metalhost/secrets.key").expect("the postinst makes the sealing key");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
    let owner = run(Command::new("stat").args(["-c", "%U", "/etc/metalhost/secrets.key"]));
    assert_eq!(owner.trim(), "metalhost");

    // The installed daemon, installed config, a temp data dir owned by the service user.
    let data = tempfile::tempdir().expect("tmp");
    run(Command::new("chown").arg("metalhost:metalhost").arg(data.path()));
    let log = data.path().join("daemon.log");
    let cgroup = DelegatedCgroup::new();
    let served = serve_installed(&data.path().join("data"), &log, &cgroup);
    assert!(served.url.starts_with("https://"), "the package's daemon serves TLS by default: {}", served.url);
    let key = std::fs::metadata("/etc/metalhost/tls/ca.key").expect("the daemon made its CA where the package said");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);
    let plugins = cli(&served.url, &["plugin", "list"], &[]);
    for plugin in plugins.as_array().expect("list") {
        assert_eq!(plugin["loaded"], true, "shipped plugin did not load with its pin: {plugin}");
    }
    let confinement = &plugins.as_array().and_then(|a| a.iter().find(|p| p["name"] == "ipmitool")).expect("ipmitool")["confinement"];
    assert_eq!((confinement["user"].as_str(), confinement["user_switched"].as_bool()), (Some("nobody"), Some(true)), "{confinement}");
    assert!(confinement["network_scope"].is_string(), "the unit's daemon should scope programs' network: {confinement}");

    let sim = IpmiSim::start("admin", "pkg-bmc-pass");
    let switch = cli(
        &served.url,
        &["switch", "add", "--name", "sw1", "--address", "127.0.0.1", "--username", "admin", "--driver", "juniper"],
        &[("METALHOST_SWITCH_PASSWORD", "pkg-switch-pass")],
    );
    let switch_id = switch["id"].to_string();
    let port = sim.port.to_string();
    cli(
        &served.url,
        &[
            "node",
            "add",
            "--name",
            "node1",
            "--mac",
            "52:54:00:aa:00:01",
            "--ip",
            "10.99.0.11",
            "--cpus",
            "2",
            "--ram-mb",
            "2048",
            "--disk-gb",
            "10",
            "--bmc-address",
            "127.0.0.1",
            "--bmc-port",
            &port,
            "--bmc-username",
            "admin",
            "--power-driver",
            "ipmitool",
            "--switch-id",
            &switch_id,
            "--switch-port",
            "ge-0/0/1",
        ],
        &[("METALHOST_BMC_PASSWORD", "pkg-bmc-pass")],
    );
    // ipmitool runs as nobody under Landlock, started by a daemon that is not root.
    let power = cli(&served.url, &["node", "power", "node1", "status"], &[]);
    assert_eq!(power["power_state"], "off", "{power}");
    let db = std::fs::read(data.path().join("data/metalhost.db")).expect("database");
    assert!(!String::from_utf8_lossy(&db).contains("pkg-bmc-pass"), "the password is sealed at rest");
    drop(served);

    run(Command::new("dpkg").args(["--purge", "metalhost"]));
    for path in INSTALLED {
        assert!(!Path::new(path).exists(), "{path} is left after purge");
    }
    assert!(!Path::new("/var/lib/metalhost").exists(), "the data dir is left after purge");
    let user = Command::new("getent").args(["passwd", "metalhost"]).output().expect("getent");
    assert!(user.status.success(), "the system user stays after purge (Debian policy)");
}
