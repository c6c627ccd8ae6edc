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

/// `GET /v1/openapi.json`: this document. Open: it holds no secret, and a client needs it to
/// learn how to sign in. Built per request (cheap, and rarely asked) so it always matches the
/// config (`/metrics` is here only when it has no listener of its own).
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this daemon.", body = Object)))]
async fn serve(State(state): State<AppState>) -> Json<OpenApi> {
    Json(super::document(&state))
}

/// `GET /healthz`: the daemon answers.
#[utoipa::path(get, path = "/healthz", operation_id = "health", tag = "meta",
    responses((status = 200, description = "The daemon is up.", body = String, content_type = "text/plain")))]
async fn health() -> &'static str {
    "ok"
}

/// Open routes: health and this document.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(serve))
}
