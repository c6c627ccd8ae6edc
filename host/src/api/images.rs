//! `/v1/images`: streamed uploads, external URLs, and the image bytes for agents (with Range).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::Deserialize;

use tokio::io::AsyncSeekExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiResult};
use super::policy::Access;
use super::{schema, validate};
use crate::api::state::AppState;
use crate::domain::{Compression, ImageFormat, Key};
use crate::images::inspect::{self, Declared};
use crate::images::{ImageError, PEER_HEADER};
use crate::provision::WorkflowCore;
use crate::store::images::{self, Image, NewImage};
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
    #[schema(value_type = schema::ResourceName)]
    name: String,
    #[schema(schema_with = image_url_schema)]
    url: String,
    #[schema(value_type = schema::Sha256)]
    sha256: String,
    /// Bytes, when known: the agent checks the download against it.
    #[schema(minimum = 0)]
    size: Option<i64>,
    /// Guessed from the URL's suffix when absent.
    #[schema(value_type = Option<schema::CompressionName>)]
    compression: Option<String>,
    /// `raw` or `qcow2`: told from the bytes when absent, refused when the bytes disagree.
    #[schema(value_type = Option<schema::ImageFormatName>)]
    format: Option<String>,
    /// The project (id or name) the image is for; none: a public image (admins only).
    #[schema(min_length = 1)]
    project: Option<String>,
}

/// What an image URL may be (the document states the same pattern): http or https, a host name
/// whose labels start with a letter or a dotted IPv4 address, a port, a path and a query of plain
/// URL characters. Narrower than what a URL parser takes, so every accepted URL reaches the agent
/// as written.
const IMAGE_URL: &str = r"^https?://([A-Za-z]([A-Za-z0-9]|-[A-Za-z0-9])*(\.[A-Za-z]([A-Za-z0-9]|-[A-Za-z0-9])*)*|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/([A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(\?([A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$";

/// `IMAGE_URL` as the document states it.
fn image_url_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(IMAGE_URL))
        .description(Some("Where the agent fetches the image: http or https."))
        .examples(["https://images.example.net/debian-12.raw.zst"])
        .build()
}

fn image_url(value: &str) -> Result<reqwest::Url, ApiError> {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| regex::Regex::new(IMAGE_URL).ok());
    let refuse = |why: &str| ApiError::BadRequest(format!("invalid url {value:?}: {why}"));
    let matches = PATTERN.as_ref().ok_or_else(|| ApiError::Internal("the image URL pattern does not compile".into()))?.is_match(value);
    if !matches {
        return Err(refuse("expected http(s)://host[:port][/path][?query] with a host name or an IPv4 address"));
    }
    reqwest::Url::parse(value).map_err(|e| refuse(&e.to_string()))
}

fn size(value: Option<i64>) -> Result<Option<u64>, ApiError> {
    value.map(|v| u64::try_from(v).map_err(|_| ApiError::BadRequest(format!("size must not be negative, got {v}")))).transpose()
}

fn image_format(value: &str) -> Result<ImageFormat, ApiError> {
    validate::one_of("format", value, ImageFormat::ALL, ImageFormat::as_str)
}

fn compression(value: &str) -> Result<Compression, ApiError> {
    validate::one_of("compression", value, Compression::ALL, Compression::as_str)
}

fn check_sha256(value: &str) -> Result<String, ApiError> {
    let lower = value.to_ascii_lowercase();
    if lower.len() == 64 && lower.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(ApiError::BadRequest(format!("invalid sha256 {value:?}: expected 64 hex digits")))
    }
}

/// Registers an external image by URL and sha256; the agent fetches it from there. The image is
/// inspected first (its header and tables, with Range requests): a refused one is not stored.
#[utoipa::path(post, path = "/v1/images", operation_id = "register_image", extensions(("x-metalhost-policy" = json!("create-in-project"))), tag = "images", request_body = RegisterImage,
    responses((status = 201, description = "Registered.", body = Image), (status = 422, description = "Refused by the inspection, or its URL could not be read.", body = metalhost_wire::ErrorBody)))]
