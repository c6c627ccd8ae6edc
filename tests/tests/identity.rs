//! Instances a project can log into (issue 30), on the process-agent lab: the identity fields are
//! checked before any node is claimed; each instance gets an address of its project's subnet
//! (lowest free, never two the same, freed with the instance, kept across a restart); the real
//! agent writes the config drive after the image, read back here with mtools exactly as cloud-init
//! would find it; user data never shows in the API, the events, the log or the database file; a
//! redeploy leaves one config drive and cleaning erases it. The same drive booted by cloud-init in
//! a real Debian guest is `debian_guest_vms.rs`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use metalhost_tests::deploy_lab::{DeployLab, Options};
use metalhost_tests::disk_probe::config_drives;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const MARKER: &str = "user-data-secret-4e1f9b";

fn ssh_public_key(dir: &Path, name: &str) -> String {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&key).output().expect("ssh-keygen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(key.with_extension("pub")).expect("pub").trim().to_owned()
}

/// An 8 MiB MBR disk image with one Linux partition, as an OS image has.
fn mbr_image(dir: &Path) -> Vec<u8> {
    let path = dir.join("mbr.img");
    std::fs::write(&path, vec![0x5au8; 8 << 20]).expect("image");
    sfdisk(&path, "label: dos\nstart=2048, size=12288, type=83\n");
    std::fs::read(&path).expect("image")
}

