//! What the runtime benchmarks share: the real ipmitool plugin, loaded with an exec stub that
//! answers like `ipmitool chassis power status` on a powered node.

use std::sync::Arc;

use metalhost_plugin_host::{PluginHost, PluginKind, PluginSpec};

/// The stub exec: every program "prints" a powered-on chassis.
pub fn stub(_program: &str, _args: &[String]) -> String {
    "Chassis Power is on\n".to_owned()
}

/// Loads `plugins/target/.../ipmitool.wasm` (build the plugins first) with the stub exec.
pub async fn load_ipmitool(host: &PluginHost) {
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/wasm32-wasip2/release/ipmitool.wasm");
    host.set_exec_stub(Arc::new(stub));
    let spec = PluginSpec {
        name: "ipmitool".into(),
        kind: PluginKind::Power,
        path: wasm,
        sha256: None,
        exec: vec!["ipmitool".into()],
        dirs: vec![],
        memory_mb: 64,
        call_timeout_s: 30,
        config: Default::default(),
        console: vec![],
        network: None,
    };
    let status = host.load(&[spec]).await;
    assert!(status[0].loaded, "build the plugins first: {:?}", status[0].error);
}
