//! The account pages: sign-in, the forced password change, invitations, and the
//! settings pages. Each is a server-rendered shell whose script talks to the same JSON API
//! that scripts use (with the session's CSRF token from the page's `<meta>`).

use crate::web::extract::Path;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use super::store::User;
use super::{Principal, store, tokens};
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::web::page::{Nav, filters, render};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    project: &'a str,
}

/// `GET /login`.
pub(crate) async fn login_page(State(state): State<AppState>) -> Result<Response> {
    render(&LoginPage {
        project: &state.config.project.name,
    })
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    nav: Nav,
}

/// `GET /setup`: the forced password change.
pub(crate) async fn setup_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response> {
    if !principal.must_change_password {
        return Ok(Redirect::to("/settings/account").into_response());
    }
    render(&SetupPage {
        nav: Nav::of(&state, &principal, "/setup"),
    })
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage<'a> {
    project: &'a str,
    token: &'a str,
}

/// `GET /invite/{token}`: refused at once when the link is unknown, used or expired.
pub(crate) async fn invite_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response> {
    let hash = tokens::sha256_hex(token.trim());
    let now = store::now_unix();
    let invited = state
        .meta
        .read(move |c| store::invited_user(c, &hash, now))
        .await?;
    if invited.is_none() {
        return Err(AppError::NotFound(
            "this invitation is unknown, used or expired; ask an admin to send a new one".into(),
        ));
    }
    render(&InvitePage {
        project: &state.config.project.name,
        token: &token,
    })
}

/// An API key as the account page lists it.
struct KeyView {
    id: i64,
    name: String,
    prefix: String,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    status: &'static str,
}

/// A signed-in session as the account page lists it.
struct SessionView {
    id: String,
    created_at: String,
    last_seen_at: String,
    ip: Option<String>,
    user_agent: Option<String>,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    two_factor_enabled: bool,
    two_factor_required: bool,
    keys: Vec<KeyView>,
    sessions: Vec<SessionView>,
}

/// `GET /settings/account`: two-factor state, API keys and sessions of the signed-in user
/// (the rows of `/api/auth/me`, `/api/auth/api-keys?include_revoked=true` and
/// `/api/auth/sessions`); the page fetches it again after each change.
pub(crate) async fn account_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response> {
    let now = store::now_unix();
    let current = match &principal.via {
        super::Via::Session { public_id, .. } => Some(public_id.clone()),
        _ => None,
    };
    let (user, keys, sessions) = match principal.user_id {
        Some(id) => {
            state
                .meta
                .read(move |c| {
                    Ok((
                        store::user_by_id(c, id)?,
                        store::keys_of(c, id, true)?,
                        store::sessions_of(c, id, now)?,
                    ))
                })
                .await?
        }
        None => (None, Vec::new(), Vec::new()),
    };
    render(&AccountPage {
        nav: Nav::of(&state, &principal, "/settings/account"),
        two_factor_enabled: user.as_ref().is_some_and(|u| u.totp_enabled),
        two_factor_required: state.config.auth.require_2fa,
        keys: keys
            .into_iter()
            .map(|k| KeyView {
                status: k.status(now),
                expires_at: k.expires_at.and_then(crate::time::unix_text),
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                created_at: k.created_at,
                last_used_at: k.last_used_at,
            })
            .collect(),
        sessions: sessions
            .into_iter()
            .map(|s| SessionView {
                current: current.as_deref() == Some(s.public_id.as_str()),
                id: s.public_id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    invite_hours: u64,
    users: Vec<User>,
    roles: &'static [&'static str],
}

/// `GET /settings/users`: the accounts (the rows of `/api/admin/users`) with their actions.
pub(crate) async fn users_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response> {
    render(&UsersPage {
        nav: Nav::of(&state, &principal, "/settings/users"),
        invite_hours: state.config.auth.invite_hours,
        users: state.meta.read(store::list_users).await?,
        roles: &["viewer", "editor", "admin"],
    })
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    nav: Nav,
    secrets: Vec<crate::secrets::Listed>,
}

/// `GET /settings/secrets`: the keys of `.env`, values masked (as `/api/secrets`).
pub(crate) async fn secrets_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response> {
    render(&SecretsPage {
        nav: Nav::of(&state, &principal, "/settings/secrets"),
        secrets: crate::secrets::listed(&state).await?,
    })
}
