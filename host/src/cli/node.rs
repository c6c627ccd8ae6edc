//! `metalhost node ...`

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::{CliError, Client, secret_from};
use super::{Printer, segment};

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Enrol a node (reference design: `nodemanager add <ip> <mac> <cpus> <ram> <hdd> <ipmihost> <ipmiuser>
    /// <ipmipass> <switchid> <switchport>`).
    Add(AddNode),
    /// List nodes: one page of `--limit` (the default 100; `--all` follows every page), filtered.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Every page, not only the first.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        state: Option<String>,
        /// on, off or unknown.
        #[arg(long)]
        power: Option<String>,
        #[arg(long)]
        maintenance: Option<bool>,
        #[arg(long)]
        project: Option<String>,
        /// Part of the name or the MAC.
        #[arg(long, short = 'q')]
        query: Option<String>,
    },
    /// Show one node (by id or name).
    Show { node: String },
    /// Change a node's fields; only the flags given change.
    Update(UpdateNode),
    /// Delete a node that holds no instance.
    Delete { node: String },
    /// Show a node's state changes and workflow steps, oldest first: all of them, or pages of
    /// `--limit` (the first page; `--all` follows every page).
    Events {
        node: String,
        #[arg(long)]
        limit: Option<i64>,
        /// Every page, not only the first.
        #[arg(long)]
        all: bool,
        /// Only events of this kind (state, step, retry, power, maintenance, boot-device, inventory, lease).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Show what the node printed while deploying, cleaning or inspecting (the newest lines).
    ConsoleLog {
        node: String,
        /// How many of the newest lines (default: all the host keeps).
        #[arg(long)]
        lines: Option<u32>,
    },
    /// Attach this terminal to the node's serial console (Ctrl-] detaches). Needs a power plugin
    /// that describes a console (ipmi-lan) and its console grant.
    Console {
        node: String,
        /// Only watch: what is typed is not sent (another session may be typing).
        #[arg(long)]
        watch: bool,
    },
    /// Power the node on, off, reboot it, or read its power state from the BMC.
    Power {
        node: String,
        #[arg(value_parser = ["on", "off", "reboot", "status"])]
        action: String,
    },
    /// Set the device the node boots from.
    BootDevice {
        node: String,
        #[arg(value_parser = ["pxe", "disk"])]
        device: String,
        /// Only for the next boot (default: persistent).
        #[arg(long)]
        once: bool,
    },
    /// Move the node's switch port to the provisioning or a tenant network.
    Network {
        node: String,
        #[arg(value_parser = ["provisioning", "tenant"])]
        network: String,
        /// Tenant VLAN id (default: the configured tenant VLAN).
        #[arg(long)]
        vlan: Option<i64>,
    },
    /// Retry a node in error cleanly: power off, port to provisioning, clean, available.
    Recover { node: String },
    /// Boot an available or enrolled node into the agent to read its hardware and LLDP neighbours;
    /// it is powered off and back in its state afterwards.
    Inspect {
        node: String,
        /// Wait until the inspection is over and print the node.
        #[arg(long)]
        wait: bool,
    },
    /// Show the hardware the node's last inspection (or enlistment) found.
    Inventory { node: String },
}

