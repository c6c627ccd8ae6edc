//! `metalhost plugin ...`: `list` asks the daemon; `new` and `test` are local vendor-kit commands
//! that need no daemon (main dispatches them before the REST client).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use metalhost_plugin_host::PluginKind;

use super::Printer;
use super::client::{CliError, Client};
use super::plugin_new;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List configured plugins: name, version, kind, grants, sha256, and whether each loaded.
    List,
    /// Write a ready-to-build plugin crate from a template (local; no daemon).
    New(NewArgs),
    /// Run the conformance suite against a built plugin, with real simulators (local; no daemon).
    Test(TestArgs),
}

impl PluginCommand {
    /// Commands that run here without talking to the daemon.
    pub fn is_local(&self) -> bool {
        matches!(self, PluginCommand::New(_) | PluginCommand::Test(_))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Power,
    Switch,
    Netboot,
}

impl From<Kind> for PluginKind {
    fn from(k: Kind) -> PluginKind {
        match k {
            Kind::Power => PluginKind::Power,
            Kind::Switch => PluginKind::Switch,
            Kind::Netboot => PluginKind::Netboot,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TemplateArg {
    Ipmitool,
    Redfish,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The world the plugin implements.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The crate name (lower case, digits, `-`); also the plugin's name.
    pub name: String,
    /// Power plugins: `ipmitool` (the default: a tool run through `exec`, contract 0.1.0) or
    /// `redfish` (HTTP to the BMC through the host, contract 0.2.0, no exec grant).
    #[arg(long, value_enum, default_value = "ipmitool")]
    pub template: TemplateArg,
    /// Where to write the crate (default: ./NAME). Must not exist or be empty.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// The metalhost-plugin-sdk crate (plugins/sdk of a metalhost source tree) the new crate
    /// depends on by path; default: the one this binary was built from.
    #[arg(long, env = "METALHOST_PLUGIN_SDK")]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The built component (`target/wasm32-wasip2/release/NAME.wasm`).
    pub wasm: PathBuf,
    /// The world it implements.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// A program the plugin may run, as operators grant it in `exec = [...]` (repeatable;
    /// power default: ipmitool). Anything else it runs fails the grants check.
    #[arg(long = "exec")]
    pub exec: Vec<String>,
    /// Plugin config `KEY=VALUE` (repeatable), as in the `[[plugin]]` table's `config`.
    #[arg(long = "config", value_parser = key_value)]
    pub config: Vec<(String, String)>,
    /// The fake-switches emulator (switch plugins).
    #[arg(long, env = "METALHOST_FAKE_SWITCHES")]
    pub fake_switches: Option<PathBuf>,
    /// The emulated switch model: juniper_generic (EX, legacy syntax) or juniper_qfx_copper_generic (ELS).
    #[arg(long, default_value = "juniper_generic")]
    pub switch_model: String,
    /// The sushy-emulator Redfish BMC (power plugins of contract 0.2.0, which speak HTTP).
    #[arg(long, env = "METALHOST_SUSHY_EMULATOR")]
    pub sushy_emulator: Option<PathBuf>,
    /// Power plugins of contract 0.2.0: the BMC they speak to, redfish (sushy-emulator) or ipmi
    /// (ipmi_sim, IPMI over LAN through the datagram capability).
    #[arg(long, value_enum, default_value = "redfish")]
    pub bmc: BmcArg,
    /// Each call's deadline, as `call_timeout_s` in `[[plugin]]`.
    #[arg(long, default_value_t = 20)]
    pub call_timeout_s: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BmcArg {
    Redfish,
    Ipmi,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

pub async fn run(client: &Client, out: &Printer, cmd: PluginCommand) -> Result<(), CliError> {
    match cmd {
        PluginCommand::List => {
            let mut list = client.get("/v1/plugins").await?;
            if let Some(rows) = list.as_array_mut() {
                for row in rows {
                    let line = confinement_line(&row["confinement"]);
                    row["confinement_line"] = serde_json::Value::String(line);
                }
            }
            out.list(
                &list,
                &[
                    ("NAME", "name"),
                    ("KIND", "kind"),
                    ("VERSION", "version"),
                    ("LOADED", "loaded"),
                    ("SHA256", "sha256"),
                    ("GRANTS", "grants"),
                    ("CONFINEMENT", "confinement_line"),
                    ("ERROR", "error"),
                ],
            );
            Ok(())
        }
        PluginCommand::New(_) | PluginCommand::Test(_) => Err(CliError::Usage("plugin new and plugin test run locally".into())),
    }
}

/// One cell saying how a plugin's programs are confined (the runtime's own summary line; loud
/// when Landlock is missing).
fn confinement_line(c: &serde_json::Value) -> String {
    match serde_json::from_value::<metalhost_plugin_host::Confinement>(c.clone()) {
        Ok(confinement) => confinement.summary(),
        Err(_) => "no exec".to_owned(),
    }
}

/// `plugin new` and `plugin test`, synchronously: the conformance suite runs its own runtime.
pub fn run_local(cmd: &PluginCommand, json: bool) -> ExitCode {
    match cmd {
        PluginCommand::List => ExitCode::FAILURE,
        PluginCommand::New(args) => match plugin_new::write(
            args.kind.into(),
            match args.template {
                TemplateArg::Ipmitool => plugin_new::Template::Default,
                TemplateArg::Redfish => plugin_new::Template::Redfish,
            },
            &args.name,
            args.path.as_deref(),
            args.sdk.as_deref(),
        ) {
            Ok(created) => {
                if json {
                    super::output::json(&serde_json::json!({ "ok": true, "path": created.dir, "sdk": created.sdk, "wasm": created.wasm }));
                } else {
                    println!("created {} (SDK: {})", created.dir.display(), created.sdk.display());
                    println!("next:\n  cd {}\n  cargo build --release --target wasm32-wasip2", created.dir.display());
                    println!("  metalhost plugin test {} --kind {}", created.wasm.display(), PluginKind::from(args.kind));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        PluginCommand::Test(args) => {
            let mut opts = metalhost_conformance::Options::new(args.wasm.clone(), args.kind.into());
            if !args.exec.is_empty() {
                opts.exec.clone_from(&args.exec);
            }
            opts.config = args.config.iter().cloned().collect();
            if let Some(path) = &args.fake_switches {
                opts.fake_switches.clone_from(path);
            }
            opts.switch_model.clone_from(&args.switch_model);
            if let Some(path) = &args.sushy_emulator {
                opts.sushy_emulator.clone_from(path);
            }
            opts.power_bmc = match args.bmc {
                BmcArg::Redfish => metalhost_conformance::PowerBmc::Redfish,
                BmcArg::Ipmi => metalhost_conformance::PowerBmc::Ipmi,
            };
            opts.call_timeout_s = args.call_timeout_s;
            match metalhost_conformance::run(&opts) {
                Ok(report) => {
                    if json {
                        super::output::json(&serde_json::to_value(&report).unwrap_or_default());
                    } else {
                        print!("{}", report.table());
                    }
                    if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
                }
                Err(e) => {
                    eprintln!("error: the conformance suite could not run: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
