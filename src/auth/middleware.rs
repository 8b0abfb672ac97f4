//! The two request steps of access control: [`authenticate`] (who is asking) runs on every
//! request; [`guard`] (may they) runs per route with the route's [`Access`].

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::{
    Access, PendingTwoFactor, Principal, SESSION_AUTH, SESSION_PENDING, SessionAuth, Via, keys,
    store,
};
use crate::app::AppState;
use crate::error::AppError;
use crate::web::extract::client_ip;

pub(crate) fn unauthenticated() -> AppError {
    AppError::unauthenticated(
        "unauthenticated",
        "sign in first (POST /api/auth/login), or send Authorization: Bearer <API key>",
    )
}

/// Resolves the caller and stores it as a [`Principal`] in the request's extensions.
/// Presented credentials that do not hold are refused here (401); no credentials at all
/// pass on without a principal, for the route's guard to decide.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = client_ip(req.extensions());
    let limited = req.method() == Method::POST && tests_a_credential(req.uri().path());
    if limited && let Err(retry_after) = state.auth.limiter.check(ip) {
        return AppError::RateLimited { retry_after }.into_response();
    }
    if !state.config.auth.enabled
        && let Err(e) = check_local_request(req.method(), req.headers())
    {
        return e.into_response();
    }
    let token = presented_token(&req);
    let session = req.extensions().get::<Session>().cloned();
    match resolve(&state, token, session).await {
        Ok(Some(principal)) => {
            req.extensions_mut().insert(principal);
        }
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let response = next.run(req).await;
    // A credential that held was no guess: it gives its token back, so an office signing
    // in from one address is never slowed down; failures keep theirs.
    if limited && response.status().is_success() {
        state.auth.limiter.refund(ip);
    }
    response
}

/// The routes where a guess of a password, code or token is tried: only these are rate
/// limited, and only their failures count (per address; one email's guesses also end at
/// its lockout). Creating keys,
/// enrolling 2FA or signing out is what signed-in users do, and is never limited.
fn tests_a_credential(path: &str) -> bool {
    matches!(
        path,
        "/api/auth/login"
            | "/api/auth/2fa/verify"
            | "/api/auth/accept-invite"
            | "/api/auth/change-password"
    )
}

async fn resolve(
    state: &AppState,
    token: Option<String>,
    session: Option<Session>,
) -> Result<Option<Principal>, AppError> {
    if !state.config.auth.enabled {
        return Ok(Some(Principal::local_admin(Via::AuthDisabled)));
    }
    if let Some(token) = token {
        if token.starts_with("kura_cli_") {
            return if constant_time_eq(token.as_bytes(), state.auth.cli_token.as_bytes()) {
                Ok(Some(Principal::local_admin(Via::Cli)))
            } else {
                Err(AppError::unauthenticated(
                    "invalid_token",
                    "this CLI token is stale: the server was restarted; run the command again",
                ))
            };
        }
        return keys::authenticate(state, &token).await.map(Some);
    }
    let Some(session) = session else {
        return Ok(None);
    };
    session_principal(state, &session).await
}

