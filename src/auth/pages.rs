//! The account pages: sign-in, the forced password change, invitations, and the
//! settings pages. Each is a server-rendered shell whose script talks to the same JSON API
//! that scripts use (with the session's CSRF token from the page's `<meta>`).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use rusqlite::params;

use super::{Permission, Principal, Via, store, tokens};
use crate::app::AppState;
use crate::error::{AppError, Result};

/// What the navigation bar shows, and the CSRF token the page's script sends.
pub struct Nav {
    pub email: String,
    pub role: &'static str,
    pub csrf: String,
    pub manages_users: bool,
    pub manages_config: bool,
    pub can_sign_out: bool,
}

impl Nav {
    pub fn of(p: &Principal) -> Self {
        let (csrf, can_sign_out) = match &p.via {
            Via::Session { csrf, .. } => (csrf.clone(), true),
            _ => (String::new(), false),
        };
        Self {
            email: p.email.clone(),
            role: p.role.as_str(),
            csrf,
            manages_users: p.can(Permission::UsersManage),
            manages_config: p.can(Permission::ConfigManage),
            can_sign_out,
        }
    }
}

pub fn render(page: &impl Template) -> Result<Response> {
    let html = page
        .render()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot render a page: {e}")))?;
    Ok(Html(html).into_response())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    project: &'a str,
}

/// `GET /login`.
pub async fn login_page(State(state): State<AppState>) -> Result<Response> {
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
pub async fn setup_page(principal: Principal) -> Result<Response> {
    if !principal.must_change_password {
        return Ok(Redirect::to("/settings/account").into_response());
    }
    render(&SetupPage {
        nav: Nav::of(&principal),
    })
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage<'a> {
    project: &'a str,
    token: &'a str,
}

/// `GET /invite/{token}`: refused at once when the link is unknown, used or expired.
pub async fn invite_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response> {
    let hash = tokens::sha256_hex(token.trim());
    let now = store::now_unix();
    let valid = state
        .meta
        .read(move |c| {
            c.query_row(
                "SELECT count(*) FROM invites i JOIN users u ON u.id = i.user_id \
                 WHERE i.token_hash = ?1 AND i.expires_at > ?2 AND u.status = 'invited'",
                params![hash, now],
                |r| r.get::<_, i64>(0),
            )
        })
        .await?;
    if valid == 0 {
        return Err(AppError::NotFound(
            "this invitation is unknown, used or expired; ask an admin to send a new one".into(),
        ));
    }
    render(&InvitePage {
        project: &state.config.project.name,
        token: &token,
    })
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
}

/// `GET /settings/account`.
pub async fn account_page(principal: Principal) -> Result<Response> {
    render(&AccountPage {
        nav: Nav::of(&principal),
    })
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    invite_hours: u64,
}

/// `GET /settings/users`.
pub async fn users_page(State(state): State<AppState>, principal: Principal) -> Result<Response> {
    render(&UsersPage {
        nav: Nav::of(&principal),
        invite_hours: state.config.auth.invite_hours,
    })
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    nav: Nav,
}

/// `GET /settings/secrets`.
pub async fn secrets_page(principal: Principal) -> Result<Response> {
    render(&SecretsPage {
        nav: Nav::of(&principal),
    })
}

/// `GET /`: the account page until the workbench's own home page exists.
pub async fn home() -> Redirect {
    Redirect::to("/settings/account")
}
