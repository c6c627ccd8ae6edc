//! Port-move benchmark (issue 4), instrumented: a move as the daemon does it (open a session,
//! ensure VLAN, set access VLAN, read back, close) through the Juniper plugin against
//! fake-switches, median of 20 per model, split with metalhost-netconf's own counters into
//! session setup (TCP + SSH + auth + hello), NETCONF round trips, and the rest (the plugin:
//! instantiation, configure, wasm execution, host glue).
//!
//! Not wired yet: meant to replace tests/benches/switch_move.rs (`[[bench]] name = "switch_move"`
//! with `path = "../bench/switch_move.rs"` in tests/Cargo.toml), whose raw-RPC replay no longer
//! matches the RPCs the plugin sends.

use std::time::{Duration, Instant};

use metalhost_netconf::{Target, stats};
use metalhost_plugin_host::{PluginHost, PluginKind, PluginSpec, Vlan};
use metalhost_tests::fake_switch::FakeSwitch;
use metalhost_tests::paths::plugin_spec;

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

struct Move {
    total: Duration,
    connect: Duration,
    rpc: Duration,
    rpcs: u64,
}

#[tokio::main]
async fn main() {
    for (model, syntax) in [("juniper_generic", "legacy"), ("juniper_qfx_copper_generic", "els")] {
        let switch = FakeSwitch::start(model, "admin", "bench");
        let cache = tempfile::tempdir().expect("tmp");
        let host = PluginHost::new(cache.path()).expect("runtime");
        let spec = PluginSpec { config: [("syntax".to_owned(), syntax.to_owned())].into(), ..plugin_spec("juniper", PluginKind::Switch) };
        assert!(host.load(&[spec]).await[0].loaded);
        let driver = host.switch("juniper").expect("driver");
        let vlans = [Vlan { id: 100, name: "provisioning".into() }, Vlan { id: 200, name: "tenant".into() }];
        // Warm-up: the VLANs exist afterwards, as they do on a switch in service.
        let warm = driver.session(target(switch.port));
        for vlan in &vlans {
            warm.ensure_vlan(vlan).await.expect("vlan");
        }
        warm.close().await;

        let mut moves = Vec::new();
        for i in 0..RUNS {
            let vlan = &vlans[(i + 1) % 2];
            let before = stats::totals();
            let started = Instant::now();
            let session = driver.session(target(switch.port));
            session.ensure_vlan(vlan).await.expect("vlan");
            session.set_access_vlan("ge-0/0/3", vlan).await.expect("move");
            assert_eq!(session.get_port_vlan("ge-0/0/3").await.expect("read"), Some(vlan.id));
            session.close().await;
            let total = started.elapsed();
            let counted = stats::totals() - before;
            moves.push(Move { total, connect: counted.connect, rpc: counted.rpc, rpcs: counted.rpcs });
        }
        assert_eq!(switch.port_vlan("ge-0/0/3"), Some(vlans[RUNS % 2].id), "checked independently");
        let total = median(moves.iter().map(|m| m.total).collect());
        let connect = median(moves.iter().map(|m| m.connect).collect());
        let rpc = median(moves.iter().map(|m| m.rpc).collect());
        let plugin = median(moves.iter().map(|m| m.total.saturating_sub(m.connect + m.rpc)).collect());
        let per_rpc = median(moves.iter().map(|m| m.rpc / u32::try_from(m.rpcs.max(1)).unwrap_or(1)).collect());
        let share = |d: Duration| 100.0 * ms(d) / ms(total);
        println!("{model} ({syntax}): port move, median of {RUNS}: {:.1} ms", ms(total));
        println!("  session setup (TCP + SSH + auth + hello): {:.1} ms = {:.0}%", ms(connect), share(connect));
        println!("  {} NETCONF round trips: {:.1} ms = {:.0}% ({:.2} ms each)", moves[0].rpcs, ms(rpc), share(rpc), ms(per_rpc));
        println!("  plugin (3 calls: instantiate, configure, wasm, host glue): {:.1} ms = {:.0}%", ms(plugin), share(plugin));
    }
}