fn sfdisk(path: &Path, script: &str) {
    use std::io::Write;
    let mut child = Command::new("sfdisk").arg("-q").arg(path).stdin(std::process::Stdio::piped()).spawn().expect("sfdisk");
    child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("script");
    assert!(child.wait().expect("sfdisk").success());
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn identity_addresses_and_the_config_drive() {
    let lab = DeployLab::start(Options { nodes: 3, disk_bytes: 64 << 20, ..Options::default() }).await;
    let d = &lab.daemon;
    let keys = tempfile::tempdir().expect("tmp");
    let (alice_key, pair_key, new_key) =
        (ssh_public_key(keys.path(), "alice"), ssh_public_key(keys.path(), "pair"), ssh_public_key(keys.path(), "new"));

    // Projects: red with a /29 (gateway .1: five addresses), tiny with a /30 (one address).
    let (status, red) = d
        .post("/v1/projects", &json!({"name": "red", "quota": 5, "subnet": {"cidr": "10.77.0.0/29", "gateway": "10.77.0.1", "dns": ["10.77.0.1"]}}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{red}");
    assert_eq!((red["subnet"].as_str(), red["gateway"].as_str()), (Some("10.77.0.0/29"), Some("10.77.0.1")));
    let out = d.cli(&["project", "create", "tiny", "--quota", "5", "--subnet", "10.78.0.0/30", "--gateway", "10.78.0.1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (cidr, gateway) in [("10.77.0.1/24", "10.77.0.2"), ("10.77.0.0/24", "10.78.0.1"), ("not-a-subnet", "10.77.0.1")] {
        let (status, body) = d.post("/v1/projects", &json!({"name": "bad", "quota": 1, "subnet": {"cidr": cidr, "gateway": gateway}})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{cidr} {gateway}: {body}");
        assert!(body["error"]["message"].as_str().unwrap_or("").starts_with("subnet: "), "{body}");
    }
    // A key pair of the admin's, from the CLI (a file).
    let pair_file = keys.path().join("pair.pub");
    let out = d.cli(&["keypair", "add", "laptop", "--public-key", pair_file.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(d.post("/v1/keypairs", &json!({"name": "junk", "public_key": "ssh-ed25519 AAAAnot-a-key"})).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let image = mbr_image(keys.path());
    lab.upload("os", &image);
    let user_data = format!("#cloud-config\nruncmd:\n  - echo {MARKER} > /dev/ttyS0\n");

    // Bad inputs: a 400 (what the API document states) or a 422 (what only parsing tells) naming
    // the field, and no node claimed.
    let base = json!({"image": "os", "project": "red", "name": "web1"});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let bad = [
        (with("hostname", json!("bad_host")), "hostname"),
        (with("ssh_keys", json!(["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8zNljC"])), "ssh_keys[0]"),
        (with("ssh_keys", json!([format!("{alice_key}\n{alice_key}")])), "ssh_keys[0]"),
        (with("keypairs", json!(["nope"])), "keypairs"),
        (with("user_data", json!("#cloud-config\nruncmd: [unclosed\n")), "user_data"),
        (with("user_data", json!("x".repeat(64 * 1024 + 1))), "user_data"),
        (with("meta", json!({"role": "x".repeat(256)})), "meta"),
        (json!({"image": "os", "project": "red", "name": "web1", "config_drive": false, "hostname": "web"}), "config_drive"),
    ];
    for (body, field) in bad {
        let (status, answer) = d.post("/v1/instances", &body).await;
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY, "{field}: {status} {answer}");
        assert!(message.contains(field), "{field}: {answer}");
    }
    let (_, instances) = d.get("/v1/instances").await;
    assert_eq!(instances.as_array().map(Vec::len), Some(0), "a refused create made an instance: {instances}");
    let (_, nodes) = d.get("/v1/nodes").await;
    assert!(nodes.as_array().expect("nodes").iter().all(|n| n["state"] == "available" && n["instance_id"].is_null()), "{nodes}");

    // web1: everything given.
    let node1 = &lab.nodes[0];
    let body = json!({"image": "os", "project": "red", "name": "web1", "node": node1.name, "hostname": "Web-1.example",
        "ssh_keys": [alice_key], "keypairs": ["laptop"], "user_data": user_data, "meta": {"role": "web"}});
    let (status, web1) = d.post("/v1/instances", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{web1}");
    assert_eq!(web1["address"], "10.77.0.2", "{web1}");
    assert_eq!(web1["hostname"], "web-1.example");
    assert_eq!(web1["ssh_keys"], json!([alice_key, pair_key]));
    assert_eq!((web1["has_user_data"].as_bool(), web1["config_drive"].as_bool()), (Some(true), Some(true)));
    assert!(!web1.to_string().contains(MARKER), "the API shows the user data: {web1}");
    let active = lab.wait_node(&node1.name, &["active"], Duration::from_secs(120)).await;
    assert_eq!(active["state"], "active", "{active}");

    // The drive as cloud-init finds it.
    let drives = config_drives(&node1.disk);
    assert_eq!(drives.len(), 1, "one config drive");
    let meta: Value = serde_json::from_str(drives[0]["meta_data.json"].as_deref().expect("meta_data.json")).expect("meta json");
    assert_eq!(meta["hostname"], "web-1.example");
    assert_eq!(meta["name"], "web1");
    assert_eq!(meta["meta"]["role"], "web");
    assert_eq!(meta["public_keys"].as_object().map(|k| k.values().cloned().collect::<Vec<_>>()), Some(vec![json!(alice_key), json!(pair_key)]));
    let uuid1 = meta["uuid"].as_str().expect("uuid").to_owned();
    let net: Value = serde_json::from_str(drives[0]["network_data.json"].as_deref().expect("network_data.json")).expect("net json");
    assert_eq!(net["links"][0]["ethernet_mac_address"], node1.mac.as_str(), "{net}");
    assert_eq!(net["links"][0]["type"], "phy");
    assert_eq!(net["networks"][0]["ip_address"], "10.77.0.2");
    assert_eq!(net["networks"][0]["netmask"], "255.255.255.248");
    assert_eq!(net["networks"][0]["routes"][0]["gateway"], "10.77.0.1");
    assert_eq!(net["networks"][0]["network_id"], format!("red-vlan{}", red["vlan"]));
    assert_eq!(net["services"][0], json!({"type": "dns", "address": "10.77.0.1"}));
    assert_eq!(drives[0]["user_data"].as_deref(), Some(user_data.as_str()));
    // The image itself is intact before the drive.
    let disk = std::fs::read(&node1.disk).expect("disk");
    assert_eq!(&disk[512..image.len()], &image[512..], "the image is as written past its table");

    // The user data is nowhere but on the node's disk: not in events, the log or the database.
    let (_, events) = d.get(&format!("/v1/nodes/{}/events", node1.name)).await;
    assert!(!events.to_string().contains(MARKER));
    assert!(!d.log().contains(MARKER), "the daemon logged the user data");
    let at_rest = match &d.pg_database {
        Some(db) => metalhost_tests::postgres::PgServer::shared().dump(db).expect("pg_dump"),
        None => ["metalhost.db", "metalhost.db-wal"].iter().flat_map(|f| std::fs::read(d.data_dir.join(f)).unwrap_or_default()).collect(),
    };
    assert!(at_rest.len() > 10_000, "the database was not read ({} bytes)", at_rest.len());
    assert!(!contains(&at_rest, MARKER), "the database holds the user data in clear");
    assert!(contains(&at_rest, "sealed:v1:"), "the user data is not sealed at rest");

    // tiny's one address goes to tiny1; tiny2 is refused with a free node left unclaimed.
    let (status, tiny1) = d.post("/v1/instances", &json!({"image": "os", "project": "tiny", "name": "tiny1", "node": lab.nodes[1].name})).await;
    assert_eq!(status, StatusCode::CREATED, "{tiny1}");
    assert_eq!((tiny1["address"].as_str(), tiny1["config_drive"].as_bool()), (Some("10.78.0.2"), Some(true)), "an address alone asks for a drive");
    let (status, full) = d.post("/v1/instances", &json!({"image": "os", "project": "tiny", "name": "tiny2"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{full}");
    assert!(full["error"]["message"].as_str().unwrap_or("").contains("no free address left in its subnet 10.78.0.0/30"), "{full}");
    let (_, node3) = d.get(&format!("/v1/nodes/{}", lab.nodes[2].name)).await;
    assert_eq!((node3["state"].as_str(), node3["instance_id"].is_null()), (Some("available"), true), "{node3}");
    // A subnet in use cannot change.
    let (status, body) = d.call(Method::PUT, "/v1/projects/tiny/subnet", Some(&json!({"cidr": "10.79.0.0/24"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Redeploy node1: delete (cleaning erases the drive), then web2 with a new key.
    assert_eq!(d.delete("/v1/instances/web1").await.0, StatusCode::ACCEPTED);
    assert_eq!(lab.wait_node(&node1.name, &["available"], Duration::from_secs(120)).await["state"], "available");
    let cleaned = std::fs::read(&node1.disk).expect("disk");
    assert!(!contains(&cleaned, MARKER) && !contains(&cleaned, "meta_data"), "cleaning left the config drive");
    let body = json!({"image": "os", "project": "red", "name": "web2", "node": node1.name, "ssh_keys": [new_key]});
    let (status, web2) = d.post("/v1/instances", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{web2}");
    assert_eq!(web2["address"], "10.77.0.2", "web1's address is free again");
    assert_eq!(web2["hostname"], "web2", "a host name made from the name");
    assert_eq!(lab.wait_node(&node1.name, &["active"], Duration::from_secs(120)).await["state"], "active");
    let drives = config_drives(&node1.disk);
    assert_eq!(drives.len(), 1, "a redeploy leaves exactly one config drive");
    let meta: Value = serde_json::from_str(drives[0]["meta_data.json"].as_deref().expect("meta")).expect("json");
    assert_eq!(meta["public_keys"].as_object().map(|k| k.values().cloned().collect::<Vec<_>>()), Some(vec![json!(new_key)]));
    assert_ne!(meta["uuid"].as_str(), Some(uuid1.as_str()), "a new instance is a new instance for cloud-init");
    assert!(drives[0]["user_data"].is_none());

    // Addresses are kept across a restart: the next one is .3, not web2's .2.
    let mut daemon = lab.daemon;
    daemon.restart();
    let (status, web3) = daemon.post("/v1/instances", &json!({"image": "os", "project": "red", "name": "web3", "node": lab.nodes[2].name})).await;
    assert_eq!(status, StatusCode::CREATED, "{web3}");
    assert_eq!(web3["address"], "10.77.0.3", "{web3}");
}
