//! The steps of each workflow phase. Each phase ends by advancing the node to its next state; all
//! driver steps are idempotent so a resumed phase, or a retried step, can run them again.

use std::time::Duration;

use super::{Fault, Run, StepFailure, advance, step, store_call};
use crate::domain::{
    BootDevice, FailureKind, InstanceId, InstanceState, NetworkKind, NodeId, PowerAction, PowerState, ProvisionState, TaskKind, TaskState, Vlan,
    deadline_in,
};
use crate::drivers::{self, BootEntry};
use crate::provision::WorkflowCore;
use crate::store::nodes::{self, Node};
use crate::store::tasks::{self, NewTask};
use crate::store::{cluster, instances, projects, switches};
use crate::work::TaskOptions;

/// deploying: port → provisioning, deploy task, netboot entry, boot PXE, power on → wait-agent.
pub async fn deploy(run: &Run<'_>) -> Result<(), StepFailure> {
    let deploy = &run.core.config.deploy;
    move_port(run, NetworkKind::Provisioning, "switch port -> provisioning").await?;
    let instance = run.node.instance_id.ok_or_else(|| Fault::Internal("the node holds no instance".into()).at("create deploy task"))?;
    let options = TaskOptions { verify_readback: deploy.verify_readback, poweroff: deploy.agent_poweroff, ..TaskOptions::default() };
    create_task(run, "create deploy task", TaskKind::Deploy, options, Some(instance), deploy.agent_timeout + deploy.step_timeout).await?;
    netboot_put(run).await?;
    pxe_and_power_on(run).await?;
    advance(run, ProvisionState::WaitAgent, "waiting for the agent to write the image", deploy.agent_timeout).await
}

/// wait-agent: the deploy task's result decides.
pub async fn wait_deploy(run: &Run<'_>) -> Result<(), StepFailure> {
    wait_task(run, TaskKind::Deploy, "agent writes the image").await?;
    advance(run, ProvisionState::Activating, "image written and verified", run.core.config.deploy.step_timeout).await
}

/// activating: remove netboot entry, port → tenant, boot from disk, reboot → active.
pub async fn activate(run: &Run<'_>) -> Result<(), StepFailure> {
    netboot_remove(run).await?;
    move_port(run, NetworkKind::Tenant, "switch port -> tenant").await?;
    step(run, "boot device -> disk", || async { Ok(drivers::set_boot_device(&run.core.plugins, &run.node.bmc(), BootDevice::Disk, true).await?) })
        .await?;
    if run.core.config.deploy.agent_poweroff {
        // The agent powers the node off after its report, when it is done saying so: a reset
        // sent before that is undone by it and the node stays off (seen once a TLS handshake
        // made the agent's exit slower). Off first, whatever the agent has done by then.
        power_off(run, "powered off for the boot from disk").await?;
    }
    power_on_or_reboot(run, "reboot from disk").await?;
    let id = run.node.id;
    let instance = run.node.instance_id;
    store_call(run.core, run.retry_until, move |c| {
        let tx = c.transaction()?;
        if nodes::get_by_id(&tx, id)?.state == ProvisionState::Active {
            return Ok(()); // this runner's earlier attempt committed (see `advance`)
        }
        let to_active = nodes::Transition::settle(id, &[ProvisionState::Activating], ProvisionState::Active, "instance active");
        nodes::transition(&tx, to_active)?;
        if let Some(instance) = instance {
            instances::set_state(&tx, instance, InstanceState::Active, None)?;
        }
        tasks::revoke_node_tokens(&tx, id)?;
        tx.commit()?;
        Ok(())
    })
    .await
    .map_err(|source| StepFailure::Store { step: "record active", source })
}

