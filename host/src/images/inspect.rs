//! Every image is judged when it is added (ARCHITECTURE.md, "images"): its real format from its
//! bytes (`metalhost-image-format`, the same checks the agent runs again), its virtual size, and
//! for qcow2 whether it is safe to stream. An upload is read from its file here; a URL through
//! HTTP Range requests, reading only the header and tables. A refused image is never stored.

use std::io::Read;
use std::path::PathBuf;

use metalhost_image_format::{self as format, Detected, Failed, HEAD_LEN, ReadAt};

use crate::domain::{Compression, ImageFormat};

/// An accepted image: what it is, and the reason it was accepted (`image show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub format: ImageFormat,
    /// The bytes it puts on a disk; unknown for an image compressed whole.
    pub virtual_size: Option<u64>,
    /// The served file's length.
    pub file_size: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("image refused: {0}")]
    Refused(String),
    #[error("reading the image to inspect it: {0}")]
    Read(String),
}

/// What the operator said the image is (`None`: not said).
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    pub format: Option<ImageFormat>,
    pub compression: Compression,
}

/// Judges an uploaded file, off the async workers.
pub async fn file(path: PathBuf, declared: Declared) -> Result<Verdict, InspectError> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| InspectError::Read(format!("open {}: {e}", path.display())))?;
        let size = file.metadata().map_err(|e| InspectError::Read(e.to_string()))?.len();
        judge(&mut FileAt(file), size, declared)
    })
    .await
    .map_err(|e| InspectError::Read(format!("the inspection task failed: {e}")))?
}

/// Judges the image at a URL with Range requests (only its header and tables are read).
pub async fn url(url: String, declared: Declared) -> Result<Verdict, InspectError> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| InspectError::Read(e.to_string()))?;
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut at = HttpAt::open(client, url, handle)?;
        let size = at.size;
        if !at.ranges && declared.compression == Compression::None {
            return judge_head(&at.head, size, &at.url, declared);
        }
        judge(&mut at, size, declared)
    })
    .await
    .map_err(|e| InspectError::Read(format!("the inspection task failed: {e}")))?
}

fn judge<R: ReadAt<Error = String>>(r: &mut R, size: u64, declared: Declared) -> Result<Verdict, InspectError> {
    let refused = |e: Failed<String>| match e {
        Failed::Refused(why) => InspectError::Refused(why.to_string()),
        Failed::Read(why) => InspectError::Read(why),
    };
    let verdict = match declared.compression {
        Compression::None => {
            let found = format::inspect(r, size, true).map_err(refused)?;
            let format = if found.qcow2.is_some() { ImageFormat::Qcow2 } else { ImageFormat::Raw };
            Verdict { format, virtual_size: Some(found.virtual_size), file_size: size, reason: found.summary }
        }
        compression => {
            let mut head = vec![0u8; size.min(1 << 20) as usize];
            r.read_at(0, &mut head).map_err(InspectError::Read)?;
            let inner = decompressed_head(&head, compression);
            match format::sniff(&inner) {
                Detected::Raw => Verdict {
                    format: ImageFormat::Raw,
                    virtual_size: None,
                    file_size: size,
                    reason: format!("raw, {compression}-compressed ({size} bytes stored)"),
                },
                Detected::Qcow2 { .. } => {
                    return Err(InspectError::Refused(format!(
                        "a qcow2 image compressed whole ({compression}) cannot be streamed: add the .qcow2 itself (its clusters may be compressed)"
                    )));
                }
                Detected::Foreign(f) => return Err(InspectError::Refused(format!("{} (inside {compression})", format::Refusal::Foreign(f)))),
            }
        }
    };
    if let Some(said) = declared.format
        && said != verdict.format
    {
        return Err(InspectError::Refused(format!("declared {said} but the file is {}", verdict.format)));
    }
    Ok(verdict)
}

/// A server that ignores Range gives only the head without downloading the whole file: enough
/// to refuse a foreign format or a qcow2 (which the agent reads out of order), and to accept raw.
fn judge_head(head: &[u8], size: u64, url: &str, declared: Declared) -> Result<Verdict, InspectError> {
    let format = match format::sniff(head) {
        Detected::Raw => ImageFormat::Raw,
        Detected::Qcow2 { .. } => {
            return Err(InspectError::Refused(format!(
                "{url} ignores Range requests, which a qcow2 image needs (the agent reads its tables out of order)"
            )));
        }
        Detected::Foreign(f) => return Err(InspectError::Refused(format::Refusal::Foreign(f).to_string())),
    };
    if let Some(said) = declared.format
        && said != format
    {
        return Err(InspectError::Refused(format!("declared {said} but the file is {format}")));
    }
    let reason = format!("raw, {size} bytes (the server ignores Range: only its first bytes were inspected)");
    Ok(Verdict { format, virtual_size: Some(size), file_size: size, reason })
}

/// The first bytes inside a gzip or zstd stream (as many as the stored head gives, up to
/// [`HEAD_LEN`]); a damaged stream yields what came before the damage.
fn decompressed_head(head: &[u8], compression: Compression) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD_LEN);
    let mut reader: Box<dyn Read + '_> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(head)),
        Compression::Zstd => match ruzstd::StreamingDecoder::new(head) {
            Ok(d) => Box::new(d),
            Err(_) => return out,
        },
        Compression::None => Box::new(head),
    };
    let mut buf = [0u8; 4096];
    while out.len() < HEAD_LEN {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

struct FileAt(std::fs::File);

impl ReadAt for FileAt {
    type Error = String;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset).map_err(|e| format!("read {} bytes at {offset}: {e}", buf.len()))
    }
}

