//! Deploy: stream the image from the host, decompress, write to disk in large buffers, hash the
//! stored bytes as they stream, fsync, verify, optionally read back. Downloads resume with Range.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use metalhost_wire::{Compression, DeployTask};
use sha2::{Digest, Sha256};

use crate::api::Session;
use crate::{disks, log};

/// Writes go to disk in chunks this big, at offsets that are multiples of it.
const CHUNK: usize = 4 << 20;
const RESUME_ATTEMPTS: u32 = 8;

pub fn run(session: &Session, task: i64, work: &DeployTask, disk_override: Option<&Path>) -> Result<String, String> {
    let target: PathBuf = match disk_override {
        Some(file) => file.to_owned(),
        None => {
            let min = if work.compression == Compression::None { work.size.unwrap_or(1) } else { 1 };
            let all = disks::list(Path::new("/sys/block"));
            disks::device_path(&disks::pick(&all, work.disk_hint.as_deref(), min)?)
        }
    };
    log(format!("writing {} to {}", work.image_url, target.display()));
    let download = Download::new(session.client().http().clone(), work.image_url.clone(), work.image_token.clone());
    let mut report = |written: u64| session.progress(task, written, work.size);
    let outcome = write_image(download, work.compression, &target, &mut report)?;
    if outcome.stored_sha256 != work.sha256.to_ascii_lowercase() {
        return Err(format!("sha256 mismatch: expected {}, got {} ({} bytes downloaded)", work.sha256, outcome.stored_sha256, outcome.stored_bytes));
    }
    if work.verify_readback {
        let readback = hash_prefix(&target, outcome.written_bytes).map_err(|e| format!("read back {}: {e}", target.display()))?;
        if readback != outcome.written_sha256 {
            return Err(format!("read-back mismatch on {}: wrote {}, read {}", target.display(), outcome.written_sha256, readback));
        }
    }
    Ok(format!(
        "wrote {} bytes to {} in {:.1} s; sha256 {} verified{}",
        outcome.written_bytes,
        target.display(),
        outcome.elapsed.as_secs_f64(),
        outcome.stored_sha256,
        if work.verify_readback { ", read back" } else { "" }
    ))
}

pub struct Written {
    pub stored_sha256: String,
    pub stored_bytes: u64,
    pub written_sha256: String,
    pub written_bytes: u64,
    pub elapsed: Duration,
}

/// Hashes what passes through it: the image as stored, before decompression.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

enum Decoder<R: Read> {
    Plain(Hashing<R>),
    Gzip(flate2::read::GzDecoder<Hashing<R>>),
    Zstd(Box<ruzstd::StreamingDecoder<Hashing<R>, ruzstd::FrameDecoder>>),
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: Read> Decoder<R> {
    /// The stored stream, so trailing bytes after the compressed data are hashed too.
    fn into_hashing(self) -> Hashing<R> {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.into_inner(),
        }
    }
}

/// The streaming pipeline, independent of HTTP so it can be tested on any reader.
pub fn write_image(source: impl Read, compression: Compression, target: &Path, report: &mut dyn FnMut(u64)) -> Result<Written, String> {
    let started = Instant::now();
    let hashing = Hashing { inner: source, hasher: Sha256::new(), bytes: 0 };
    let mut decoder = match compression {
        Compression::None => Decoder::Plain(hashing),
        Compression::Gzip => Decoder::Gzip(flate2::read::GzDecoder::new(hashing)),
        Compression::Zstd => Decoder::Zstd(Box::new(ruzstd::StreamingDecoder::new(hashing).map_err(|e| format!("zstd: {e}"))?)),
    };
    let mut disk = OpenOptions::new().write(true).open(target).map_err(|e| format!("open {}: {e}", target.display()))?;
    let mut buffer = vec![0u8; CHUNK];
    let mut written_hash = Sha256::new();
    let mut written: u64 = 0;
    let mut last_report = Instant::now();
    loop {
        let filled = fill(&mut decoder, &mut buffer).map_err(|e| format!("reading the image: {e}"))?;
        if filled == 0 {
            break;
        }
        disk.write_all(&buffer[..filled]).map_err(|e| format!("writing {} at byte {written}: {e}", target.display()))?;
        written_hash.update(&buffer[..filled]);
        written += filled as u64;
        if last_report.elapsed() >= Duration::from_secs(1) {
            report(written);
            last_report = Instant::now();
        }
    }
    disk.sync_all().map_err(|e| format!("fsync {}: {e}", target.display()))?;
    let mut hashing = decoder.into_hashing();
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| format!("reading the end of the image: {e}"))?;
    report(written);
    Ok(Written {
        stored_sha256: hex::encode(hashing.hasher.finalize()),
        stored_bytes: hashing.bytes,
        written_sha256: hex::encode(written_hash.finalize()),
        written_bytes: written,
        elapsed: started.elapsed(),
    })
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

