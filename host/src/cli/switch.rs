//! `metalhost switch ...`

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::client::{CliError, Client, secret_from};
use super::{Printer, segment};

#[derive(Debug, Subcommand)]
pub enum SwitchCommand {
    /// Register a switch (reference design: `switchmanager add <ip> <user> <passwd> <driver> <description>`).
    Add {
        /// IP address or host name of the switch's management interface.
        #[arg(long)]
        address: String,
        /// A unique name; defaults to the address.
        #[arg(long)]
        name: Option<String>,
        /// NETCONF-over-SSH port.
        #[arg(long, default_value_t = 830)]
        port: u16,
        #[arg(long)]
        username: String,
        /// The switch password; prefer `--password-file` or the env var.
        #[arg(long, env = "METALHOST_SWITCH_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// The switch plugin name, as listed by `metalhost plugin list`.
        #[arg(long)]
        driver: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Pin the SSH host key fingerprint (`SHA256:...`) instead of trusting the first one seen.
        #[arg(long)]
        host_key: Option<String>,
        /// The LLDP chassis id the switch announces (often its base MAC): inspection then fills in
        /// the switch port of nodes cabled to it.
        #[arg(long)]
        chassis_id: Option<String>,
    },
    /// List switches.
    List,
    /// Show one switch (by id or name).
    Show { switch: String },
    /// Set the LLDP chassis id a registered switch announces.
    Update {
        switch: String,
        #[arg(long)]
        chassis_id: String,
    },
    /// Delete a switch no node uses any more.
    Delete { switch: String },
    /// Connect and report reachability, NETCONF capabilities and model, changing nothing.
    Check { switch: String },
}

pub async fn run(client: &Client, out: &Printer, cmd: SwitchCommand) -> Result<(), CliError> {
    match cmd {
        SwitchCommand::Add { address, name, port, username, password, password_file, driver, description, host_key, chassis_id } => {
            let password = secret_from(password, password_file.as_deref(), "password")?
                .ok_or_else(|| CliError::Usage("a password is needed: --password-file, --password or METALHOST_SWITCH_PASSWORD".into()))?;
            let body = json!({
                "name": name, "address": address, "port": port, "username": username, "password": password,
                "driver": driver, "description": description, "host_key": host_key,
                "chassis_id": chassis_id,
            });
            out.one(&client.post("/v1/switches", &body).await?);
        }
        SwitchCommand::List => {
            let list = client.get("/v1/switches").await?;
            out.list(
                &list,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("ADDRESS", "address"),
                    ("PORT", "port"),
                    ("USER", "username"),
                    ("DRIVER", "driver"),
                    ("DESCRIPTION", "description"),
                ],
            );
        }
        SwitchCommand::Show { switch } => out.one(&client.get(&format!("/v1/switches/{}", segment(&switch))).await?),
        SwitchCommand::Check { switch } => {
            let report = client.get(&format!("/v1/switches/{}/check", segment(&switch))).await?;
            out.one(&report);
            if report["reachable"] != serde_json::Value::Bool(true) {
                return Err(CliError::Usage(format!("switch {switch} is not reachable")));
            }
        }
        SwitchCommand::Update { switch, chassis_id } => {
            out.one(&client.patch(&format!("/v1/switches/{}", segment(&switch)), &json!({ "chassis_id": chassis_id })).await?);
        }
        SwitchCommand::Delete { switch } => {
            client.delete(&format!("/v1/switches/{}", segment(&switch))).await?;
            out.done(&format!("switch {switch} deleted"));
        }
    }
    Ok(())
}
