//! `metalhost plugin new`: a plugin crate from the templates in `plugins/templates`, compiled
//! into the binary, depending on the SDK by path (it is not on crates.io).

use std::path::{Path, PathBuf};

use metalhost_plugin_host::PluginKind;

const CARGO_TOML: &str = include_str!("../../../plugins/templates/Cargo.toml.tmpl");
const README: &str = include_str!("../../../plugins/templates/README.md.tmpl");
const POWER: &str = include_str!("../../../plugins/templates/power.rs");
const SWITCH: &str = include_str!("../../../plugins/templates/switch.rs");
const NETBOOT: &str = include_str!("../../../plugins/templates/netboot.rs");
const REDFISH: &str = include_str!("../../../plugins/templates/redfish.rs");

/// What a new plugin starts from: its world's template, or for power, a choice of BMC protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Template {
    /// The world's own template (power: ipmitool through `exec`, contract 0.1.0).
    #[default]
    Default,
    /// Power over Redfish through the host's scoped `http` (contract 0.2.0, no exec grant).
    Redfish,
}

/// The SDK of the source tree this binary was built from.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("invalid plugin name {0:?}: use lower-case letters, digits and '-', starting with a letter")]
    Name(String),
    #[error("{} already exists and is not empty", .0.display())]
    Exists(PathBuf),
    #[error("no metalhost-plugin-sdk at {}: pass --sdk PATH (plugins/sdk of a metalhost source tree)", .0.display())]
    NoSdk(PathBuf),
    #[error("the {0} template is for power plugins")]
    TemplateKind(&'static str),
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

pub struct Created {
    pub dir: PathBuf,
    pub sdk: PathBuf,
    /// Where `cargo build --release --target wasm32-wasip2` puts the component.
    pub wasm: PathBuf,
}

fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// `my-bmc` → `MyBmc`.
fn type_name(name: &str) -> String {
    name.split('-').filter(|p| !p.is_empty()).map(|p| p[..1].to_ascii_uppercase() + &p[1..]).collect()
}

pub fn write(kind: PluginKind, template: Template, name: &str, path: Option<&Path>, sdk: Option<&Path>) -> Result<Created, NewError> {
    if !valid_name(name) {
        return Err(NewError::Name(name.to_owned()));
    }
    if template == Template::Redfish && kind != PluginKind::Power {
        return Err(NewError::TemplateKind("redfish"));
    }
    let sdk = sdk.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(BUILT_SDK));
    let sdk = sdk.canonicalize().ok().filter(|p| p.join("Cargo.toml").is_file()).ok_or(NewError::NoSdk(sdk))?;
    let dir = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(NewError::Exists(dir));
    }
    let dependencies = if template == Template::Redfish { "serde_json = \"1\"\n" } else { "" };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{struct}}", &type_name(name))
            .replace("{{kind}}", &kind.to_string())
            .replace("{{file}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{dependencies}}", dependencies)
    };
    let lib = match (kind, template) {
        (PluginKind::Power, Template::Redfish) => REDFISH,
        (PluginKind::Power, Template::Default) => POWER,
        (PluginKind::Switch, _) => SWITCH,
        (PluginKind::Netboot, _) => NETBOOT,
    };
    let files = [("Cargo.toml", fill(CARGO_TOML)), ("README.md", fill(README)), ("src/lib.rs", fill(lib)), (".gitignore", "/target\n".to_owned())];
    for (file, contents) in files {
        let target = dir.join(file);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, contents)
        };
        write().map_err(|source| NewError::Write { path: target.clone(), source })?;
    }
    let dir = dir.canonicalize().unwrap_or(dir);
    let wasm = dir.join("target/wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
    Ok(Created { dir, sdk, wasm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_crates_and_types() {
        assert!(valid_name("acme-bmc2") && !valid_name("Acme") && !valid_name("1bmc") && !valid_name("a/b") && !valid_name("x-"));
        assert_eq!(type_name("acme-bmc2"), "AcmeBmc2");
    }

    #[test]
    fn a_crate_is_written_with_the_sdk_path_and_refuses_to_overwrite() {
        let root = tempfile::tempdir().expect("tmp");
        let dir = root.path().join("acme");
        let created = write(PluginKind::Switch, Template::Default, "acme-switch", Some(&dir), None).expect("written");
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
        assert!(manifest.contains("name = \"acme-switch\"") && manifest.contains(&created.sdk.display().to_string()));
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib");
        assert!(lib.contains("export_switch!(AcmeSwitch)") && !lib.contains("{{"));
        assert!(matches!(write(PluginKind::Power, Template::Default, "again", Some(&dir), None), Err(NewError::Exists(_))));
        assert!(matches!(write(PluginKind::Power, Template::Default, "x", Some(&root.path().join("y")), Some(root.path())), Err(NewError::NoSdk(_))));
    }
}
