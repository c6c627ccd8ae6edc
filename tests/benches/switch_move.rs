//! Port-move benchmark (issue 4): the daemon's move (ensure VLAN, set access VLAN, read back, in
//! one NETCONF session) through the Juniper plugin against fake-switches, median of 20; and, in the
//! same run, the SSH connect and the same 13 RPCs sent raw without the plugin, to split the time.

use std::time::{Duration, Instant};

use metalhost_netconf::{Session, Target};
use metalhost_plugin_host::{PluginHost, PluginKind, PluginSpec, Vlan};
use metalhost_tests::fake_switch::FakeSwitch;
use metalhost_tests::paths::plugin_wasm;

const RUNS: usize = 20;

fn target(port: u16) -> Target {
    Target {
        address: "127.0.0.1".into(),
        port,
        username: "admin".into(),
        password: "bench".into(),
        expected_host_key: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let switch = FakeSwitch::start("juniper_generic", "admin", "bench");
    let cache = tempfile::tempdir().expect("tmp");
    let host = PluginHost::new(cache.path()).expect("runtime");
    let spec = PluginSpec {
        name: "juniper".into(),
        kind: PluginKind::Switch,
        path: plugin_wasm("juniper"),
        sha256: None,
        exec: vec![],
        dirs: vec![],
        memory_mb: 64,
        call_timeout_s: 30,
        config: Default::default(),
    };
    assert!(host.load(&[spec]).await[0].loaded);
    let driver = host.switch("juniper").expect("driver");

    let mut moves = Vec::new();
    for i in 0..RUNS {
        let vlan = if i % 2 == 0 { Vlan { id: 200, name: "tenant".into() } } else { Vlan { id: 100, name: "provisioning".into() } };
        let t = Instant::now();
        let session = driver.session(target(switch.port));
        session.ensure_vlan(&vlan).await.expect("vlan");
        session.set_access_vlan("ge-0/0/3", &vlan).await.expect("move");
        assert_eq!(session.get_port_vlan("ge-0/0/3").await.expect("read"), Some(vlan.id));
        session.close().await;
        moves.push(t.elapsed());
    }

    let mut connects = Vec::new();
    let mut raw = Vec::new();
    for i in 0..RUNS {
        let id = if i % 2 == 0 { 200 } else { 100 };
        let t = Instant::now();
        let mut s = Session::connect(&target(switch.port)).await.expect("connect");
        connects.push(t.elapsed());
        let t = Instant::now();
        // The same 13 RPCs the plugin sends for ensure-vlan + set-access-vlan + get-port-vlan.
        let filter = "<get-config><source><running/></source><filter type=\"subtree\"><configuration><interfaces><interface><name>ge-0/0/3</name></interface></interfaces></configuration></filter></get-config>";
        let change = |cfg: String| format!("<edit-config><target><candidate/></target><config><configuration>{cfg}</configuration></config></edit-config>");
        let rpcs = [
            "<lock><target><candidate/></target></lock>".to_owned(),
            change(format!("<vlans><vlan><name>v{id}</name><vlan-id>{id}</vlan-id></vlan></vlans>")),
            "<commit/>".to_owned(),
            "<unlock><target><candidate/></target></unlock>".to_owned(),
            "<get-config><source><running/></source><filter type=\"subtree\"><configuration><vlans/></configuration></filter></get-config>".to_owned(),
            "<get-interface-information><terse/></get-interface-information>".to_owned(),
            "<lock><target><candidate/></target></lock>".to_owned(),
            change(format!("<interfaces><interface><name>ge-0/0/3</name><unit><name>0</name><family><ethernet-switching><port-mode>access</port-mode><vlan operation=\"replace\"><members>{id}</members></vlan></ethernet-switching></family></unit></interface></interfaces>")),
            "<commit/>".to_owned(),
            "<unlock><target><candidate/></target></unlock>".to_owned(),
            filter.to_owned(),
            "<get-interface-information><terse/></get-interface-information>".to_owned(),
            filter.to_owned(),
        ];
        for rpc in &rpcs {
            let reply = s.rpc(rpc).await.expect("rpc");
            assert!(!reply.contains("rpc-error"), "{reply}");
        }
        raw.push(t.elapsed());
        s.close().await.expect("close");
    }
    let (m, c, r) = (median(moves), median(connects), median(raw));
    let plugin = m.saturating_sub(c + r);
    println!("port move through the juniper plugin (ensure VLAN + set access + read back), median of {RUNS}: {:.1} ms", ms(m));
    println!("  SSH connect + hello (median): {:.1} ms = {:.0}%", ms(c), 100.0 * ms(c) / ms(m));
    println!("  13 NETCONF round trips sent raw (median): {:.1} ms = {:.0}%", ms(r), 100.0 * ms(r) / ms(m));
    println!("  plugin (wasm instantiate + XML building/parsing, 3 calls): {:.1} ms = {:.0}%", ms(plugin), 100.0 * ms(plugin) / ms(m));
}
