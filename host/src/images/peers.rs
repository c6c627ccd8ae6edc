//! Copies of uploaded images between the daemons of a shared pool: at each heartbeat every upload
//! this daemon lacks is copied from a live peer, and a request for an image that is not here yet
//! copies it first. A copy is verified against the image's sha256 before it becomes visible.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ImageError, Images};
use crate::domain::ImageId;
use crate::store::images::{self, Image};

/// Marks a daemon's request for an image to a peer daemon.
pub const PEER_HEADER: &str = "x-metalhost-peer";

/// How long a request waits for another's copy from a peer, and how long a peer may stay silent
/// (before its answer, or between two chunks) before the copy is given up.
const PEER_WAIT: Duration = Duration::from_secs(20);

/// Why one peer gave no verified copy.
#[derive(Debug, thiserror::Error)]
enum CopyFailure {
    #[error("no answer in {} s", PEER_WAIT.as_secs())]
    NoAnswer,
    #[error("silent for {} s", PEER_WAIT.as_secs())]
    Silent,
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("answered {0}")]
    Status(reqwest::StatusCode),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
    #[error("sha256 {got} is not the image's {want}")]
    Mismatch { got: String, want: String },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CopyFailure {
    let path = path.display().to_string();
    move |source| CopyFailure::Io { what, path, source }
}

impl Images {
    /// On a shared pool, at each heartbeat: copies every uploaded image this daemon lacks from a
    /// live peer, so the pool keeps its images when the daemon that took the upload dies. An image
    /// another request is copying right now is left to it.
    pub async fn replicate(&self) {
        let list = match self.store.call(|c| images::list(c)).await {
            Ok(list) => list,
            Err(e) => return tracing::warn!("image copies: cannot list images: {e}"),
        };
        for image in list {
            let Some(file) = &image.file else { continue };
            let path = self.path(file);
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                continue;
            }
            let lock = self.copy_lock(image.id);
            let Ok(_guard) = lock.try_lock() else { continue };
            if !tokio::fs::try_exists(&path).await.unwrap_or(false)
                && let Err(e) = self.fetch_from_peers(&image, &path, self.peer_token.expose()).await
            {
                tracing::warn!(image = image.id.0, "image not copied from a peer yet: {e}");
            }
        }
    }

    /// The path of an uploaded image's file on this daemon, copied from a peer first if it is not
    /// here. `token` is the caller's (operator or image token): tokens live in the shared
    /// database, so a peer accepts it too. A peer's own request (`from_peer`) is answered with what
    /// is here and never asks on: two daemons lacking the image would each wait for the other.
    pub async fn local_file(&self, image: &Image, file: &str, token: &str, from_peer: bool) -> Result<std::path::PathBuf, ImageError> {
        let path = self.path(file);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(path);
        }
        if from_peer {
            return Err(ImageError::NotHere { id: image.id });
        }
        // Uploaded through another daemon of the pool: fetch it from one that has it, once. Never
        // wait without end behind another request's copy: the caller retries (an agent moves on
        // to another daemon of the pool, where the image may already be).
        let lock = self.copy_lock(image.id);
        let Ok(_guard) = tokio::time::timeout(PEER_WAIT, lock.lock()).await else {
            tracing::warn!(image = image.id.0, "still copying the image from a peer daemon; asked the caller to retry");
            return Err(ImageError::CopyInProgress { id: image.id });
        };
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            self.fetch_from_peers(image, &path, token).await?;
        }
        Ok(path)
    }

    /// Copies an uploaded image from a live peer daemon to `path`, verifying its sha256 before it
    /// becomes visible (written under a temporary name, then renamed).
    async fn fetch_from_peers(&self, image: &Image, path: &Path, token: &str) -> Result<(), ImageError> {
        let (me, ttl_ms, id) = (self.member.name.clone(), self.lease_ttl_ms, image.id);
        let peers = self.store.call(move |c| crate::store::cluster::peers(c, &me, ttl_ms)).await?;
        if peers.is_empty() {
            return Err(ImageError::NoPeer { id, path: path.to_owned() });
        }
        let mut client = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        if let Some(pem) = &self.peer_ca {
            client = client.add_root_certificate(reqwest::Certificate::from_pem(pem).map_err(|e| ImageError::Client(e.to_string()))?);
        }
        let client = client.build().map_err(|e| ImageError::Client(e.to_string()))?;
        let partial = path.with_extension(format!("peer-{}", std::process::id()));
        let mut failures = Vec::new();
        tracing::info!(image = id.0, peers = peers.len(), "copying the image from a peer daemon");
        for peer in peers {
            match fetch_one(&client, &peer, id, token, &partial, &image.sha256).await {
                Ok(bytes) => {
                    tokio::fs::rename(&partial, path).await.map_err(ImageError::io("rename", &partial))?;
                    tracing::info!(image = id.0, %peer, bytes, "fetched the image from a peer daemon; sha256 verified");
                    return Ok(());
                }
                Err(why) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    tracing::warn!(image = id.0, %peer, "cannot fetch the image from this peer: {why}");
                    failures.push(format!("{peer}: {why}"));
                }
            }
        }
        Err(ImageError::NoVerifiedCopy { id, failures })
    }
}

async fn fetch_one(client: &reqwest::Client, peer: &str, id: ImageId, token: &str, to: &Path, sha256: &str) -> Result<u64, CopyFailure> {
    let request = client.get(format!("{}/v1/images/{id}/data", peer.trim_end_matches('/'))).bearer_auth(token).header(PEER_HEADER, "1").send();
    let response = tokio::time::timeout(PEER_WAIT, request).await.map_err(|_| CopyFailure::NoAnswer)??;
    if !response.status().is_success() {
        return Err(CopyFailure::Status(response.status()));
    }
    if let Some(dir) = to.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io("create", dir))?;
    }
    let mut out = tokio::fs::File::create(to).await.map_err(io("create", to))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(PEER_WAIT, stream.next()).await.map_err(|_| CopyFailure::Silent)? {
        let chunk = chunk?;
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(io("write", to))?;
    }
    out.sync_all().await.map_err(io("sync", to))?;
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        return Err(CopyFailure::Mismatch { got, want: sha256.to_owned() });
    }
    Ok(bytes)
}
