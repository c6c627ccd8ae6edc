//! `metalhost plugin ...`

use clap::Subcommand;

use super::client::{CliError, Client};
use super::Printer;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List configured plugins: name, version, kind, grants, sha256, and whether each loaded.
    List,
}

pub async fn run(client: &Client, out: &Printer, cmd: PluginCommand) -> Result<(), CliError> {
    match cmd {
        PluginCommand::List => {
            let list = client.get("/v1/plugins").await?;
            out.list(&list, &[("NAME", "name"), ("KIND", "kind"), ("VERSION", "version"), ("LOADED", "loaded"), ("SHA256", "sha256"), ("GRANTS", "grants"), ("ERROR", "error")]);
        }
    }
    Ok(())
}
