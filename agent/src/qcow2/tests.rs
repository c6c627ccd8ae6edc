//! The reader against images Debian's `qemu-img` made (installed by scripts/setup): every
//! conversion must equal `qemu-img convert -O raw` of the same file byte for byte, and every
//! hostile file must be refused before the disk is touched.

use super::*;
use crate::deploy::{Plan, write_qcow2};
use metalhost_wire::Compression;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

fn qemu_img(args: &[&str]) {
    // qemu-img times its LUKS key derivation with getrusage and, on a busy machine, sometimes
    // fails with "Unable to get accurate CPU usage": that one error is tried again.
    for _ in 0..5 {
        let out = Command::new("qemu-img").args(args).output().expect("qemu-img (scripts/setup installs qemu-utils)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return;
        }
        assert!(stderr.contains("Unable to get accurate CPU usage"), "qemu-img {args:?}: {stderr}");
    }
    panic!("qemu-img {args:?} kept failing to time its key derivation");
}

fn qemu_io(image: &str, command: &str) {
    let out = Command::new("qemu-io").args(["-f", "qcow2", "-c", command, image]).output().unwrap();
    assert!(out.status.success(), "qemu-io {command}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A disk with data, compressible text, random bytes and holes; `mib` MiB long plus 3 sectors,
/// so the last cluster is partial.
fn raw_disk(dir: &Path, mib: u64) -> PathBuf {
    let path = dir.join("source.raw");
    let len = (mib << 20) + 1536;
    let mut disk = vec![0u8; len as usize];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for (i, chunk) in disk.chunks_mut(1 << 20).enumerate() {
        match i % 4 {
            0 => chunk.iter_mut().enumerate().for_each(|(j, b)| *b = b"metalhost qcow2 "[j % 16]),
            1 => chunk.iter_mut().for_each(|b| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }),
            2 => {}
            _ => chunk[..70_000].fill(0xA5),
        }
    }
    let tail = disk.len() - 700;
    disk[tail..].fill(0x42);
    std::fs::write(&path, disk).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A `ReadAt` over a file, like the HTTP one over the served file.
struct FileAt(std::fs::File);
impl ReadAt for FileAt {
    type Error = io::Error;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset)
    }
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Runs the agent's qcow2 pipeline from the file to `disk`.
fn deploy(image: &Path, disk: &Path) -> crate::error::Result<crate::deploy::Outcome> {
    let plan = Plan { compression: Compression::None, sha256: Some(sha(image)), verify_readback: true };
    let size = std::fs::metadata(image).unwrap().len();
    let again = image.to_owned();
    let reopen = Box::new(move || std::fs::File::open(&again));
    write_qcow2(std::fs::File::open(image).unwrap(), FileAt(std::fs::File::open(image).unwrap()), size, reopen, &plan, disk, &|_| {})
}

fn assert_converts_like_qemu_img(dir: &Path, image: &Path) {
    let reference = dir.join("reference.raw");
    qemu_img(&["convert", "-O", "raw", s(image), s(&reference)]);
    let disk = dir.join("disk");
    std::fs::write(&disk, b"").unwrap();
    let out = deploy(image, &disk).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let (want, got) = (std::fs::read(&reference).unwrap(), std::fs::read(&disk).unwrap());
    assert_eq!(got.len(), want.len(), "{}: length", image.display());
    assert!(got == want, "{}: the disk differs from qemu-img convert -O raw", image.display());
    assert_eq!(out.stored.sha256, Some(sha(image)));
}

#[test]
fn images_qemu_img_makes_convert_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_disk(dir.path(), 9);
    let cases: &[(&str, &[&str])] = &[
        ("v3", &["-o", "compat=1.1"]),
        ("v2", &["-o", "compat=0.10"]),
        ("zlib", &["-c", "-o", "compression_type=zlib"]),
        ("zstd", &["-c", "-o", "compression_type=zstd"]),
        ("small-clusters", &["-o", "cluster_size=4096"]),
        ("big-clusters", &["-o", "cluster_size=2M"]),
        ("zstd-small-clusters", &["-c", "-o", "compression_type=zstd,cluster_size=8192"]),
        ("metadata-first", &["-o", "preallocation=metadata"]),
    ];
    for (name, options) in cases {
        let image = dir.path().join(format!("{name}.qcow2"));
        let mut args = vec!["convert", "-O", "qcow2"];
        args.extend_from_slice(options);
        args.extend([s(&raw), s(&image)]);
        qemu_img(&args);
        assert_converts_like_qemu_img(dir.path(), &image);
    }
}

