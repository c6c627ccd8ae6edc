//! Where the workspace's built artifacts are, building them on first use.

use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the folder holding the top-level Cargo.toml).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits inside the workspace")
}

/// The cargo target dir the test binary itself was built into.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() { dir } else { workspace_root().join(dir) };
    }
    workspace_root().join("target")
}

/// A host binary of this workspace (`metalhost`, `metalhost-agent`), built (debug) if needed.
/// `METALHOST_BIN_DIR` names a dir holding them already built, and nothing is built: benchmarks point
/// it at a release build, `scripts/test` at the workspace build it just made (so the test binaries it
/// runs side by side never wait on cargo's lock, or relink a binary another test is running).
pub fn host_binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("METALHOST_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "metalhost", "-p", "metalhost-agent"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the host binaries failed");
    });
    target_dir().join("debug").join(name)
}

/// A plugin component built for wasm32-wasip2 (`ipmitool`, `freeipmi`, `juniper`, test plugins...).
/// All plugins are built once per test process; cargo makes concurrent builds safe. Always into
/// `plugins/target`, where this looks for them, whatever `CARGO_TARGET_DIR` says.
pub fn plugin_wasm(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let plugins = workspace_root().join("plugins");
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&plugins)
            .env("CARGO_TARGET_DIR", plugins.join("target"))
            .status()
            .expect("run cargo build for plugins");
        assert!(status.success(), "cargo build of the plugins failed");
    });
    let file = format!("{}.wasm", crate_name.replace('-', "_"));
    plugins.join("target/wasm32-wasip2/release").join(file)
}

/// A `[[plugin]]` entry for one of this repo's plugin crates: its built component, named after the
/// crate, no grants, the config defaults (64 MiB, 30 s). Tests change what they need with `..`.
pub fn plugin_spec(crate_name: &str, kind: metalhost_plugin_host::PluginKind) -> metalhost_plugin_host::PluginSpec {
    metalhost_plugin_host::PluginSpec {
        name: crate_name.to_owned(),
        kind,
        path: plugin_wasm(crate_name),
        sha256: None,
        exec: vec![],
        dirs: vec![],
        memory_mb: 64,
        call_timeout_s: 30,
        config: Default::default(),
        console: vec![],
        network: None,
    }
}

/// The `[[plugin]]` entries every lab daemon loads: ipmitool (granted `ipmitool`) and ipmi-lan (its
/// console grant `ipmitool`, for `sol activate`) for
/// the BMCs, and juniper for the emulator's EX model (legacy syntax).
pub fn lab_plugins_toml() -> String {
    format!(
        "\n[[plugin]]\nname = \"ipmitool\"\nkind = \"power\"\npath = \"{}\"\nexec = [\"ipmitool\"]\n\
         \n[[plugin]]\nname = \"ipmi-lan\"\nkind = \"power\"\npath = \"{}\"\nconsole = [\"ipmitool\"]\n\
         \n[[plugin]]\nname = \"juniper\"\nkind = \"switch\"\npath = \"{}\"\nconfig = {{ syntax = \"legacy\" }}\n",
        plugin_wasm("ipmitool").display(),
        plugin_wasm("ipmi-lan").display(),
        plugin_wasm("juniper").display()
    )
}

/// The bootstrap image (`vmlinuz`, `initrd.gz`) from `bootstrap/build.sh`, built once into the
/// target dir (the script caches the kernel package there and is a no-op when up to date).
pub fn bootstrap_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // scripts/test rebuilds it before every run (bootstrap/init may have changed).
            let dir = target_dir().join("lab/bootstrap");
            if !(dir.join("vmlinuz").exists() && dir.join("initrd.gz").exists()) {
                let status = Command::new(workspace_root().join("bootstrap/build.sh")).arg(&dir).status().expect("run bootstrap/build.sh");
                assert!(status.success(), "bootstrap/build.sh failed");
            }
            dir
        })
        .clone()
}

/// The static (musl) release agent the bootstrap downloads: the initramfs has no libc to run another.
pub fn musl_agent() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    const TARGET: &str = "x86_64-unknown-linux-musl";
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--release", "-p", "metalhost-agent", "--target", TARGET])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build for the musl agent");
        assert!(status.success(), "cargo build of the musl agent failed (rustup target add {TARGET})");
    });
    target_dir().join(TARGET).join("release/metalhost-agent")
}

/// The demo OS image (`bootstrap/os-image.sh`: 32 MiB, boots from disk and prints
/// `metalhost-demo-os: booted mac=...` on ttyS0), built once from the bootstrap above.
pub fn demo_os_image() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Named by the script's hash: a changed script builds a new image.
            let script = std::fs::read(workspace_root().join("bootstrap/os-image.sh")).expect("read os-image.sh");
            let tag = hex::encode(&sha2::Sha256::digest(&script)[..6]);
            let image = target_dir().join(format!("lab/demo-os-{tag}.img"));
            if !image.exists() {
                let status = Command::new(workspace_root().join("bootstrap/os-image.sh"))
                    .arg(&image)
                    .arg("--bootstrap")
                    .arg(bootstrap_dir())
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("run bootstrap/os-image.sh");
                assert!(status.success(), "bootstrap/os-image.sh failed");
            }
            image
        })
        .clone()
}

/// The Debian 12 guest image (`tests/lab/debian-guest.sh`: cloud-init on ConfigDrive only, sshd,
/// BIOS and UEFI; raw.zst, about 136 MiB, 544 MiB written), built once per machine from Debian's
/// packages, named by the script's hash like the demo image. Call it before entering a lab netns
/// (the build needs the Debian mirror).
pub fn debian_guest_image() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let script_path = workspace_root().join("tests/lab/debian-guest.sh");
            let script = std::fs::read(&script_path).expect("read debian-guest.sh");
            let tag = hex::encode(&sha2::Sha256::digest(&script)[..6]);
            let image = target_dir().join(format!("lab/debian-guest-{tag}.raw.zst"));
            if !image.exists() {
                let status = Command::new(&script_path).arg(&image).stdout(std::process::Stdio::null()).status().expect("run debian-guest.sh");
                assert!(status.success(), "tests/lab/debian-guest.sh failed");
            }
            image
        })
        .clone()
}
