//! Netboot over HTTP: the bootstrap kernel and initramfs, the generic iPXE script, and the per-node
//! scripts the netboot plugin writes. Public: PXE firmware carries no token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use crate::api::state::AppState;
use crate::provision::WorkflowCore;

pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(bootstrap_file)).routes(routes!(generic_script)).routes(routes!(node_script))
}

pub fn operator_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(describe))
}

const BOOTSTRAP_FILES: &[&str] = &["vmlinuz", "initrd.gz", "manifest.json"];

#[utoipa::path(get, path = "/v1/bootstrap/{file}", operation_id = "bootstrap_file", extensions(("x-metalhost-policy" = json!("public"))), tag = "netboot",
    params(("file" = String, Path, description = "vmlinuz, initrd.gz or manifest.json")),
    responses((status = 200, description = "The file.", body = String, content_type = "application/octet-stream")))]
async fn bootstrap_file(State(core): State<WorkflowCore>, Path(file): Path<String>) -> ApiResult<Response> {
    if !BOOTSTRAP_FILES.contains(&file.as_str()) {
        return Err(ApiError::NotFound(format!("bootstrap file {file:?}")));
    }
    let path = core.config.bootstrap_dir().join(&file);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::NotFound(format!("bootstrap file {} ({e}); build it with bootstrap/build.sh", path.display())))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Chains to the node's own script. A MAC without one gets the bootstrap when discovery is on
/// (its agent offers the machine for enlistment); otherwise the console says there is no entry.
#[utoipa::path(get, path = "/v1/boot/boot.ipxe", operation_id = "boot_script", extensions(("x-metalhost-policy" = json!("public"))), tag = "netboot",
    responses((status = 200, description = "An iPXE script.", body = String, content_type = "text/plain")))]
async fn generic_script(State(core): State<WorkflowCore>) -> Response {
    let base = &core.boot_url;
    let fallback = if core.config.discovery.enabled {
        let kernel = core.config.deploy.kernel_url.clone().unwrap_or_else(|| format!("{base}/v1/bootstrap/vmlinuz"));
        let (initrd, args) = (crate::provision::initrd_url(&core), crate::provision::kernel_args(&core));
        format!("echo metalhost: ${{mac}} is not enrolled: bootstrap for discovery\nkernel {kernel} {args}\ninitrd {initrd}\nboot\n")
    } else {
        "echo metalhost: no boot entry for ${mac}: not being provisioned\nsleep 10\nexit\n".to_owned()
    };
    let script =
        format!("#!ipxe\necho metalhost: netboot of ${{mac}}\nchain {base}/v1/boot/nodes/${{mac:hexhyp}}.ipxe || goto none\n:none\n{fallback}");
    ([(header::CONTENT_TYPE, "text/plain")], script).into_response()
}

#[utoipa::path(get, path = "/v1/boot/nodes/{file}", operation_id = "node_boot_script", extensions(("x-metalhost-policy" = json!("public"))), tag = "netboot",
    params(("file" = String, Path, description = "The MAC with dashes, then .ipxe")),
    responses((status = 200, description = "An iPXE script.", body = String, content_type = "text/plain")))]
async fn node_script(State(core): State<WorkflowCore>, Path(file): Path<String>) -> ApiResult<Response> {
    let valid = file.ends_with(".ipxe") && file.chars().all(|c| c.is_ascii_hexdigit() || c == '-' || c == '.' || c.is_ascii_lowercase());
    if !valid || file.contains("..") {
        return Err(ApiError::NotFound(format!("boot script {file:?}")));
    }
    let path = core.config.scripts_dir().join(&file);
    let text = tokio::fs::read_to_string(&path).await.map_err(|_| ApiError::NotFound(format!("boot script {file:?}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], text).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
struct BootstrapView {
    dir: String,
    files: Vec<BootstrapFile>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BootstrapFile {
    name: String,
    url: String,
    size: Option<u64>,
}

/// Where the bootstrap image is and whether it is built.
#[utoipa::path(get, path = "/v1/bootstrap", operation_id = "describe_bootstrap", extensions(("x-metalhost-policy" = json!("admin"))), tag = "netboot",
    responses((status = 200, description = "The bootstrap files, with their URLs and sizes (null: missing).", body = BootstrapView)))]
async fn describe(State(core): State<WorkflowCore>) -> Json<BootstrapView> {
    let dir = core.config.bootstrap_dir();
    let mut files = Vec::new();
    for name in BOOTSTRAP_FILES {
        let size = tokio::fs::metadata(dir.join(name)).await.ok().map(|m| m.len());
        files.push(BootstrapFile { name: (*name).to_owned(), url: format!("{}/v1/bootstrap/{name}", core.boot_url), size });
    }
    Json(BootstrapView { dir: dir.display().to_string(), files })
}