#[test]
fn an_image_with_an_internal_snapshot_converts_its_current_state() {
    // After a snapshot, rewritten clusters land at the end of the file, out of guest order: the
    // reader takes them by Range and checks them in a second pass.
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_disk(dir.path(), 6);
    let image = dir.path().join("snap.qcow2");
    qemu_img(&["convert", "-O", "qcow2", s(&raw), s(&image)]);
    qemu_img(&["snapshot", "-c", "before", s(&image)]);
    qemu_io(s(&image), "write -P 0x77 1M 64k");
    qemu_io(s(&image), "write -z 0 64k");
    qemu_io(s(&image), "write -P 0x33 5M 200k");
    assert_converts_like_qemu_img(dir.path(), &image);
    let disk = std::fs::read(dir.path().join("disk")).unwrap();
    assert!(disk[1 << 20..(1 << 20) + 65536].iter().all(|b| *b == 0x77), "the current state, not the snapshot's");
}

#[test]
fn clusters_far_out_of_order_are_read_by_range_and_checked() {
    // With a small look-behind, the compressed clusters QEMU packs behind later data and a
    // snapshot's rewritten clusters are out of reach of the pass: Range reads, checked against
    // the digests of skipped pieces or in a second pass.
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_disk(dir.path(), 9);
    let image = dir.path().join("zstd.qcow2");
    qemu_img(&["convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", s(&raw), s(&image)]);
    qemu_img(&["snapshot", "-c", "before", s(&image)]);
    qemu_io(s(&image), "write -P 0x77 1M 64k");
    let reference = dir.path().join("reference.raw");
    qemu_img(&["convert", "-O", "raw", s(&image), s(&reference)]);
    let size = std::fs::metadata(&image).unwrap().len();
    let mut ranges = FileAt(std::fs::File::open(&image).unwrap());
    let mut checked = check(&mut ranges, size, None).unwrap();
    let before = std::mem::take(&mut checked.read_before);
    let again = image.clone();
    let reopen = Box::new(move || std::fs::File::open(&again));
    let cursor = Cursor::new(std::fs::File::open(&image).unwrap(), true, ranges, reopen, before, 4096);
    let mut reader = Qcow2Reader::new(checked, cursor);
    let mut disk = Vec::new();
    reader.read_to_end(&mut disk).unwrap();
    assert!(reader.cursor.range_bytes > 65536, "the pass should have been left behind");
    assert!(disk == std::fs::read(&reference).unwrap(), "differs from qemu-img convert -O raw");
    assert_eq!(reader.finish().unwrap().sha256, Some(sha(&image)));
}

/// Patches a big-endian u64 in a file.
fn patch(path: &Path, at: u64, value: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &value.to_be_bytes(), at).unwrap();
}

