//! qcow2 images end to end, made by Debian's `qemu-img` (scripts/setup installs qemu-utils): the
//! daemon inspects each one when it is added (upload or URL) and refuses hostile ones with their
//! reason, keeping nothing; the real agent converts the accepted ones while they stream, and its
//! disk equals `qemu-img convert -O raw` byte for byte; the agent refuses hostile ones again
//! before it writes a byte; a cut download resumes.

use std::path::{Path, PathBuf};
use std::process::Command;

use metalhost_tests::agent_lab::{plant_task, run_agent, task_failure_kind, task_state};
use metalhost_tests::daemon::{Daemon, node_body, switch_body};
use metalhost_tests::file_server::FileServer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn qemu_img(args: &[&str]) {
    // qemu-img times its LUKS key derivation with getrusage and, on a busy machine, sometimes
    // fails with "Unable to get accurate CPU usage": that one error is tried again.
    for _ in 0..5 {
        let out = Command::new("qemu-img").args(args).output().expect("qemu-img (scripts/setup installs qemu-utils)");
        if out.status.success() {
            return;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Unable to get accurate CPU usage"), "qemu-img {args:?}: {stderr}");
    }
    panic!("qemu-img {args:?} kept failing to time its key derivation");
}

fn qemu_io(image: &Path, command: &str) {
    let out = Command::new("qemu-io").args(["-f", "qcow2", "-c", command]).arg(image).output().expect("qemu-io");
    assert!(out.status.success(), "qemu-io {command}: {}", String::from_utf8_lossy(&out.stderr));
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// A disk with text, random bytes and holes, `mib` MiB plus 3 sectors (a partial last cluster).
fn source_disk(dir: &Path, mib: usize) -> PathBuf {
    let path = dir.join("source.raw");
    let mut disk = vec![0u8; (mib << 20) + 1536];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for (i, chunk) in disk.chunks_mut(1 << 20).enumerate() {
        match i % 4 {
            0 => chunk.iter_mut().enumerate().for_each(|(j, b)| *b = b"qcow2 end to end "[j % 17]),
            1 => chunk.iter_mut().for_each(|b| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }),
            2 => {}
            _ => chunk[..100_000].fill(0x5A),
        }
    }
    std::fs::write(&path, disk).expect("write source");
    path
}

/// The valid images the issue names: v2, v3, zlib and zstd clusters, sparse, an internal snapshot.
fn valid_images(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let raw = source_disk(dir, 6);
    let convert = |name: &str, options: &[&str]| {
        let image = dir.join(name);
        let mut args = vec!["convert", "-O", "qcow2"];
        args.extend_from_slice(options);
        args.extend([s(&raw), s(&image)]);
        qemu_img(&args);
        image
    };
    let snapshot = convert("snapshot.qcow2", &[]);
    qemu_img(&["snapshot", "-c", "installed", s(&snapshot)]);
    qemu_io(&snapshot, "write -P 0x77 2M 128k");
    let sparse = dir.join("sparse.qcow2");
    qemu_img(&["create", "-f", "qcow2", s(&sparse), "64M"]);
    qemu_io(&sparse, "write -P 0x11 0 64k");
    qemu_io(&sparse, "write -P 0x22 40M 1M");
    vec![
        ("v2", convert("v2.qcow2", &["-o", "compat=0.10"])),
        ("v3", convert("v3.qcow2", &["-o", "compat=1.1"])),
        ("zlib", convert("zlib.qcow2", &["-c", "-o", "compression_type=zlib"])),
        ("zstd", convert("zstd.qcow2", &["-c", "-o", "compression_type=zstd"])),
        ("sparse", sparse),
        ("snapshot", snapshot),
    ]
}

fn patch(path: &Path, at: u64, value: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).expect("open");
    std::os::unix::fs::FileExt::write_all_at(&f, &value.to_be_bytes(), at).expect("patch");
}