async fn register(State(core): State<WorkflowCore>, access: Access, ApiJson(req): ApiJson<RegisterImage>) -> ApiResult<(StatusCode, Json<Image>)> {
    validate::name("image name", &req.name)?;
    let project_id = access.create_in(&core, req.project.as_deref()).await?;
    let url = image_url(&req.url)?;
    let compression = match req.compression {
        Some(c) => compression(&c)?,
        None if url.path().ends_with(".gz") => Compression::Gzip,
        None if url.path().ends_with(".zst") => Compression::Zstd,
        None => Compression::None,
    };
    let sha256 = check_sha256(&req.sha256)?;
    let format = req.format.as_deref().map(image_format).transpose()?;
    let said_size = size(req.size)?;
    // Before reading the URL: a taken name needs no inspection to be refused.
    let name = req.name.clone();
    if core.store.call(move |c| images::name_taken(c, &name)).await? {
        return Err(ApiError::Conflict(format!("an image named {:?} already exists", req.name)));
    }
    let verdict = inspect::url(req.url.clone(), Declared { format, compression }).await.map_err(ImageError::from)?;
    if let Some(said) = said_size
        && said != verdict.file_size
    {
        return Err(ApiError::Unprocessable(format!("image refused: declared size {said} but the URL serves {} bytes", verdict.file_size)));
    }
    tracing::info!(name = %req.name, format = %verdict.format, "external image inspected: {}", verdict.reason);
    let new = NewImage {
        name: req.name,
        url: Some(req.url),
        file: None,
        sha256,
        size: Some(verdict.file_size),
        compression,
        format: verdict.format,
        virtual_size: verdict.virtual_size,
        verdict_reason: verdict.reason,
        project_id,
    };
    let image = core.store.call(move |c| images::insert(c, new)).await?;
    tracing::info!(image = image.id.0, name = %image.name, "external image registered");
    Ok((StatusCode::CREATED, Json(image)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    #[param(value_type = schema::ResourceName)]
    name: String,
    /// Sniffed from the first bytes when absent.
    #[param(value_type = Option<schema::CompressionName>)]
    compression: Option<String>,
    /// `raw` or `qcow2`: told from the bytes when absent, refused when the bytes disagree.
    #[param(value_type = Option<schema::ImageFormatName>)]
    format: Option<String>,
    /// The project (id or name) the image is for; none: a public image (admins only).
    #[param(min_length = 1)]
    project: Option<String>,
}

/// Streams the body to a file under the data dir while hashing it, then inspects it; the row
/// appears only once the whole file is there and accepted (a refused file is removed).
#[utoipa::path(post, path = "/v1/images/upload", operation_id = "upload_image", extensions(("x-metalhost-policy" = json!("create-in-project"))), tag = "images", params(UploadQuery),
    request_body(content = String, content_type = "application/octet-stream", description = "The image bytes."),
    responses((status = 201, description = "Stored.", body = Image), (status = 422, description = "Refused by the inspection; nothing is kept.", body = metalhost_wire::ErrorBody)))]
async fn upload(
    State(core): State<WorkflowCore>,
    access: Access,
    Query(q): Query<UploadQuery>,
    request: Request,
) -> ApiResult<(StatusCode, Json<Image>)> {
    validate::name("image name", &q.name)?;
    let project_id = access.create_in(&core, q.project.as_deref()).await?;
    let compression = q.compression.as_deref().map(compression).transpose()?;
    let format = q.format.as_deref().map(image_format).transpose()?;
    let name = q.name.clone();
    if core.store.call(move |c| images::name_taken(c, &name)).await? {
        return Err(ApiError::Conflict(format!("an image named {:?} already exists", q.name)));
    }
    let received = core.images.receive(request.into_body().into_data_stream()).await?;
    let compression = compression.unwrap_or_else(|| Compression::sniff(&received.head));
    let (file, size) = (received.file.clone(), received.size);
    // Judged before the row exists: a refused upload leaves neither row nor file.
    let verdict = match inspect::file(core.images.path(&file), Declared { format, compression }).await {
        Ok(verdict) => verdict,
        Err(e) => {
            core.images.remove(&file).await;
            tracing::info!(name = %q.name, "upload refused: {e}");
            return Err(ImageError::from(e).into());
        }
    };
    let new = NewImage {
        name: q.name,
        url: None,
        file: Some(received.file),
        sha256: received.sha256,
        size: Some(size),
        compression,
        format: verdict.format,
        virtual_size: verdict.virtual_size,
        verdict_reason: verdict.reason,
        project_id,
    };
    match core.store.call(move |c| images::insert(c, new)).await {
        Ok(image) => {
            tracing::info!(image = image.id.0, name = %image.name, size, "image uploaded");
            Ok((StatusCode::CREATED, Json(image)))
        }
        Err(e) => {
            core.images.remove(&file).await;
            Err(e.into())
        }
    }
}

