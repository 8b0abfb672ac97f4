//! The account pages: sign-in, the forced password change, invitations, and the
//! settings pages. Each is a server-rendered shell whose script talks to the same JSON API
//! that scripts use (with the session's CSRF token from the page's `<meta>`).

use crate::web::extract::Path;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use rusqlite::params;

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
pub async fn setup_page(State(state): State<AppState>, principal: Principal) -> Result<Response> {
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
pub async fn account_page(State(state): State<AppState>, principal: Principal) -> Result<Response> {
    render(&AccountPage {
        nav: Nav::of(&state, &principal, "/settings/account"),
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
        nav: Nav::of(&state, &principal, "/settings/users"),
        invite_hours: state.config.auth.invite_hours,
    })
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct SecretsPage {
    nav: Nav,
}

/// `GET /settings/secrets`.
pub async fn secrets_page(State(state): State<AppState>, principal: Principal) -> Result<Response> {
    render(&SecretsPage {
        nav: Nav::of(&state, &principal, "/settings/secrets"),
    })
}
