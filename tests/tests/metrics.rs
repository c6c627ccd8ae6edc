//! Prometheus metrics: a real Prometheus (Debian's) scrapes the daemon's open metrics listener while
//! the process-agent lab deploys a node, and its query API shows the deploy (step histogram, nodes
//! by state, plugin calls). On the API listener `/metrics` needs the operator token.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use metalhost_tests::daemon::{Daemon, TOKEN};
use metalhost_tests::deploy_lab::{DeployLab, Options, image};
use serde_json::Value;

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Prometheus scraping `target` every second, with its own config and storage in a temp dir.
fn prometheus(target: &str) -> Prometheus {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: metalhost\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .expect("write config");
    let port = free_tcp_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log"))
        .spawn()
        .expect("start prometheus (scripts/setup installs it)");
    Prometheus { child, url: format!("http://127.0.0.1:{port}"), _dir: dir }
}

/// The value of an instant query's first sample, once Prometheus has one.
async fn query(prom: &Prometheus, promql: &str) -> Option<f64> {
    let body: Value =
        reqwest::Client::new().get(format!("{}/api/v1/query", prom.url)).query(&[("query", promql)]).send().await.ok()?.json().await.ok()?;
    body["data"]["result"].as_array()?.first()?["value"][1].as_str()?.parse().ok()
}

async fn eventually(prom: &Prometheus, promql: &str, wanted: impl Fn(f64) -> bool) -> f64 {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = query(prom, promql).await
            && wanted(v)
        {
            return v;
        }
        assert!(Instant::now() < until, "Prometheus never saw {promql} as wanted (last: {:?})", query(prom, promql).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn metrics_addr(daemon: &Daemon) -> String {
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("metrics are served")).unwrap_or_else(|| panic!("no metrics listener in the log:\n{log}"));
    line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next()).expect("addr").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_a_deploy() {
    let lab = DeployLab::start(Options { extra_config: "\n[metrics]\nlisten = \"127.0.0.1:0\"\n".into(), ..Options::default() }).await;
    let prom = prometheus(&metrics_addr(&lab.daemon));
    // Before: the node is available and no step has run.
    eventually(&prom, "metalhost_nodes{state=\"available\"}", |v| v == 1.0).await;

    lab.upload("os", &image(2 << 20, 7));
    let out = lab.daemon.cli(&["instance", "create", "--image", "os", "--name", "m1", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let node = lab.wait_node(&lab.nodes[0].name, &["active"], Duration::from_secs(90)).await;
    assert_eq!(node["state"], "active", "{node}");

    eventually(&prom, "metalhost_nodes{state=\"active\"}", |v| v == 1.0).await;
    let steps = eventually(&prom, "sum(metalhost_step_duration_seconds_count{outcome=\"ok\"})", |v| v >= 8.0).await;
    let pxe = eventually(&prom, "metalhost_step_duration_seconds_count{step=\"boot device -> pxe\",outcome=\"ok\"}", |v| v >= 1.0).await;
    eventually(&prom, "sum(metalhost_plugin_call_duration_seconds_count{plugin=\"ipmitool\"})", |v| v >= 3.0).await;
    eventually(&prom, "sum(metalhost_plugin_call_duration_seconds_count{plugin=\"juniper\"})", |v| v >= 3.0).await;
    eventually(&prom, "metalhost_agent_bytes_written_total", |v| v >= f64::from(2 << 20)).await;
    eventually(&prom, "sum(metalhost_http_requests_total{route=\"/v1/agent/task/{id}/result\",status=\"204\"})", |v| v >= 1.0).await;
    eprintln!("prometheus saw {steps} ok steps ({pxe} pxe)");
}

#[tokio::test]
async fn metrics_on_the_api_listener_need_the_token() {
    let daemon = Daemon::start();
    let anonymous = daemon.http_client().get(format!("{}/metrics", daemon.url)).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
    let text = daemon.http_client().get(format!("{}/metrics", daemon.url)).bearer_auth(TOKEN).send().await.expect("request");
    assert_eq!(text.status(), 200);
    let body = text.text().await.expect("body");
    assert!(body.contains("metalhost_nodes{state=\"available\"} 0"), "{body}");
    // The anonymous request above was counted, by its route template.
    assert!(body.contains("metalhost_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"401\"}"), "{body}");
}
