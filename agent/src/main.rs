//! `metalhost-agent`: runs on a PXE-booted node. It looks itself up by MAC, polls for its task,
//! writes an image to disk, cleans the disks or inspects the hardware, reports, and exits or
//! powers off. A machine the host does not know is offered once for enlistment.

mod api;
mod clean;
mod config_drive;
mod console;
mod decode;
mod deploy;
mod disk_io;
mod disks;
mod download;
mod error;
mod inventory;
mod lldp;
mod qcow2;
mod ranges;
mod sys;
mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use std::time::Duration;

use metalhost_wire::{AfterTask, AgentFailureKind, AgentTask, Compression, DISCOVERY_LLDP_WAIT_S, ImageFormat, InspectTask, TaskResult, TaskWork};

/// Exit codes, for whoever runs the agent (the bootstrap /init, tests).
const EXIT_TASK_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNREPORTED: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "metalhost-agent",
    version,
    about = "metalhost's provisioning agent: looks the node up by MAC, runs its deploy or clean task, reports",
    after_help = "Exit codes: 0 task succeeded and reported; 1 task failed (reported); 2 usage error; \
                  3 result could not be delivered.\nImages come over plain HTTP (the provisioning network) and \
                  are checked against their sha256."
)]
struct Args {
    /// The metalhost API base URL, or several daemons of one pool comma separated (tried in turn
    /// when one cannot be reached); default: `metalhost.api=URL` from /proc/cmdline.
    #[arg(long)]
    api: Option<String>,
    /// The sha256 of the CA the API's certificate must chain to (`sha256:HEX`); default:
    /// `metalhost.ca=` from /proc/cmdline. Without one, an https API is checked against the
    /// public roots.
    #[arg(long)]
    ca_sha256: Option<String>,
    /// MAC address to look up with (repeatable); default: every NIC in /sys/class/net but lo.
    #[arg(long)]
    mac: Vec<String>,
    /// FOR TESTS ONLY: this file is the only disk (no discovery, no discard), and the agent exits
    /// after the task instead of powering off.
    #[arg(long)]
    disk: Option<PathBuf>,
    /// Exit after the first task, whatever it says to do afterwards (never power off).
    #[arg(long)]
    once: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the deploy pipeline without the API (benchmarks, debugging).
    #[command(hide = true)]
    WriteImage {
        #[arg(long)]
        url: String,
        /// Expected sha256 of the stored image; without it nothing is hashed.
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long, default_value = "none", value_parser = parse_compression)]
        compression: Compression,
        /// raw or qcow2 (read with Range requests, so the server must support them).
        #[arg(long, default_value = "raw", value_parser = parse_format)]
        format: ImageFormat,
        #[arg(long)]
        disk: PathBuf,
        #[arg(long)]
        verify_readback: bool,
        /// The sha256 of the CA an https URL's certificate must chain to (as `--ca-sha256`).
        #[arg(long)]
        ca_sha256: Option<String>,
    },
    /// Adds the config-2 partition (the config drive) to a disk or file an image was written to
    /// (debugging; the deploy task will call config_drive::write itself).
    #[command(hide = true)]
    ConfigDrive {
        #[arg(long)]
        disk: PathBuf,
        /// `PATH=FILE`: the drive's `PATH` (e.g. openstack/latest/meta_data.json) holds FILE's bytes.
        #[arg(long = "file", value_parser = parse_drive_file)]
        files: Vec<(String, PathBuf)>,
    },
    /// Runs the clean task on one disk or file without the API (debugging).
    #[command(hide = true)]
    CleanDisk {
        #[arg(long)]
        disk: PathBuf,
    },
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    match s {
        "none" | "raw" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        other => Err(format!("unknown compression {other}: none, gzip or zstd")),
    }
}

fn parse_drive_file(s: &str) -> Result<(String, PathBuf), String> {
    s.split_once('=').map(|(path, file)| (path.to_owned(), PathBuf::from(file))).ok_or_else(|| format!("{s}: expected PATH=FILE"))
}

fn parse_format(s: &str) -> Result<ImageFormat, String> {
    match s {
        "raw" => Ok(ImageFormat::Raw),
        "qcow2" => Ok(ImageFormat::Qcow2),
        other => Err(format!("unknown format {other}: raw or qcow2")),
    }
}

