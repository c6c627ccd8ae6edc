//! Web sign-in: a user's API token (or the operator token, the first admin's) is posted once in a
//! form body and traded for a random session id in an `HttpOnly; SameSite=Strict` cookie; the
//! session remembers who signed in, and every page shows only what that user may see. Scripts cannot read the cookie, the token never
//! reaches a URL, a page or the browser's storage, and the `/v1` API keeps taking only the bearer
//! token. Sessions live in memory, hashed like every other token (ARCHITECTURE.md, invariants):
//! a daemon restart signs everyone out.

use axum::Form;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::page;
use super::sessions::LIFETIME;
use crate::api::error::ApiError;
use crate::api::policy::{Access, sign_in_token};
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

/// Sends a browser without a live session to the sign-in form; nothing behind it runs. A live
/// one's user goes with the request as its `Access`, as the API's enforcing layer leaves it.
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match session_id(request.headers()).and_then(|id| state.ui_sessions.caller(id)) {
        Some(caller) => {
            request.extensions_mut().insert(Access { caller });
            next.run(request).await
        }
        None => redirect("/ui/login"),
    }
}

/// The web view's changes (its form posts) and console attaches go to the audit trail like the
/// API's, named after the page's route.
pub async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let audited = request.method() == axum::http::Method::POST || route.ends_with("/console");
    if !audited || route == "/ui/logout" {
        return next.run(request).await;
    }
    let caller = request.extensions().get::<Access>().map(|a| a.caller.clone());
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let object = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    crate::api::policy::record(&state.core, caller.as_ref(), format!("web {route}"), object, response.status().as_u16(), address).await;
    response
}

fn login_page(failed: Option<&str>) -> maud::Markup {
    let body = html! {
        section.signin {
            h1 { "Sign in" }
            @if let Some(why) = failed { p.flash.bad { (why) } }
            form method="post" action="/ui/login" {
                label for="token" { "Your API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.hint { "Made with " code { "metalhost token create" } "; the operator token is in the daemon's " code { "token_file" } " or " code { "<data_dir>/operator-token" } "." }
        }
    };
    page::bare("Sign in", body)
}

pub async fn login_form() -> Html<String> {
    Html(login_page(None).into_string())
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

pub async fn login(State(state): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, Form(form): Form<SignIn>) -> Response {
    if !state.ui_sessions.may_try_sign_in(peer.ip()) {
        tracing::warn!(address = %peer.ip(), "web sign-in refused: too many attempts");
        let why = format!("Too many sign-in attempts from {}: wait a minute.", peer.ip());
        return (StatusCode::TOO_MANY_REQUESTS, Html(login_page(Some(&why)).into_string())).into_response();
    }
    let caller = match sign_in_token(&state, form.token.trim()).await {
        Ok(caller) => caller,
        Err(e) => {
            tracing::warn!(address = %peer.ip(), "web sign-in refused: {e}");
            let why = match e {
                ApiError::TokenRefused(why) => format!("That token cannot sign in: {why}."),
                _ => "That is not a valid token.".to_owned(),
            };
            return (StatusCode::UNAUTHORIZED, Html(login_page(Some(&why)).into_string())).into_response();
        }
    };
    tracing::info!(user = %caller.name, "web sign-in");
    let id = state.ui_sessions.open(caller);
    // Secure: the browser sends it back over TLS only (the default, issue 31).
    let secure = if state.core.config.tls.enabled { "; Secure" } else { "" };
    let cookie = format!("{COOKIE_NAME}={id}; Path=/ui; HttpOnly; SameSite=Strict{secure}; Max-Age={}", LIFETIME.as_secs());
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
