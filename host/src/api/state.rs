//! The web layer's state (ARCHITECTURE.md, "The workflow core and its doors").

use std::sync::Arc;

use crate::domain::Secret;
use crate::provision::WorkflowCore;

/// The web layer's state: the workflow core (handed to handlers that need only it through
/// `FromRef`), plus what only the doors use: the operator token and the web view's sessions.
#[derive(Clone)]
pub struct AppState {
    pub core: WorkflowCore,
    pub operator_token: Arc<Secret>,
    /// Signed-in web view browsers.
    pub ui_sessions: Arc<crate::ui::sessions::Sessions>,
}

impl axum::extract::FromRef<AppState> for WorkflowCore {
    fn from_ref(state: &AppState) -> WorkflowCore {
        state.core.clone()
    }
}