/// inspecting: while the task is pending, port → provisioning (unless there), netboot entry, boot
/// PXE, power on; then the task's result decides; netboot entry removed, power off, and back to
/// the state the node came from. The report itself arrived before the result (api/agent.rs).
pub async fn inspect(run: &Run<'_>) -> Result<(), StepFailure> {
    let id = run.node.id;
    let task = store_call(run.core, run.retry_until, move |c| tasks::latest_for_node(c, id))
        .await
        .map_err(|source| StepFailure::Store { step: "read inspect task", source })?
        .filter(|t| t.kind == TaskKind::Inspect)
        .ok_or_else(|| Fault::Internal("the node has no inspect task".into()).at("read inspect task"))?;
    let return_to = TaskOptions::from_json(&task.payload)
        .return_to
        .and_then(|s| s.parse::<ProvisionState>().ok())
        .filter(|s| s.can_be_inspected())
        .unwrap_or(ProvisionState::Enrolled);
    if task.state == TaskState::Pending {
        if run.node.network != NetworkKind::Provisioning {
            move_port(run, NetworkKind::Provisioning, "switch port -> provisioning").await?;
        }
        netboot_put(run).await?;
        pxe_and_power_on(run).await?;
    }
    wait_task(run, TaskKind::Inspect, "agent inspects the hardware").await?;
    netboot_remove(run).await?;
    power_off(run, "powered off after inspection").await?;
    let message = format!("inspected: back to {return_to}");
    store_call(run.core, run.retry_until, move |c| {
        if nodes::get_by_id(c, id)?.state == return_to {
            return Ok(()); // this runner's earlier attempt committed (see `advance`)
        }
        let back = nodes::Transition::settle(id, &[ProvisionState::Inspecting], return_to, &message);
        nodes::transition(c, back).map(|_| ())
    })
    .await
    .map_err(|source| StepFailure::Store { step: "record inspected", source })?;
    // An enrolled node may have learnt what it lacked (its switch port); either way it is judged again.
    crate::provision::validate_node(run.core, id).await.map_err(|source| StepFailure::Store { step: "validate", source })?;
    Ok(())
}

/// deleting: power off, port → provisioning, then clean (or straight to available).
pub async fn delete(run: &Run<'_>) -> Result<(), StepFailure> {
    let deploy = &run.core.config.deploy;
    power_off(run, "powered off for destroy").await?;
    move_port(run, NetworkKind::Provisioning, "switch port -> provisioning").await?;
    if deploy.skip_clean {
        return finish_available(run, "destroyed without cleaning (skip_clean)").await;
    }
    let options = TaskOptions { poweroff: deploy.agent_poweroff, ..TaskOptions::default() };
    create_task(run, "create clean task", TaskKind::Clean, options, None, deploy.clean_timeout + deploy.step_timeout).await?;
    netboot_put(run).await?;
    pxe_and_power_on(run).await?;
    advance(run, ProvisionState::Cleaning, "waiting for the agent to clean the disks", deploy.clean_timeout).await
}

/// cleaning: the clean task's result decides; then power off and back to the pool.
pub async fn wait_clean(run: &Run<'_>) -> Result<(), StepFailure> {
    wait_task(run, TaskKind::Clean, "agent cleans the disks").await?;
    netboot_remove(run).await?;
    power_off(run, "powered off after cleaning").await?;
    finish_available(run, "cleaned: back in the pool").await
}

async fn power_off(run: &Run<'_>, why: &'static str) -> Result<(), StepFailure> {
    step(run, "power off", || async { Ok(drivers::set_power(&run.core.plugins, &run.node.bmc(), PowerAction::Off).await?) }).await?;
    record_power(run.core, run.node.id, PowerState::Off, why).await;
    Ok(())
}

async fn finish_available(run: &Run<'_>, message: &str) -> Result<(), StepFailure> {
    let id = run.node.id;
    let from = run.node.state;
    let instance = run.node.instance_id;
    let message = message.to_owned();
    store_call(run.core, run.retry_until, move |c| {
        let tx = c.transaction()?;
        if nodes::get_by_id(&tx, id)?.state == ProvisionState::Available {
            return Ok(()); // this runner's earlier attempt committed (see `advance`)
        }
        nodes::transition(&tx, nodes::Transition::settle(id, &[from], ProvisionState::Available, &message))?;
        if let Some(instance) = instance {
            instances::remove(&tx, instance)?;
        }
        tasks::revoke_node_tokens(&tx, id)?;
        tx.commit()?;
        Ok(())
    })
    .await
    .map_err(|source| StepFailure::Store { step: "record available", source })
}

/// Queues the node's agent task as a recorded step. A deploy task writes its instance's image.
async fn create_task(
    run: &Run<'_>,
    name: &'static str,
    kind: TaskKind,
    options: TaskOptions,
    instance: Option<InstanceId>,
    within: Duration,
) -> Result<(), StepFailure> {
    let id = run.node.id;
    step(run, name, || {
        let options = options.clone();
        async move {
            let deadline = deadline_in(within);
            run.core
                .store
                .call(move |c| {
                    let image = instance.map(|i| instances::get(c, &crate::domain::Key::Id(i.0))).transpose()?.map(|inst| inst.image_id);
                    tasks::create(c, NewTask { node: id, kind, payload: options.to_json(), image, deadline })
                })
                .await?;
            Ok(())
        }
    })
    .await
}

