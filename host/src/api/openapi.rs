//! The OpenAPI 3.1 document: its frame (info, security schemes, the error shape) and the two
//! things every operation shares, which are added here once rather than on each handler: which
//! token it takes, and that any 4XX/5XX answer is an `ErrorBody`.

use axum::Json;
use axum::extract::State;
use metalhost_wire::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, Ref, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::state::AppState;

/// The operator's token (`[api] token` / `METALHOST_TOKEN`).
pub const OPERATOR: &str = "operator";
/// The per-node token that `/v1/agent/lookup` hands the agent.
pub const NODE_TOKEN: &str = "node_token";
/// The per-task token that lets the agent download one uploaded image.
pub const IMAGE_TOKEN: &str = "image_token";

pub fn base() -> OpenApi {
    let bearer = |description: &str| {
        let mut scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        scheme.description = Some(description.to_owned());
        SecurityScheme::Http(scheme)
    };
    let components = ComponentsBuilder::new()
        .security_scheme(OPERATOR, bearer("The operator token from the daemon's config."))
        .security_scheme(NODE_TOKEN, bearer("The node token returned by POST /v1/agent/lookup."))
        .security_scheme(IMAGE_TOKEN, bearer("The image token in the agent's deploy task; valid for that task's image only."))
        .schema(ErrorBody::name(), ErrorBody::schema())
        .schemas_from_iter(error_schemas())
        .schemas_from_iter(super::schema::components())
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("metalhost")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Bare-metal instances: nodes, switches, images, instances, plugins, and the agent's API."))
                .build(),
        )
        .components(Some(components))
        .build()
}

fn error_schemas() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)> {
    let mut schemas = Vec::new();
    <ErrorBody as ToSchema>::schemas(&mut schemas);
    schemas
}

/// Marks every operation of `router` as taking one of `schemes`, and documents its errors.
pub fn secured(mut router: OpenApiRouter<AppState>, schemes: &[&str]) -> OpenApiRouter<AppState> {
    let requirements: Vec<SecurityRequirement> = schemes.iter().map(|s| SecurityRequirement::new(*s, Vec::<String>::new())).collect();
    for item in router.get_openapi_mut().paths.paths.values_mut() {
        for operation in operations(item) {
            operation.security = Some(requirements.clone());
        }
    }
    router
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head].into_iter().flatten()
}

/// Every error the API returns has the same shape (api/error.rs); say so on every operation that
/// does not name its errors itself.
pub fn document_errors(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            for range in ["4XX", "5XX"] {
                operation.responses.responses.entry(range.to_owned()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("An error: `{\"error\": {\"code\", \"message\"}}`.")
                        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorBody::name()))).build())
                        .build()
                        .into()
                });
            }
        }
    }
}

/// What the derived schemas cannot say, added to the finished document: every integer the API
/// reads is refused outside its type's range by the JSON or query parser, so an integer with no
/// bounds of its own gets its format's; the agent's lookup takes MACs, at least one; an upload is
/// at least one byte.
pub fn complete_constraints(document: &mut OpenApi) {
    let Ok(mut json) = serde_json::to_value(&*document) else { return };
    bound_integers(&mut json);
    if let Some(macs) = json.pointer_mut("/components/schemas/LookupRequest/properties/macs") {
        macs["items"] = serde_json::json!({"$ref": "#/components/schemas/Mac"});
        macs["minItems"] = 1.into();
    }
    // A header is text or absent, never null.
    for item in json.pointer_mut("/paths").and_then(|p| p.as_object_mut()).into_iter().flat_map(|p| p.values_mut()) {
        for operation in item.as_object_mut().into_iter().flat_map(|i| i.values_mut()) {
            for parameter in operation.get_mut("parameters").and_then(|p| p.as_array_mut()).into_iter().flatten() {
                if parameter["in"] == "header" && parameter["schema"]["type"] == serde_json::json!(["string", "null"]) {
                    parameter["schema"]["type"] = "string".into();
                }
            }
        }
    }
    if let Some(body) = json.pointer_mut("/paths/~1v1~1images~1upload/post/requestBody/content/application~1octet-stream/schema") {
        body["format"] = "binary".into();
        body["minLength"] = 1.into();
    }
    link_created_resources(&mut json);
    match serde_json::from_value(json) {
        Ok(completed) => *document = completed,
        Err(e) => tracing::error!("cannot complete the API document's constraints: {e}"),
    }
}

/// OpenAPI links from each create to the operations on what it created (`/v1/nodes` → every
/// `/v1/nodes/{id}...`, with the new `id`): a client, or a fuzzer's stateful phase, learns how
/// the calls chain.
fn link_created_resources(json: &mut serde_json::Value) {
    let Some(paths) = json.get("paths").and_then(|p| p.as_object()).cloned() else { return };
    for (collection, creates) in [
        ("/v1/nodes", &["/v1/nodes"][..]),
        ("/v1/switches", &["/v1/switches"]),
        ("/v1/instances", &["/v1/instances"]),
        ("/v1/images", &["/v1/images", "/v1/images/upload"]),
    ] {
        let prefix = format!("{collection}/{{id}}");
        let mut links = serde_json::Map::new();
        for (path, item) in paths.iter().filter(|(p, _)| p.starts_with(&prefix)) {
            for operation in item.as_object().into_iter().flat_map(|i| i.values()) {
                if let Some(id) = operation.get("operationId").and_then(|o| o.as_str()) {
                    let link = serde_json::json!({"operationId": id, "parameters": {"id": "$response.body#/id"}, "description": format!("{path} of what was created")});
                    links.insert(id.to_owned(), link);
                }
            }
        }
        for create in creates {
            let pointer = format!("/paths/{}/post/responses/201", create.replace('~', "~0").replace('/', "~1"));
            if let Some(response) = json.pointer_mut(&pointer).and_then(|r| r.as_object_mut()) {
                response.insert("links".to_owned(), serde_json::Value::Object(links.clone()));
            }
        }
    }
}

fn bound_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let integer = match map.get("type") {
                Some(serde_json::Value::String(t)) => t == "integer",
                Some(serde_json::Value::Array(types)) => types.iter().any(|t| t == "integer"),
                _ => false,
            };
            if integer {
                // utoipa writes u32 and u16 as int32 with a minimum of 0.
                let unsigned = map.get("minimum").and_then(|m| m.as_i64()) == Some(0);
                let (min, max) = match map.get("format").and_then(|f| f.as_str()) {
                    Some("int32") if unsigned => (0, i64::from(u32::MAX)),
                    Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                map.entry("minimum").or_insert(min.into());
                map.entry("maximum").or_insert(max.into());
            }
            map.values_mut().for_each(bound_integers);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// `GET /v1/openapi.json`: this document. Open: it holds no secret, and a client needs it to
/// learn how to sign in. Built per request (cheap, and rarely asked) so it always matches the
/// config (`/metrics` is here only when it has no listener of its own).
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi", extensions(("x-metalhost-policy" = json!("public"))), tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this daemon.", body = Object)))]
async fn serve(State(state): State<AppState>) -> Json<OpenApi> {
    Json(super::document(&state))
}

/// `GET /healthz`: the daemon answers.
#[utoipa::path(get, path = "/healthz", operation_id = "health", extensions(("x-metalhost-policy" = json!("public"))), tag = "meta",
    responses((status = 200, description = "The daemon is up.", body = String, content_type = "text/plain")))]
async fn health() -> &'static str {
    "ok"
}

/// Open routes: health and this document.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(serve))
}