/// `Authorization: Bearer ...`, or `?token=` on `/ws` only (browsers cannot set headers
/// on a WebSocket; everywhere else a token in the URL would end up in logs and history).
fn presented_token(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        return v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(|t| t.trim().to_owned());
    }
    if req.uri().path() == "/ws" {
        return req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_owned)
        });
    }
    None
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn session_principal(
    state: &AppState,
    session: &Session,
) -> Result<Option<Principal>, AppError> {
    let internal =
        |e: tower_sessions::session::Error| AppError::Internal(anyhow::anyhow!("session: {e}"));
    let Some(auth) = session
        .get::<SessionAuth>(SESSION_AUTH)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let user_id = auth.user_id;
    let user = state
        .meta
        .read(move |c| store::user_by_id(c, user_id))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let max_age = i64::try_from(state.config.auth.session_max_hours * 3600).unwrap_or(i64::MAX);
    let valid = user.as_ref().is_some_and(|u| {
        u.is_active()
            && u.session_epoch == auth.epoch
            && store::now_unix() - auth.signed_in_at < max_age
    });
    let Some(user) = user.filter(|_| valid) else {
        // Ended by a password change, deactivation, revocation, or its absolute lifetime.
        session.flush().await.map_err(internal)?;
        return Ok(None);
    };
    let public_id = session
        .id()
        .map(|id| super::session_store::public_id(&id))
        .unwrap_or_default();
    Ok(Some(Principal {
        user_id: Some(user.id),
        email: user.email,
        role: user.role,
        via: Via::Session {
            public_id,
            csrf: auth.csrf,
        },
        must_change_password: user.must_change_password,
        needs_two_factor: state.config.auth.require_2fa && !user.totp_enabled,
    }))
}

/// Enforces one route's [`Access`]. Browsers asking for a page are sent to the sign-in
/// page (or the password change page) instead of getting JSON.
pub(crate) async fn guard(access: Access, req: Request, next: Next) -> Response {
    let checked = {
        let principal = req.extensions().get::<Principal>().cloned();
        let session = req.extensions().get::<Session>().cloned();
        check_parts(
            access,
            principal,
            session,
            req.method(),
            req.uri().path(),
            req.headers(),
        )
    };
    match checked.await {
        Ok(()) => next.run(req).await,
        Err(e) => {
            if wants_page(&req) {
                match &e {
                    AppError::Unauthenticated { .. } => {
                        let back = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/");
                        return Redirect::to(&format!("/login?next={}", encode_next(back)))
                            .into_response();
                    }
                    AppError::Forbidden {
                        code: "password_change_required",
                        ..
                    } => {
                        return Redirect::to("/setup").into_response();
                    }
                    AppError::Forbidden {
                        code: "two_factor_enrollment_required",
                        ..
                    } => {
                        return Redirect::to("/settings/account#two-factor").into_response();
                    }
                    _ => {}
                }
            }
            e.into_response()
        }
    }
}

async fn check_parts(
    access: Access,
    principal: Option<Principal>,
    session: Option<Session>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), AppError> {
    match access {
        // A public write made while signed in (sign-out, above all) must come from this
        // server's own pages: a cross-site form must not sign the user out.
        Access::Public => {
            return match &principal {
                Some(Principal {
                    via: Via::Session { .. },
                    ..
                }) if !is_safe(method) => check_same_origin(headers),
                _ => Ok(()),
            };
        }
        Access::PendingTwoFactor => {
            let pending = match session {
                Some(s) => s
                    .get::<PendingTwoFactor>(SESSION_PENDING)
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            return if pending.is_some() {
                Ok(())
            } else {
                Err(AppError::unauthenticated(
                    "no_pending_sign_in",
                    "there is no sign-in waiting for a two-factor code; sign in with your password first",
                ))
            };
        }
        _ => {}
    }
    let principal = principal.ok_or_else(unauthenticated)?;
    if access != Access::Account {
        if principal.must_change_password {
            return Err(AppError::forbidden(
                "password_change_required",
                "you must choose a new password before anything else (POST /api/auth/change-password, or the /setup page)",
            ));
        }
        if principal.needs_two_factor {
            return Err(AppError::forbidden(
                "two_factor_enrollment_required",
                "this server requires two-factor sign-in: enrol first (POST /api/auth/2fa/setup, then /api/auth/2fa/verify-setup)",
            ));
        }
    }
    if let Access::Permission(p) = access
        && !principal.can(p)
    {
        return Err(AppError::Forbidden {
            code: "permission_denied",
            message: format!(
                "your role ({}) does not have the permission {}",
                principal.role.as_str(),
                p.as_str()
            ),
            permission: Some(p.as_str()),
        });
    }
    if let Via::Session { csrf, .. } = &principal.via {
        if !is_safe(method) {
            check_csrf(headers, csrf)?;
        } else if path == "/ws" {
            // Cross-site WebSocket hijacking: browsers send the cookie with an upgrade
            // from any page, and the same-origin policy does not apply to WebSockets.
            check_websocket_origin(headers)?;
        }
    }
    Ok(())
}

/// A cookie-authenticated WebSocket upgrade must name this server as its `Origin`
/// (`null`, from sandboxed frames and files, is refused). Browsers always send an Origin
/// on an upgrade; a client with none is a script with a cookie jar, not a page.
fn check_websocket_origin(headers: &HeaderMap) -> Result<(), AppError> {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => Ok(()),
        Some(origin) if is_own_origin(headers, origin) => Ok(()),
        Some(_) => Err(AppError::forbidden(
            "origin_refused",
            "this WebSocket was opened by a page of another site; open /ws from this server's \
             pages, or authenticate with ?token=<API key>",
        )),
    }
}