/// Waits for the node's latest task of `kind` to finish; its failure message and kind become the
/// step's. Never retried: a finished task reads the same again (another attempt is a new task).
async fn wait_task(run: &Run<'_>, kind: TaskKind, name: &'static str) -> Result<(), StepFailure> {
    let id = run.node.id;
    let once = Run { core: run.core, node: run.node, retry_until: None, last_retried: Default::default() };
    step(&once, name, || async {
        loop {
            let notified = run.core.task_events.notified();
            // A lost session must not fail the wait: the poll is retried within the state's budget.
            let task = store_call(run.core, run.retry_until, move |c| tasks::latest_for_node(c, id)).await?;
            match task {
                Some(t) if t.kind == kind => match t.state {
                    TaskState::Succeeded => return Ok(()),
                    TaskState::Failed => {
                        let message = format!("the agent's {kind} task failed: {}", t.message.unwrap_or_default());
                        return Err(Fault::Agent { kind: t.failure_kind.unwrap_or(FailureKind::Agent), message });
                    }
                    TaskState::Pending | TaskState::Running => {}
                },
                _ => return Err(Fault::Agent { kind: FailureKind::Agent, message: format!("the node has no {kind} task") }),
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
    .await
}

async fn move_port(run: &Run<'_>, network: NetworkKind, name: &'static str) -> Result<(), StepFailure> {
    let net = &run.core.config.network;
    // A project's instance goes to its project's VLAN (ARCHITECTURE.md, "Projects and access").
    let project_network = match (network, run.node.instance_id) {
        (NetworkKind::Tenant, Some(instance)) => super::store_call(run.core, run.retry_until, move |c| projects::network_of_instance(c, instance))
            .await
            .map_err(|source| StepFailure::Store { step: name, source })?,
        _ => None,
    };
    let (vlan, vlan_name) = match (network, &project_network) {
        (NetworkKind::Tenant, Some((vlan, project))) => (*vlan, format!("project-{project}")),
        (NetworkKind::Tenant, None) => (net.tenant_vlan, net.tenant_vlan_name.clone()),
        _ => (net.provisioning_vlan, net.provisioning_vlan_name.clone()),
    };
    move_port_to(run, network, vlan, &vlan_name, name).await
}

/// Moves the node's switch port, one change per switch at a time, and records the network.
pub(crate) async fn move_port_to(run: &Run<'_>, network: NetworkKind, vlan: Vlan, vlan_name: &str, name: &'static str) -> Result<(), StepFailure> {
    let switch_id = run.node.switch_id;
    let id = run.node.id;
    step(run, name, || async {
        let switch = run.core.store.call(move |c| switches::get_by_id(c, switch_id)).await?;
        let lock = run.core.runners.switch_lock(switch.id.0);
        let _guard = lock.lock().await;
        // Other daemons of the pool change this switch too: one at a time across all of them. The
        // lock expires with its holder's heartbeat, so a frozen holder blocks it one TTL at most.
        let (me, ttl_ms) = (run.core.member.name.clone(), run.core.lease_ttl_ms());
        loop {
            let me = me.clone();
            if run.core.store.call(move |c| cluster::try_lock_switch(c, switch_id, &me, ttl_ms)).await? {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _pool_guard = PoolSwitchLock { store: run.core.store.clone(), switch: switch_id, holder: me };
        // The wait may have been long: the lease must still cover the change.
        run.fence()?;
        let fingerprint = drivers::move_port(&run.core.plugins, &switch.access(), &run.node.label(), &run.node.switch_port, vlan, vlan_name).await?;
        run.core
            .store
            .call(move |c| {
                if !fingerprint.is_empty() {
                    switches::learn_host_key(c, switch_id, &fingerprint)?;
                }
                nodes::set_network(c, id, network, Some(vlan))
            })
            .await?;
        Ok(())
    })
    .await
}

/// Releases the pool-wide switch lock however the step ends (done, failed, or cancelled by its
/// deadline), so no other daemon waits on a lock nobody uses.
struct PoolSwitchLock {
    store: crate::store::Store,
    switch: crate::domain::SwitchId,
    holder: std::sync::Arc<str>,
}

impl Drop for PoolSwitchLock {
    fn drop(&mut self) {
        let (store, switch, holder) = (self.store.clone(), self.switch, self.holder.clone());
        // Not fenced (a spawned task is outside the runner's scope): a daemon that lost the node
        // still gives back a lock it holds, and only its own.
        tokio::spawn(async move {
            if let Err(e) = store.call(move |c| cluster::unlock_switch(c, switch, &holder)).await {
                tracing::warn!("cannot release the pool-wide switch lock (it expires by itself): {e}");
            }
        });
    }
}

async fn pxe_and_power_on(run: &Run<'_>) -> Result<(), StepFailure> {
    step(run, "boot device -> pxe", || async { Ok(drivers::set_boot_device(&run.core.plugins, &run.node.bmc(), BootDevice::Pxe, false).await?) })
        .await?;
    power_on_or_reboot(run, "power on into the bootstrap").await
}

/// Powers the node on, or cycles it if it is already on: one `reboot` call, which the plugin
/// contract defines as exactly that, rather than a power read followed by a second call.
async fn power_on_or_reboot(run: &Run<'_>, name: &'static str) -> Result<(), StepFailure> {
    step(run, name, || async { Ok(drivers::set_power(&run.core.plugins, &run.node.bmc(), PowerAction::Reboot).await?) }).await?;
    record_power(run.core, run.node.id, PowerState::On, name).await;
    Ok(())
}

async fn record_power(core: &WorkflowCore, id: NodeId, power: PowerState, why: &'static str) {
    if let Err(e) = core.store.call(move |c| nodes::set_power_state(c, id, power, why)).await {
        tracing::warn!(node = id.0, "cannot record power state: {e}");
    }
}

/// The kernel command line tells the bootstrap where this daemon is.
pub fn boot_entry(core: &WorkflowCore, node: &Node) -> BootEntry {
    let base = &core.boot_url;
    let deploy = &core.config.deploy;
    BootEntry {
        mac: node.mac.to_string(),
        ip: node.ip.to_string(),
        hostname: node.name.clone(),
        kernel_url: deploy.kernel_url.clone().unwrap_or_else(|| format!("{base}/v1/bootstrap/vmlinuz")),
        initrd_url: initrd_url(core),
        kernel_args: kernel_args(core),
    }
}

pub fn initrd_url(core: &WorkflowCore) -> String {
    let base = &core.boot_url;
    core.config.deploy.initrd_url.clone().unwrap_or_else(|| format!("{base}/v1/bootstrap/initrd.gz"))
}

/// The configured arguments; where the agent finds the API (`metalhost.api`), where the bootstrap
/// fetches the agent in plain HTTP (`metalhost.boot`), and the sha256 of the CA the agent trusts
/// for the API (`metalhost.ca`, issue 31); and `initrd=` naming the initramfs as iPXE keeps it: a
/// kernel started through its EFI stub (UEFI iPXE) loads its initramfs by that name; under BIOS
/// the kernel ignores the argument.
pub fn kernel_args(core: &WorkflowCore) -> String {
    let initrd = initrd_url(core);
    let name = initrd.rsplit('/').next().unwrap_or("initrd.gz");
    let ca = core.ca_fingerprint.as_deref().map(|f| format!(" metalhost.ca=sha256:{f}")).unwrap_or_default();
    format!("{} metalhost.api={} metalhost.boot={}{ca} initrd={name}", core.config.deploy.kernel_args, core.public_url, core.boot_url)
        .trim()
        .to_owned()
}

async fn netboot_put(run: &Run<'_>) -> Result<(), StepFailure> {
    let Some(plugin) = run.core.config.deploy.netboot_plugin.as_deref() else { return Ok(()) };
    let entry = boot_entry(run.core, run.node);
    step(run, "netboot entry -> write", || async { Ok(drivers::netboot_put(&run.core.plugins, plugin, &run.node.label(), &entry).await?) }).await
}

async fn netboot_remove(run: &Run<'_>) -> Result<(), StepFailure> {
    let Some(plugin) = run.core.config.deploy.netboot_plugin.as_deref() else { return Ok(()) };
    step(run, "netboot entry -> remove", || async { Ok(drivers::netboot_remove(&run.core.plugins, plugin, &run.node.label(), &run.node.mac).await?) })
        .await
}
