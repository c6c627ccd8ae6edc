//! The `metalhost` command line: `serve` runs the daemon, every other command talks to it over REST.

pub mod client;
mod console;
mod image;
mod instance;
mod node;
pub mod output;
pub mod plugin;
mod plugin_new;
mod switch;
mod tenancy;

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::config::ServeArgs;
use client::{CliError, Client};

#[derive(Debug, Parser)]
#[command(name = "metalhost", version, about = "Bare-metal instances with sandboxed WebAssembly drivers")]
pub struct Cli {
    /// The daemon's API URL (before the subcommand; `image add --url` is the image's URL). Else
    /// the client config file's `url`, else https://127.0.0.1:8080.
    #[arg(long, env = "METALHOST_URL")]
    pub url: Option<String>,
    /// Your API token (prefer the env var: flags show up in `ps`). Else the client config file's
    /// (`~/.config/metalhost/client.toml`, `token create --save` writes it).
    #[arg(long, global = true, env = "METALHOST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A CA certificate (PEM) to trust for the daemon's TLS, such as the daemon's own
    /// `<data_dir>/tls/ca.pem`. Else the client config file's `ca`.
    #[arg(long, global = true, env = "METALHOST_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Manage the switch registry.
    #[command(subcommand)]
    Switch(switch::SwitchCommand),
    /// Manage the node pool.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Manage images.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Deploy and destroy instances.
    #[command(subcommand)]
    Instance(instance::InstanceCommand),
    /// Show where the bootstrap image (kernel + initramfs) is and whether it is built.
    Bootstrap,
    /// Inspect the loaded driver plugins; `new` and `test` are the local vendor kit.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// The daemons sharing this pool (several on one PostgreSQL database).
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Projects: their instance quota and VLAN (admins make them).
    #[command(subcommand)]
    Project(tenancy::ProjectCommand),
    /// Users and their roles in projects (admins).
    #[command(subcommand)]
    User(tenancy::UserCommand),
    /// API tokens: make, list, revoke.
    #[command(subcommand)]
    Token(tenancy::TokenCommand),
    /// Your SSH key pairs, by name, for `instance create --keypair`.
    #[command(subcommand)]
    Keypair(tenancy::KeypairCommand),
    /// Who changed what, and every console attach (admins), newest first: one page of `--limit`
    /// (`--all` follows every page), filtered.
    Audit(tenancy::AuditArgs),
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Every daemon of the pool: alive or not, since when, last heartbeat, node leases held.
    List,
}

/// How a command's answer is shown.
pub struct Printer {
    pub json: bool,
}

impl Printer {
    pub fn list(&self, value: &Value, columns: &[(&str, &str)]) {
        if self.json { output::json(value) } else { output::table(value, columns) }
    }

    pub fn one(&self, value: &Value) {
        if self.json { output::json(value) } else { output::record(value) }
    }

    pub fn done(&self, message: &str) {
        if self.json {
            output::json(&serde_json::json!({ "ok": true, "message": message }));
        } else {
            println!("{message}");
        }
    }
}

pub async fn run_client(cli: Cli) -> Result<(), CliError> {
    // Flags and env first, then the client config file (which is only read when one is missing).
    let saved = if cli.url.is_none() || cli.token.is_none() || cli.ca.is_none() { tenancy::client_config::load()? } else { Default::default() };
    let url = cli.url.clone().or(saved.url).unwrap_or_else(|| "https://127.0.0.1:8080".to_owned());
    let client = Client::new(&url, cli.token.clone().or(saved.token), cli.ca.as_deref().or(saved.ca.as_deref()))?;
    let printer = Printer { json: cli.json };
    match cli.command {
        Command::Serve(_) => Err(CliError::Usage("serve is not a client command".into())),
        Command::Switch(cmd) => switch::run(&client, &printer, cmd).await,
        Command::Node(cmd) => node::run(&client, &printer, cmd).await,
        Command::Image(cmd) => image::run(&client, &printer, cmd).await,
        Command::Instance(cmd) => instance::run(&client, &printer, cmd).await,
        Command::Bootstrap => {
            let view = client.get("/v1/bootstrap").await?;
            if printer.json {
                output::json(&view);
            } else {
                println!("bootstrap dir: {}", output::cell(view.get("dir")));
                printer.list(&view["files"], &[("FILE", "name"), ("SIZE", "size"), ("URL", "url")]);
            }
            Ok(())
        }
        Command::Plugin(cmd) => plugin::run(&client, &printer, cmd).await,
        Command::Project(cmd) => tenancy::project(&client, &printer, cmd).await,
        Command::User(cmd) => tenancy::user(&client, &printer, cmd).await,
        Command::Token(cmd) => tenancy::token(&client, &printer, cmd).await,
        Command::Keypair(cmd) => tenancy::keypair(&client, &printer, cmd).await,
        Command::Audit(args) => tenancy::audit(&client, &printer, args).await,
        Command::Daemon(DaemonCommand::List) => {
            let list = client.get("/v1/daemons").await?;
            printer.list(
                &list,
                &[("NAME", "name"), ("ALIVE", "alive"), ("NODES", "nodes"), ("STARTED", "started_at"), ("HEARTBEAT", "heartbeat_at"), ("URL", "url")],
            );
            Ok(())
        }
    }
}

/// Path segments come from the operator: keep them from escaping the resource path.
pub fn segment(value: &str) -> String {
    value.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.:".contains(*c)).collect()
}