fn is_own_origin(headers: &HeaderMap, origin: &str) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !host.is_empty()
        && origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// The host part of a `Host` header value (`[::1]:8800` → `::1`, `a:1` → `a`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    })
}

fn is_loopback_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// With `auth.enabled: false` every request acts as the local admin, so only this
/// machine's own clients may talk to the server: a loopback `Host` (a DNS-rebinding page
/// arrives with its own name), an `Origin`, if any, of this server, and on writes a header
/// that a plain cross-site form cannot send (`X-Requested-With`, `X-CSRF-Token` or
/// `Authorization`, which force a CORS preflight that Kura never answers).
pub(crate) fn check_local_request(method: &Method, headers: &HeaderMap) -> Result<(), AppError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_loopback_name(host_name(host)) {
        return Err(AppError::forbidden(
            "host_refused",
            format!(
                "with auth.enabled: false Kura answers only requests addressed to this \
                 machine (localhost or a loopback address), not {host:?}"
            ),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !is_own_origin(headers, origin)
    {
        return Err(AppError::forbidden(
            "origin_refused",
            "with auth.enabled: false Kura refuses requests from pages of other sites",
        ));
    }
    let custom = ["x-requested-with", "x-csrf-token", "authorization"]
        .iter()
        .any(|h| headers.contains_key(*h));
    if !is_safe(method) && !custom {
        return Err(AppError::forbidden(
            "csrf_failed",
            "with auth.enabled: false a write must carry an X-Requested-With header (any value)",
        ));
    }
    Ok(())
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A cookie-authenticated write from a browser (it sends `Origin` or `Sec-Fetch-Site`)
/// must come from this server's own origin and carry the session's token — or, as the
/// reference product's pages send, `X-Requested-With` / `X-CSRF-Protection`: a page of
/// another site cannot add a custom header without a CORS preflight, which Kura never
/// grants. Scripts with a cookie jar send no browser header and pass: SameSite=Lax
/// already keeps the cookie off cross-site posts, and a browser always sends one of the
/// two on a cross-site request.
pub(crate) fn check_csrf(headers: &HeaderMap, expected: &str) -> Result<(), AppError> {
    if !is_browser(headers) {
        return Ok(());
    }
    check_same_origin(headers)?;
    if headers.contains_key("x-requested-with") || headers.contains_key("x-csrf-protection") {
        return Ok(());
    }
    let fail = |why: &str| {
        Err(AppError::forbidden(
            "csrf_failed",
            format!("this request was refused as a possible cross-site request forgery: {why}"),
        ))
    };
    let token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !token.is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes())) {
        return fail(
            "the X-CSRF-Token header is missing or wrong (it comes from GET /api/auth/me)",
        );
    }
    Ok(())
}

/// Browsers send `Origin` or `Sec-Fetch-Site` on every cross-site request.
fn is_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site")
}

