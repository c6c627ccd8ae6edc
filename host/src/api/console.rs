//! `GET /v1/nodes/{id}/console`: a node's serial console over a WebSocket (the sessions are in
//! `console/`). Binary frames carry the console's bytes both ways; the server's text frames are
//! the daemon's own notes. Operator token required, like every `/v1` operator route.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult};
use crate::api::state::AppState;
use crate::console::{ConsoleError, Event, Role, Viewer};
use crate::domain::Key;
use crate::provision::WorkflowCore;
use crate::store::nodes::{self, Node};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(console))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ConsoleParams {
    #[param(value_type = Option<super::schema::ConsoleModeName>)]
    mode: Option<String>,
}

/// The console modes, as `?mode=` names them: `type` (the default) and `watch`.
pub const MODES: [&str; 2] = ["type", "watch"];

/// Attaches to the node's serial console, opening it through the node's power plugin (a 0.2.0
/// plugin with a console grant) if nobody watches it yet. The first binary frame is the recent
/// output (up to 16 KiB). The console program ends when the last viewer leaves.
#[utoipa::path(get, path = "/v1/nodes/{id}/console", operation_id = "node_console", extensions(("x-metalhost-policy" = json!("write:tenancy"))), tag = "node actions",
    params(("id" = String, Path, description = "The node's id or name."), ConsoleParams),
    responses(
        (status = 101, description = "Switching to WebSocket: binary frames are console bytes both ways; text frames from the daemon are notes (output missed, the console ended)."),
        (status = 409, description = "Another session is typing at this console.", body = metalhost_wire::ErrorBody),
        (status = 426, description = "A plain HTTP request: this route speaks WebSocket only.", body = metalhost_wire::ErrorBody),
        (status = 501, description = "The node's power plugin has no console.", body = metalhost_wire::ErrorBody),
    ))]
async fn console(
    State(core): State<WorkflowCore>,
    Path(id): Path<String>,
    Query(params): Query<ConsoleParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let role = match params.mode.as_deref() {
        None => Role::Typist,
        Some(mode) if mode == MODES[0] => Role::Typist,
        Some(mode) if mode == MODES[1] => Role::Watcher,
        Some(other) => return Err(ApiError::BadRequest(format!("invalid mode {other:?}: expected one of {}", MODES.join(", ")))),
    };
    let key = Key::parse(&id);
    let node = core.store.call(move |c| nodes::get(c, &key)).await?;
    let upgrade = upgrade.map_err(|e| ApiError::UpgradeRequired(format!("this route speaks WebSocket only: {}", e.body_text())))?;
    let viewer = attach(&core, &node, role).await?;
    Ok(upgrade.on_upgrade(move |socket| serve(socket, viewer)))
}

/// Joins a node's console for the API or the web view.
pub(crate) async fn attach(core: &WorkflowCore, node: &Node, role: Role) -> ApiResult<Viewer> {
    core.consoles.attach(&core.plugins, node, role).await.map_err(|e| match e {
        ConsoleError::Busy { .. } => ApiError::Conflict(e.to_string()),
        ConsoleError::Driver(failure) => failure.into(),
    })
}

/// Pumps one viewer over one WebSocket until either side ends.
pub(crate) async fn serve(socket: WebSocket, mut viewer: Viewer) {
    let (mut to_client, mut from_client) = socket.split();
    let backlog = viewer.take_backlog();
    if !backlog.is_empty() && to_client.send(Message::Binary(backlog.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            event = viewer.next() => {
                let message = match event {
                    Event::Output(bytes) => Message::Binary(bytes),
                    Event::Missed(n) => Message::Text(format!("[metalhost: this viewer fell behind and missed {n} chunks of output]").into()),
                    Event::Ended(why) => {
                        let reason = format!("console ended: {why}");
                        let _ = to_client.send(Message::Close(Some(CloseFrame { code: 1000, reason: reason.into() }))).await;
                        return;
                    }
                };
                if to_client.send(message).await.is_err() {
                    return;
                }
            }
            received = from_client.next() => match received {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Err(why) = viewer.type_bytes(bytes.to_vec()).await {
                        let _ = to_client.send(Message::Text(format!("[metalhost: {why}]").into())).await;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if let Err(why) = viewer.type_bytes(text.as_bytes().to_vec()).await {
                        let _ = to_client.send(Message::Text(format!("[metalhost: {why}]").into())).await;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
        }
    }
}
