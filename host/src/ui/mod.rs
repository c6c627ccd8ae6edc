//! The web view at `/ui` (ARCHITECTURE.md, "ui"): server-rendered pages over the same store and
//! workflow calls as the REST API, with one small script for live updates and no build chain.
//!
//! Sign-in trades a user's token (or the operator token), sent once in a form body, for a random
//! session id in an `HttpOnly; SameSite=Strict` cookie (`session.rs`), so the token is never in a
//! URL, a page or script-readable storage; the session remembers the user, and every page shows
//! what that user may see, decided by the API's `policy::authorize` (ARCHITECTURE.md, "Projects and
//! access"). Every value reaches HTML through maud, which escapes it.

mod actions;
mod assets;
mod catalog;
mod error;
mod guard;
mod instances;
mod node;
mod page;
mod pool;
mod session;
pub mod sessions;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};

use crate::api::state::AppState;

/// `/ui` and everything under it; pages need a session, the sign-in form and assets do not.
pub fn router(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/ui", get(pool::page))
        .route("/ui/nodes/{id}", get(node::page))
        .route("/ui/nodes/{id}/live", get(node::live))
        .route("/ui/nodes/{id}/console", get(node::console))
        .route("/ui/nodes/{id}/action", post(actions::node_action))
        .route("/ui/instances", get(instances::page).post(actions::create_instance))
        .route("/ui/instances/{id}/delete", post(actions::delete_instance))
        .route("/ui/images", get(catalog::images))
        .route("/ui/plugins", get(catalog::plugins))
        .route("/ui/logout", post(session::logout))
        .route_layer(from_fn_with_state(state.clone(), session::audit))
        .route_layer(from_fn_with_state(state, session::require));
    Router::new()
        .merge(signed_in)
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/assets/ui.css", get(assets::css))
        .route("/ui/assets/ui.js", get(assets::js))
        .layer(from_fn(guard::headers_and_origin))
}
