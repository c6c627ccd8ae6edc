//! `metalhost`: the daemon (`metalhost serve`) and the operator CLI in one binary.

mod api;
mod app;
mod cli;
mod config;
mod config_drive;
mod console;
mod domain;
mod drivers;
mod images;
mod inventory;
mod metrics;
mod netboot;
mod pool;
mod provision;
mod store;
mod tls;
mod ui;
mod work;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    quiet_library_backtraces();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(ref args) => {
            let mut args = args.clone();
            args.token = cli.token.clone();
            match runtime.block_on(serve(args)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        // The vendor kit runs locally, without a daemon.
        Command::Plugin(ref cmd) if cmd.is_local() => cli::plugin::run_local(cmd, cli.json),
        _ => match runtime.block_on(cli::run_client(cli)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

async fn serve(args: config::ServeArgs) -> anyhow::Result<()> {
    let config = config::Config::load(&args)?;
    init_logging(config.log_json);
    let app = app::App::build(config).await?;
    app.run(app::shutdown_signal()).await
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// wasmtime builds (and drops) an error value while tearing down a plugin's store; with
/// `RUST_BACKTRACE=1` in the environment every such value captures a backtrace, which multiplied a
/// plugin call's cost (bench/README.md, issue 14). `RUST_LIB_BACKTRACE=0` turns capture off for
/// error values only: panics still print a backtrace when `RUST_BACKTRACE` asks for one. An
/// operator's explicit `RUST_LIB_BACKTRACE` wins.
#[allow(unsafe_code)]
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: first thing in `main`, before the async runtime or any other thread exists,
        // so nothing can read the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
