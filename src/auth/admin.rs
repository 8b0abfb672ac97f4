//! `/api/admin/users`: invitations, roles, resets, deactivation, unlocks — and the guards
//! that keep the server administrable: the last active admin cannot be demoted,
//! deactivated or deleted, and nobody can deactivate or delete themselves.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::handlers::load_user as load;
use super::store::{self, User, now_unix};
use super::{Principal, Role, audit, password, tokens};
use crate::app::AppState;
use crate::db::meta::MetaDb;
use crate::error::{AppError, Result};
use crate::web::extract::{ClientIp, Json, JsonOrEmpty, List, Path};

/// `GET /api/admin/users`.
pub(crate) async fn list_users(State(state): State<AppState>) -> Result<List<User>> {
    Ok(List::all(state.meta.read(store::list_users).await?))
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn parse_role(role: &str) -> Result<Role> {
    Role::parse(role.trim()).ok_or_else(|| {
        AppError::bad_request(
            "invalid_role",
            format!("{role:?} is not a role: use admin, editor or viewer"),
        )
    })
}

fn default_role() -> String {
    "viewer".into()
}

/// A new user: invited by link, or (`generate_password`) active at once with a temporary
/// password that must be changed at the first sign-in. The role defaults to viewer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Invite {
    email: String,
    #[serde(default = "default_role")]
    role: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    generate_password: bool,
}

/// A fresh invitation token for `user_id` (replacing any earlier one).
async fn new_invite(state: &AppState, user_id: i64) -> Result<(String, i64)> {
    let token = tokens::random_base62(43);
    let hash = tokens::sha256_hex(&token);
    let hours = i64::try_from(state.config.auth.invite_hours).unwrap_or(72);
    let expires_at = now_unix() + hours * 3600;
    state
        .meta
        .write(move |tx| store::replace_invite(tx, user_id, &hash, expires_at))
        .await?;
    Ok((token, expires_at))
}

fn invite_answer(headers: &HeaderMap, user: &User, token: &str, expires_at: i64) -> Value {
    let path = format!("/invite/{token}");
    let url = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| format!("http://{host}{path}"));
    json!({
        "user": user,
        "invite_token": token,
        "invite_path": path,
        "invite_url": url,
        "expires_at": crate::time::unix_text(expires_at),
    })
}

/// `POST /api/admin/users`: creates an invited user and an invitation link.
pub(crate) async fn invite_user(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<Invite>,
) -> Result<(StatusCode, Json<Value>)> {
    let email = body.email.trim().to_owned();
    if !valid_email(&email) {
        return Err(AppError::bad_request(
            "invalid_email",
            format!("{email:?} is not an email address"),
        ));
    }
    let role = parse_role(&body.role)?;
    let display_name = body.display_name.trim().to_owned();
    let temporary = body.generate_password.then(password::generate);
    let hash = match &temporary {
        Some(t) => Some(password::hash_async(t.clone()).await?),
        None => None,
    };
    let e = email.clone();
    let id = state
        .meta
        .write_with(move |tx| {
            if store::user_by_email(tx, &e)?.is_some() {
                return Err(AppError::Conflict {
                    code: "user_exists",
                    message: format!("there is already a user {e}"),
                });
            }
            Ok(store::insert_user(
                tx,
                &e,
                &display_name,
                role,
                hash.as_deref(),
                hash.is_some(),
            )?)
        })
        .await?;
    let action = if temporary.is_some() {
        "user.create"
    } else {
        "user.invite"
    };
    audit::record(
        &state,
        Some(&principal),
        action,
        Some(&email),
        ip,
        Some(json!({"role": role})),
    )
    .await;
    if let Some(temp_password) = temporary {
        let user = load(&state, id).await?;
        return Ok((
            StatusCode::CREATED,
            Json(json!({
                "user": user,
                "temp_password": temp_password,
                "message": "give this password to the user; they must choose a new one when they sign in",
            })),
        ));
    }
    let (token, expires_at) = new_invite(&state, id).await?;
    let user = load(&state, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(invite_answer(&headers, &user, &token, expires_at)),
    ))
}

fn last_admin() -> AppError {
    AppError::Conflict {
        code: "last_admin",
        message: "this is the last active admin; make someone else an admin first".into(),
    }
}