fn field(path: &Path, at: usize) -> u64 {
    let b = std::fs::read(path).unwrap();
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Each hostile file, made by qemu-img (and patched where qemu-img would not make it), with the
/// words its refusal must carry.
pub fn hostile_images(dir: &Path) -> Vec<(&'static str, PathBuf, &'static str)> {
    let raw = raw_disk(dir, 2);
    let plain = dir.join("plain.qcow2");
    qemu_img(&["convert", "-O", "qcow2", s(&raw), s(&plain)]);
    let p = |name: &str| dir.join(name);
    qemu_img(&["create", "-f", "qcow2", "-b", s(&raw), "-F", "raw", s(&p("backing.qcow2"))]);
    qemu_img(&["create", "-f", "qcow2", "-o", &format!("data_file={}", s(&p("data.raw"))), s(&p("datafile.qcow2")), "4M"]);
    let secret = ["--object", "secret,id=sec0,data=hunter2"];
    let (luks_qcow2, luks_img) = (p("luks.qcow2"), p("luks.img"));
    let mut luks = vec!["create"];
    luks.extend(secret);
    luks.extend(["-f", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=50", s(&luks_qcow2), "4M"]);
    qemu_img(&luks);
    let mut luks_raw = vec!["create"];
    luks_raw.extend(secret);
    luks_raw.extend(["-f", "luks", "-o", "key-secret=sec0,iter-time=50", s(&luks_img), "4M"]);
    qemu_img(&luks_raw);
    qemu_img(&["convert", "-O", "vmdk", s(&raw), s(&p("disk.vmdk"))]);
    // L1 entry 0 moved past the end of the file.
    std::fs::copy(&plain, p("l2-past-end.qcow2")).unwrap();
    let l1 = field(&plain, 40);
    patch(&p("l2-past-end.qcow2"), l1, 1 << 63 | 1 << 30);
    // L1 entry 0 pointed at the refcount table.
    std::fs::copy(&plain, p("overlap.qcow2")).unwrap();
    patch(&p("overlap.qcow2"), l1, 1 << 63 | field(&plain, 48));
    vec![
        ("backing file", p("backing.qcow2"), "backing file"),
        ("external data file", p("datafile.qcow2"), "external data file"),
        ("LUKS qcow2", p("luks.qcow2"), "encrypted qcow2 (LUKS)"),
        ("LUKS", p("luks.img"), "LUKS-encrypted images are not supported"),
        ("vmdk", p("disk.vmdk"), "VMDK images are not supported"),
        ("L2 past the end", p("l2-past-end.qcow2"), "L2 table 0 at byte 1073741824 (+65536) lies past the end of the file"),
        ("overlapping tables", p("overlap.qcow2"), "overlap"),
        ("raw declared qcow2", raw, "declared qcow2 but the file is raw"),
    ]
}

#[test]
fn hostile_images_are_refused_before_the_disk_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let before = vec![0xEEu8; 8 << 20];
    for (name, image, words) in hostile_images(dir.path()) {
        std::fs::write(&disk, &before).unwrap();
        let e = deploy(&image, &disk).expect_err(name);
        assert!(matches!(e, crate::error::Error::Refused(_)), "{name}: {e}");
        assert!(e.to_string().contains(words), "{name}: {e}");
        assert!(std::fs::read(&disk).unwrap() == before, "{name}: the disk was written");
    }
}

#[test]
fn a_virtual_size_larger_than_the_disk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("big.qcow2");
    qemu_img(&["create", "-f", "qcow2", s(&image), "64M"]);
    let disk = dir.path().join("disk");
    std::fs::write(&disk, vec![0xEEu8; 32 << 20]).unwrap();
    let e = deploy(&image, &disk).unwrap_err().to_string();
    assert_eq!(e, "image refused: the image's virtual size 67108864 is larger than the disk (33554432 bytes)");
    assert!(std::fs::read(&disk).unwrap().iter().all(|b| *b == 0xEE));
}

#[test]
fn a_data_cluster_past_the_end_fails_the_stream_and_a_changed_file_fails_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_disk(dir.path(), 2);
    let image = dir.path().join("a.qcow2");
    qemu_img(&["convert", "-O", "qcow2", s(&raw), s(&image)]);
    // The first L2 table's first entry pointed far past the end.
    let l2 = field(&image, field(&image, 40) as usize) & 0x00ff_ffff_ffff_fe00;
    let bad = dir.path().join("bad.qcow2");
    std::fs::copy(&image, &bad).unwrap();
    patch(&bad, l2, 1 << 63 | 1 << 40);
    let disk = dir.path().join("disk");
    std::fs::write(&disk, b"").unwrap();
    let e = deploy(&bad, &disk).unwrap_err().to_string();
    assert!(e.starts_with("converting the qcow2 image at stored byte") && e.contains("data cluster at byte 1099511627776"), "{e}");
    // A wrong sha256 is the same failure as for a raw image.
    let plan = Plan { compression: Compression::None, sha256: Some("ab".repeat(32)), verify_readback: false };
    let size = std::fs::metadata(&image).unwrap().len();
    let again = image.clone();
    let e = write_qcow2(
        std::fs::File::open(&image).unwrap(),
        FileAt(std::fs::File::open(&image).unwrap()),
        size,
        Box::new(move || std::fs::File::open(&again)),
        &plan,
        &disk,
        &|_| {},
    )
    .unwrap_err();
    assert!(matches!(e, crate::error::Error::Sha256Mismatch { .. }), "{e}");
}
