//! Foundation: the switch registry and node pool through REST and the real CLI, validation,
//! secrets, auth, restarts and concurrent enrolment.

use metalhost_tests::daemon::{Daemon, TOKEN, node_body, switch_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SWITCH_PASSWORD: &str = "sw-Secret-7f3a9c";
const BMC_PASSWORD: &str = "bmc-Secret-91be20";

async fn add_switch(d: &Daemon, name: &str) -> i64 {
    let (status, body) = d.post("/v1/switches", &switch_body(name, SWITCH_PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().expect("switch id")
}

async fn counts(d: &Daemon) -> (usize, usize, usize) {
    let (_, nodes) = d.get("/v1/nodes").await;
    let (_, switches) = d.get("/v1/switches").await;
    let mut events = 0;
    for node in nodes.as_array().expect("node list") {
        let (_, list) = d.get(&format!("/v1/nodes/{}/events", node["id"])).await;
        events += list.as_array().map_or(0, Vec::len);
    }
    (nodes.as_array().map_or(0, Vec::len), switches.as_array().map_or(0, Vec::len), events)
}

fn with(mut body: Value, key: &str, value: Value) -> Value {
    body[key] = value;
    body
}

/// Each case: the request is refused with the expected status and a message naming the problem,
/// and nothing is written.
#[tokio::test]
async fn validation_rejects_bad_input_and_writes_nothing() {
    let d = Daemon::start();
    let sw = add_switch(&d, "sw1").await;
    let (status, first) = d.post("/v1/nodes", &node_body(1, sw, BMC_PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let before = counts(&d).await;

    let good = node_body(2, sw, BMC_PASSWORD);
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        ("malformed mac", with(good.clone(), "mac", json!("52:54:00:zz:00:01")), StatusCode::BAD_REQUEST, "invalid MAC"),
        ("short mac", with(good.clone(), "mac", json!("52:54:00:00:01")), StatusCode::BAD_REQUEST, "invalid MAC"),
        ("malformed ip", with(good.clone(), "ip", json!("10.0.0.256")), StatusCode::BAD_REQUEST, "invalid IP"),
        ("malformed bmc address", with(good.clone(), "bmc_address", json!("10.0.0.999")), StatusCode::BAD_REQUEST, "invalid address"),
        ("duplicate mac", with(good.clone(), "mac", first["mac"].clone()), StatusCode::CONFLICT, "already enrolled"),
        ("duplicate mac, other spelling", with(good.clone(), "mac", json!("52-54-00-00-00-01")), StatusCode::CONFLICT, "already enrolled"),
        ("duplicate name", with(good.clone(), "name", json!("node1")), StatusCode::CONFLICT, "already exists"),
        ("unknown switch", with(good.clone(), "switch_id", json!(9999)), StatusCode::UNPROCESSABLE_ENTITY, "switch 9999 does not exist"),
        ("zero cpus", with(good.clone(), "cpus", json!(0)), StatusCode::BAD_REQUEST, "cpus must be greater than zero"),
        ("negative ram", with(good.clone(), "ram_mb", json!(-1)), StatusCode::BAD_REQUEST, "ram_mb must be greater than zero"),
        ("zero disk", with(good.clone(), "disk_gb", json!(0)), StatusCode::BAD_REQUEST, "disk_gb must be greater than zero"),
        ("port given twice", with(good.clone(), "switch_port", json!("ge-0/0/1")), StatusCode::CONFLICT, "already given to node"),
        ("unknown field", with(good.clone(), "ipmipass", json!("x")), StatusCode::BAD_REQUEST, "unknown field"),
        ("not json", Value::String("nope".into()), StatusCode::BAD_REQUEST, "invalid request body"),
    ];
    for (what, body, expected, needle) in cases {
        let (status, answer) = d.post("/v1/nodes", &body).await;
        assert_eq!(status, expected, "{what}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: message {message:?} should mention {needle:?}");
        assert!(answer["error"]["code"].is_string(), "{what}: error code missing: {answer}");
        assert_eq!(counts(&d).await, before, "{what}: a rejected request wrote something");
    }

    // Updates are validated the same way.
    let (_, second) = d.post("/v1/nodes", &good).await;
    let before = counts(&d).await;
    let path = format!("/v1/nodes/{}", second["id"]);
    for (what, body, expected) in [
        ("mac taken", json!({"mac": "52:54:00:00:00:01"}), StatusCode::CONFLICT),
        ("port taken", json!({"switch_port": "ge-0/0/1"}), StatusCode::CONFLICT),
        ("bad ip", json!({"ip": "x"}), StatusCode::BAD_REQUEST),
        ("unknown switch", json!({"switch_id": 4242}), StatusCode::UNPROCESSABLE_ENTITY),
        ("negative cpus", json!({"cpus": -4}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = d.patch(&path, &body).await;
        assert_eq!(status, expected, "update {what}: {answer}");
        assert_eq!(counts(&d).await, before, "update {what} wrote something");
    }
    let (_, unchanged) = d.get(&path).await;
    assert_eq!(unchanged["mac"], second["mac"]);

    // A switch still used by nodes cannot go.
    let (status, answer) = d.delete(&format!("/v1/switches/{sw}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("still used by nodes"));
    assert_eq!(counts(&d).await, before);

    // Once its nodes are gone, it can.
    for node in ["node1", "node2"] {
        assert_eq!(d.delete(&format!("/v1/nodes/{node}")).await.0, StatusCode::NO_CONTENT);
    }
    assert_eq!(d.delete(&format!("/v1/switches/{sw}")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(d.get(&format!("/v1/switches/{sw}")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_switch_name_is_a_conflict() {
    let d = Daemon::start();
    add_switch(&d, "sw1").await;
    let (status, answer) = d.post("/v1/switches", &switch_body("sw1", "other")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = d.post("/v1/switches", &with(switch_body("sw2", "x"), "address", json!("300.1.1.1"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(d.get("/v1/switches").await.1.as_array().map(Vec::len), Some(1));
}

/// A node holding an instance cannot be deleted. Instances come from the deploy workflow, so the
/// test plants one in the database while the daemon is stopped.
#[tokio::test]
async fn deleting_a_node_that_holds_an_instance_is_a_conflict() {
    let mut d = Daemon::start();
    let sw = add_switch(&d, "sw1").await;
    let (_, node) = d.post("/v1/nodes", &node_body(7, sw, BMC_PASSWORD)).await;
    d.stop();
    d.exec_sql(&format!(
        "INSERT INTO images (id, name, url, sha256, compression, created_at) VALUES (1, 'img', 'http://x/i', 'ab', 'none', 0);
         INSERT INTO instances (id, name, image_id, state, created_at, updated_at) VALUES (1, 'inst', 1, 'active', 0, 0);
         UPDATE nodes SET instance_id = 1 WHERE id = {};",
        node["id"]
    ));
    d.restart();
    let (status, answer) = d.delete(&format!("/v1/nodes/{}", node["id"])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("holds instance"), "{answer}");
    assert_eq!(d.get(&format!("/v1/nodes/{}", node["id"])).await.0, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_wrong_token_gets_401_and_changes_nothing() {
    let d = Daemon::start();
    let sw = add_switch(&d, "sw1").await;
    let body = node_body(1, sw, BMC_PASSWORD);
    for token in [None, Some("wrong-token-wrong-token"), Some("")] {
        for (method, path, payload) in [
            (Method::GET, "/v1/nodes", None),
            (Method::POST, "/v1/nodes", Some(&body)),
            (Method::POST, "/v1/switches", Some(&body)),
            (Method::DELETE, "/v1/switches/1", None),
            (Method::GET, "/v1/plugins", None),
        ] {
            let (status, answer) = d.call_with_token(method.clone(), path, payload, token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?}: {answer}");
            assert_eq!(answer["error"]["code"], "unauthorized");
        }
    }
    assert_eq!(counts(&d).await, (0, 1, 0));
    // The CLI with a wrong token fails the same way, non-zero, with the server's message.
    let out = d.cli_with_env(&["node", "list"], &[("METALHOST_TOKEN", "wrong-token-wrong-token")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing or invalid bearer token"));
}

#[tokio::test]
async fn passwords_never_leave_the_daemon() {
    let d = Daemon::start();
    // Through the CLI, the passwords come from a file and from the environment.
    let dir = tempfile::tempdir().expect("tmp");
    let pw_file = dir.path().join("switch-password");
    std::fs::write(&pw_file, format!("{SWITCH_PASSWORD}\n")).expect("write");
    let out = d.cli(&[
        "switch",
        "add",
        "--name",
        "sw1",
        "--address",
        "192.0.2.10",
        "--username",
        "admin",
        "--password-file",
        pw_file.to_str().expect("utf8"),
        "--driver",
        "juniper",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut outputs = vec![out];
    outputs.push(d.cli_with_env(
        &[
            "node",
            "add",
            "--name",
            "n1",
            "--mac",
            "52:54:00:00:00:11",
            "--ip",
            "10.0.0.11",
            "--cpus",
            "4",
            "--ram-mb",
            "8192",
            "--disk-gb",
            "100",
            "--bmc-address",
            "127.0.0.1",
            "--bmc-username",
            "admin",
            "--power-driver",
            "ipmitool",
            "--switch-id",
            "1",
            "--switch-port",
            "ge-0/0/1",
        ],
        &[("METALHOST_BMC_PASSWORD", BMC_PASSWORD)],
    ));
    // And through the API, with an update that changes the password.
    let (status, _) = d.patch("/v1/nodes/n1", &json!({"bmc_password": "bmc-Rotated-55aa01"})).await;
    assert_eq!(status, StatusCode::OK);
    for args in [
        vec!["switch", "list"],
        vec!["switch", "show", "sw1"],
        vec!["switch", "show", "sw1", "--json"],
        vec!["node", "list", "--json"],
        vec!["node", "show", "n1"],
        vec!["node", "show", "n1", "--json"],
        vec!["node", "events", "n1"],
    ] {
        outputs.push(d.cli(&args));
    }
    let mut seen = String::new();
    for out in &outputs {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    for path in ["/v1/switches", "/v1/switches/sw1", "/v1/nodes", "/v1/nodes/n1", "/v1/nodes/n1/events"] {
        seen.push_str(&d.get(path).await.1.to_string());
    }
    assert!(seen.contains("n1") && seen.contains("sw1"), "the outputs should show the records");
    seen.push_str(&d.log());
    for secret in [SWITCH_PASSWORD, BMC_PASSWORD, "bmc-Rotated-55aa01", TOKEN] {
        assert!(!seen.contains(secret), "secret {secret:?} leaked into a response, CLI output or the log");
    }
    assert!(!seen.contains("\"password\""), "no password field in any response");
    assert!(!seen.contains("bmc_password"), "no bmc_password field in any response");
}

#[tokio::test]
async fn cli_manages_switches_and_nodes() {
    let d = Daemon::start();
    let run = |args: &[&str]| {
        let out = d.cli_with_env(args, &[("METALHOST_SWITCH_PASSWORD", SWITCH_PASSWORD), ("METALHOST_BMC_PASSWORD", BMC_PASSWORD)]);
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, out, err) =
        run(&["switch", "add", "--address", "192.0.2.1", "--username", "admin", "--driver", "juniper", "--description", "rack 4", "--json"]);
    assert!(ok, "{err}");
    let switch: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(switch["name"], "192.0.2.1");
    let (ok, out, _) = run(&["switch", "list"]);
    assert!(ok && out.contains("rack 4") && out.lines().next().unwrap_or("").contains("ADDRESS"), "{out}");

    let add = [
        "node",
        "add",
        "--mac",
        "52:54:00:aa:00:01",
        "--ip",
        "10.1.0.1",
        "--cpus",
        "16",
        "--ram-mb",
        "65536",
        "--disk-gb",
        "500",
        "--bmc-address",
        "10.2.0.1",
        "--bmc-username",
        "root",
        "--power-driver",
        "ipmitool",
        "--switch-id",
        "1",
        "--switch-port",
        "ge-0/0/5",
    ];
    let (ok, out, err) = run(&add);
    assert!(ok, "{err}");
    assert!(out.contains("node-525400aa0001"), "default name: {out}");
    // The same MAC again: non-zero exit and the server's message.
    let (ok, _, err) = run(&add);
    assert!(!ok);
    assert!(err.contains("already enrolled") && err.contains("409"), "{err}");
    let (ok, _, err) = run(&[
        "node",
        "add",
        "--mac",
        "zz",
        "--ip",
        "10.1.0.2",
        "--cpus",
        "1",
        "--ram-mb",
        "1",
        "--disk-gb",
        "1",
        "--bmc-address",
        "10.2.0.2",
        "--bmc-username",
        "root",
        "--power-driver",
        "ipmitool",
        "--switch-id",
        "1",
        "--switch-port",
        "ge-0/0/6",
    ]);
    assert!(!ok && err.contains("invalid MAC"), "{err}");

    let (ok, out, err) = run(&["node", "update", "node-525400aa0001", "--cpus", "32", "--name", "big1", "--json"]);
    assert!(ok, "{err}");
    let node: Value = serde_json::from_str(&out).expect("json");
    assert_eq!((node["cpus"].as_i64(), node["name"].as_str()), (Some(32), Some("big1")));
    let (ok, out, _) = run(&["node", "list"]);
    assert!(ok && out.contains("big1") && out.contains("STATE"), "{out}");
    let (ok, out, _) = run(&["node", "events", "big1", "--json"]);
    let events: Value = serde_json::from_str(&out).expect("json");
    assert!(ok && events[0]["to_state"] == "enrolled", "{events}");
    let (ok, _, err) = run(&["switch", "delete", "1"]);
    assert!(!ok && err.contains("still used by nodes"), "{err}");
    let (ok, _, err) = run(&["node", "delete", "big1"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["node", "show", "big1"]);
    assert!(!ok && err.contains("not found"), "{err}");
    let (ok, _, err) = run(&["switch", "delete", "1"]);
    assert!(ok, "{err}");
}

#[tokio::test]
async fn new_nodes_follow_the_lifecycle_and_every_change_is_an_event() {
    let d = Daemon::start();
    let sw = add_switch(&d, "sw1").await;
    let (_, node) = d.post("/v1/nodes", &node_body(3, sw, BMC_PASSWORD)).await;
    // No power plugin is configured here, so validation keeps the node enrolled and says why.
    assert_eq!(node["state"], "enrolled");
    assert!(metalhost_tests::daemon::failure_line(&node["last_error"]).contains("power driver \"ipmitool\""), "{node}");
    let (_, events) = d.get("/v1/nodes/node3/events").await;
    let events = events.as_array().expect("events").clone();
    assert_eq!(events[0]["to_state"], "enrolled");
    assert!(events.iter().any(|e| e["message"].as_str().unwrap_or_default().contains("validation failed")));
    // Maintenance on and off are recorded.
    d.patch("/v1/nodes/node3", &json!({"maintenance": true})).await;
    d.patch("/v1/nodes/node3", &json!({"maintenance": false})).await;
    let (_, after) = d.get("/v1/nodes/node3/events").await;
    let kinds: Vec<&str> = after.as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "maintenance").count(), 2, "{kinds:?}");
}

#[tokio::test]
async fn a_restart_keeps_all_data() {
    let mut d = Daemon::start();
    let sw = add_switch(&d, "sw1").await;
    for i in 1..=5 {
        assert_eq!(d.post("/v1/nodes", &node_body(i, sw, BMC_PASSWORD)).await.0, StatusCode::CREATED);
    }
    d.patch("/v1/nodes/node2", &json!({"maintenance": true})).await;
    let before_nodes = d.get("/v1/nodes").await.1;
    let before_switches = d.get("/v1/switches").await.1;
    let before_events = d.get("/v1/nodes/node2/events").await.1;
    assert_eq!(d.stop(), Some(0), "SIGTERM should shut down cleanly");
    d.restart();
    assert_eq!(d.get("/v1/nodes").await.1, before_nodes);
    assert_eq!(d.get("/v1/switches").await.1, before_switches);
    let after_events = d.get("/v1/nodes/node2/events").await.1;
    assert_eq!(after_events.as_array().map(Vec::len), before_events.as_array().map(Vec::len));
    // And keeps enforcing the same constraints.
    assert_eq!(d.post("/v1/nodes", &node_body(1, sw, BMC_PASSWORD)).await.0, StatusCode::CONFLICT);
}

/// 50 concurrent adds, 20 of which repeat a MAC of another request: exactly the unique nodes exist,
/// and every duplicate got 409.
#[tokio::test]
async fn concurrent_enrolment_with_duplicates() {
    let d = Daemon::start();
    let sw = add_switch(&d, "sw1").await;
    let requests: Vec<Value> = (0..50u32)
        .map(|i| {
            let mut body = node_body(i + 100, sw, BMC_PASSWORD);
            if i >= 30 {
                // Same MAC as request i-20, different name and port.
                body["mac"] = node_body(i - 20 + 100, sw, BMC_PASSWORD)["mac"].clone();
            }
            body
        })
        .collect();
    let answers = futures::future::join_all(requests.iter().map(|b| d.post("/v1/nodes", b))).await;
    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let conflicts = answers.iter().filter(|(s, _)| *s == StatusCode::CONFLICT).count();
    assert_eq!(created, 30, "{answers:?}");
    assert_eq!(conflicts, 20, "{answers:?}");
    let (_, list) = d.get("/v1/nodes").await;
    let mut macs: Vec<&str> = list.as_array().expect("list").iter().filter_map(|n| n["mac"].as_str()).collect();
    macs.sort_unstable();
    let before = macs.len();
    macs.dedup();
    assert_eq!((before, macs.len()), (30, 30));
}

/// Lists that scale (issue 33): pages of nodes by cursor with a `Link` to the next, filters in SQL,
/// large answers compressed when asked, and the CLI's `--limit`/`--all`.
#[tokio::test]
async fn node_lists_come_in_pages_with_filters_and_compressed() {
    let d = Daemon::start();
    let sw = add_switch(&d, "sw1").await;
    for i in 1..=25 {
        let (status, body) = d.post("/v1/nodes", &node_body(i, sw, BMC_PASSWORD)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(d.patch("/v1/nodes/node7", &json!({"maintenance": true})).await.0, StatusCode::OK);
    let http = d.http_client();
    // Follow the Link header from the first page of 10: every node once, in id order.
    let mut seen = Vec::new();
    let mut next = Some("/v1/nodes?limit=10".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let response = http.get(format!("{}{path}", d.url)).bearer_auth(TOKEN).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        next = response
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split(';').next())
            .map(|l| l.trim_matches(['<', '>', ' ']).to_owned());
        let page: Value = response.json().await.expect("json");
        let names: Vec<String> = page.as_array().expect("list").iter().filter_map(|n| n["name"].as_str().map(str::to_owned)).collect();
        assert!(names.len() <= 10);
        seen.extend(names);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=25).map(|i| format!("node{i}")).collect::<Vec<_>>());
    // Filters: text (name or MAC, case-insensitive), maintenance, state; a bad value is a 400.
    let names = |v: &Value| v.as_array().expect("list").iter().filter_map(|n| n["name"].as_str().map(str::to_owned)).collect::<Vec<_>>();
    assert_eq!(names(&d.get("/v1/nodes?q=00:00:0A").await.1), ["node10"]);
    assert_eq!(names(&d.get("/v1/nodes?q=NODE2").await.1).len(), 7, "node2, node20-25");
    assert_eq!(names(&d.get("/v1/nodes?maintenance=true").await.1), ["node7"]);
    assert_eq!(names(&d.get("/v1/nodes?q=%25").await.1).len(), 0, "LIKE's % is taken literally");
    let by_state = d.get("/v1/nodes?state=available").await.1;
    assert!(by_state.as_array().expect("list").iter().all(|n| n["state"] == "available"));
    assert_eq!(d.get("/v1/nodes?state=sleeping").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(d.get("/v1/nodes?limit=0").await.0, StatusCode::BAD_REQUEST);
    // Compressed when the client asks; the same nodes.
    let plain = http.get(format!("{}/v1/nodes", d.url)).bearer_auth(TOKEN).send().await.expect("get").bytes().await.expect("body");
    let zipped = http.get(format!("{}/v1/nodes", d.url)).bearer_auth(TOKEN).header("accept-encoding", "gzip").send().await.expect("get");
    assert_eq!(zipped.headers().get("content-encoding").map(|v| v.to_str().unwrap_or("")), Some("gzip"));
    let zipped = zipped.bytes().await.expect("body");
    assert!(zipped.len() * 3 < plain.len(), "gzip {} vs {} bytes", zipped.len(), plain.len());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut unzipped).expect("gunzip");
    assert_eq!(unzipped, plain.to_vec());
    // The CLI: one page by default with a hint, every page with --all.
    let out = d.cli(&["--json", "node", "list", "--limit", "10"]);
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).expect("json").as_array().map(Vec::len), Some(10));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--all"));
    let out = d.cli(&["--json", "node", "list", "--limit", "10", "--all"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).expect("json").as_array().map(Vec::len), Some(25));
}

/// Lists that scale (issue 33): a node's events (oldest first, `after`) and the audit trail
/// (newest first, `before`) in cursor pages that join up to exactly the whole list, filters in
/// SQL and carried by each `Link`, and the CLI's `--limit`/`--all`.
#[tokio::test]
async fn events_and_the_audit_trail_come_in_pages_with_filters() {
    let d = Daemon::start();
    let sw = add_switch(&d, "sw1").await;
    for i in 1..=3 {
        assert_eq!(d.post("/v1/nodes", &node_body(i, sw, BMC_PASSWORD)).await.0, StatusCode::CREATED);
    }
    for on in [true, false, true, false, true] {
        assert_eq!(d.patch("/v1/nodes/node2", &json!({"maintenance": on})).await.0, StatusCode::OK);
    }
    let ids = |items: &[Value]| items.iter().map(|e| e["id"].as_i64().expect("id")).collect::<Vec<_>>();

    // A node's events: every page size gives the whole log, in id order, each event once.
    let (_, all) = d.get("/v1/nodes/node2/events").await;
    let all = all.as_array().expect("events").clone();
    assert!(all.len() >= 7, "{all:?}");
    assert!(ids(&all).windows(2).all(|w| w[0] < w[1]));
    let node2 = all[0]["node_id"].as_i64().expect("node id");
    for limit in [1, 2, 3, 1000] {
        let (pages, links) = d.pages(&format!("/v1/nodes/node2/events?limit={limit}"), Some(TOKEN)).await;
        assert_eq!(pages.concat(), all, "pages of {limit}");
        assert_eq!(pages.len(), all.len().div_ceil(limit), "pages of {limit}: no empty last page");
        assert!(pages.iter().all(|p| p.len() <= limit));
        assert!(links.iter().all(|l| l.starts_with(&format!("/v1/nodes/{node2}/events?limit={limit}&after="))), "{links:?}");
    }
    // The kind filter, in SQL and carried to the next page.
    let (pages, links) = d.pages("/v1/nodes/node2/events?limit=2&kind=maintenance", Some(TOKEN)).await;
    let maintenance: Vec<Value> = all.iter().filter(|e| e["kind"] == "maintenance").cloned().collect();
    assert_eq!(maintenance.len(), 5);
    assert_eq!(pages.concat(), maintenance);
    assert!(!links.is_empty() && links.iter().all(|l| l.ends_with("&kind=maintenance")), "{links:?}");
    for bad in ["limit=0", "limit=1001", "after=-1", "kind=nap"] {
        assert_eq!(d.get(&format!("/v1/nodes/node2/events?{bad}")).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(d.get("/v1/nodes/nope/events?limit=1").await.0, StatusCode::NOT_FOUND);

    // The audit trail, with refused and failed changes besides the admin's own.
    assert_eq!(d.call_with_token(Method::POST, "/v1/nodes", Some(&node_body(9, sw, BMC_PASSWORD)), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(d.delete("/v1/nodes/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(d.post("/v1/nodes", &node_body(1, sw, BMC_PASSWORD)).await.0, StatusCode::CONFLICT);
    let (_, trail) = d.get("/v1/audit").await;
    let trail = trail.as_array().expect("audit").clone();
    assert_eq!(trail.len(), 12, "switch, 3 nodes, 5 updates, 3 refused: {trail:#?}");
    assert!(ids(&trail).windows(2).all(|w| w[0] > w[1]), "newest first");
    for limit in [1, 5, 12] {
        let (pages, links) = d.pages(&format!("/v1/audit?limit={limit}"), Some(TOKEN)).await;
        assert_eq!(pages.concat(), trail, "pages of {limit}");
        assert_eq!(pages.len(), trail.len().div_ceil(limit), "pages of {limit}");
        assert!(links.iter().all(|l| l.starts_with(&format!("/v1/audit?limit={limit}&before="))), "{links:?}");
    }
    // Each filter gives what the whole trail holds of it, in pages that carry it.
    fn outcome(e: &Value) -> u64 {
        e["outcome"].as_u64().expect("outcome")
    }
    type Keep = fn(&Value) -> bool;
    let cases: [(&str, Keep); 6] = [
        ("action=UPDATE", |e| e["action"].as_str().is_some_and(|a| a.starts_with("update_"))),
        ("user=anonymous", |e| e["actor"] == "anonymous"),
        ("user=1", |e| e["user_id"] == 1),
        ("outcome=ok", |e| outcome(e) < 400),
        ("outcome=denied", |e| [401, 403, 404].contains(&outcome(e))),
        ("outcome=failed", |e| outcome(e) >= 400 && ![401, 403, 404].contains(&outcome(e))),
    ];
    for (filter, keep) in &cases {
        let want: Vec<Value> = trail.iter().filter(|e| keep(e)).cloned().collect();
        assert!(!want.is_empty(), "{filter}");
        let (pages, links) = d.pages(&format!("/v1/audit?limit=2&{filter}"), Some(TOKEN)).await;
        assert_eq!(pages.concat(), want, "{filter}");
        assert!(links.iter().all(|l| l.ends_with(&format!("&{filter}"))), "{filter}: {links:?}");
    }
    let (_, both) = d.get("/v1/audit?action=update_node&outcome=ok&user=admin").await;
    assert_eq!(both.as_array().map(Vec::len), Some(5), "{both}");
    for bad in ["limit=0", "limit=1001", "before=-1", "outcome=maybe", "user=", "action="] {
        assert_eq!(d.get(&format!("/v1/audit?{bad}")).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }

    // The CLI: one page with a hint, or every page.
    let json_of = |out: &std::process::Output| serde_json::from_slice::<Value>(&out.stdout).expect("json");
    let out = d.cli(&["--json", "node", "events", "node2", "--limit", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&out).as_array().map(Vec::len), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--all"));
    let out = d.cli(&["--json", "node", "events", "node2", "--limit", "2", "--all"]);
    assert_eq!(json_of(&out), Value::Array(all.clone()));
    let out = d.cli(&["--json", "node", "events", "node2", "--kind", "maintenance"]);
    assert_eq!(json_of(&out), Value::Array(maintenance));
    let out = d.cli(&["--json", "audit", "--limit", "2", "--all", "--action", "update", "--outcome", "ok"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&out).as_array().map(Vec::len), Some(5));
    let out = d.cli(&["--json", "audit", "--limit", "3"]);
    assert_eq!(json_of(&out), Value::Array(trail[..3].to_vec()));
}
