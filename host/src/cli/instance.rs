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

pub async fn run(client: &Client, out: &Printer, cmd: InstanceCommand) -> Result<(), CliError> {
    match cmd {
        InstanceCommand::Create { image, name, cpus, ram_mb, disk_gb, node, project, wait } => {
            let body = json!({ "image": image, "name": name, "cpus": cpus, "ram_mb": ram_mb, "disk_gb": disk_gb, "node": node, "project": project });
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
