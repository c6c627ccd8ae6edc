//! Uploaded images on this daemon's disk (ARCHITECTURE.md, "images"): where their files live, how an
//! upload becomes one (hashed while written to a part file, renamed once whole), and, on a shared
//! pool, copies from peer daemons (`peers.rs`); what each image really is, judged when it is added
//! (`inspect.rs`). The REST handlers and the heartbeat both call it;
//! it knows nothing of HTTP handlers.

pub mod inspect;
mod peers;

pub use peers::PEER_HEADER;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::domain::{ImageId, Secret};
use crate::store::cluster::Member;
use crate::store::{Store, StoreError};

/// What can go wrong with an image's file; the API maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("upload interrupted: {0}")]
    Interrupted(String),
    #[error("the uploaded image is empty")]
    Empty,
    #[error("image {id}'s file is missing here ({}) and no peer daemon is alive", path.display())]
    NoPeer { id: ImageId, path: PathBuf },
    #[error("image {id} is not on this daemon and no peer gave a verified copy ({})", failures.join("; "))]
    NoVerifiedCopy { id: ImageId, failures: Vec<String> },
    #[error("image {id} is being copied from a peer daemon; retry")]
    CopyInProgress { id: ImageId },
    #[error("image {id}'s file is not on this daemon")]
    NotHere { id: ImageId },
    #[error("http client: {0}")]
    Client(String),
    #[error(transparent)]
    Inspect(#[from] inspect::InspectError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImageError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.to_owned();
        move |source| ImageError::Io { what, path, source }
    }
}

/// An upload written to its final file: the name it has under the image dir, its hash and size,
/// and its first bytes (for sniffing the compression).
#[derive(Debug)]
pub struct Received {
    pub file: String,
    pub sha256: String,
    pub size: u64,
    pub head: Vec<u8>,
}

/// This daemon's image files and the pool's other daemons it may copy them from.
pub struct Images {
    dir: PathBuf,
    store: Store,
    member: Arc<Member>,
    lease_ttl_ms: i64,
    /// The credential this daemon presents to its peers when it copies on its own (the heartbeat):
    /// the operator token, which every daemon of the pool accepts.
    peer_token: Arc<Secret>,
    /// The CA the pool's daemons serve their API under (PEM), trusted when copying from a peer.
    peer_ca: Option<Vec<u8>>,
    /// One copy of an image from a peer at a time.
    copies: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Images {
    /// `peer_ca`: the CA (PEM) the pool's daemons' certificates chain to, trusted when copying.
    pub fn new(data_dir: &Path, store: Store, member: Arc<Member>, lease_ttl_ms: i64, peer_token: Arc<Secret>, peer_ca: Option<Vec<u8>>) -> Images {
        Images { dir: data_dir.join("images"), store, member, lease_ttl_ms, peer_token, peer_ca, copies: Mutex::default() }
    }

    /// Where an uploaded image's file is kept.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Writes a body to a new file under the image dir while hashing it; the file gets its final
    /// name only once the whole body is there, and nothing is left behind on failure.
    pub async fn receive<S, B, E>(&self, body: S) -> Result<Received, ImageError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        tokio::fs::create_dir_all(&self.dir).await.map_err(ImageError::io("create", &self.dir))?;
        let mut suffix = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut suffix);
        let file = format!("{}.img", hex::encode(suffix));
        let partial = self.dir.join(format!(".{file}.part"));
        let written = match write_hashed(body, &partial).await {
            Ok(written) => written,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        let final_path = self.path(&file);
        if let Err(e) = tokio::fs::rename(&partial, &final_path).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(ImageError::Io { what: "rename upload", path: partial, source: e });
        }
        let (sha256, size, head) = written;
        Ok(Received { file, sha256, size, head })
    }

    /// Removes an image's file; a failure is logged, never returned (the row is gone already).
    pub async fn remove(&self, file: &str) {
        let path = self.path(file);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            tracing::warn!(path = %path.display(), "cannot remove image file: {e}");
        }
    }

    fn copy_lock(&self, image: ImageId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.copies.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(image.0).or_default().clone()
    }
}

async fn write_hashed<S, B, E>(mut body: S, path: &Path) -> Result<(String, u64, Vec<u8>), ImageError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let mut file = tokio::fs::File::create(path).await.map_err(ImageError::io("create", path))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut head = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ImageError::Interrupted(e.to_string()))?;
        let chunk = chunk.as_ref();
        if head.len() < 8 {
            head.extend(chunk.iter().take(8 - head.len()));
        }
        hasher.update(chunk);
        size += chunk.len() as u64;
        file.write_all(chunk).await.map_err(ImageError::io("write upload", path))?;
    }
    file.sync_all().await.map_err(ImageError::io("sync upload", path))?;
    if size == 0 {
        return Err(ImageError::Empty);
    }
    Ok((hex::encode(hasher.finalize()), size, head))
}