#[derive(Debug, Args)]
pub struct AddNode {
    /// A unique name; defaults to node-<mac>.
    #[arg(long)]
    name: Option<String>,
    /// MAC address of the NIC on the provisioning network.
    #[arg(long)]
    mac: String,
    /// The node's IP address.
    #[arg(long)]
    ip: String,
    #[arg(long)]
    cpus: i64,
    #[arg(long)]
    ram_mb: i64,
    #[arg(long)]
    disk_gb: i64,
    #[arg(long)]
    bmc_address: String,
    #[arg(long, default_value_t = 623)]
    bmc_port: i64,
    #[arg(long)]
    bmc_username: String,
    /// Prefer `--bmc-password-file` or the env var: flags show up in `ps`.
    #[arg(long, env = "METALHOST_BMC_PASSWORD", hide_env_values = true)]
    bmc_password: Option<String>,
    #[arg(long)]
    bmc_password_file: Option<PathBuf>,
    /// The power plugin, as listed by `metalhost plugin list`.
    #[arg(long)]
    power_driver: String,
    #[arg(long)]
    switch_id: i64,
    #[arg(long)]
    switch_port: String,
    /// How the node's firmware boots: bios (default) or uefi.
    #[arg(long, value_parser = ["bios", "uefi"])]
    boot_mode: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateNode {
    node: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    mac: Option<String>,
    #[arg(long)]
    ip: Option<String>,
    #[arg(long)]
    cpus: Option<i64>,
    #[arg(long)]
    ram_mb: Option<i64>,
    #[arg(long)]
    disk_gb: Option<i64>,
    #[arg(long)]
    bmc_address: Option<String>,
    #[arg(long)]
    bmc_port: Option<i64>,
    #[arg(long)]
    bmc_username: Option<String>,
    #[arg(long, env = "METALHOST_BMC_PASSWORD", hide_env_values = true)]
    bmc_password: Option<String>,
    #[arg(long)]
    bmc_password_file: Option<PathBuf>,
    #[arg(long)]
    power_driver: Option<String>,
    #[arg(long)]
    switch_id: Option<i64>,
    #[arg(long)]
    switch_port: Option<String>,
    /// Stop (true) or allow (false) automatic actions on this node.
    #[arg(long)]
    maintenance: Option<bool>,
    #[arg(long, value_parser = ["bios", "uefi"])]
    boot_mode: Option<String>,
    /// Dedicate the node to a project (only its instances get it); "" to none.
    #[arg(long)]
    dedicated_to: Option<String>,
}

pub const NODE_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("MAC", "mac"),
    ("IP", "ip"),
    ("CPUS", "cpus"),
    ("RAM_MB", "ram_mb"),
    ("DISK_GB", "disk_gb"),
    ("STATE", "state"),
    ("POWER", "power_state"),
    ("NETWORK", "network"),
    ("MAINT", "maintenance"),
    ("LAST_ERROR", "last_error"),
];

pub async fn run(client: &Client, out: &Printer, cmd: NodeCommand) -> Result<(), CliError> {
    match cmd {
        NodeCommand::Add(a) => add(client, out, a).await?,
        NodeCommand::List { limit, all, state, power, maintenance, project, query } => {
            let mut params = vec![("limit".to_owned(), limit.to_string())];
            for (key, value) in [("state", state), ("power", power), ("project", project), ("q", query)] {
                if let Some(v) = value {
                    params.push((key.to_owned(), v));
                }
            }
            if let Some(m) = maintenance {
                params.push(("maintenance".to_owned(), m.to_string()));
            }
            let nodes = client.list_pages("/v1/nodes", &params, all).await?;
            out.list(&nodes, NODE_COLUMNS);
        }
        NodeCommand::Show { node } => out.one(&client.get(&format!("/v1/nodes/{}", segment(&node))).await?),
        NodeCommand::Update(u) => update(client, out, u).await?,
        NodeCommand::Delete { node } => {
            client.delete(&format!("/v1/nodes/{}", segment(&node))).await?;
            out.done(&format!("node {node} deleted"));
        }
        NodeCommand::Events { node, limit, all, kind } => {
            let params: Vec<(String, String)> =
                [("limit", limit.map(|l| l.to_string())), ("kind", kind)].into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))).collect();
            let list = client.list_pages(&format!("/v1/nodes/{}/events", segment(&node)), &params, all).await?;
            out.list(
                &list,
                &[("AT", "at"), ("KIND", "kind"), ("FROM", "from_state"), ("TO", "to_state"), ("MS", "duration_ms"), ("MESSAGE", "message")],
            );
        }
        NodeCommand::ConsoleLog { node, lines } => console_log(client, out, &node, lines).await?,
        NodeCommand::Console { node, watch } => super::console::attach(client, &segment(&node), watch).await?,
        NodeCommand::Power { node, action } => {
            let path = format!("/v1/nodes/{}/power", segment(&node));
            let answer = if action == "status" { client.get(&path).await? } else { client.put(&path, &json!({ "action": action })).await? };
            out.one(&answer);
        }
        NodeCommand::BootDevice { node, device, once } => {
            client.put(&format!("/v1/nodes/{}/boot-device", segment(&node)), &json!({ "device": device, "persistent": !once })).await?;
            out.done(&format!("node {node} boots from {device}{}", if once { " on the next boot" } else { "" }));
        }
        NodeCommand::Network { node, network, vlan } => {
            out.one(&client.put(&format!("/v1/nodes/{}/network", segment(&node)), &json!({ "network": network, "vlan": vlan })).await?);
        }
        NodeCommand::Recover { node } => out.one(&client.post(&format!("/v1/nodes/{}/recover", segment(&node)), &json!({})).await?),
        NodeCommand::Inspect { node, wait } => inspect(client, out, &node, wait).await?,
        NodeCommand::Inventory { node } => out.one(&client.get(&format!("/v1/nodes/{}/inventory", segment(&node))).await?),
    }
    Ok(())
}

