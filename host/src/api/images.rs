//! `/v1/images`: streamed uploads, external URLs, and the image bytes for agents (with Range).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiResult};
use super::validate;
use crate::app::AppState;
use crate::domain::Compression;
use crate::store::images::{self, Image, NewImage};
use crate::store::switches::Key;
use crate::store::tasks;

/// Operator routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, register))
        .routes(routes!(upload).layer(axum::extract::DefaultBodyLimit::disable()))
        .routes(routes!(show, remove))
}

/// Routes that check their own token (operator or a task's image token).
pub fn data_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(data))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterImage {
    name: String,
    url: String,
    sha256: String,
    size: Option<u64>,
    /// Guessed from the URL's suffix when absent.
    compression: Option<String>,
}

fn check_sha256(value: &str) -> Result<String, ApiError> {
    let lower = value.to_ascii_lowercase();
    if lower.len() == 64 && lower.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(ApiError::BadRequest(format!("invalid sha256 {value:?}: expected 64 hex digits")))
    }
}

/// Registers an external image by URL and sha256; the agent fetches it from there.
#[utoipa::path(post, path = "/v1/images", operation_id = "register_image", tag = "images", request_body = RegisterImage,
    responses((status = 201, description = "Registered.", body = Image)))]
async fn register(State(state): State<AppState>, ApiJson(req): ApiJson<RegisterImage>) -> ApiResult<(StatusCode, Json<Image>)> {
    validate::name("image name", &req.name)?;
    let url = reqwest::Url::parse(&req.url).map_err(|e| ApiError::BadRequest(format!("invalid url {:?}: {e}", req.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::BadRequest(format!("invalid url {:?}: only http and https are supported", req.url)));
    }
    let compression = match req.compression {
        Some(c) => c.parse::<Compression>()?,
        None if url.path().ends_with(".gz") => Compression::Gzip,
        None if url.path().ends_with(".zst") => Compression::Zstd,
        None => Compression::None,
    };
    let new = NewImage { name: req.name, url: Some(req.url), file: None, sha256: check_sha256(&req.sha256)?, size: req.size, compression };
    let image = state.store.call(move |c| images::insert(c, new)).await?;
    tracing::info!(image = image.id, name = %image.name, "external image registered");
    Ok((StatusCode::CREATED, Json(image)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    name: String,
    /// Sniffed from the first bytes when absent.
    compression: Option<String>,
}

/// Streams the body to a file under the data dir while hashing it; the row appears only once the
/// whole file is there.
#[utoipa::path(post, path = "/v1/images/upload", operation_id = "upload_image", tag = "images", params(UploadQuery),
    request_body(content = String, content_type = "application/octet-stream", description = "The image bytes."),
    responses((status = 201, description = "Stored.", body = Image)))]
async fn upload(State(state): State<AppState>, Query(q): Query<UploadQuery>, request: Request) -> ApiResult<(StatusCode, Json<Image>)> {
    validate::name("image name", &q.name)?;
    let compression = q.compression.as_deref().map(str::parse::<Compression>).transpose()?;
    let name = q.name.clone();
    if state.store.call(move |c| images::name_taken(c, &name)).await? {
        return Err(ApiError::Conflict(format!("an image named {:?} already exists", q.name)));
    }
    let dir = state.config.data_dir.join("images");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| ApiError::Internal(format!("create {}: {e}", dir.display())))?;
    let mut suffix = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut suffix);
    let file_name = format!("{}.img", hex::encode(suffix));
    let partial = dir.join(format!(".{file_name}.part"));
    let result = receive(request.into_body(), &partial).await;
    let (sha256, size, head) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    let final_path = dir.join(&file_name);
    tokio::fs::rename(&partial, &final_path).await.map_err(|e| ApiError::Internal(format!("rename upload: {e}")))?;
    let compression = compression.unwrap_or_else(|| Compression::sniff(&head));
    let new = NewImage { name: q.name, url: None, file: Some(file_name), sha256, size: Some(size), compression };
    match state.store.call(move |c| images::insert(c, new)).await {
        Ok(image) => {
            tracing::info!(image = image.id, name = %image.name, size, "image uploaded");
            Ok((StatusCode::CREATED, Json(image)))
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&final_path).await;
            Err(e.into())
        }
    }
}

async fn receive(body: Body, path: &std::path::Path) -> Result<(String, u64, Vec<u8>), ApiError> {
    let mut file = tokio::fs::File::create(path).await.map_err(|e| ApiError::Internal(format!("create {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut head = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("upload interrupted: {e}")))?;
        if head.len() < 8 {
            head.extend(chunk.iter().take(8 - head.len()));
        }
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(|e| ApiError::Internal(format!("write upload: {e}")))?;
    }
    file.sync_all().await.map_err(|e| ApiError::Internal(format!("sync upload: {e}")))?;
    if size == 0 {
        return Err(ApiError::BadRequest("the uploaded image is empty".into()));
    }
    Ok((hex::encode(hasher.finalize()), size, head))
}

#[utoipa::path(get, path = "/v1/images", operation_id = "list_images", tag = "images",
    responses((status = 200, description = "Every image.", body = Vec<Image>)))]
