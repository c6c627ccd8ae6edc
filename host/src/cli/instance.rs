//! `metalhost instance ...`

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::{CliError, Client};
use super::{Printer, segment};

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Deploy an image onto the first available node that fits (or the named node). Returns at once;
    /// `--wait` follows the deploy to the end.
    Create {
        #[arg(long)]
        image: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 0)]
        cpus: i64,
        #[arg(long, default_value_t = 0)]
        ram_mb: i64,
        #[arg(long, default_value_t = 0)]
        disk_gb: i64,
        /// Deploy onto this node (id or name) instead of choosing one.
        #[arg(long, conflicts_with_all = ["cpus", "ram_mb", "disk_gb"])]
        node: Option<String>,
        /// The project the instance is for (users must name one of theirs).
        #[arg(long)]
        project: Option<String>,
        /// The instance's host name (otherwise made from its name).
        #[arg(long)]
        hostname: Option<String>,
        /// An SSH public key that may log in: a file holding it (`~/.ssh/id_ed25519.pub`) or the
        /// key line itself. Repeatable.
        #[arg(long = "ssh-key", value_name = "FILE|KEY")]
        ssh_keys: Vec<String>,
        /// One of your key pairs (`metalhost keypair add`). Repeatable.
        #[arg(long = "keypair", value_name = "NAME")]
        keypairs: Vec<String>,
        /// A file of user data (cloud-config or a script, at most 64 KiB); `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        user_data: Option<std::path::PathBuf>,
        /// Metadata for meta_data.json, KEY=VALUE. Repeatable.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        /// Write a config drive (true) or not (false); by default when any of the above is given
        /// or the project has a subnet.
        #[arg(long)]
        config_drive: Option<bool>,
        /// Follow the deploy with a progress bar until the instance is active or fails.
        #[arg(long)]
        wait: bool,
    },
    /// List instances: one page of `--limit` (default 100; `--all` follows every page).
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        project: Option<String>,
    },
    Show {
        instance: String,
    },
    /// Destroy an instance: power off, port back to provisioning, clean, node back to the pool.
    Delete {
        instance: String,
        #[arg(long)]
        wait: bool,
    },
}

/// `--ssh-key`: a file's first key line, or the value itself when it is no file.
pub fn key_line(value: &str) -> Result<String, CliError> {
    let path = std::path::Path::new(value);
    if !path.is_file() {
        return Ok(value.to_owned());
    }
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Usage(format!("reading the SSH key {value}: {e}")))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .ok_or_else(|| CliError::Usage(format!("{value} holds no SSH public key")))
}

fn read_user_data(path: &std::path::Path) -> Result<String, CliError> {
    let read = if path == std::path::Path::new("-") { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(path) };
    read.map_err(|e| CliError::Usage(format!("reading the user data {}: {e}", path.display())))
}

pub async fn run(client: &Client, out: &Printer, cmd: InstanceCommand) -> Result<(), CliError> {
    match cmd {
        InstanceCommand::Create {
            image,
            name,
            cpus,
            ram_mb,
            disk_gb,
            node,
            project,
            hostname,
            ssh_keys,
            keypairs,
            user_data,
            meta,
            config_drive,
            wait,
        } => {
            let ssh_keys = ssh_keys.iter().map(|k| key_line(k)).collect::<Result<Vec<_>, _>>()?;
            let user_data = user_data.as_deref().map(read_user_data).transpose()?;
            let meta = meta
                .iter()
                .map(|pair| pair.split_once('=').map(|(k, v)| (k.to_owned(), Value::String(v.to_owned()))))
                .collect::<Option<serde_json::Map<_, _>>>()
                .ok_or_else(|| CliError::Usage("--meta takes KEY=VALUE".into()))?;
            let body = json!({
                "image": image, "name": name, "cpus": cpus, "ram_mb": ram_mb, "disk_gb": disk_gb, "node": node, "project": project,
                "hostname": hostname, "ssh_keys": ssh_keys, "keypairs": keypairs, "user_data": user_data, "meta": meta,
                "config_drive": config_drive,
            });
            let created = client.post("/v1/instances", &body).await?;
            if !wait {
                out.one(&created);
                return Ok(());
            }
            let id = created["id"].to_string();
            let last = follow(client, &id, &["active"], !out.json).await?;
            out.one(&last);
            if last["state"] != "active" {
                return Err(CliError::Usage(format!("instance failed: {}", super::output::cell(last.get("last_error")))));
            }
        }
        InstanceCommand::List { limit, all, state, project } => {
            let mut query = vec![("limit".to_owned(), limit.to_string())];
            query.extend(state.map(|s| ("state".to_owned(), s)));
            query.extend(project.map(|p| ("project".to_owned(), p)));
            let list = client.list_pages("/v1/instances", &query, all).await?;
            out.list(
                &list,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("STATE", "state"),
                    ("NODE", "node_name"),
                    ("NODE_STATE", "node_state"),
                    ("IMAGE", "image_id"),
                    ("LAST_ERROR", "last_error"),
                ],
            );
        }
        InstanceCommand::Show { instance } => out.one(&client.get(&format!("/v1/instances/{}", segment(&instance))).await?),
        InstanceCommand::Delete { instance, wait } => {
            let answer = client.delete(&format!("/v1/instances/{}", segment(&instance))).await?;
            if wait {
                let id = answer["id"].to_string();
                let last = follow(client, &id, &[], !out.json).await?;
                if last.is_null() {
                    out.done(&format!("instance {instance} destroyed"));
                } else {
                    out.one(&last);
                    return Err(CliError::Usage(format!("destroy failed: {}", super::output::cell(last.get("last_error")))));
                }
            } else {
                out.one(&answer);
            }
        }
    }
    Ok(())
}

/// Polls the instance until it reaches one of `done` states, `error`, or disappears (Null).
/// Progress goes to stderr: a bar redrawn in place on a terminal; otherwise (a log, a pipe) one
/// line each time the states change, so the output reads well where `\r` does not.
async fn follow(client: &Client, id: &str, done: &[&str], show: bool) -> Result<Value, CliError> {
    let bar = show && std::io::stderr().is_terminal();
    let mut last_line = String::new();
    loop {
        let current = match client.get(&format!("/v1/instances/{id}")).await {
            Ok(v) => v,
            Err(CliError::Server { status: 404, .. }) => {
                if bar {
                    eprintln!();
                }
                return Ok(Value::Null);
            }
            Err(e) => return Err(e),
        };
        let state = current["state"].as_str().unwrap_or("");
        if show && !bar {
            let node_state = current["node_state"].as_str().unwrap_or("-");
            let line = format!("{state} (node {node_state})");
            if line != last_line {
                eprintln!("{line}");
                last_line = line;
            }
        }
        if bar {
            let node_state = current["node_state"].as_str().unwrap_or("-");
            let written = current["bytes_written"].as_u64().unwrap_or(0);
            let progress = match current["total_bytes"].as_u64() {
                Some(total) if total > 0 => {
                    let filled = usize::try_from(written.saturating_mul(30) / total).unwrap_or(30).min(30);
                    format!("[{}{}] {}%", "#".repeat(filled), ".".repeat(30 - filled), written * 100 / total)
                }
                _ => format!("{} MiB", written >> 20),
            };
            eprint!("\r{state:<10} node {node_state:<11} {progress:<40}");
            let _ = std::io::stderr().flush();
        }
        if done.contains(&state) || state == "error" {
            if bar {
                eprintln!();
            }
            return Ok(current);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
