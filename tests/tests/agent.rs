//! The agent and its API: the real `metalhost-agent` process against the real daemon on loopback,
//! writing to a file that stands in for the disk.

use std::io::Write;
use std::path::Path;

use metalhost_tests::agent_lab::{plant_task, run_agent, run_agent_at, task_failure_kind, task_state};
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A pseudo-random image: compressible enough to exercise gzip/zstd, but not trivially.
fn image_bytes(len: usize) -> Vec<u8> {
    let mut state = 0x2545F4914F6CDD1Du64;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 3 == 0 { (state & 0x0f) as u8 } else { (state >> 24) as u8 }
        })
        .collect()
}

struct Lab {
    d: Daemon,
    dir: tempfile::TempDir,
    node: i64,
    mac: String,
}

async fn lab_with(extra: &str) -> Lab {
    let d = Daemon::start_with(extra);
    let (_, sw) = d.post("/v1/switches", &switch_body("sw1", "pw")).await;
    let (status, node) = d.post("/v1/nodes", &node_body(1, sw["id"].as_i64().unwrap_or(1), "pw")).await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    Lab { node: node["id"].as_i64().expect("id"), mac: node["mac"].as_str().expect("mac").to_owned(), d, dir: tempfile::tempdir().expect("tmp") }
}

/// Uploads `bytes` through the real CLI; returns the image record.
fn upload(lab: &Lab, name: &str, bytes: &[u8]) -> Value {
    let path = lab.dir.path().join(format!("{name}.upload"));
    std::fs::write(&path, bytes).expect("write image");
    let out = lab.d.cli(&["image", "add", path.to_str().expect("utf8"), "--name", name, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("image json")
}

fn disk(lab: &Lab, size: usize) -> std::path::PathBuf {
    let path = lab.dir.path().join("disk.raw");
    std::fs::write(&path, vec![0xAAu8; size]).expect("write disk");
    path
}

fn compress(tool: &str, bytes: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new(tool)
        .args(["-c", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("compressor");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("compress");
    writer.join().expect("writer").expect("write");
    out.stdout
}

async fn deploy_and_check(lab: &Lab, image: &Value, raw: &[u8]) {
    let task = plant_task(&lab.d, lab.node, "deploy", image["id"].as_i64(), "{}", 120);
    let disk = disk(lab, raw.len() + (1 << 20));
    let out = run_agent(&lab.d, &lab.mac, &disk, 120);
    assert!(out.status.success(), "agent failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let written = std::fs::read(&disk).expect("read disk");
    assert!(written[..raw.len()] == raw[..], "the disk does not hold the image");
    assert_eq!(task_state(&lab.d, task).0, "succeeded");
}

#[tokio::test]
async fn deploys_a_raw_image_byte_for_byte() {
    let lab = lab_with("").await;
    let raw = image_bytes(5 << 20);
    let image = upload(&lab, "raw", &raw);
    assert_eq!(image["sha256"], hex::encode(Sha256::digest(&raw)));
    assert_eq!(image["size"], raw.len());
    assert_eq!(image["compression"], "none");
    deploy_and_check(&lab, &image, &raw).await;
}

#[tokio::test]
async fn deploys_gzip_and_zstd_images() {
    let lab = lab_with("").await;
    let raw = image_bytes(3 << 20);
    for (tool, expected) in [("gzip", "gzip"), ("zstd", "zstd")] {
        let image = upload(&lab, tool, &compress(tool, &raw));
        assert_eq!(image["compression"], expected, "compression sniffed from the upload");
        deploy_and_check(&lab, &image, &raw).await;
    }
}

#[tokio::test]
async fn a_corrupt_image_fails_the_task_with_the_agents_message() {
    let lab = lab_with("").await;
    let raw = image_bytes(1 << 20);
    let image = upload(&lab, "img", &raw);
    // Flip a byte of the stored file: the recorded sha256 no longer matches what is served.
    let stored = std::fs::read_dir(lab.d.data_path().join("images")).expect("images dir").flatten().next().expect("file").path();
    let mut bytes = std::fs::read(&stored).expect("read");
    bytes[1000] ^= 0xff;
    std::fs::write(&stored, bytes).expect("corrupt");
    let task = plant_task(&lab.d, lab.node, "deploy", image["id"].as_i64(), "{}", 120);
    let out = run_agent(&lab.d, &lab.mac, &disk(&lab, 2 << 20), 120);
    assert!(!out.status.success(), "the agent should exit non-zero on a corrupt image");
    let (state, message) = task_state(&lab.d, task);
    assert_eq!(state, "failed");
    let message = message.unwrap_or_default();
    assert!(message.contains("sha256") && message.contains(image["sha256"].as_str().unwrap_or("?")), "{message}");
    // A failed check fails the same way again: a permanent kind, not the agent's plain one.
    assert_eq!(task_failure_kind(&lab.d, task).as_deref(), Some("command-failed"));
}

#[tokio::test]
async fn a_failed_download_is_a_transport_failure() {
    let lab = lab_with("").await;
    // An external image its server no longer has (it had it when the image was added and
    // inspected): the agent gives up at once on a 404.
    let served = tempfile::tempdir().expect("tmp");
    let server = metalhost_tests::file_server::FileServer::start(served.path());
    std::fs::write(served.path().join("gone.img"), image_bytes(100_000)).expect("write");
    let url = format!("{}/gone.img", server.url);
    let (status, image) = lab.d.post("/v1/images", &json!({"name": "gone", "url": url, "sha256": "ab".repeat(32)})).await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    std::fs::remove_file(served.path().join("gone.img")).expect("remove");
    let task = plant_task(&lab.d, lab.node, "deploy", image["id"].as_i64(), "{}", 120);
    let out = run_agent(&lab.d, &lab.mac, &disk(&lab, 2 << 20), 120);
    assert!(!out.status.success(), "the agent should exit non-zero when the download fails");
    let (state, message) = task_state(&lab.d, task);
    assert_eq!(state, "failed");
    assert!(message.as_deref().unwrap_or_default().contains("HTTP 404"), "{message:?}");
    assert_eq!(task_failure_kind(&lab.d, task).as_deref(), Some("transport"));
}

/// A proxy in front of the daemon that cuts the first connection over which the daemon sent more
/// than `cut` bytes: the image download (every other answer is a few KiB). It counts bytes, not
/// requests, so it works on TLS, whose requests it cannot read.
/// The upstream is set once the daemon, which must know the proxy's address, is up.
async fn cutting_proxy(
    listener: tokio::net::TcpListener,
    upstream: std::sync::Arc<std::sync::OnceLock<String>>,
    cut: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let cuts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let Some(upstream) = upstream.get().map(|u| u.split("://").nth(1).unwrap_or(u).to_owned()) else { continue };
            let cuts = cuts.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let upstream_leg = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 65536];
                let mut relayed = 0;
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let mut n = n;
                    let cutting = relayed + n > cut && cuts.load(std::sync::atomic::Ordering::SeqCst) == 0;
                    if cutting {
                        n = cut - relayed;
                    }
                    relayed += n;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    if cutting {
                        cuts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                }
                upstream_leg.abort();
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_with_range() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let proxy_url = format!("https://{}", listener.local_addr().expect("addr"));
    let upstream = std::sync::Arc::new(std::sync::OnceLock::new());
    let proxy = cutting_proxy(listener, upstream.clone(), 3 << 20).await;
    // Agents reach the daemon through the proxy: its public_url points there.
    let lab = lab_with(&format!("public_url = \"{proxy_url}\"")).await;
    let _ = upstream.set(lab.d.url.clone());
    let raw = image_bytes(8 << 20);
    let image = upload(&lab, "big", &raw);
    let task = plant_task(&lab.d, lab.node, "deploy", image["id"].as_i64(), "{}", 120);
    let disk = disk(&lab, raw.len());
    let out = run_agent_at(&proxy_url, lab.d.ca_fingerprint.as_deref(), &lab.mac, &disk, 120);
    proxy.abort();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "agent failed:\n{log}");
    assert!(std::fs::read(&disk).expect("disk") == raw, "the resumed download must give the exact image");
    assert_eq!(task_state(&lab.d, task).0, "succeeded");
    assert!(log.to_lowercase().contains("resum"), "the agent should say it resumed:\n{log}");
    eprintln!("{log}");
}

#[tokio::test]
async fn range_requests_and_image_api() {
    let lab = lab_with("").await;
    let raw = image_bytes(100_000);
    let image = upload(&lab, "img", &raw);
    let id = image["id"].as_i64().expect("id");
    let client = lab.d.http_client();
    let url = format!("{}/v1/images/{id}/data", lab.d.url);
    // No token, wrong token: 401.
    assert_eq!(client.get(&url).send().await.expect("get").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(client.get(&url).bearer_auth("nope").send().await.expect("get").status(), StatusCode::UNAUTHORIZED);
    // The operator may read it, whole or by range.
    let token = metalhost_tests::daemon::TOKEN;
    let whole = client.get(&url).bearer_auth(token).send().await.expect("get");
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().await.expect("body").as_ref(), &raw[..]);
    let part = client.get(&url).bearer_auth(token).header("Range", "bytes=90000-").send().await.expect("get");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 90000-99999/100000");
    assert_eq!(part.bytes().await.expect("body").as_ref(), &raw[90000..]);
    let beyond = client.get(&url).bearer_auth(token).header("Range", "bytes=100000-").send().await.expect("get");
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Duplicate names and bad registrations are refused.
    let (status, _) = lab.d.post("/v1/images", &json!({"name": "img", "url": "http://example.invalid/x.img", "sha256": "ab".repeat(32)})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = lab.d.post("/v1/images", &json!({"name": "ext", "url": "http://example.invalid/x.img", "sha256": "xyz"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // An external URL is inspected when added: one that cannot be read is refused.
    let out = lab.d.cli(&["image", "add", "--url", "http://127.0.0.1:9/os.img.gz", "--sha256", &"cd".repeat(32), "--name", "ext", "--json"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("reading the image to inspect it"));
    let served = tempfile::tempdir().expect("tmp");
    let server = metalhost_tests::file_server::FileServer::start(served.path());
    std::fs::write(served.path().join("os.img.gz"), compress("gzip", &raw)).expect("write");
    let url = format!("{}/os.img.gz", server.url);
    let out = lab.d.cli(&["image", "add", "--url", &url, "--sha256", &"cd".repeat(32), "--name", "ext", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ext: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(ext["compression"], "gzip");
    assert_eq!((ext["format"].as_str(), ext["verdict"].as_str()), (Some("raw"), Some("accepted")), "{ext}");
    // Delete is refused while an instance uses the image.
    {
        let db = rusqlite::Connection::open(lab.d.data_path().join("metalhost.db")).expect("db");
        db.execute("INSERT INTO instances (name, image_id, state, created_at, updated_at) VALUES ('i1', ?1, 'active', 0, 0)", [id]).expect("plant");
    }
    let (status, answer) = lab.d.delete(&format!("/v1/images/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, _) = lab.d.delete("/v1/images/ext").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn tokens_are_scoped_and_expire() {
    let lab = lab_with("").await;
    let image = upload(&lab, "img", &image_bytes(10_000));
    let task = plant_task(&lab.d, lab.node, "deploy", image["id"].as_i64(), "{}", 120);
    let client = lab.d.http_client();
    let url = |p: &str| format!("{}{p}", lab.d.url);
    // A MAC that is not enrolled: 404.
    let r = client.post(url("/v1/agent/lookup")).json(&json!({"macs": ["02:00:00:00:00:99"]})).send().await.expect("lookup");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = client.post(url("/v1/agent/lookup")).json(&json!({"macs": [lab.mac]})).send().await.expect("lookup");
    assert_eq!(r.status(), StatusCode::OK);
    let looked: Value = r.json().await.expect("json");
    let node_token = looked["node_token"].as_str().expect("token").to_owned();
    // Wrong token: 401 on every agent endpoint; the operator token is no node token either.
    for token in ["wrong", metalhost_tests::daemon::TOKEN] {
        let (status, _) = lab.d.call_with_token(Method::GET, "/v1/agent/task", None, Some(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = lab.d.call_with_token(Method::POST, "/v1/agent/heartbeat", Some(&json!({})), Some(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The node token is not an operator token.
    let (status, _) = lab.d.call_with_token(Method::GET, "/v1/nodes", None, Some(&node_token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The right token gets the task, with an image token for that image only.
    let (status, got) = lab.d.call_with_token(Method::GET, "/v1/agent/task", None, Some(&node_token)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["id"], task);
    let image_token = got["work"]["image_token"].as_str().expect("image token").to_owned();
    let data = client.get(got["work"]["image_url"].as_str().expect("url")).bearer_auth(&image_token).send().await.expect("data");
    assert_eq!(data.status(), StatusCode::OK);
    // Tokens are stored hashed only.
    let db = rusqlite::Connection::open(lab.d.data_path().join("metalhost.db")).expect("db");
    let stored: String = db.query_row("SELECT token_hash FROM node_tokens", [], |r| r.get(0)).expect("row");
    assert_ne!(stored, node_token);
    assert!(!std::fs::read(lab.d.data_path().join("metalhost.db")).unwrap_or_default().windows(node_token.len()).any(|w| w == node_token.as_bytes()));
    // Expired: 401.
    db.execute("UPDATE node_tokens SET expires_at = 0", []).expect("expire");
    let (status, _) = lab.d.call_with_token(Method::GET, "/v1/agent/task", None, Some(&node_token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Once the task is over, its image token stops working.
    db.execute("UPDATE tasks SET state = 'failed', image_token_hash = NULL", []).expect("finish");
    let data = client.get(got["work"]["image_url"].as_str().expect("url")).bearer_auth(&image_token).send().await.expect("data");
    assert_eq!(data.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_silent_agent_fails_its_task() {
    let lab = lab_with("[agent]\nheartbeat_timeout_s = 2\n").await;
    let image = upload(&lab, "img", &image_bytes(1000));
    let task = plant_task(&lab.d, lab.node, "deploy", image["id"].as_i64(), "{}", 300);
    let (_, looked) = lab.d.call_with_token(Method::POST, "/v1/agent/lookup", Some(&json!({"macs": [lab.mac]})), None).await;
    let token = looked["node_token"].as_str().expect("token").to_owned();
    let (status, _) = lab.d.call_with_token(Method::GET, "/v1/agent/task", None, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    // Nothing more from the agent: within a few seconds the watchdog fails the task.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (state, message) = task_state(&lab.d, task);
        if state == "failed" {
            assert!(message.unwrap_or_default().contains("stopped heartbeating"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the silent agent's task is still {state}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_clean_task_wipes_the_first_mib_and_the_disks_end() {
    let lab = lab_with("").await;
    let task = plant_task(&lab.d, lab.node, "clean", None, "{}", 120);
    let size = 64 << 20;
    let disk = disk(&lab, size);
    let out = run_agent(&lab.d, &lab.mac, &disk, 60);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&disk).expect("disk");
    let mib = 1 << 20;
    // The end: the last MiB (the GPT's backup) and, before it, where the config drive goes (32 MiB).
    let end = 34 * mib;
    assert!(bytes[..mib].iter().all(|b| *b == 0), "first MiB not zeroed");
    assert!(bytes[size - end..].iter().all(|b| *b == 0), "the disk's last 34 MiB not zeroed");
    assert!(bytes[mib..size - end].iter().all(|b| *b == 0xAA), "the middle should be untouched");
    assert_eq!(task_state(&lab.d, task).0, "succeeded");
    let _ = Path::new("");
}

#[tokio::test]
async fn the_agent_binary_is_served() {
    let lab = lab_with("").await;
    let r = reqwest::get(format!("{}/v1/agent/binary", lab.d.boot_url)).await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let served = r.bytes().await.expect("body");
    let local = std::fs::read(metalhost_tests::paths::host_binary("metalhost-agent")).expect("agent binary");
    assert!(served.as_ref() == local.as_slice(), "served bytes differ from the agent binary");
}
