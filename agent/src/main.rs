//! `metalhost-agent`: runs on a PXE-booted node. It looks itself up by MAC, polls for its task,
//! writes an image to disk or cleans the disks, reports, and exits or powers off.

mod api;
mod clean;
mod deploy;
mod disks;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use metalhost_wire::{AfterTask, TaskResult, TaskWork};

#[derive(Debug, Parser)]
#[command(name = "metalhost-agent", version, about = "metalhost's provisioning agent")]
struct Args {
    /// The metalhost API base URL; default: `metalhost.api=` from the kernel command line.
    #[arg(long)]
    api: Option<String>,
    /// MAC addresses to look up with; default: every NIC in /sys/class/net.
    #[arg(long)]
    mac: Vec<String>,
    /// TESTS ONLY: use this file as the only disk; never power off, exit after the task.
    #[arg(long)]
    disk: Option<PathBuf>,
    /// Exit after one task instead of polling for the next.
    #[arg(long)]
    once: bool,
}

pub fn log(message: impl AsRef<str>) {
    eprintln!("[agent] {}", message.as_ref());
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(api) = args.api.clone().or_else(api_from_cmdline) else {
        log("no API URL: pass --api or boot with metalhost.api=URL");
        return ExitCode::from(2);
    };
    let macs = if args.mac.is_empty() { disks::local_macs() } else { args.mac.clone() };
    if macs.is_empty() {
        log("no MAC address found");
        return ExitCode::from(2);
    }
    let client = api::Client::new(&api);
    loop {
        let session = client.lookup_until_found(&macs);
        let task = session.wait_for_task();
        log(format!("task {} received", task.id));
        let heartbeat = session.start_heartbeat(task.id);
        let outcome = match &task.work {
            TaskWork::Deploy(work) => deploy::run(&session, task.id, work, args.disk.as_deref()),
            TaskWork::Clean(work) => clean::run(work, args.disk.as_deref()),
        };
        heartbeat.stop();
        let result = match &outcome {
            Ok(message) => TaskResult { success: true, message: message.clone() },
            Err(message) => TaskResult { success: false, message: message.clone() },
        };
        log(format!("task {} {}: {}", task.id, if result.success { "succeeded" } else { "failed" }, result.message));
        session.report(task.id, &result);
        if args.disk.is_some() || args.once {
            return if result.success { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
        if task.after == AfterTask::Poweroff {
            disks::power_off();
            return ExitCode::SUCCESS;
        }
        if task.after == AfterTask::Exit {
            return if result.success { ExitCode::SUCCESS } else { ExitCode::FAILURE };
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn api_from_cmdline() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline.split_whitespace().find_map(|p| p.strip_prefix("metalhost.api=")).map(str::to_owned)
}