/// The origin half of [`check_csrf`]: a browser request must come from this server.
fn check_same_origin(headers: &HeaderMap) -> Result<(), AppError> {
    let fail = |why: &str| {
        Err(AppError::forbidden(
            "csrf_failed",
            format!("this request was refused as a possible cross-site request forgery: {why}"),
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return fail("it comes from another site");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !is_own_origin(headers, origin)
    {
        return fail("its Origin is not this server");
    }
    Ok(())
}

fn wants_page(req: &Request) -> bool {
    !req.uri().path().starts_with("/api/")
        && req.uri().path() != "/ws"
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

fn encode_next(path: &str) -> String {
    path.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn csrf_rules() {
        // A script: no browser headers, no token needed.
        assert!(check_csrf(&headers(&[("host", "h:1")]), "t").is_ok());
        // A browser on our own origin with the token.
        let ok = headers(&[
            ("host", "h:1"),
            ("origin", "http://h:1"),
            ("x-csrf-token", "t"),
        ]);
        assert!(check_csrf(&ok, "t").is_ok());
        // The reference's pages: own origin and X-Requested-With, no token.
        let reference_page = headers(&[
            ("host", "h:1"),
            ("origin", "http://h:1"),
            ("x-requested-with", "XMLHttpRequest"),
        ]);
        assert!(check_csrf(&reference_page, "t").is_ok());
        let foreign_page = headers(&[
            ("host", "h:1"),
            ("origin", "http://evil"),
            ("x-requested-with", "XMLHttpRequest"),
        ]);
        assert!(check_csrf(&foreign_page, "t").is_err());
        // Without or with a wrong token; from elsewhere.
        for bad in [
            headers(&[("host", "h:1"), ("origin", "http://h:1")]),
            headers(&[
                ("host", "h:1"),
                ("origin", "http://h:1"),
                ("x-csrf-token", "x"),
            ]),
            headers(&[
                ("host", "h:1"),
                ("origin", "http://evil"),
                ("x-csrf-token", "t"),
            ]),
            headers(&[
                ("host", "h:1"),
                ("sec-fetch-site", "cross-site"),
                ("x-csrf-token", "t"),
            ]),
        ] {
            assert!(check_csrf(&bad, "t").is_err());
        }
    }

    #[test]
    fn websocket_upgrades_need_the_own_origin() {
        assert!(check_websocket_origin(&headers(&[("host", "h:1")])).is_ok());
        assert!(
            check_websocket_origin(&headers(&[("host", "h:1"), ("origin", "http://h:1")])).is_ok()
        );
        for origin in ["http://evil.example", "null", "http://h:2"] {
            assert!(
                check_websocket_origin(&headers(&[("host", "h:1"), ("origin", origin)])).is_err(),
                "{origin}"
            );
        }
    }

    #[test]
    fn auth_disabled_serves_only_this_machine() {
        let get = Method::GET;
        let post = Method::POST;
        for host in [
            "localhost:8800",
            "127.0.0.1:8800",
            "[::1]:8800",
            "127.0.0.2",
        ] {
            assert!(
                check_local_request(&get, &headers(&[("host", host)])).is_ok(),
                "{host}"
            );
        }
        assert!(check_local_request(&get, &headers(&[("host", "rebind.example:8800")])).is_err());
        assert!(check_local_request(&get, &headers(&[("host", "")])).is_err());
        let foreign = headers(&[
            ("host", "127.0.0.1:8800"),
            ("origin", "http://127.0.0.1:9999"),
        ]);
        assert!(check_local_request(&get, &foreign).is_err());
        // Writes need a header a plain form cannot send.
        assert!(check_local_request(&post, &headers(&[("host", "localhost:8800")])).is_err());
        let script = headers(&[("host", "localhost:8800"), ("x-requested-with", "x")]);
        assert!(check_local_request(&post, &script).is_ok());
    }
}
