//! Deploy: stream the image into the disk. A reader thread downloads, hashes the stored bytes and
//! decompresses into page-aligned 4 MiB buffers; the calling thread writes them, so the network
//! and the disk work at the same time. Then fsync, verify the sha256, and optionally read back.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use metalhost_image_format::{Detected, ReadAt, Refusal, sniff};
use metalhost_wire::{Compression, DeployTask, ImageFormat};
use sha2::{Digest, Sha256};

use crate::decode::{Decoder, ImageStream, Stored};
use crate::disk_io::{self, AlignedBuf, DiskWriter, read_back_sha256};
use crate::download::Download;
use crate::error::{Error, Result};
use crate::ranges::HttpRanges;
use crate::{disks, log, qcow2};

/// Each write is one buffer this big, at an offset that is a multiple of it.
pub const CHUNK: usize = 4 << 20;
/// Buffers in flight between the reader and the writer.
const DEPTH: usize = 3;

/// What to write and how to check it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub compression: Compression,
    /// Expected sha256 of the stored image; `None` skips hashing (benchmark only).
    pub sha256: Option<String>,
    pub verify_readback: bool,
}

#[derive(Debug)]
pub struct Outcome {
    pub stored: Stored,
    pub written_bytes: u64,
    pub elapsed: Duration,
    pub direct: bool,
}

impl Outcome {
    pub fn summary(&self, target: &Path, plan: &Plan) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        format!(
            "wrote {} bytes ({} stored) to {} in {:.1} s, {:.0} MiB/s{}; {}{}",
            self.written_bytes,
            self.stored.bytes,
            target.display(),
            secs,
            self.written_bytes as f64 / secs / 1048576.0,
            if self.direct { ", O_DIRECT" } else { "" },
            match &self.stored.sha256 {
                Some(sha) => format!("sha256 {sha} verified"),
                None => "sha256 not checked".to_owned(),
            },
            if plan.verify_readback { ", read back" } else { "" },
        )
    }
}

