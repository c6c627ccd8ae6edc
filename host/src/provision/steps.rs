//! The steps of each workflow phase. Each phase ends by advancing the node to its next state; all
//! driver steps are idempotent so a resumed phase can run them again.

use std::time::Duration;

use super::{StepFailure, advance, step};
use crate::app::AppState;
use crate::domain::{ImageId, InstanceId, NetworkKind, NodeId, PowerState, ProvisionState, TaskKind, TaskState, Vlan, now_ms};
use crate::drivers::{self, BootDevice, BootEntry, PowerAction};
use crate::store::nodes::{self, Node};
use crate::store::tasks::{self, NewTask};
use crate::store::{instances, switches};
use crate::work::TaskOptions;

fn failure(step: &'static str, message: impl std::fmt::Display) -> StepFailure {
    StepFailure { step, message: message.to_string() }
}

/// deploying: port → provisioning, deploy task, netboot entry, boot PXE, power on → wait-agent.
pub async fn deploy(state: &AppState, node: &Node) -> Result<(), StepFailure> {
    move_port(state, node, NetworkKind::Provisioning, "switch port -> provisioning").await?;
    let instance = node.instance_id.ok_or_else(|| failure("create deploy task", "the node holds no instance"))?;
    let options = TaskOptions {
        verify_readback: state.config.deploy.verify_readback,
        poweroff: state.config.deploy.agent_poweroff,
        ..TaskOptions::default()
    };
    let timeout = state.config.deploy.agent_timeout_s + state.config.deploy.step_timeout_s;
    create_task(state, node, "create deploy task", TaskKind::Deploy, options, Some(instance), timeout).await?;
    netboot_put(state, node).await?;
    pxe_and_power_on(state, node).await?;
    advance(state, node, ProvisionState::WaitAgent, "waiting for the agent to write the image", state.config.deploy.agent_timeout_s).await
}

/// wait-agent: the deploy task's result decides.
pub async fn wait_deploy(state: &AppState, node: &Node) -> Result<(), StepFailure> {
    wait_task(state, node, TaskKind::Deploy, "agent writes the image").await?;
    advance(state, node, ProvisionState::Activating, "image written and verified", state.config.deploy.step_timeout_s).await
}

/// activating: remove netboot entry, port → tenant, boot from disk, reboot → active.
pub async fn activate(state: &AppState, node: &Node) -> Result<(), StepFailure> {
    netboot_remove(state, node).await?;
    move_port(state, node, NetworkKind::Tenant, "switch port -> tenant").await?;
    step(state, node.id, "boot device -> disk", async {
        drivers::set_boot_device(&state.plugins, node, BootDevice::Disk, true).await.map_err(|e| e.to_string())
    })
    .await?;
    power_on_or_reboot(state, node, "reboot from disk").await?;
    let id = node.id;
    let instance = node.instance_id;
    state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            nodes::transition(
                &tx,
                nodes::Transition { node: id, from: &[ProvisionState::Activating], to: ProvisionState::Active, message: "instance active", deadline: None, duration_ms: None },
            )?;
            if let Some(instance) = instance {
                instances::set_state(&tx, instance, "active", None)?;
            }
            tasks::revoke_node_tokens(&tx, id)?;
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| failure("record active", e))
}

/// deleting: power off, port → provisioning, then clean (or straight to available).
pub async fn delete(state: &AppState, node: &Node) -> Result<(), StepFailure> {
    step(state, node.id, "power off", async {
        drivers::set_power(&state.plugins, node, PowerAction::Off).await.map_err(|e| e.to_string())
    })
    .await?;
    record_power(state, node.id, PowerState::Off, "powered off for destroy").await;
    move_port(state, node, NetworkKind::Provisioning, "switch port -> provisioning").await?;
    if state.config.deploy.skip_clean {
        return finish_available(state, node, "destroyed without cleaning (skip_clean)").await;
    }
    let options = TaskOptions { poweroff: state.config.deploy.agent_poweroff, ..TaskOptions::default() };
    let timeout = state.config.deploy.clean_timeout_s + state.config.deploy.step_timeout_s;
    create_task(state, node, "create clean task", TaskKind::Clean, options, None, timeout).await?;
    netboot_put(state, node).await?;
    pxe_and_power_on(state, node).await?;
    advance(state, node, ProvisionState::Cleaning, "waiting for the agent to clean the disks", state.config.deploy.clean_timeout_s).await
}

