//! Helpers that start real peers for the integration tests: the daemon, ipmi_sim, fake-switches.
//!
//! Every helper owns the processes it starts and stops them by PID on drop, so a failing test
//! leaves nothing running.

pub mod agent_lab;
pub mod browser;
pub mod capture;
pub mod certs;
pub mod cluster_lab;
pub mod compiled_bmc;
pub mod console;
pub mod daemon;
pub mod deploy_lab;
pub mod disk_probe;
pub mod fake_switch;
pub mod file_server;
pub mod ipmi_bmc;
pub mod ipmi_sim;
pub mod lldp;
pub mod openapi;
pub mod paths;
pub mod postgres;
pub mod switch_follower;
pub mod vm_lab;