/// Runs a deploy task: picks the disk, streams the image, verifies. The message is for the host.
/// `mirrors`: the image at the pool's other daemons, when it is served by one (api::Client::mirrors).
pub fn run(
    http: ureq::Agent,
    work: &DeployTask,
    mirrors: Vec<String>,
    disk_override: Option<&Path>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<String> {
    // A compressed image's size says nothing of the disk it needs; a qcow2's virtual size does.
    let min = match (work.format, work.compression) {
        (ImageFormat::Qcow2, _) => work.virtual_size.unwrap_or(1).max(1),
        (ImageFormat::Raw, Compression::None) => work.size.unwrap_or(1).max(1),
        (ImageFormat::Raw, _) => 1,
    };
    let target = match disk_override {
        Some(file) => file.to_owned(),
        None => {
            // A disk that turns out too small for a compressed image fails with "does not fit".
            let all = disks::list(Path::new("/sys/block"));
            disks::device_path(&disks::pick(&all, work.disk_hint.as_deref(), min)?)
        }
    };
    let plan = Plan { compression: work.compression, sha256: Some(work.sha256.clone()), verify_readback: work.verify_readback };
    let source = Download::new(http.clone(), work.image_url.clone(), work.image_token.clone()).with_mirrors(mirrors.clone());
    if work.format == ImageFormat::Qcow2 {
        if work.compression != Compression::None {
            return Err(Error::Refused("a qcow2 image compressed as a whole cannot be streamed".into()));
        }
        log(format!("deploying {} (qcow2) to {}", work.image_url, target.display()));
        let mut ranges = HttpRanges::new(http.clone(), work.image_url.clone(), work.image_token.clone(), mirrors.clone());
        let file_size = match work.size {
            Some(size) => size,
            None => ranges.size().map_err(|e| Error::Download(e.to_string()))?,
        };
        let (url, token) = (work.image_url.clone(), work.image_token.clone());
        let reopen = move || Ok(Download::new(http.clone(), url.clone(), token.clone()).with_mirrors(mirrors.clone()));
        let outcome = write_qcow2(source, ranges, file_size, Box::new(reopen), &plan, &target, progress)?;
        return with_config_drive(work, &target, outcome.summary(&target, &plan));
    }
    log(format!("deploying {} ({}) to {}", work.image_url, compression_name(work.compression), target.display()));
    let outcome = write_image(source, &plan, &target, progress)?;
    with_config_drive(work, &target, outcome.summary(&target, &plan))
}

/// After the image: the instance's config drive at the disk's end, when the host sent one. A disk
/// or image with no room for it fails the deploy here, before the node is handed over.
fn with_config_drive(work: &DeployTask, target: &Path, summary: String) -> Result<String> {
    let Some(drive) = &work.config_drive else { return Ok(summary) };
    let started = std::time::Instant::now();
    let files: Vec<(&str, &[u8])> = drive.files.iter().map(|f| (f.path.as_str(), f.content.as_bytes())).collect();
    let written = crate::config_drive::write(target, &files)?;
    let took = started.elapsed().as_millis();
    log(format!("{} ({} files, {took} ms)", written.summary(), files.len()));
    Ok(format!("{summary}; {} in {took} ms", written.summary()))
}

/// A qcow2 image: checked with Range reads before the disk is opened (a refused image writes
/// nothing), then converted while the whole file streams past its hash.
pub fn write_qcow2<S: Read + Send, R: ReadAt<Error = io::Error> + Send>(
    source: S,
    mut ranges: R,
    file_size: u64,
    reopen: Box<dyn FnMut() -> io::Result<S> + Send>,
    plan: &Plan,
    target: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Outcome> {
    let capacity = disk_io::capacity(target).map_err(|source| Error::Open { path: target.to_owned(), source })?;
    let mut checked = qcow2::check(&mut ranges, file_size, capacity)?;
    log(format!(
        "qcow2 v{}: virtual size {} bytes, {} KiB clusters; checked, writing",
        checked.header.version,
        checked.header.virtual_size,
        checked.header.cluster_size() >> 10
    ));
    let read_before = std::mem::take(&mut checked.read_before);
    let cursor = qcow2::Cursor::new(source, plan.sha256.is_some(), ranges, reopen, read_before, qcow2::LOOKBEHIND);
    write_stream(qcow2::Qcow2Reader::new(checked, cursor), plan, target, progress)
}

pub fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "raw",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// The whole pipeline on any source, so it can be tested without HTTP.
pub fn write_image<R: Read + Send>(source: R, plan: &Plan, target: &Path, progress: &(dyn Fn(u64) + Sync)) -> Result<Outcome> {
    write_stream(Decoder::new(source, plan.compression, plan.sha256.is_some()), plan, target, progress)
}

/// The pipeline on the disk's bytes from any image stream (raw, decompressed, or qcow2).
pub fn write_stream<I: ImageStream + Send>(stream: I, plan: &Plan, target: &Path, progress: &(dyn Fn(u64) + Sync)) -> Result<Outcome> {
    let started = Instant::now();
    let mut writer = DiskWriter::open(target)?;
    let direct = writer.is_direct();
    let (full_tx, full_rx) = sync_channel::<(AlignedBuf, usize)>(DEPTH);
    let (free_tx, free_rx) = sync_channel::<AlignedBuf>(DEPTH);
    for _ in 0..DEPTH {
        free_tx.send(AlignedBuf::new(CHUNK)).map_err(|_| Error::Internal("buffer pool"))?;
    }
    // Raw images: what is written is what was hashed. Otherwise hash the output for the read-back.
    let hash_written = plan.verify_readback && (stream.name() != "raw" || plan.sha256.is_none());
    let (written, produced) = std::thread::scope(|s| {
        let reader = s.spawn(|| produce(stream, free_rx, full_tx));
        let written = consume(&mut writer, full_rx, free_tx, hash_written, progress);
        let produced = reader.join().unwrap_or(Err(Error::Internal("the reader thread panicked")));
        (written, produced)
    });
    // A write failure is the cause; the reader then only saw the writer go away.
    let written_sha256 = written?;
    let stored = produced?;
    let written_bytes = writer.offset();
    writer.finish()?;
    if let Some(expected) = &plan.sha256 {
        let got = stored.sha256.clone().unwrap_or_default();
        if !got.eq_ignore_ascii_case(expected.trim()) {
            wipe_start_after_bad_image(target);
            return Err(Error::Sha256Mismatch { expected: expected.clone(), got, bytes: stored.bytes });
        }
    }
    if plan.verify_readback {
        let wrote = written_sha256.or_else(|| stored.sha256.clone()).ok_or(Error::Internal("no hash to read back against"))?;
        let read = read_back_sha256(target, written_bytes).map_err(|source| Error::ReadBack { path: target.to_owned(), source })?;
        if read != wrote {
            return Err(Error::ReadBackMismatch { path: target.to_owned(), wrote, read });
        }
    }
    progress(written_bytes);
    Ok(Outcome { stored, written_bytes, elapsed: started.elapsed(), direct })
}

/// Reader thread: fills free buffers with decompressed bytes and hands them to the writer.
fn produce<I: ImageStream>(mut decoder: I, free: Receiver<AlignedBuf>, full: SyncSender<(AlignedBuf, usize)>) -> Result<Stored> {
    let failed = |decoder: &I, e: io::Error| match (decoder.source_error(), decoder.name()) {
        (Some(why), _) => Error::Download(why.to_owned()),
        (None, "qcow2") => Error::Qcow2 { stored_offset: decoder.stored_offset(), source: e },
        (None, name) => Error::Decompress { compression: name, stored_offset: decoder.stored_offset(), source: e },
    };
    let mut first = true;
    loop {
        // The writer gone means it failed: stop here rather than download the rest for nothing.
        let Ok(mut buf) = free.recv() else { return Err(Error::Internal("the writer stopped")) };
        let n = fill(&mut decoder, buf.as_mut_slice()).map_err(|e| failed(&decoder, e))?;
        if n == 0 {
            break;
        }
        if first && decoder.name() != "qcow2" {
            // Before the first write: a file that is not a disk as it is must not become one.
            refuse_foreign(&buf.as_slice()[..n])?;
        }
        first = false;
        if full.send((buf, n)).is_err() {
            return Err(Error::Internal("the writer stopped"));
        }
        if n < CHUNK {
            break;
        }
    }
    drop(full);
    let qcow2 = decoder.name() == "qcow2";
    decoder.finish().map_err(|e| match e.kind() {
        // The qcow2 pass found a Range read that differs from the hashed file.
        io::ErrorKind::InvalidData if qcow2 => Error::Qcow2 { stored_offset: 0, source: e },
        _ => Error::Download(e.to_string()),
    })
}

/// A raw image's first bytes must not be another format's (the host refuses these at add time).
fn refuse_foreign(head: &[u8]) -> Result<()> {
    match sniff(head) {
        Detected::Raw => Ok(()),
        Detected::Qcow2 { .. } => Err(Error::Refused("declared raw but the file is qcow2".into())),
        Detected::Foreign(f) => Err(Error::Refused(Refusal::Foreign(f).to_string())),
    }
}

/// Writer side: writes each buffer in order and returns it to the pool.
fn consume(
    writer: &mut DiskWriter,
    full: Receiver<(AlignedBuf, usize)>,
    free: SyncSender<AlignedBuf>,
    hash_written: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Option<String>> {
    let mut hasher = hash_written.then(Sha256::new);
    for (buf, n) in full.iter() {
        let data = &buf.as_slice()[..n];
        writer.write(data)?;
        if let Some(h) = &mut hasher {
            h.update(data);
        }
        progress(writer.offset());
        // The reader may have finished already; then the buffer is simply dropped.
        let _ = free.send(buf);
    }
    Ok(hasher.map(|h| hex::encode(h.finalize())))
}

/// Reads until `buf` is full or the stream ends, so every write but the last is a whole chunk.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An image that failed its check must not boot by accident: its partition table goes.
fn wipe_start_after_bad_image(target: &Path) {
    let path: PathBuf = target.to_owned();
    match crate::clean::zero_range(&path, 0, 1 << 20) {
        Ok(()) => log(format!("zeroed the first MiB of {} so the bad image cannot boot", path.display())),
        Err(e) => log(format!("could not zero the start of {} after a bad image: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect()
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn disk(len: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![0xEEu8; len]).unwrap();
        (dir, path)
    }

    fn plan(compression: Compression, sha256: &str, verify_readback: bool) -> Plan {
        Plan { compression, sha256: Some(sha256.to_owned()), verify_readback }
    }

    #[test]
    fn a_raw_image_is_written_byte_for_byte_and_verified() {
        let image = sample(CHUNK * 2 + 12_345);
        let (_dir, path) = disk(image.len() + 100);
        let reports = Mutex::new(Vec::new());
        let out = write_image(&image[..], &plan(Compression::None, &sha(&image).to_uppercase(), true), &path, &|n| reports.lock().unwrap().push(n))
            .unwrap();
        let written = std::fs::read(&path).unwrap();
        assert!(written[..image.len()] == image[..]);
        assert_eq!(&written[image.len()..], &[0xEE; 100], "bytes past the image are untouched");
        assert_eq!(out.written_bytes, image.len() as u64);
        assert_eq!(out.stored.sha256, Some(sha(&image)));
        assert_eq!(reports.lock().unwrap().last().copied(), Some(image.len() as u64));
        assert!(out.summary(&path, &plan(Compression::None, "", true)).contains("verified, read back"));
    }

    #[test]
    fn a_gzip_image_is_checked_against_the_stored_bytes() {
        let image = sample(5 << 20);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&image).unwrap();
        let stored = enc.finish().unwrap();
        let (_dir, path) = disk(0);
        let out = write_image(&stored[..], &plan(Compression::Gzip, &sha(&stored), true), &path, &|_| {}).unwrap();
        assert!(std::fs::read(&path).unwrap() == image);
        assert_eq!(out.stored.bytes, stored.len() as u64);
        // The raw image's hash is not the stored one: a plan with it must fail.
        let e = write_image(&stored[..], &plan(Compression::Gzip, &sha(&image), false), &path, &|_| {}).unwrap_err();
        assert!(matches!(e, Error::Sha256Mismatch { .. }), "{e}");
    }

    #[test]
    fn a_wrong_sha256_fails_with_both_hashes_and_the_start_is_wiped() {
        let image = sample(3 << 20);
        let (_dir, path) = disk(4 << 20);
        let wrong = "ab".repeat(32);
        let e = write_image(&image[..], &plan(Compression::None, &wrong, false), &path, &|_| {}).unwrap_err().to_string();
        assert_eq!(e, format!("sha256 mismatch: expected {wrong}, got {} ({} bytes downloaded)", sha(&image), image.len()));
        let written = std::fs::read(&path).unwrap();
        assert!(written[..1 << 20].iter().all(|b| *b == 0), "the bad image must not stay bootable");
        assert!(written[1 << 20..image.len()] == image[1 << 20..]);
    }

    #[test]
    fn a_corrupt_stream_is_a_decompression_error_and_a_failing_source_a_download_error() {
        let (_dir, path) = disk(0);
        let e = write_image(&b"not gzip at all"[..], &plan(Compression::Gzip, "00", false), &path, &|_| {}).unwrap_err();
        assert!(e.to_string().starts_with("decompressing the image (gzip) at stored byte"), "{e}");
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("gave up at byte 5000000"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                buf[..n].fill(7);
                Ok(n)
            }
        }
        let e = write_image(Broken(5_000_000), &plan(Compression::None, "00", false), &path, &|_| {}).unwrap_err();
        assert_eq!(e.to_string(), "downloading the image: gave up at byte 5000000");
    }

    #[test]
    fn a_write_failure_stops_the_pipeline_with_the_offset() {
        // /dev/full accepts the open and fails every write with ENOSPC, like a disk that is too small.
        let image = sample(CHUNK * 3);
        let e = write_image(&image[..], &plan(Compression::None, &sha(&image), false), Path::new("/dev/full"), &|_| {}).unwrap_err();
        assert_eq!(e.to_string(), "the image does not fit on /dev/full: no space left at byte 0");
    }

    #[test]
    fn the_reader_stops_when_the_writer_is_gone() {
        // The writer failed while the reader waited for a free buffer: the reader must not go on
        // to download (and hash) the rest of the image for nothing.
        struct Counting<'a>(&'a [u8], &'a std::sync::atomic::AtomicUsize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = (&mut self.0).read(buf)?;
                self.1.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                Ok(n)
            }
        }
        let big = vec![0u8; CHUNK * 4];
        let read = std::sync::atomic::AtomicUsize::new(0);
        let (free_tx, free_rx) = sync_channel::<AlignedBuf>(1);
        let (full_tx, _full_rx) = sync_channel(1);
        drop(free_tx);
        let e = produce(Decoder::new(Counting(&big, &read), Compression::None, false), free_rx, full_tx).unwrap_err();
        assert!(matches!(e, Error::Internal("the writer stopped")), "{e}");
        assert_eq!(read.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn a_raw_image_that_is_another_format_is_refused_before_the_first_write() {
        let (_dir, path) = disk(1 << 20);
        for (head, words) in [(&b"QFI\xfb\0\0\0\x03"[..], "declared raw but the file is qcow2"), (b"KDMV\x01\0\0\0", "VMDK images are not supported")]
        {
            let mut image = sample(CHUNK + 10);
            image[..head.len()].copy_from_slice(head);
            let e = write_image(&image[..], &plan(Compression::None, &sha(&image), false), &path, &|_| {}).unwrap_err();
            assert!(matches!(e, Error::Refused(_)) && e.to_string().contains(words), "{e}");
            assert!(std::fs::read(&path).unwrap().iter().all(|b| *b == 0xEE), "nothing written");
        }
    }

    #[test]
    fn without_a_sha256_nothing_is_hashed() {
        let image = sample(1 << 20);
        let (_dir, path) = disk(0);
        let p = Plan { compression: Compression::None, sha256: None, verify_readback: true };
        let out = write_image(&image[..], &p, &path, &|_| {}).unwrap();
        assert_eq!(out.stored.sha256, None);
        assert!(out.summary(&path, &p).contains("sha256 not checked"));
    }
}