/// The user `id` as the write transaction sees it, refusing to leave the server without
/// an active admin when `stops_being_admin` and the user is one. Checked inside the same
/// transaction as the change, so two admins demoting each other at once cannot both pass.
fn load_keeping_an_admin(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    stops_being_admin: bool,
) -> Result<User> {
    let user = store::user_by_id(tx, id)?
        .ok_or_else(|| AppError::NotFound(format!("there is no user {id}")))?;
    if stops_being_admin
        && user.role == Role::Admin
        && user.is_active()
        && store::other_active_admins(tx, id)? == 0
    {
        return Err(last_admin());
    }
    Ok(user)
}

fn not_self(principal: &Principal, id: i64, what: &str) -> Result<()> {
    if principal.user_id == Some(id) {
        return Err(AppError::Conflict {
            code: "cannot_modify_self",
            message: format!("you cannot {what} your own account"),
        });
    }
    Ok(())
}

/// `POST /api/admin/users/{id}/reinvite`: a new link for a user who has not accepted yet.
pub(crate) async fn reinvite_user(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>> {
    let user = load(&state, id).await?;
    if user.status != "invited" {
        return Err(AppError::Conflict {
            code: "not_invited",
            message: format!(
                "{} has already accepted; reset the password instead",
                user.email
            ),
        });
    }
    let (token, expires_at) = new_invite(&state, id).await?;
    audit::record(
        &state,
        Some(&principal),
        "user.reinvite",
        Some(&user.email),
        ip,
        None,
    )
    .await;
    Ok(Json(invite_answer(&headers, &user, &token, expires_at)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleChange {
    role: String,
}

/// `PUT /api/admin/users/{id}/role`.
pub(crate) async fn change_role(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
    Json(body): Json<RoleChange>,
) -> Result<Json<Value>> {
    let role = parse_role(&body.role)?;
    let user = state
        .meta
        .write_with(move |tx| {
            let user = load_keeping_an_admin(tx, id, role != Role::Admin)?;
            store::set_role(tx, id, role)?;
            Ok::<_, AppError>(user)
        })
        .await?;
    state.auth.keys.clear();
    audit::record(
        &state,
        Some(&principal),
        "user.role_change",
        Some(&user.email),
        ip,
        Some(json!({"from": user.role, "to": role})),
    )
    .await;
    Ok(Json(load(&state, id).await?.answer()))
}

/// `POST /api/admin/users/{id}/reset-password`: a temporary password, shown once, that
/// must be changed at the next sign-in; the user's sessions end.
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Json<Value>> {
    let user = load(&state, id).await?;
    let temporary = password::generate();
    let t = temporary.clone();
    let hash = password::hash_async(t).await?;
    state
        .meta
        .write(move |tx| store::set_password(tx, id, &hash, true))
        .await?;
    audit::account_changed(&state, &principal, "user.password_reset", &user.email, ip).await;
    Ok(Json(json!({
        "user": load(&state, id).await?,
        "temp_password": temporary,
        "temporary_password": temporary,
        "message": "give this password to the user; they must choose a new one when they sign in",
    })))
}

/// `POST /api/admin/users/{id}/deactivate`: sign-in and sessions stop at once, and the
/// user's API keys are revoked for good.
pub(crate) async fn deactivate_user(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Json<Value>> {
    not_self(&principal, id, "deactivate")?;
    let user = state
        .meta
        .write_with(move |tx| {
            let user = load_keeping_an_admin(tx, id, true)?;
            store::deactivate(tx, id)?;
            Ok::<_, AppError>(user)
        })
        .await?;
    audit::account_changed(&state, &principal, "user.deactivate", &user.email, ip).await;
    Ok(Json(
        json!({"success": true, "user": load(&state, id).await?}),
    ))
}

/// `POST /api/admin/users/{id}/reactivate`.
pub(crate) async fn reactivate_user(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Json<Value>> {
    let user = load(&state, id).await?;
    state
        .meta
        .write(move |tx| store::reactivate(tx, id))
        .await?;
    audit::account_changed(&state, &principal, "user.reactivate", &user.email, ip).await;
    Ok(Json(load(&state, id).await?.answer()))
}

/// The reference's confirmation for deleting a user: the user's email, typed again.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteConfirmation {
    confirm_email: Option<String>,
}

/// `DELETE /api/admin/users/{id}`: the user, their keys and sessions go. A body's
/// `confirm_email`, when sent, must be the user's email.
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
    JsonOrEmpty(body): JsonOrEmpty<DeleteConfirmation>,
) -> Result<Json<Value>> {
    not_self(&principal, id, "delete")?;
    let user = state
        .meta
        .write_with(move |tx| {
            let user = load_keeping_an_admin(tx, id, true)?;
            if let Some(typed) = &body.confirm_email
                && !typed.trim().eq_ignore_ascii_case(&user.email)
            {
                return Err(AppError::bad_request(
                    "confirmation_mismatch",
                    format!(
                        "confirm_email must be {}, the email of the user to delete",
                        user.email
                    ),
                ));
            }
            store::delete_user(tx, id)?;
            Ok(user)
        })
        .await?;
    audit::account_changed(&state, &principal, "user.delete", &user.email, ip).await;
    Ok(Json(
        json!({"success": true, "id": id.to_string(), "deleted": true}),
    ))
}

/// `POST /api/admin/users/{id}/unlock`: lifts a lockout after failed sign-ins.
pub(crate) async fn unlock_user(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Json<Value>> {
    let user = load(&state, id).await?;
    let email = user.email.clone();
    state
        .meta
        .write(move |tx| store::clear_failures(tx, &email))
        .await?;
    audit::record(
        &state,
        Some(&principal),
        "user.unlock",
        Some(&user.email),
        ip,
        None,
    )
    .await;
    Ok(Json(
        json!({"success": true, "user": load(&state, id).await?, "unlocked": true}),
    ))
}

/// `POST /api/admin/users/{id}/revoke-sessions`: every session of the user ends now.
pub(crate) async fn revoke_sessions(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Json<Value>> {
    let user = load(&state, id).await?;
    let revoked = state
        .meta
        .write(move |tx| {
            let n = store::count_sessions(tx, id)?;
            store::end_sessions(tx, id, None)?;
            Ok(n)
        })
        .await?;
    audit::record(
        &state,
        Some(&principal),
        "user.sessions_revoked",
        Some(&user.email),
        ip,
        None,
    )
    .await;
    Ok(Json(json!({
        "success": true,
        "revoked_count": revoked,
        "user": user,
        "sessions_revoked": true,
    })))
}

/// The first admin, `admin@localhost`, with a random password that must be changed at
/// first sign-in; created only when the project has no users. Returns the password.
pub async fn bootstrap_admin(meta: &MetaDb) -> anyhow::Result<Option<String>> {
    if meta.read(store::count_users).await? > 0 {
        return Ok(None);
    }
    let password = password::generate();
    let p = password.clone();
    let hash = password::hash_async(p).await?;
    let created = meta
        .write(move |tx| {
            if store::count_users(tx)? > 0 {
                return Ok(false);
            }
            store::insert_user(
                tx,
                "admin@localhost",
                "Admin",
                Role::Admin,
                Some(&hash),
                true,
            )?;
            audit::insert(tx, "kura", "user.create", "admin@localhost")?;
            Ok(true)
        })
        .await?;
    Ok(created.then_some(password))
}

/// `kura user add`: an active user with a temporary password (printed by the caller).
pub async fn add_user_cli(
    meta: &MetaDb,
    email: &str,
    role: Role,
    display_name: &str,
) -> anyhow::Result<String> {
    let email = email.trim().to_owned();
    if !valid_email(&email) {
        anyhow::bail!("{email:?} is not an email address");
    }
    let password = password::generate();
    let p = password.clone();
    let hash = password::hash_async(p).await?;
    let name = display_name.to_owned();
    let e = email.clone();
    let added = meta
        .write(move |tx| {
            if store::user_by_email(tx, &e)?.is_some() {
                return Ok(false);
            }
            store::insert_user(tx, &e, &name, role, Some(&hash), true)?;
            audit::insert(tx, "cli", "user.create", &e)?;
            Ok(true)
        })
        .await?;
    if !added {
        anyhow::bail!("there is already a user {email}");
    }
    Ok(password)
}

/// `kura user reset-password`: a new temporary password; the user's sessions end.
pub async fn reset_password_cli(meta: &MetaDb, email: &str) -> anyhow::Result<String> {
    let e = email.trim().to_owned();
    let user = meta
        .read(move |c| store::user_by_email(c, &e))
        .await?
        .ok_or_else(|| anyhow::anyhow!("there is no user {email}"))?;
    let password = password::generate();
    let p = password.clone();
    let hash = password::hash_async(p).await?;
    let (id, email) = (user.id, user.email.clone());
    meta.write(move |tx| {
        store::set_password(tx, id, &hash, true)?;
        audit::insert(tx, "cli", "user.password_reset", &email)?;
        // An admin locked out by failed sign-ins gets back in with the new password.
        store::clear_failures(tx, &email)
    })
    .await?;
    Ok(password)
}