async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Image>>> {
    Ok(Json(state.store.call(|c| images::list(c)).await?))
}

#[utoipa::path(get, path = "/v1/images/{id}", operation_id = "show_image", tag = "images", params(("id" = String, Path, description = "The image's id or name.")),
    responses((status = 200, description = "The image.", body = Image)))]
async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Image>> {
    let key = Key::parse(&id);
    Ok(Json(state.store.call(move |c| images::get(c, &key)).await?))
}

#[utoipa::path(delete, path = "/v1/images/{id}", operation_id = "delete_image", tag = "images", params(("id" = String, Path, description = "The image's id or name.")),
    responses((status = 204, description = "Deleted, with its file.")))]
async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let key = Key::parse(&id);
    let image = state.store.call(move |c| images::delete(c, &key)).await?;
    if let Some(file) = image.file {
        let path = state.config.data_dir.join("images").join(file);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            tracing::warn!(path = %path.display(), "cannot remove image file: {e}");
        }
    }
    tracing::info!(image = image.id, "image deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Marks a daemon's request for an image to a peer daemon.
const PEER_HEADER: &str = "x-metalhost-peer";

/// How long a request waits for another's copy from a peer, and how long a peer may stay silent
/// (before its answer, or between two chunks) before the copy is given up.
const PEER_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// On a shared pool, at each heartbeat: copies every uploaded image this daemon lacks from a live
/// peer, so the pool keeps its images when the daemon that took the upload dies. An image another
/// request is copying right now is left to it.
pub(crate) async fn replicate(state: &AppState) {
    let list = match state.store.call(|c| images::list(c)).await {
        Ok(list) => list,
        Err(e) => return tracing::warn!("image copies: cannot list images: {e}"),
    };
    for image in list {
        let Some(file) = &image.file else { continue };
        let path = state.config.data_dir.join("images").join(file);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            continue;
        }
        let lock = state.provisioner.image_lock(image.id);
        let Ok(_guard) = lock.try_lock() else { continue };
        if !tokio::fs::try_exists(&path).await.unwrap_or(false)
            && let Err(e) = fetch_from_peers(state, &image.sha256, image.id, &path, state.operator_token.expose()).await
        {
            tracing::warn!(image = image.id, "image not copied from a peer yet: {e}");
        }
    }
}

/// Copies an uploaded image from a live peer daemon into this daemon's image dir, verifying its
/// sha256 before it becomes visible (written under a temporary name, then renamed). `token` is
/// the caller's (operator or image token): tokens live in the shared database, so the peer
/// accepts it too.
async fn fetch_from_peers(state: &AppState, sha256: &str, id: i64, path: &std::path::Path, token: &str) -> Result<(), ApiError> {
    let me = state.member.name.clone();
    let ttl_ms = crate::provision::lease_ttl_ms(state);
    let peers = state.store.call(move |c| crate::store::cluster::peers(c, &me, ttl_ms)).await?;
    if peers.is_empty() {
        return Err(ApiError::Internal(format!("image {id}'s file is missing here ({}) and no peer daemon is alive", path.display())));
    }
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| ApiError::Internal(format!("http client: {e}")))?;
    let partial = path.with_extension(format!("peer-{}", std::process::id()));
    let mut failures = Vec::new();
    tracing::info!(image = id, peers = peers.len(), "copying the image from a peer daemon");
    for peer in peers {
        match fetch_one(&client, &peer, id, token, &partial, sha256).await {
            Ok(bytes) => {
                tokio::fs::rename(&partial, path).await.map_err(|e| ApiError::Internal(format!("rename {}: {e}", partial.display())))?;
                tracing::info!(image = id, %peer, bytes, "fetched the image from a peer daemon; sha256 verified");
                return Ok(());
            }
            Err(why) => {
                let _ = tokio::fs::remove_file(&partial).await;
                tracing::warn!(image = id, %peer, "cannot fetch the image from this peer: {why}");
                failures.push(format!("{peer}: {why}"));
            }
        }
    }
    Err(ApiError::Unavailable(format!("image {id} is not on this daemon and no peer gave a verified copy ({})", failures.join("; "))))
}

