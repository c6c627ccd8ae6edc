//! The compiled lab BMC: thousands of RMCP+ BMCs (cipher suites 17 and 3) on 127.0.0.1 from one
//! process (tests/src/compiled_bmc).
//!
//!   lab-bmc --state-dir DIR [--bmcs N] [--port P] [--user admin] [--suites 17,3] [--threads 2]
//!
//! The password comes from $IPMI_BMC_PASSWORD (never argv). Writes DIR/ports (one a line), then
//! prints "ready FIRST_PORT"; keeps DIR/received (datagrams so far) current every 100 ms. Runs
//! until killed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use metalhost_tests::compiled_bmc::protocol::{Account, Suite};
use metalhost_tests::compiled_bmc::serve::{Farm, FarmOptions};

struct Args {
    state_dir: PathBuf,
    bmcs: usize,
    port: u16,
    user: String,
    suites: Vec<Suite>,
    threads: usize,
}

fn parse() -> Result<Args, String> {
    let mut args =
        Args { state_dir: PathBuf::new(), bmcs: 1, port: 0, user: "admin".into(), suites: vec![Suite::Seventeen, Suite::Three], threads: 2 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--state-dir" => args.state_dir = PathBuf::from(value),
            "--bmcs" => args.bmcs = number(&value)?,
            "--port" => args.port = u16::try_from(number(&value)?).map_err(|e| format!("--port: {e}"))?,
            "--user" => args.user = value,
            "--threads" => args.threads = number(&value)?,
            "--suites" => {
                args.suites = value
                    .split(',')
                    .map(|s| s.trim().parse::<u8>().ok().and_then(Suite::from_id).ok_or_else(|| format!("unknown cipher suite {s:?} (3 or 17)")))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.state_dir.as_os_str().is_empty() {
        return Err("--state-dir is required".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("lab-bmc: {e}");
            return ExitCode::from(2);
        }
    };
    let password = std::env::var("IPMI_BMC_PASSWORD").unwrap_or_default();
    let account = Account::new(&args.user, &password, args.suites);
    let farm = match Farm::start(FarmOptions { bmcs: args.bmcs, first_port: args.port, account, threads: args.threads }) {
        Ok(farm) => farm,
        Err(e) => {
            eprintln!("lab-bmc: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ports: String = farm.ports.iter().map(|p| format!("{p}\n")).collect();
    let write = |name: &str, text: &str| {
        // Replaced whole, so a reader never sees half a file.
        let path = args.state_dir.join(name);
        let fresh = args.state_dir.join(format!("{name}.new"));
        std::fs::write(&fresh, text).and_then(|()| std::fs::rename(&fresh, &path))
    };
    if let Err(e) = write("ports", &ports) {
        eprintln!("lab-bmc: cannot write {}: {e}", args.state_dir.join("ports").display());
        return ExitCode::FAILURE;
    }
    println!("ready {}", farm.ports.first().copied().unwrap_or(0));
    let mut last = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let received = farm.received();
        if received != last {
            last = received;
            if let Err(e) = write("received", &format!("{received}\n")) {
                eprintln!("lab-bmc: cannot write the counter: {e}");
            }
        }
    }
}