/// cleaning: the clean task's result decides; then power off and back to the pool.
pub async fn wait_clean(state: &AppState, node: &Node) -> Result<(), StepFailure> {
    wait_task(state, node, TaskKind::Clean, "agent cleans the disks").await?;
    netboot_remove(state, node).await?;
    step(state, node.id, "power off", async {
        drivers::set_power(&state.plugins, node, PowerAction::Off).await.map_err(|e| e.to_string())
    })
    .await?;
    record_power(state, node.id, PowerState::Off, "powered off after cleaning").await;
    finish_available(state, node, "cleaned: back in the pool").await
}

async fn finish_available(state: &AppState, node: &Node, message: &str) -> Result<(), StepFailure> {
    let id = node.id;
    let from = node.state;
    let instance = node.instance_id;
    let message = message.to_owned();
    state
        .store
        .call(move |c| {
            let tx = c.transaction()?;
            nodes::transition(&tx, nodes::Transition { node: id, from: &[from], to: ProvisionState::Available, message: &message, deadline: None, duration_ms: None })?;
            if let Some(instance) = instance {
                instances::remove(&tx, instance)?;
            }
            tasks::revoke_node_tokens(&tx, id)?;
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| failure("record available", e))
}

/// Queues the node's agent task as a recorded step. A deploy task writes its instance's image.
async fn create_task(
    state: &AppState,
    node: &Node,
    name: &'static str,
    kind: TaskKind,
    options: TaskOptions,
    instance: Option<InstanceId>,
    timeout_s: u64,
) -> Result<(), StepFailure> {
    let id = node.id;
    step(state, id, name, async {
        let deadline = now_ms() + seconds_ms(timeout_s);
        state
            .store
            .call(move |c| {
                let image = instance
                    .map(|i| instances::get(c, &switches::Key::Id(i.0)))
                    .transpose()?
                    .map(|inst| ImageId(inst.image_id));
                tasks::create(c, NewTask { node: id, kind, payload: options.to_json(), image, deadline })
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
}

fn seconds_ms(s: u64) -> i64 {
    i64::try_from(s).unwrap_or(i64::MAX / 4).saturating_mul(1000)
}

/// Waits for the node's latest task of `kind` to finish; its failure message becomes the step's.
async fn wait_task(state: &AppState, node: &Node, kind: TaskKind, name: &'static str) -> Result<(), StepFailure> {
    let id = node.id;
    step(state, id, name, async {
        loop {
            let notified = state.task_events.notified();
            let task = state.store.call(move |c| tasks::latest_for_node(c, id)).await.map_err(|e| e.to_string())?;
            match task {
                Some(t) if t.kind == kind => match t.state {
                    TaskState::Succeeded => return Ok(()),
                    TaskState::Failed => {
                        return Err(format!("the agent's {kind} task failed: {}", t.message.unwrap_or_default()));
                    }
                    TaskState::Pending | TaskState::Running => {}
                },
                _ => return Err(format!("the node has no {kind} task")),
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
    .await
}

async fn move_port(state: &AppState, node: &Node, network: NetworkKind, name: &'static str) -> Result<(), StepFailure> {
    let (vlan, vlan_name) = match network {
        NetworkKind::Tenant => (state.config.network.tenant_vlan, state.config.network.tenant_vlan_name.clone()),
        _ => (state.config.network.provisioning_vlan, state.config.network.provisioning_vlan_name.clone()),
    };
    move_port_to(state, node, network, vlan, &vlan_name, name).await
}

/// Moves the node's switch port, one change per switch at a time, and records the network.
pub async fn move_port_to(
    state: &AppState,
    node: &Node,
    network: NetworkKind,
    vlan: u16,
    vlan_name: &str,
    name: &'static str,
) -> Result<(), StepFailure> {
    let vlan = Vlan::new(i64::from(vlan)).map_err(|e| failure(name, e))?;
    let switch_id = node.switch_id;
    let id = node.id;
    let port = node.switch_port.clone();
    step(state, id, name, async {
        let switch = state.store.call(move |c| switches::get_by_id(c, switch_id)).await.map_err(|e| e.to_string())?;
        let lock = state.provisioner.switch_lock(switch.id.0);
        let _guard = lock.lock().await;
        let fingerprint = drivers::move_port(&state.plugins, &switch, &port, vlan, vlan_name).await.map_err(|e| e.to_string())?;
        state
            .store
            .call(move |c| {
                if !fingerprint.is_empty() {
                    switches::learn_host_key(c, switch_id, &fingerprint)?;
                }
                nodes::set_network(c, id, network, Some(vlan.id()))
            })
            .await
            .map_err(|e| e.to_string())
    })
    .await
}

async fn pxe_and_power_on(state: &AppState, node: &Node) -> Result<(), StepFailure> {
    step(state, node.id, "boot device -> pxe", async {
        drivers::set_boot_device(&state.plugins, node, BootDevice::Pxe, false).await.map_err(|e| e.to_string())
    })
    .await?;
    power_on_or_reboot(state, node, "power on into the bootstrap").await
}

/// Powers the node on, or reboots it if it is already on.
async fn power_on_or_reboot(state: &AppState, node: &Node, name: &'static str) -> Result<(), StepFailure> {
    step(state, node.id, name, async {
        let current = drivers::power_state(&state.plugins, node).await.map_err(|e| e.to_string())?;
        let action = if current == PowerState::On { PowerAction::Reboot } else { PowerAction::On };
        drivers::set_power(&state.plugins, node, action).await.map_err(|e| e.to_string())
    })
    .await?;
    record_power(state, node.id, PowerState::On, name).await;
    Ok(())
}

async fn record_power(state: &AppState, id: NodeId, power: PowerState, why: &'static str) {
    if let Err(e) = state.store.call(move |c| nodes::set_power_state(c, id, power, why)).await {
        tracing::warn!(node = id.0, "cannot record power state: {e}");
    }
}

/// The kernel command line tells the bootstrap where this daemon is.
pub fn boot_entry(state: &AppState, node: &Node) -> BootEntry {
    let base = &state.public_url;
    BootEntry {
        mac: node.mac.to_string(),
        ip: node.ip.to_string(),
        hostname: node.name.clone(),
        kernel_url: state.config.deploy.kernel_url.clone().unwrap_or_else(|| format!("{base}/v1/bootstrap/vmlinuz")),
        initrd_url: state.config.deploy.initrd_url.clone().unwrap_or_else(|| format!("{base}/v1/bootstrap/initrd.gz")),
        kernel_args: format!("{} metalhost.api={base}", state.config.deploy.kernel_args).trim().to_owned(),
    }
}

async fn netboot_put(state: &AppState, node: &Node) -> Result<(), StepFailure> {
    let Some(plugin) = state.config.deploy.netboot_plugin.clone() else { return Ok(()) };
    let entry = boot_entry(state, node);
    step(state, node.id, "netboot entry -> write", async {
        drivers::netboot_put(&state.plugins, &plugin, &entry).await.map_err(|e| e.to_string())
    })
    .await
}

async fn netboot_remove(state: &AppState, node: &Node) -> Result<(), StepFailure> {
    let Some(plugin) = state.config.deploy.netboot_plugin.clone() else { return Ok(()) };
    let mac = node.mac.to_string();
    step(state, node.id, "netboot entry -> remove", async {
        drivers::netboot_remove(&state.plugins, &plugin, &mac).await.map_err(|e| e.to_string())
    })
    .await
}