/// One line per event on stderr (the node's console), also kept for the host's console log.
pub fn log(message: impl AsRef<str>) {
    let line = format!("[agent] {}", message.as_ref());
    eprintln!("{line}");
    console::keep(line);
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::WriteImage { url, sha256, compression, format, disk, verify_readback, ca_sha256 }) => {
            match ca_sha256.as_deref().map(tls::parse_fingerprint).transpose() {
                Ok(pin) => write_image(url, sha256, compression, format, &disk, verify_readback, pin),
                Err(why) => {
                    log(why);
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        Some(Command::ConfigDrive { disk, files }) => config_drive_cli(&disk, &files),
        Some(Command::CleanDisk { disk }) => {
            let work = metalhost_wire::CleanTask { disks: Vec::new(), method: metalhost_wire::CleanMethod::Metadata };
            match clean::run(&work, Some(&disk)) {
                Ok(message) => {
                    log(message);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    log(format!("clean-disk failed: {e}"));
                    ExitCode::from(EXIT_TASK_FAILED)
                }
            }
        }
        None => run_agent(&args),
    }
}

fn config_drive_cli(disk: &Path, files: &[(String, PathBuf)]) -> ExitCode {
    let mut contents = Vec::new();
    for (path, file) in files {
        match std::fs::read(file) {
            Ok(bytes) => contents.push((path.as_str(), bytes)),
            Err(e) => {
                log(format!("config-drive: {}: {e}", file.display()));
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let refs: Vec<(&str, &[u8])> = contents.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    match config_drive::write(disk, &refs) {
        Ok(written) => {
            log(written.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            log(format!("config-drive failed: {e}"));
            ExitCode::from(EXIT_TASK_FAILED)
        }
    }
}

fn run_agent(args: &Args) -> ExitCode {
    let Some(api) = args.api.clone().or_else(api_from_cmdline) else {
        log("no API URL: pass --api or boot with metalhost.api=URL");
        return ExitCode::from(EXIT_USAGE);
    };
    let macs = if args.mac.is_empty() { disks::local_macs(Path::new("/sys/class/net")) } else { args.mac.clone() };
    if macs.is_empty() {
        log("no MAC address found: pass --mac");
        return ExitCode::from(EXIT_USAGE);
    }
    let pin = match args.ca_sha256.clone().or_else(|| cmdline_value("metalhost.ca=")).map(|text| tls::parse_fingerprint(&text)).transpose() {
        Ok(pin) => pin,
        Err(why) => {
            log(why);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    log(format!("agent {} for {api}, MACs {}", env!("CARGO_PKG_VERSION"), macs.join(", ")));
    match pin {
        Some(pin) => log(format!("trusting the API's CA sha256:{}", hex::encode(pin))),
        None if api.contains("https://") => log("no metalhost.ca= pin: the API's certificate is checked against the public roots"),
        None => {}
    }
    let client = match api::Client::new(&api, pin) {
        Ok(client) => client,
        Err(why) => {
            log(format!("cannot set up TLS: {why}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let Some((session, task)) = find_task(&client, &macs, args) else { return ExitCode::SUCCESS };
    let result = run_task(&client, &session, &task, args);
    log(format!("task {} {}: {}", task.id, if result.success { "succeeded" } else { "failed" }, result.message));
    // Before the result: once it is in, the host may stop taking this node's token.
    session.send_console();
    let delivered = session.report(task.id, &result);
    if delivered {
        log(format!("task {} result delivered", task.id));
    }
    session.send_console();
    let code = match (delivered, result.success) {
        (false, _) => ExitCode::from(EXIT_UNREPORTED),
        (true, true) => ExitCode::SUCCESS,
        (true, false) => ExitCode::from(EXIT_TASK_FAILED),
    };
    if task.after == AfterTask::Poweroff && args.disk.is_none() && !args.once {
        log("powering off");
        let e = sys::power_off();
        log(format!("power off failed: {e}"));
    }
    code
}

/// Looks the node up (offering it for enlistment after a 404) until it has a task. None when the
/// machine was enlisted instead: there is nothing to do until the operator completes the node.
fn find_task(client: &api::Client, macs: &[String], args: &Args) -> Option<(Arc<api::Session>, AgentTask)> {
    loop {
        let report = || {
            log(format!("inspecting this machine for enlistment (listening for LLDP for {DISCOVERY_LLDP_WAIT_S} s)"));
            inventory::gather(Duration::from_secs(DISCOVERY_LLDP_WAIT_S))
        };
        let session = match client.lookup_or_enlist(macs, report) {
            api::Found::Node(session) => Arc::new(session),
            api::Found::Enlisted(node) => {
                log(format!("enlisted as node {} ({}): {}", node.name, node.node_id, node.message));
                if args.disk.is_none() && !args.once {
                    log("powering off until the operator completes the node");
                    let e = sys::power_off();
                    log(format!("power off failed: {e}"));
                }
                return None;
            }
        };
        if let Some(task) = session.next_task() {
            return Some((session, task));
        }
    }
}

/// Runs the task with progress reported in the background; its result, a failure with its kind.
fn run_task(client: &api::Client, session: &Arc<api::Session>, task: &AgentTask, args: &Args) -> TaskResult {
    let kind = match &task.work {
        TaskWork::Deploy(_) => "deploy",
        TaskWork::Clean(_) => "clean",
        TaskWork::Inspect(_) => "inspect",
    };
    log(format!("task {} ({kind}) received", task.id));
    let total = match &task.work {
        TaskWork::Deploy(d) if d.compression == Compression::None => d.size,
        _ => None,
    };
    let reporter = session.start_reporter(task.id, total);
    // Even a bug must end in a reported failure, not a silent node.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &task.work {
        TaskWork::Deploy(work) => {
            deploy::run(client.http(), work, client.mirrors(&work.image_url), args.disk.as_deref(), &|n| reporter.set_written(n))
        }
        TaskWork::Clean(work) => clean::run(work, args.disk.as_deref()),
        TaskWork::Inspect(work) => inspect(session, work),
    }));
    reporter.stop();
    match outcome {
        Ok(Ok(message)) => TaskResult { success: true, message, kind: None },
        Ok(Err(e)) => TaskResult { success: false, message: e.to_string(), kind: Some(e.kind()) },
        Err(panic) => {
            let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            let message = format!("the agent crashed: {}", what.unwrap_or_else(|| "unknown panic".into()));
            TaskResult { success: false, message, kind: Some(AgentFailureKind::Other) }
        }
    }
}

/// The inspect task: gather the inventory, deliver it; the summary is the task's message.
fn inspect(session: &api::Session, work: &InspectTask) -> Result<String, error::Error> {
    log(format!("inspecting: listening for LLDP for {} s", work.lldp_wait_s));
    let started = std::time::Instant::now();
    let report = inventory::gather(Duration::from_secs(work.lldp_wait_s));
    let summary = format!(
        "inventory: {} CPUs, {} MiB, {} disks, {} NICs, {} LLDP neighbours, {:?} firmware ({} ms)",
        report.cpu.count,
        report.memory_bytes >> 20,
        report.disks.len(),
        report.nics.len(),
        report.lldp.len(),
        report.boot_mode,
        started.elapsed().as_millis()
    );
    log(&summary);
    session.send_inventory(&report).map_err(error::Error::Report)?;
    Ok(summary)
}

/// The deploy pipeline on its own: no lookup, no reports. Ends with the peak memory, for the
/// benchmark (bench/qcow2.sh).
fn write_image(
    url: String,
    sha256: Option<String>,
    compression: Compression,
    format: ImageFormat,
    disk: &Path,
    verify_readback: bool,
    pin: Option<[u8; 32]>,
) -> ExitCode {
    let plan = deploy::Plan { compression, sha256, verify_readback };
    let http = match api::Client::new(&url, pin) {
        Ok(client) => client.http(),
        Err(why) => {
            log(format!("cannot set up TLS: {why}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let source = download::Download::new(http.clone(), url.clone(), None);
    let outcome = match format {
        ImageFormat::Raw => deploy::write_image(source, &plan, disk, &|_| {}),
        ImageFormat::Qcow2 => {
            let mut ranges = ranges::HttpRanges::new(http.clone(), url.clone(), None, Vec::new());
            ranges.size().map_err(|e| error::Error::Download(e.to_string())).and_then(|size| {
                let reopen = Box::new(move || Ok(download::Download::new(http.clone(), url.clone(), None)));
                deploy::write_qcow2(source, ranges, size, reopen, &plan, disk, &|_| {})
            })
        }
    };
    match outcome {
        Ok(outcome) => {
            log(outcome.summary(disk, &plan));
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                log(format!("peak memory {}", hwm.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            log(format!("write-image failed: {e}"));
            ExitCode::from(EXIT_TASK_FAILED)
        }
    }
}

fn api_from_cmdline() -> Option<String> {
    parse_cmdline(&std::fs::read_to_string("/proc/cmdline").ok()?)
}

/// A `key=value` of the kernel command line, by its `key=`.
fn cmdline_value(key: &str) -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline.split_whitespace().find_map(|p| p.strip_prefix(key)).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn parse_cmdline(cmdline: &str) -> Option<String> {
    cmdline.split_whitespace().find_map(|p| p.strip_prefix("metalhost.api=")).filter(|u| !u.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_url_comes_from_the_kernel_command_line() {
        assert_eq!(parse_cmdline("console=ttyS0 metalhost.api=http://10.99.0.1:8080 quiet\n").as_deref(), Some("http://10.99.0.1:8080"));
        assert_eq!(parse_cmdline("console=ttyS0 metalhost.api= quiet"), None);
        assert_eq!(parse_cmdline("console=ttyS0"), None);
    }

    #[test]
    fn the_cli_parses_and_write_image_is_hidden() {
        let a = Args::try_parse_from(["metalhost-agent", "--api", "http://h", "--mac", "a", "--mac", "b", "--disk", "/tmp/d", "--once"]).unwrap();
        assert_eq!(a.mac, ["a", "b"]);
        assert!(a.once && a.disk.is_some() && a.command.is_none());
        let w = Args::try_parse_from(["metalhost-agent", "write-image", "--url", "http://h/i", "--compression", "zstd", "--disk", "/tmp/d"]).unwrap();
        assert!(matches!(w.command, Some(Command::WriteImage { compression: Compression::Zstd, sha256: None, .. })));
        assert!(Args::try_parse_from(["metalhost-agent", "write-image", "--url", "u", "--compression", "lz4", "--disk", "d"]).is_err());
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        assert!(!help.contains("write-image") && help.contains("FOR TESTS ONLY") && help.contains("Exit codes"), "{help}");
    }
}