#[utoipa::path(get, path = "/v1/images", operation_id = "list_images", extensions(("x-metalhost-policy" = json!("signed-in"))), tag = "images",
    responses((status = 200, description = "Every image.", body = Vec<Image>)))]
async fn list(State(core): State<WorkflowCore>, access: Access) -> ApiResult<Json<Vec<Image>>> {
    let visible = access.visible_projects();
    Ok(Json(
        core.store
            .call(move |c| match visible {
                None => images::list(c),
                Some(projects) => images::list_visible(c, &projects),
            })
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/images/{id}", operation_id = "show_image", extensions(("x-metalhost-policy" = json!("read:image"))), tag = "images", params(("id" = String, Path, description = "The image's id or name.")),
    responses((status = 200, description = "The image.", body = Image)))]
async fn show(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<Json<Image>> {
    let key = Key::parse(&id);
    Ok(Json(core.store.call(move |c| images::get(c, &key)).await?))
}

#[utoipa::path(delete, path = "/v1/images/{id}", operation_id = "delete_image", extensions(("x-metalhost-policy" = json!("write:image"))), tag = "images", params(("id" = String, Path, description = "The image's id or name.")),
    responses((status = 204, description = "Deleted, with its file.")))]
async fn remove(State(core): State<WorkflowCore>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let key = Key::parse(&id);
    let image = core.store.call(move |c| images::delete(c, &key)).await?;
    if let Some(file) = image.file {
        core.images.remove(&file).await;
    }
    tracing::info!(image = image.id.0, "image deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `bytes=N-` or `bytes=N-M`: the one range form downloads use to resume. Anything else (another
/// unit, several ranges, a suffix range) is ignored and the whole image sent, as RFC 9110 (14.2)
/// lets a server do.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    let Some((start, end)) = value.to_str().ok().and_then(|text| text.strip_prefix("bytes=")).and_then(|spec| spec.split_once('-')) else {
        return Ok(None);
    };
    let Ok(start) = start.trim().parse::<u64>() else { return Ok(None) };
    let end: u64 = match end.trim() {
        "" => size.saturating_sub(1),
        end => match end.parse() {
            Ok(end) => end,
            Err(_) => return Ok(None),
        },
    };
    if start >= size || end < start {
        return Err(ApiError::RangeNotSatisfiable(size));
    }
    Ok(Some((start, end.min(size - 1))))
}

#[utoipa::path(get, path = "/v1/images/{id}/data", operation_id = "image_data", extensions(("x-metalhost-policy" = json!("agent"))), tag = "images",
    params(("id" = i64, Path, minimum = 1, description = "The image's id."),
        ("Range" = Option<String>, Header, description = "bytes=START-[END]: one range, to resume a download. Any other value is ignored (the whole image is sent), as RFC 9110 lets a server do."),
        ("X-Metalhost-Peer" = Option<String>, Header, description = "Set by a daemon of the same pool fetching an image it lacks: answer 404 rather than fetch from another peer.")),
    responses(
        (status = 200, description = "The whole image (a daemon that lacks an uploaded image first copies it from a peer daemon and checks its sha256).", body = String, content_type = "application/octet-stream"),
        (status = 206, description = "The requested range.", body = String, content_type = "application/octet-stream"),
        (status = 416, description = "The range starts beyond the end of the image.", body = metalhost_wire::ErrorBody)))]
async fn data(State(state): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> ApiResult<Response> {
    let token = super::auth::bearer(&headers).unwrap_or("").to_owned();
    let operator = super::auth::is_operator(&state, &token);
    let core = &state.core;
    let lookup_token = token.clone();
    let image = core
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
    let Some(file) = image.file.clone() else {
        return Err(ApiError::Conflict(format!("image {:?} is external: fetch it from its url", image.name)));
    };
    let path = core.images.local_file(&image, &file, &token, headers.contains_key(PEER_HEADER)).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_states_the_url_rule_the_server_checks() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(RegisterImage::schema()).expect("json");
        assert_eq!(schema["properties"]["url"]["pattern"], IMAGE_URL);
        for ok in ["http://127.0.0.1:38123/os.img", "https://images.example.net/debian-12.raw.zst?x=1", "http://host/a%20b"] {
            assert!(image_url(ok).is_ok(), "{ok}");
        }
        for refused in ["ftp://host/x", "https://n*", "http://host:65536/x", "http://1.2.3.256/x", "http://xn--/x", "http://host/a b", "https://"] {
            assert!(image_url(refused).is_err(), "{refused}");
        }
    }
}
