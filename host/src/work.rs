//! What the host asks an agent to do: the options stored with a task, how a stored task becomes
//! the wire `AgentTask` the agent receives, and what the kind of a failed result means here.

use metalhost_wire::{AfterTask, AgentFailureKind, AgentTask, CleanMethod, CleanTask, ConfigDrive, DeployTask, InspectTask, TaskWork};
use serde::{Deserialize, Serialize};

use crate::domain::{Compression, FailureKind, ImageFormat, TaskKind};
use crate::store::images::Image;
use crate::store::tasks::Task;

/// The host's choices for one task, stored as the task's JSON payload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskOptions {
    pub verify_readback: bool,
    /// Disks to clean; empty means all.
    pub disks: Vec<String>,
    /// True: the agent powers the node off when done (the real flow); false: it exits.
    pub poweroff: bool,
    /// Inspection: how long the agent listens for LLDP.
    pub lldp_wait_s: u64,
    /// Inspection: the state the node goes back to afterwards (`available` or `enrolled`).
    pub return_to: Option<String>,
}

impl TaskOptions {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    pub fn from_json(text: &str) -> TaskOptions {
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// The wire's name for the same three choices.
fn wire_compression(c: Compression) -> metalhost_wire::Compression {
    match c {
        Compression::None => metalhost_wire::Compression::None,
        Compression::Gzip => metalhost_wire::Compression::Gzip,
        Compression::Zstd => metalhost_wire::Compression::Zstd,
    }
}

/// The task as the agent sees it. `image_token` is the fresh token issued for this fetch.
/// `config_drive`: the deploy's instance's drive (config_drive.rs).
pub fn render(
    task: &Task,
    image: Option<&Image>,
    public_url: &str,
    image_token: Option<String>,
    config_drive: Option<ConfigDrive>,
) -> Option<AgentTask> {
    let options = TaskOptions::from_json(&task.payload);
    let work = match task.kind {
        TaskKind::Deploy => {
            let image = image?;
            let image_url = match &image.url {
                Some(url) => url.clone(),
                None => format!("{public_url}/v1/images/{}/data", image.id),
            };
            TaskWork::Deploy(DeployTask {
                image_url,
                image_token: if image.url.is_some() { None } else { image_token },
                sha256: image.sha256.clone(),
                size: image.size,
                compression: wire_compression(image.compression),
                format: match image.format {
                    ImageFormat::Raw => metalhost_wire::ImageFormat::Raw,
                    ImageFormat::Qcow2 => metalhost_wire::ImageFormat::Qcow2,
                },
                virtual_size: image.virtual_size,
                // Nothing in the host chooses a disk yet: the agent picks the first fixed disk that fits.
                disk_hint: None,
                verify_readback: options.verify_readback,
                config_drive,
            })
        }
        TaskKind::Clean => TaskWork::Clean(CleanTask { disks: options.disks.clone(), method: CleanMethod::Metadata }),
        TaskKind::Inspect => TaskWork::Inspect(InspectTask { lldp_wait_s: options.lldp_wait_s }),
    };
    Some(AgentTask { id: task.id.0, work, after: if options.poweroff { AfterTask::Poweroff } else { AfterTask::Exit } })
}

/// The host's kind for an agent's failed task. A download that failed is the transfer between the
/// pool and the node (transient: another task may get the image); a disk that failed or an image
/// that did not verify is the node failing what it was asked (permanent). An agent that did not
/// say (an older agent) or said something else stays a plain agent failure.
pub fn failure_kind(kind: Option<AgentFailureKind>) -> FailureKind {
    match kind {
        Some(AgentFailureKind::Download) => FailureKind::Transport,
        Some(AgentFailureKind::Disk | AgentFailureKind::Verify) => FailureKind::CommandFailed,
        Some(AgentFailureKind::Other) | None => FailureKind::Agent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_download_is_worth_another_task() {
        let cases = [
            (Some(AgentFailureKind::Download), FailureKind::Transport, true),
            (Some(AgentFailureKind::Disk), FailureKind::CommandFailed, false),
            (Some(AgentFailureKind::Verify), FailureKind::CommandFailed, false),
            (Some(AgentFailureKind::Other), FailureKind::Agent, false),
            (None, FailureKind::Agent, false),
        ];
        for (wire, kind, transient) in cases {
            assert_eq!((failure_kind(wire), failure_kind(wire).is_transient()), (kind, transient), "{wire:?}");
        }
    }
}
