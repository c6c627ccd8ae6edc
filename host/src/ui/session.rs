//! Web sign-in: the operator token is posted once in a form body and traded for a random session
//! id in an `HttpOnly; SameSite=Strict` cookie. Scripts cannot read the cookie, the token never
//! reaches a URL, a page or the browser's storage, and the `/v1` API keeps taking only the bearer
//! token. Sessions live in memory, hashed like every other token (ARCHITECTURE.md, invariants):
//! a daemon restart signs everyone out.

use axum::Form;
use axum::extract::{Request, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::page;
use super::sessions::LIFETIME;
use crate::api::auth::is_operator;
use crate::api::state::AppState;

const COOKIE_NAME: &str = "metalhost_session";
/// The session id the browser sent, if any.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='))
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static(to))]).into_response()
}

/// Sends a browser without a live session to the sign-in form; nothing behind it runs.
pub async fn require(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match session_id(request.headers()) {
        Some(id) if state.ui_sessions.is_live(id) => next.run(request).await,
        _ => redirect("/ui/login"),
    }
}

fn login_page(failed: bool) -> maud::Markup {
    let body = html! {
        section.signin {
            h1 { "Sign in" }
            @if failed { p.flash.bad { "That is not the operator token." } }
            form method="post" action="/ui/login" {
                label for="token" { "Operator token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.hint { "The token is in the daemon's " code { "token_file" } " or " code { "<data_dir>/operator-token" } "." }
        }
    };
    page::bare("Sign in", body)
}

pub async fn login_form() -> Html<String> {
    Html(login_page(false).into_string())
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

pub async fn login(State(state): State<AppState>, Form(form): Form<SignIn>) -> Response {
    if !is_operator(&state, form.token.trim()) {
        tracing::warn!("web sign-in refused: wrong token");
        return (StatusCode::UNAUTHORIZED, Html(login_page(true).into_string())).into_response();
    }
    let id = state.ui_sessions.open();
    tracing::info!("web sign-in");
    let cookie = format!("{COOKIE_NAME}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs());
    let mut response = redirect("/ui");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
}

pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        state.ui_sessions.close(id);
    }
    let mut response = redirect("/ui/login");
    response.headers_mut().insert(SET_COOKIE, HeaderValue::from_static("metalhost_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=1; metalhost_session=abc; b=2"));
        assert_eq!(session_id(&headers), Some("abc"));
        headers.insert(COOKIE, HeaderValue::from_static("metalhost_sessionx=abc"));
        assert_eq!(session_id(&headers), None);
    }
}