fn field(path: &Path, at: usize) -> u64 {
    let b = std::fs::read(path).expect("read");
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Each hostile image: (case, file, the format it is declared as, words of its refusal).
fn hostile_images(dir: &Path) -> Vec<(&'static str, PathBuf, Option<&'static str>, &'static str)> {
    let raw = source_disk(dir, 2);
    let p = |name: &str| dir.join(name);
    let plain = p("plain.qcow2");
    qemu_img(&["convert", "-O", "qcow2", s(&raw), s(&plain)]);
    qemu_img(&["create", "-f", "qcow2", "-b", s(&raw), "-F", "raw", s(&p("backing.qcow2"))]);
    let data_file = format!("data_file={}", s(&p("data.raw")));
    qemu_img(&["create", "-f", "qcow2", "-o", &data_file, s(&p("datafile.qcow2")), "4M"]);
    let secret = "secret,id=sec0,data=hunter2";
    let luks = p("luks.qcow2");
    qemu_img(&[
        "create",
        "--object",
        secret,
        "-f",
        "qcow2",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=50",
        s(&luks),
        "4M",
    ]);
    qemu_img(&["convert", "-O", "vmdk", s(&raw), s(&p("disk.vmdk"))]);
    let l1 = field(&plain, 40);
    std::fs::copy(&plain, p("l2-past-end.qcow2")).expect("copy");
    patch(&p("l2-past-end.qcow2"), l1, 1 << 63 | 1 << 30);
    std::fs::copy(&plain, p("overlap.qcow2")).expect("copy");
    patch(&p("overlap.qcow2"), l1, 1 << 63 | field(&plain, 48));
    vec![
        ("a backing file", p("backing.qcow2"), None, "backing file"),
        ("an external data file", p("datafile.qcow2"), None, "external data file"),
        ("LUKS", luks, None, "encrypted qcow2 (LUKS)"),
        ("an L2 table past the end", p("l2-past-end.qcow2"), None, "L2 table 0 at byte 1073741824 (+65536) lies past the end of the file"),
        ("overlapping tables", p("overlap.qcow2"), None, "overlap"),
        ("a qcow2 declared raw", plain, Some("raw"), "declared raw but the file is qcow2"),
        ("a vmdk", p("disk.vmdk"), None, "VMDK images are not supported"),
    ]
}

struct Lab {
    d: Daemon,
    dir: tempfile::TempDir,
    node: i64,
    mac: String,
}

async fn lab() -> Lab {
    let d = Daemon::start();
    let (_, sw) = d.post("/v1/switches", &switch_body("sw1", "pw")).await;
    let (status, node) = d.post("/v1/nodes", &node_body(1, sw["id"].as_i64().unwrap_or(1), "pw")).await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    Lab { node: node["id"].as_i64().expect("id"), mac: node["mac"].as_str().expect("mac").to_owned(), d, dir: tempfile::tempdir().expect("tmp") }
}

fn cli_upload(lab: &Lab, name: &str, file: &Path, format: Option<&str>) -> Result<Value, String> {
    let mut args = vec!["image", "add", s(file), "--name", name, "--json"];
    if let Some(f) = format {
        args.extend(["--format", f]);
    }
    let out = lab.d.cli(&args);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("image json"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read")))
}

/// Plants a deploy of `image` and runs the real agent onto `disk`; (state, message).
fn deploy(lab: &Lab, image: i64, disk: &Path) -> (String, String) {
    let task = plant_task(&lab.d, lab.node, "deploy", Some(image), "{}", 120);
    let out = run_agent(&lab.d, &lab.mac, disk, 120);
    let (state, message) = task_state(&lab.d, task);
    if state == "failed" {
        assert_eq!(task_failure_kind(&lab.d, task).as_deref(), Some("command-failed"), "a refused image fails the same way again");
    }
    let _ = out;
    (state, message.unwrap_or_default())
}

fn reference(dir: &Path, image: &Path) -> Vec<u8> {
    let raw = dir.join("reference.raw");
    qemu_img(&["convert", "-O", "raw", s(image), s(&raw)]);
    std::fs::read(&raw).expect("reference")
}

#[tokio::test]
async fn qcow2_uploads_are_inspected_and_deploy_byte_for_byte_like_qemu_img_convert() {
    let lab = lab().await;
    for (name, image) in valid_images(lab.dir.path()) {
        let added = cli_upload(&lab, name, &image, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(added["format"], "qcow2", "{name}: {added}");
        assert_eq!(added["verdict"], "accepted", "{name}");
        let reason = added["verdict_reason"].as_str().unwrap_or("");
        assert!(reason.starts_with("qcow2 v") && reason.contains("no backing file"), "{name}: {reason}");
        let want = reference(lab.dir.path(), &image);
        assert_eq!(added["virtual_size"].as_u64(), Some(want.len() as u64), "{name}");
        // `image show` carries the verdict.
        let out = lab.d.cli(&["image", "show", name]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(reason), "{name}: {}", String::from_utf8_lossy(&out.stdout));
        let disk = lab.dir.path().join("disk.raw");
        std::fs::write(&disk, b"").expect("empty disk");
        let (state, message) = deploy(&lab, added["id"].as_i64().expect("id"), &disk);
        assert_eq!(state, "succeeded", "{name}: {message}");
        assert!(message.contains(&format!("sha256 {} verified", sha(&image))), "{name}: {message}");
        let got = std::fs::read(&disk).expect("disk");
        assert_eq!(got.len(), want.len(), "{name}: disk length");
        assert!(got == want, "{name}: the disk differs from qemu-img convert -O raw");
    }
    let (_, list) = lab.d.get("/v1/images").await;
    assert_eq!(list.as_array().map(Vec::len), Some(6));
}

#[tokio::test]
async fn hostile_images_are_refused_at_add_time_keeping_nothing_and_again_by_the_agent() {
    let lab = lab().await;
    let serve = tempfile::tempdir().expect("tmp");
    let server = FileServer::start(serve.path());
    for (case, image, declared, words) in hostile_images(lab.dir.path()) {
        let e = cli_upload(&lab, "hostile", &image, declared).expect_err(case);
        assert!(e.contains("image refused") && e.contains(words), "{case}: {e}");
        // By URL too.
        let file = image.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        std::fs::copy(&image, serve.path().join(&file)).expect("copy");
        let url = format!("{}/{file}", server.url);
        let body = json!({"name": "hostile", "url": url, "sha256": sha(&image), "format": declared});
        let (status, answer) = lab.d.post("/v1/images", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {answer}");
        assert!(answer.to_string().contains(words), "{case}: {answer}");
        // The agent refuses it again, before writing: a row written behind the inspection's
        // back (an image added by an older daemon, say) must not get through.
        // The format the row says: what was declared, else what the daemon would have sent.
        let format = declared.unwrap_or(if file.ends_with(".vmdk") { "raw" } else { "qcow2" });
        lab.d.exec_sql(&format!(
            "INSERT INTO images (name, url, sha256, size, compression, format, created_at) VALUES ('behind', '{url}', '{}', {}, 'none', '{format}', 0)",
            sha(&image),
            std::fs::metadata(&image).expect("meta").len()
        ));
        let (_, row) = lab.d.get("/v1/images/behind").await;
        let disk = lab.dir.path().join("disk.raw");
        let before = vec![0xAAu8; 8 << 20];
        std::fs::write(&disk, &before).expect("disk");
        let (state, message) = deploy(&lab, row["id"].as_i64().expect("id"), &disk);
        assert_eq!(state, "failed", "{case}: {message}");
        assert!(message.starts_with("image refused: ") && message.contains(words), "{case}: {message}");
        assert!(std::fs::read(&disk).expect("disk") == before, "{case}: the agent wrote to the disk");
        lab.d.exec_sql("DELETE FROM tasks; DELETE FROM images");
    }
    let (_, list) = lab.d.get("/v1/images").await;
    assert_eq!(list, json!([]), "nothing was kept");
    let files: Vec<_> = std::fs::read_dir(lab.d.data_path().join("images")).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(files.is_empty(), "refused uploads left files: {files:?}");
}

#[tokio::test]
async fn a_virtual_size_larger_than_the_disk_is_refused_by_the_claim_and_by_the_agent() {
    let lab = lab().await;
    let image = lab.dir.path().join("big.qcow2");
    qemu_img(&["create", "-f", "qcow2", s(&image), "3G"]);
    let added = cli_upload(&lab, "big", &image, None).expect("upload");
    assert_eq!(added["virtual_size"].as_u64(), Some(3 << 30));
    lab.d.exec_sql(&format!("UPDATE nodes SET state = 'available', disk_gb = 2 WHERE id = {}", lab.node));
    let (status, answer) = lab.d.post("/v1/instances", &json!({"image": "big", "node": "node1"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer.to_string().contains("needs a 3 GiB disk"), "{answer}");
    let (_, node) = lab.d.get("/v1/nodes/node1").await;
    assert_eq!(node["state"], "available", "nothing started");
    // The agent checks the disk it finds, whatever the daemon believed.
    let disk = lab.dir.path().join("disk.raw");
    let before = vec![0xAAu8; 16 << 20];
    std::fs::write(&disk, &before).expect("disk");
    let (state, message) = deploy(&lab, added["id"].as_i64().expect("id"), &disk);
    assert_eq!(state, "failed");
    assert_eq!(message, "image refused: the image's virtual size 3221225472 is larger than the disk (16777216 bytes)");
    assert!(std::fs::read(&disk).expect("disk") == before);
}

#[tokio::test]
async fn a_qcow2_by_url_is_inspected_with_range_and_a_cut_download_resumes() {
    let lab = lab().await;
    let serve = tempfile::tempdir().expect("tmp");
    let server = FileServer::start(serve.path());
    let images = valid_images(lab.dir.path());
    let (_, zstd) = images.iter().find(|(n, _)| *n == "zstd").expect("zstd image");
    std::fs::copy(zstd, serve.path().join("os.qcow2")).expect("copy");
    let url = format!("{}/os.qcow2", server.url);
    let (status, added) = lab.d.post("/v1/images", &json!({"name": "os", "url": url, "sha256": sha(zstd)})).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["format"], "qcow2");
    assert!(added["verdict_reason"].as_str().unwrap_or("").contains("zstd-compressed"), "{added}");
    let inspected = server.requests.lock().map(|r| r.clone()).unwrap_or_default();
    assert!(inspected.iter().all(Option::is_some), "the inspection reads ranges, never the whole file: {inspected:?}");
    // The stream is cut twice mid-way; the agent resumes with Range and the disk is still right.
    server.cut(2, 300_000);
    let disk = lab.dir.path().join("disk.raw");
    std::fs::write(&disk, b"").expect("disk");
    let (state, message) = deploy(&lab, added["id"].as_i64().expect("id"), &disk);
    assert_eq!(state, "succeeded", "{message}");
    assert!(std::fs::read(&disk).expect("disk") == reference(lab.dir.path(), zstd), "the resumed disk differs");
    let resumed = server.requests.lock().map(|r| r.iter().flatten().filter(|r| r.ends_with('-') && *r != "0-").count()).unwrap_or(0);
    assert!(resumed >= 1, "the cut stream should have been resumed with Range: {:?}", server.requests.lock().map(|r| r.clone()));
    // A server that ignores Range can serve raw images, not qcow2 ones.
    server.ignore_range(true);
    let (status, answer) = lab.d.post("/v1/images", &json!({"name": "os2", "url": url, "sha256": sha(zstd)})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer.to_string().contains("ignores Range requests"), "{answer}");
}