async fn add(client: &Client, out: &Printer, a: AddNode) -> Result<(), CliError> {
    let password = secret_from(a.bmc_password, a.bmc_password_file.as_deref(), "BMC password")?
        .ok_or_else(|| CliError::Usage("a BMC password is needed: --bmc-password-file, --bmc-password or METALHOST_BMC_PASSWORD".into()))?;
    let body = json!({
        "name": a.name, "mac": a.mac, "ip": a.ip, "cpus": a.cpus, "ram_mb": a.ram_mb, "disk_gb": a.disk_gb,
        "bmc_address": a.bmc_address, "bmc_port": a.bmc_port, "bmc_username": a.bmc_username,
        "bmc_password": password, "power_driver": a.power_driver, "switch_id": a.switch_id,
        "switch_port": a.switch_port, "boot_mode": a.boot_mode,
    });
    out.one(&client.post("/v1/nodes", &body).await?);
    Ok(())
}

/// Sends only the fields given.
async fn update(client: &Client, out: &Printer, u: UpdateNode) -> Result<(), CliError> {
    let password = secret_from(u.bmc_password, u.bmc_password_file.as_deref(), "BMC password")?;
    let mut body = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            body.insert(key.to_owned(), v);
        }
    };
    put("name", u.name.map(Value::from));
    put("mac", u.mac.map(Value::from));
    put("ip", u.ip.map(Value::from));
    put("cpus", u.cpus.map(Value::from));
    put("ram_mb", u.ram_mb.map(Value::from));
    put("disk_gb", u.disk_gb.map(Value::from));
    put("bmc_address", u.bmc_address.map(Value::from));
    put("bmc_port", u.bmc_port.map(Value::from));
    put("bmc_username", u.bmc_username.map(Value::from));
    put("bmc_password", password.map(Value::from));
    put("power_driver", u.power_driver.map(Value::from));
    put("switch_id", u.switch_id.map(Value::from));
    put("switch_port", u.switch_port.map(Value::from));
    put("maintenance", u.maintenance.map(Value::from));
    put("boot_mode", u.boot_mode.map(Value::from));
    put("dedicated_to", u.dedicated_to.map(Value::from));
    out.one(&client.patch(&format!("/v1/nodes/{}", segment(&u.node)), &Value::Object(body)).await?);
    Ok(())
}

async fn console_log(client: &Client, out: &Printer, node: &str, lines: Option<u32>) -> Result<(), CliError> {
    let query = lines.map(|n| format!("?limit={n}")).unwrap_or_default();
    let log = client.get(&format!("/v1/nodes/{}/console-log{query}", segment(node))).await?;
    if out.json {
        super::output::json(&log);
    } else {
        for line in log.as_array().into_iter().flatten() {
            let at = line["at"].as_str().map(super::output::local_time).unwrap_or_default();
            println!("{at} {:<5} {}", line["source"].as_str().unwrap_or(""), line["text"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}

/// Starts an inspection; with `wait`, polls until the node leaves `inspecting` and shows it.
async fn inspect(client: &Client, out: &Printer, node: &str, wait: bool) -> Result<(), CliError> {
    let started = client.post(&format!("/v1/nodes/{}/inspect", segment(node)), &json!({})).await?;
    if !wait {
        out.one(&started);
        return Ok(());
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let now = client.get(&format!("/v1/nodes/{}", segment(node))).await?;
        if now["state"] != "inspecting" {
            out.one(&now);
            return Ok(());
        }
    }
}
