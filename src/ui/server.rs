//! The HTTP side: routes, the session check, and the guards every response
//! passes (Host check against DNS rebinding on loopback binds, Origin and
//! CSRF checks on every state-changing request, a strict CSP). Every page
//! is made from gRPC calls presenting the session's own token.

use super::page::{self, Who};
use super::session::Session;
use super::Ui;
use crate::cli::protojson;
use crate::proto::v1 as pb;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use std::convert::Infallible;
use std::sync::Arc;

const COOKIE: &str = "solo_ui";
const JS: &str = include_str!("assets/ui.js");
const CSS: &str = include_str!("assets/ui.css");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_code).post(login))
        .route("/logout", post(logout))
        .route("/tree", get(tree))
        .route("/service/{id}", get(service))
        .route("/service/{id}/profile", get(profile))
        .route("/events", get(events))
        .route("/action/{what}", post(action))
        .route("/static/ui.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }))
        .route("/static/ui.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .layer(axum::middleware::from_fn_with_state(ui.clone(), guard))
        .with_state(ui)
}

/// Host, Origin and security headers, before and after every handler.
async fn guard(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_owned();
    if ui.loopback && !loopback_host(&host) {
        // A page of another site whose name resolves to 127.0.0.1 (DNS rebinding).
        return (StatusCode::MISDIRECTED_REQUEST, "solo ui: use http://127.0.0.1:PORT/ or http://localhost:PORT/\n")
            .into_response();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if let Some(o) = origin {
            let same = o.strip_prefix("http://").is_some_and(|rest| rest == host);
            if !same {
                return (StatusCode::FORBIDDEN, "solo ui: cross-origin request refused\n").into_response();
            }
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null`
    // on its own form posts, which the Origin check above would refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `127.x.x.x`, `[::1]` or `localhost`, with any port.
pub fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if !n.is_empty() && port.chars().all(|c| c.is_ascii_digit()) && !n.ends_with(':') => n,
        _ => host,
    };
    name.eq_ignore_ascii_case("localhost")
        || name == "[::1]"
        || name.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')).map(str::to_owned))
}

fn session(ui: &Ui, headers: &HeaderMap) -> Option<Arc<Session>> {
    ui.sessions.get(&cookie(headers)?)
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "log in first\n").into_response()
}

async fn index(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let Some(s) = session(&ui, &headers) else {
        return Html(page::login(None)).into_response();
    };
    let tree = tree_html(&s).await;
    let mut c = s.client.clone();
    let daemon = c.info(pb::InfoRequest {}).await.ok().map(|r| r.into_inner());
    Html(page::shell(&Who::of(&s.token), &s.csrf, &tree, daemon.as_ref())).into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(ui): State<Arc<Ui>>, Form(f): Form<LoginForm>) -> Response {
    start_session(&ui, f.token.trim().to_owned()).await
}

#[derive(serde::Deserialize)]
struct CodeQuery {
    code: Option<String>,
}

/// `GET /login?code=…`: the one-time link `solo ui` prints.
async fn login_code(State(ui): State<Arc<Ui>>, Query(q): Query<CodeQuery>) -> Response {
    match q.code.as_deref().and_then(|c| ui.sessions.redeem(c)) {
        Some(token) => start_session(&ui, token).await,
        None => {
            (StatusCode::UNAUTHORIZED, Html(page::login(Some("that login link is used up or expired")))).into_response()
        }
    }
}

/// Checks `token` with the daemon (a `List` with it), then sets the cookie.
async fn start_session(ui: &Arc<Ui>, token: String) -> Response {
    let refuse = |why: String| (StatusCode::UNAUTHORIZED, Html(page::login(Some(&why)))).into_response();
    if token.is_empty() {
        return refuse("the token is empty".into());
    }
    let mut c = match crate::cli::with_token(ui.channel.clone(), Some(&token)) {
        Ok(c) => c,
        Err(e) => return refuse(e.to_string()),
    };
    if let Err(s) = c.list(pb::ListRequest::default()).await {
        return refuse(format!("{}: {}", crate::cli::code_name(s.code()), s.message()));
    }
    match ui.sessions.create(token, ui.channel.clone()) {
        Ok(id) => {
            let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/");
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => refuse(e),
    }
}

#[derive(serde::Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(State(ui): State<Arc<Ui>>, headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    if let (Some(id), Some(s)) = (cookie(&headers), session(&ui, &headers)) {
        if super::session::same(&s.csrf, &f.csrf) {
            ui.sessions.remove(&id);
        }
    }
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/")).into_response()
}

async fn tree_html(s: &Session) -> String {
    let mut c = s.client.clone();
    match c.list(pb::ListRequest::default()).await {
        Ok(r) => page::tree(&r.into_inner().services, |id| s.history(id)),
        Err(e) => format!("<p class=\"error\">{}: {}</p>", crate::cli::code_name(e.code()), page::esc(e.message())),
    }
}

async fn tree(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    match session(&ui, &headers) {
        Some(s) => Html(tree_html(&s).await).into_response(),
        None => unauthorized(),
    }
}

async fn status(s: &Session, id: String) -> Result<pb::ServiceStatus, Response> {
    let mut c = s.client.clone();
    match c.status(pb::StatusRequest { id }).await {
        Ok(r) => r.into_inner().service.ok_or_else(|| StatusCode::NOT_FOUND.into_response()),
        Err(e) => Err((
            StatusCode::OK,
            Html(format!("<p class=\"error\">{}: {}</p>", crate::cli::code_name(e.code()), page::esc(e.message()))),
        )
            .into_response()),
    }
}

async fn service(State(ui): State<Arc<Ui>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(s) = session(&ui, &headers) else { return unauthorized() };
    match status(&s, id).await {
        Ok(svc) => Html(page::service(&svc, &s.history(&svc.id), &Who::of(&s.token))).into_response(),
        Err(r) => r,
    }
}

async fn profile(State(ui): State<Arc<Ui>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(s) = session(&ui, &headers) else { return unauthorized() };
    match status(&s, id).await {
        Ok(svc) => Html(page::profile(&svc.profile, &svc.profile_sha256, &ui.profiles)).into_response(),
        Err(r) => r,
    }
}

/// The live event stream: the API's `Watch` with the session's token, as
/// server-sent events (`event: watch`, data: the WatchEvent's JSON).
async fn events(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let Some(s) = session(&ui, &headers) else { return unauthorized() };
    let mut c = s.client.clone();
    let req = pb::WatchRequest { include_events: true, ..Default::default() };
    let stream = match c.watch(req).await {
        Ok(r) => r.into_inner(),
        Err(e) => {
            let msg = format!("{}: {}", crate::cli::code_name(e.code()), e.message());
            let one =
                futures::stream::once(async move { Ok::<_, Infallible>(Event::default().event("error").data(msg)) });
            return Sse::new(one).into_response();
        }
    };
    let keep = s.clone();
    let items = stream.map(move |item| {
        let _ = &keep; // the session (and its sampler) lives while the page listens
        Ok::<_, Infallible>(match item {
            Ok(ev) => Event::default().event("watch").data(protojson::json(&ev, "solo.v1.WatchEvent")),
            Err(e) => {
                Event::default().event("error").data(format!("{}: {}", crate::cli::code_name(e.code()), e.message()))
            }
        })
    });
    Sse::new(items).keep_alive(KeepAlive::default()).into_response()
}

#[derive(serde::Deserialize)]
struct ActionBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    grant: String,
}

/// `POST /action/kill|remove|revoke`: the API call with the session's
/// token, guarded by the session's CSRF token. The daemon decides.
async fn action(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path(what): Path<String>,
    Json(b): Json<ActionBody>,
) -> Response {
    let Some(s) = session(&ui, &headers) else { return unauthorized() };
    let sent = headers.get("x-solo-csrf").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !super::session::same(&s.csrf, sent) {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({ "ok": false, "message": "missing or wrong CSRF token" })),
        )
            .into_response();
    }
    let mut c = s.client.clone();
    let result = match what.as_str() {
        "kill" | "remove" => c
            .kill(pb::KillRequest { id: b.id.clone(), remove: what == "remove", ..Default::default() })
            .await
            .map(|r| format!("{} {}", if r.get_ref().removed { "removed" } else { "stopped" }, b.id)),
        "revoke" => c
            .revoke_capability(pb::RevokeCapabilityRequest {
                what: Some(pb::revoke_capability_request::What::GrantId(b.grant.clone())),
            })
            .await
            .map(|r| format!("revoked {} grant(s)", r.get_ref().revoked)),
        _ => return (StatusCode::NOT_FOUND, "no such action\n").into_response(),
    };
    let (ok, message) = match result {
        Ok(m) => (true, m),
        Err(e) => (false, format!("{}: {}", crate::cli::code_name(e.code()), e.message())),
    };
    Json(serde_json::json!({ "ok": ok, "message": message })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in ["127.0.0.1:8080", "localhost:1", "LOCALHOST", "[::1]:80", "127.1.2.3"] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:8080", "10.0.0.1:80", "", "localhost.evil.example", "[::2]:80", "127.0.0.1.nip.io"] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }
}