fn hash_prefix(path: &Path, len: u64) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?.take(len);
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// An HTTP download that reconnects with `Range: bytes=<offset>-` when the connection breaks.
pub struct Download {
    http: ureq::Agent,
    url: String,
    token: Option<String>,
    offset: u64,
    total: Option<u64>,
    body: Option<Box<dyn Read + Send + Sync>>,
    attempts_left: u32,
}

impl Download {
    pub fn new(http: ureq::Agent, url: String, token: Option<String>) -> Download {
        Download { http, url, token, offset: 0, total: None, body: None, attempts_left: RESUME_ATTEMPTS }
    }

    fn open(&mut self) -> io::Result<()> {
        let mut request = self.http.get(&self.url);
        if let Some(token) = &self.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        if self.offset > 0 {
            request = request.set("Range", &format!("bytes={}-", self.offset));
        }
        let response = request.call().map_err(|e| match e {
            ureq::Error::Status(code, r) => {
                io::Error::other(format!("HTTP {code} for the image: {}", r.into_string().unwrap_or_default()))
            }
            other => io::Error::other(other.to_string()),
        })?;
        let length: Option<u64> = response.header("Content-Length").and_then(|v| v.parse().ok());
        match response.status() {
            200 if self.offset > 0 => return Err(io::Error::other("the server ignored the Range request: cannot resume")),
            200 => self.total = length,
            206 => {
                self.total = response
                    .header("Content-Range")
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|v| v.parse().ok())
                    .or(self.total);
            }
            code => return Err(io::Error::other(format!("unexpected HTTP {code} for the image"))),
        }
        self.body = Some(Box::new(response.into_reader()));
        Ok(())
    }

    /// Drops the broken connection and waits a little before the next attempt.
    fn retry(&mut self, why: &str) -> io::Result<()> {
        self.body = None;
        if self.attempts_left == 0 {
            return Err(io::Error::other(format!("download failed at byte {}: {why}", self.offset)));
        }
        self.attempts_left -= 1;
        log(format!("download interrupted at byte {} ({why}); resuming with Range", self.offset));
        std::thread::sleep(Duration::from_millis(500 * u64::from(RESUME_ATTEMPTS - self.attempts_left)));
        Ok(())
    }
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.body.is_none()
                && let Err(e) = self.open()
            {
                if e.to_string().starts_with("HTTP 4") || e.to_string().contains("ignored the Range") {
                    return Err(e);
                }
                self.retry(&e.to_string())?;
                continue;
            }
            let Some(body) = self.body.as_mut() else { continue };
            match body.read(buf) {
                Ok(0) if self.total.is_some_and(|t| self.offset < t) => self.retry("connection closed early")?,
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.retry(&e.to_string())?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn run_pipeline(stored: &[u8], compression: Compression, disk_len: usize) -> (Written, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk");
        std::fs::write(&disk, vec![0xee; disk_len]).unwrap();
        let mut reports = Vec::new();
        let written = write_image(stored, compression, &disk, &mut |n| reports.push(n)).unwrap();
        assert_eq!(reports.last().copied(), Some(written.written_bytes));
        (written, std::fs::read(&disk).unwrap())
    }

    #[test]
    fn raw_image_is_written_and_hashed() {
        let image = sample(CHUNK * 2 + 12345);
        let (w, disk) = run_pipeline(&image, Compression::None, image.len() + 100);
        assert_eq!(&disk[..image.len()], &image[..]);
        assert_eq!(w.stored_sha256, hex::encode(Sha256::digest(&image)));
        assert_eq!(w.written_bytes, image.len() as u64);
    }

    #[test]
    fn gzip_image_hashes_the_stored_bytes_and_writes_the_raw_ones() {
        let image = sample(3 << 20);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&image).unwrap();
        let stored = enc.finish().unwrap();
        let (w, disk) = run_pipeline(&stored, Compression::Gzip, image.len());
        assert_eq!(disk, image);
        assert_eq!(w.stored_sha256, hex::encode(Sha256::digest(&stored)));
        assert_eq!(w.written_sha256, hex::encode(Sha256::digest(&image)));
    }

    #[test]
    fn a_truncated_gzip_stream_is_an_error() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&sample(1 << 20)).unwrap();
        let stored = enc.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk");
        std::fs::write(&disk, vec![0; 2 << 20]).unwrap();
        assert!(write_image(&stored[..stored.len() / 2], Compression::Gzip, &disk, &mut |_| {}).is_err());
    }
}