/// An image at a URL read with Range requests; the first answer gives its length. A server that
/// ignores Range can still serve a raw image (the agent then streams it whole), but not a qcow2.
struct HttpAt {
    client: reqwest::Client,
    url: String,
    handle: tokio::runtime::Handle,
    head: Vec<u8>,
    size: u64,
    ranges: bool,
}

impl HttpAt {
    fn open(client: reqwest::Client, url: String, handle: tokio::runtime::Handle) -> Result<HttpAt, InspectError> {
        let read = |why: String| InspectError::Read(format!("{url}: {why}"));
        let (head, size, ranges) = handle
            .block_on(async {
                let response = client.get(&url).header(reqwest::header::RANGE, format!("bytes=0-{}", HEAD_LEN - 1)).send().await?;
                let status = response.status();
                let total = response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit_once('/'))
                    .and_then(|(_, t)| t.parse::<u64>().ok());
                let length = response.content_length();
                let mut head = Vec::new();
                let mut response = response.error_for_status()?;
                while head.len() < HEAD_LEN {
                    match response.chunk().await? {
                        Some(chunk) => head.extend_from_slice(&chunk),
                        None => break,
                    }
                }
                head.truncate(HEAD_LEN);
                Ok::<_, reqwest::Error>((head, if status.as_u16() == 206 { total } else { length }, status.as_u16() == 206))
            })
            .map_err(|e| read(e.to_string()))?;
        let size = size.ok_or_else(|| read("the server did not say the image's length".into()))?;
        Ok(HttpAt { client, url, handle, head, size, ranges })
    }
}

impl ReadAt for HttpAt {
    type Error = String;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
        let end = offset + buf.len() as u64;
        if end <= self.head.len() as u64 {
            buf.copy_from_slice(&self.head[offset as usize..end as usize]);
            return Ok(());
        }
        if !self.ranges {
            return Err(format!("{} ignores Range requests, which a qcow2 image needs (the agent reads its tables out of order)", self.url));
        }
        let (client, url) = (&self.client, &self.url);
        let got = self.handle.block_on(async {
            let response = client.get(url).header(reqwest::header::RANGE, format!("bytes={offset}-{}", end - 1)).send().await?.error_for_status()?;
            if response.status().as_u16() != 206 {
                return Ok(None);
            }
            response.bytes().await.map(Some)
        });
        match got {
            Ok(Some(bytes)) if bytes.len() == buf.len() => {
                buf.copy_from_slice(&bytes);
                Ok(())
            }
            Ok(_) => Err(format!("{url}: a Range request for bytes {offset}-{} was not answered with them", end - 1)),
            Err(e) => Err(format!("{url}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Bytes(Vec<u8>);
    impl ReadAt for Bytes {
        type Error = String;
        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), String> {
            let at = offset as usize;
            buf.copy_from_slice(self.0.get(at..at + buf.len()).ok_or("past the end")?);
            Ok(())
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn declared(format: Option<ImageFormat>, compression: Compression) -> Declared {
        Declared { format, compression }
    }

    #[test]
    fn what_hides_inside_a_compressed_image_is_judged_too() {
        let mut disk = vec![0u8; 300_000];
        disk[510] = 0x55;
        let stored = gzip(&disk);
        let v = judge(&mut Bytes(stored.clone()), stored.len() as u64, declared(None, Compression::Gzip)).unwrap();
        assert_eq!((v.format, v.virtual_size), (ImageFormat::Raw, None));
        assert!(v.reason.starts_with("raw, gzip-compressed"), "{}", v.reason);
        let mut qcow = disk.clone();
        qcow[..8].copy_from_slice(b"QFI\xfb\0\0\0\x03");
        let stored = gzip(&qcow);
        let e = judge(&mut Bytes(stored.clone()), stored.len() as u64, declared(None, Compression::Gzip)).unwrap_err().to_string();
        assert!(e.contains("a qcow2 image compressed whole (gzip) cannot be streamed"), "{e}");
        let mut vmdk = disk;
        vmdk[..4].copy_from_slice(b"KDMV");
        let stored = gzip(&vmdk);
        let e = judge(&mut Bytes(stored.clone()), stored.len() as u64, declared(None, Compression::Gzip)).unwrap_err().to_string();
        assert_eq!(e, "image refused: VMDK images are not supported: convert it to raw or qcow2 first (inside gzip)");
    }

    #[test]
    fn a_declared_format_must_match_the_bytes() {
        let disk = vec![0u8; 8192];
        let e = judge(&mut Bytes(disk.clone()), 8192, declared(Some(ImageFormat::Qcow2), Compression::None)).unwrap_err().to_string();
        assert_eq!(e, "image refused: declared qcow2 but the file is raw");
        let v = judge(&mut Bytes(disk), 8192, declared(Some(ImageFormat::Raw), Compression::None)).unwrap();
        assert_eq!((v.format, v.virtual_size, v.reason.as_str()), (ImageFormat::Raw, Some(8192), "raw, 8192 bytes"));
    }
}