async fn fetch_one(client: &reqwest::Client, peer: &str, id: i64, token: &str, to: &std::path::Path, sha256: &str) -> Result<u64, String> {
    let request = client.get(format!("{}/v1/images/{id}/data", peer.trim_end_matches('/'))).bearer_auth(token).header(PEER_HEADER, "1").send();
    let response =
        tokio::time::timeout(PEER_WAIT, request).await.map_err(|_| format!("no answer in {} s", PEER_WAIT.as_secs()))?.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    if let Some(dir) = to.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let mut out = tokio::fs::File::create(to).await.map_err(|e| format!("create {}: {e}", to.display()))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(PEER_WAIT, stream.next()).await.map_err(|_| format!("silent for {} s", PEER_WAIT.as_secs()))? {
        let chunk = chunk.map_err(|e| e.to_string())?;
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        out.write_all(&chunk).await.map_err(|e| format!("write: {e}"))?;
    }
    out.sync_all().await.map_err(|e| format!("sync: {e}"))?;
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        return Err(format!("sha256 {got} is not the image's {sha256}"));
    }
    Ok(bytes)
}

/// `bytes=N-` or `bytes=N-M`: the one range form downloads use to resume.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    let text = value.to_str().unwrap_or("");
    let spec = text.strip_prefix("bytes=").ok_or_else(|| ApiError::BadRequest(format!("unsupported range {text:?}")))?;
    let (start, end) = spec.split_once('-').ok_or_else(|| ApiError::BadRequest(format!("invalid range {text:?}")))?;
    let start: u64 = start.trim().parse().map_err(|_| ApiError::BadRequest(format!("unsupported range {text:?}")))?;
    let end: u64 = if end.trim().is_empty() {
        size.saturating_sub(1)
    } else {
        end.trim().parse().map_err(|_| ApiError::BadRequest(format!("invalid range {text:?}")))?
    };
    if start >= size || end < start {
        return Err(ApiError::RangeNotSatisfiable(size));
    }
    Ok(Some((start, end.min(size - 1))))
}

#[utoipa::path(get, path = "/v1/images/{id}/data", operation_id = "image_data", tag = "images",
    params(("id" = i64, Path, description = "The image's id."), ("Range" = Option<String>, Header, description = "bytes=START-[END]"),
        ("X-Metalhost-Peer" = Option<String>, Header, description = "Set by a daemon of the same pool fetching an image it lacks: answer 404 rather than fetch from another peer.")),
    responses(
        (status = 200, description = "The whole image (a daemon that lacks an uploaded image first copies it from a peer daemon and checks its sha256).", body = String, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range.", body = String, content_type = "application/octet-stream")))]
async fn data(State(state): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> ApiResult<Response> {
    let token = super::bearer(&headers).unwrap_or("").to_owned();
    let operator = super::auth::is_operator(&state, &token);
    let lookup_token = token.clone();
    let image = state
        .store
        .call(move |c| {
            let token = lookup_token;
            let image = images::get(c, &Key::Id(id))?;
            if operator {
                return Ok(Some(image));
            }
            let task = tasks::by_image_token(c, &token)?;
            Ok(task.filter(|t| t.image == Some(image.id())).map(|_| image))
        })
        .await;
    let image = match image {
        Ok(Some(image)) => image,
        // Without a valid token, do not even say whether the image exists.
        Ok(None) | Err(crate::store::StoreError::NotFound(_)) => return Err(ApiError::Unauthorized),
        Err(e) => return Err(e.into()),
    };
    let Some(file) = image.file else {
        return Err(ApiError::Conflict(format!("image {:?} is external: fetch it from its url", image.name)));
    };
    let path = state.config.data_dir.join("images").join(&file);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        // A peer asking: answer with what is here, never ask on (two daemons lacking the image
        // would each wait for the other).
        if headers.contains_key(PEER_HEADER) {
            return Err(ApiError::NotFound(format!("image {}'s file is not on this daemon", image.id)));
        }
        // Uploaded through another daemon of the pool: fetch it from one that has it, once.
        let lock = state.provisioner.image_lock(image.id);
        // Never wait without end behind another request's copy: the caller retries (an agent
        // moves on to another daemon of the pool, where the image may already be).
        let Ok(_guard) = tokio::time::timeout(PEER_WAIT, lock.lock()).await else {
            tracing::warn!(image = image.id, "still copying the image from a peer daemon; asked the caller to retry");
            return Err(ApiError::Unavailable(format!("image {} is being copied from a peer daemon; retry", image.id)));
        };
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            fetch_from_peers(&state, &image.sha256, image.id, &path, &token).await?;
        }
    }
    let mut handle = tokio::fs::File::open(&path).await.map_err(|e| ApiError::Internal(format!("open {}: {e}", path.display())))?;
    let size = handle.metadata().await.map_err(|e| ApiError::Internal(format!("stat image: {e}")))?.len();
    let range = parse_range(&headers, size)?;
    let (status, start, len) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        None => (StatusCode::OK, 0, size),
    };
    handle.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| ApiError::Internal(format!("seek image: {e}")))?;
    let reader = tokio::io::AsyncReadExt::take(handle, len);
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20));
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if range.is_some() {
        let value = format!("bytes {start}-{}/{size}", start + len - 1);
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}
