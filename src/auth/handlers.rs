//! `/api/auth/*`: signing in and out, the second factor, one's own password, sessions
//! and invitations. (API keys live in `keys.rs`, user administration in `admin.rs`.)

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_sessions::Session;

use super::store::{self, User, now_unix};
use super::{
    PendingTwoFactor, Principal, SESSION_AUTH, SESSION_PENDING, SessionAuth, Via, audit, password,
    tokens, totp,
};
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::web::extract::{ClientIp, Json, List, Path};

const PENDING_SECONDS: i64 = 300;
const PENDING_TRIES: u32 = 5;
const RECOVERY_CODES: usize = 10;

fn session_error(e: tower_sessions::session::Error) -> AppError {
    AppError::Internal(anyhow::anyhow!("session store: {e}"))
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect())
}

/// Both fields are checked by the handler: a sign-in without one is a 400 (as the
/// reference answers), not a validation 422.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `POST /api/auth/login`.
pub(crate) async fn login(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<Login>,
) -> Result<Json<Value>> {
    let (Some(email), Some(given)) = (body.email, body.password) else {
        return Err(AppError::bad_request(
            "invalid_request",
            "a sign-in needs an email and a password",
        ));
    };
    let email = email.trim().to_owned();
    let e = email.clone();
    let (locked, user) = state
        .meta
        .read(move |c| Ok((store::locked_for(c, &e)?, store::user_by_email(c, &e)?)))
        .await?;
    if let Some(retry_after) = locked {
        audit::record(&state, None, "login.locked_out", Some(&email), ip, None).await;
        return Err(AppError::Locked { retry_after });
    }
    // Unknown and invited accounts are checked against a dummy hash: same cost, same answer.
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_owned());
    let matches = password::verify_async(given, hash).await;
    let Some(user) = user.filter(|u| matches && u.password_hash.is_some()) else {
        return Err(failed_sign_in(&state, &email, ip).await);
    };
    let e = email.clone();
    state
        .meta
        .write(move |tx| store::clear_failures(tx, &e))
        .await?;
    if !user.is_active() {
        audit::record(&state, None, "login.deactivated", Some(&email), ip, None).await;
        return Err(AppError::forbidden(
            "account_deactivated",
            "this account is deactivated; ask an admin to reactivate it",
        ));
    }
    if user.totp_enabled {
        session.cycle_id().await.map_err(session_error)?;
        session
            .remove_value(SESSION_AUTH)
            .await
            .map_err(session_error)?;
        let pending = PendingTwoFactor {
            user_id: user.id,
            epoch: user.session_epoch,
            started_at: now_unix(),
            id: tokens::random_base62(24),
        };
        session
            .insert(SESSION_PENDING, pending)
            .await
            .map_err(session_error)?;
        return Ok(Json(json!({
            "requires_2fa": true,
            "message": "enter the code from your authenticator app (or a recovery code) at POST /api/auth/2fa/verify within 5 minutes",
        })));
    }
    let answer = complete_sign_in(&state, &session, &user, ip, &headers).await?;
    audit::record(&state, None, "login.success", Some(&user.email), ip, None).await;
    Ok(Json(answer))
}

async fn failed_sign_in(state: &AppState, email: &str, ip: Option<std::net::IpAddr>) -> AppError {
    let (attempts, seconds) = (
        state.config.auth.lockout_attempts,
        i64::try_from(state.config.auth.lockout_minutes * 60).unwrap_or(i64::MAX),
    );
    let e = email.to_owned();
    let locked = state
        .meta
        .write(move |tx| store::record_failure(tx, &e, attempts, seconds))
        .await;
    audit::record(state, None, "login.failure", Some(email), ip, None).await;
    match locked {
        Ok(Some(_)) => {
            audit::record(state, None, "account.locked", Some(email), ip, None).await;
            AppError::Locked {
                retry_after: seconds as u64,
            }
        }
        // 400, not 401, as the reference answers: 401 means "no credentials" to its clients.
        Ok(None) => {
            AppError::bad_request("invalid_credentials", "the email or the password is wrong")
        }
        Err(e) => e.into(),
    }
}

/// Makes `session` a signed-in session of `user` under a new id, and answers as `me` does.
async fn complete_sign_in(
    state: &AppState,
    session: &Session,
    user: &User,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
) -> Result<Value> {
    session.cycle_id().await.map_err(session_error)?;
    session
        .remove_value(SESSION_PENDING)
        .await
        .map_err(session_error)?;
    let auth = SessionAuth {
        user_id: user.id,
        epoch: user.session_epoch,
        csrf: tokens::random_base62(32),
        signed_in_at: now_unix(),
        ip: ip.map(|i| i.to_string()),
        user_agent: user_agent(headers),
    };
    let csrf = auth.csrf.clone();
    session
        .insert(SESSION_AUTH, auth)
        .await
        .map_err(session_error)?;
    let id = user.id;
    state
        .meta
        .write(move |tx| store::touch_login(tx, id))
        .await?;
    Ok(describe(state, user, Some(&csrf), "session"))
}

/// The signed-in user as `me`, sign-in and password changes answer: the user object at the
/// top level (the reference's `/api/auth/me` is the user), `user` nested as well (the
/// reference's sign-in answer), and Kura's session facts beside them.
fn describe(state: &AppState, user: &User, csrf: Option<&str>, via: &str) -> Value {
    let two_factor_required = state.config.auth.require_2fa && !user.totp_enabled;
    let mut body = user.answer();
    if let Some(m) = body.as_object_mut() {
        m.extend([
            ("auth_enabled".into(), json!(true)),
            ("requires_2fa".into(), json!(false)),
            ("requires_2fa_setup".into(), json!(two_factor_required)),
            ("permissions".into(), json!(user.role.permissions())),
            ("two_factor_enabled".into(), json!(user.totp_enabled)),
            ("two_factor_required".into(), json!(two_factor_required)),
            ("csrf_token".into(), json!(csrf)),
            ("authenticated_via".into(), json!(via)),
        ]);
    }
    body
}

/// `POST /api/auth/logout`: ends this session (a no-op without one).
pub(crate) async fn logout(
    State(state): State<AppState>,
    session: Session,
    principal: Option<Principal>,
    ClientIp(ip): ClientIp,
) -> Result<Json<Value>> {
    let Some(p) = principal.filter(|p| matches!(p.via, Via::Session { .. })) else {
        session.flush().await.map_err(session_error)?;
        return Err(AppError::unauthenticated(
            "unauthenticated",
            "there is no signed-in session to end",
        ));
    };
    session.flush().await.map_err(session_error)?;
    audit::record(&state, Some(&p), "logout", None, ip, None).await;
    Ok(Json(json!({"success": true, "signed_out": true})))
}

/// `GET /api/auth/me`.
pub(crate) async fn me(State(state): State<AppState>, principal: Principal) -> Result<Json<Value>> {
    let Some(user_id) = principal.user_id else {
        return Ok(Json(json!({
            "auth_enabled": state.config.auth.enabled,
            "user": {"email": principal.email, "role": principal.role},
            "role": principal.role,
            "permissions": principal.role.permissions(),
            "authenticated_via": principal.via,
        })));
    };
    let user = load_user(&state, user_id).await?;
    let (csrf, via) = match &principal.via {
        Via::Session { csrf, .. } => (Some(csrf.as_str()), "session"),
        Via::ApiKey { .. } => (None, "api_key"),
        _ => (None, "local"),
    };
    Ok(Json(describe(&state, &user, csrf, via)))
}

pub(crate) async fn load_user(state: &AppState, id: i64) -> Result<User> {
    state
        .meta
        .read(move |c| store::user_by_id(c, id))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("there is no user {id}")))
}

/// Checks the caller's own password (for sensitive changes); the user on success.
async fn confirm_password(state: &AppState, user_id: i64, given: String) -> Result<User> {
    let user = load_user(state, user_id).await?;
    let hash = user
        .password_hash
        .clone()
        .unwrap_or_else(|| password::dummy_hash().to_owned());
    if password::verify_async(given, hash).await {
        Ok(user)
    } else {
        Err(AppError::bad_request(
            "wrong_password",
            "the password is wrong",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// `POST /api/auth/change-password`: ends every other session; this one continues.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    session: Session,
    principal: Principal,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<ChangePassword>,
) -> Result<Json<Value>> {
    let user_id = principal.require_user()?;
    let user = confirm_password(&state, user_id, body.current_password.clone()).await?;
    password::check_policy(&body.new_password, &user.email).map_err(weak_password)?;
    if body.new_password == body.current_password {
        return Err(weak_password(
            "the new password must differ from the current one".into(),
        ));
    }
    let new = body.new_password;
    let hash = password::hash_async(new).await?;
    state
        .meta
        .write(move |tx| store::set_password(tx, user_id, &hash, false))
        .await?;
    audit::account_changed(&state, &principal, "password.change", &user.email, ip).await;
    let user = load_user(&state, user_id).await?;
    let mut answer = if matches!(principal.via, Via::Session { .. }) {
        complete_sign_in(&state, &session, &user, ip, &headers).await?
    } else {
        describe(&state, &user, None, "api_key")
    };
    answer["success"] = json!(true);
    Ok(Json(answer))
}

/// A password the policy refuses: 400 with the reasons as the reference's `issues` list.
fn weak_password(message: String) -> AppError {
    AppError::WithContext {
        error: Box::new(AppError::bad_request("weak_password", message.clone())),
        context: json!({"issues": [message]}),
    }
}

/// `GET /api/auth/sessions`: the caller's signed-in sessions.
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<List<Value>> {
    let user_id = principal.require_user()?;
    let current = match &principal.via {
        Via::Session { public_id, .. } => Some(public_id.clone()),
        _ => None,
    };
    let now = now_unix();
    let sessions = state
        .meta
        .read(move |c| store::sessions_of(c, user_id, now))
        .await?
        .into_iter()
        .map(|row| {
            let is_current = current.as_deref() == Some(row.public_id.as_str());
            json!({
                "id": row.public_id,
                "created_at": row.created_at,
                "last_activity": row.last_seen_at,
                "ip_address": row.ip,
                "user_agent": row.user_agent,
                "is_current": is_current,
                "current": is_current,
                "last_seen_at": row.last_seen_at,
                "ip": row.ip,
                "expires_at": chrono::DateTime::from_timestamp(row.expires_at, 0)
                    .map(crate::time::text),
            })
        })
        .collect();
    Ok(List::all(sessions))
}

/// `DELETE /api/auth/sessions/{id}`: ends one of the caller's sessions.
pub(crate) async fn delete_session(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = principal.require_user()?;
    let i = id.clone();
    let ended = state
        .meta
        .write(move |tx| store::end_session(tx, user_id, &i))
        .await?;
    if !ended {
        return Err(AppError::NotFound(format!("you have no session {id}")));
    }
    audit::record(
        &state,
        Some(&principal),
        "session.revoke",
        Some(&id),
        ip,
        None,
    )
    .await;
    Ok(Json(json!({"success": true, "id": id, "ended": true})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcceptInvite {
    token: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

/// `POST /api/auth/accept-invite`: sets the password and signs the new user in.
pub(crate) async fn accept_invite(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<AcceptInvite>,
) -> Result<Json<Value>> {
    let token_hash = tokens::sha256_hex(body.token.trim());
    let now = now_unix();
    let user = state
        .meta
        .read(move |c| store::invited_user(c, &token_hash, now))
        .await?
        .ok_or_else(|| {
            AppError::bad_request(
                "invalid_invite",
                "this invitation is unknown, used or expired; ask an admin to send a new one",
            )
        })?;
    password::check_policy(&body.password, &user.email).map_err(weak_password)?;
    let pw = body.password;
    let hash = password::hash_async(pw).await?;
    let display_name = body
        .display_name
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    let id = user.id;
    state
        .meta
        .write(move |tx| {
            store::set_password(tx, id, &hash, false)?;
            if let Some(name) = display_name {
                store::set_display_name(tx, id, &name)?;
            }
            store::delete_invites(tx, id)
        })
        .await?;
    audit::record(&state, None, "invite.accept", Some(&user.email), ip, None).await;
    let user = load_user(&state, id).await?;
    let mut answer = complete_sign_in(&state, &session, &user, ip, &headers).await?;
    answer["message"] = json!("the invitation is accepted; you are signed in");
    Ok(Json(answer))
}

// ---- two-factor -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordOnly {
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeOnly {
    code: String,
}

/// The sign-in code; `is_recovery` (the reference's login page sends it) says the code is
/// a recovery code, so no authenticator code is tried.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInCode {
    code: String,
    #[serde(default)]
    is_recovery: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordAndCode {
    password: String,
    code: String,
}

/// New recovery codes: the plain codes (shown once) and their digests (stored).
fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| tokens::new_recovery_code())
        .collect();
    let hashes = codes
        .iter()
        .map(|c| tokens::sha256_hex(&tokens::normalize_recovery_code(c)))
        .collect();
    (codes, hashes)
}

/// `POST /api/auth/2fa/setup`: a new secret (pending until a code from it is verified).
pub(crate) async fn setup_two_factor(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Json(body): Json<PasswordOnly>,
) -> Result<Json<Value>> {
    let user_id = principal.require_user()?;
    let user = confirm_password(&state, user_id, body.password).await?;
    if user.totp_enabled {
        return Err(AppError::Conflict {
            code: "two_factor_already_enabled",
            message: "two-factor sign-in is already on; disable it first to enrol a new device"
                .into(),
        });
    }
    let secret = totp::new_secret();
    let sealed = state.auth.secret_box.seal(&secret)?;
    let (codes, hashes) = new_recovery_codes();
    state
        .meta
        .write(move |tx| store::begin_two_factor(tx, user_id, &sealed, &hashes))
        .await?;
    let uri = totp::otpauth_uri(&secret, &user.email);
    audit::record(
        &state,
        Some(&principal),
        "2fa.setup_started",
        Some(&user.email),
        ip,
        None,
    )
    .await;
    Ok(Json(json!({
        "secret": totp::base32(&secret),
        "provisioning_uri": uri,
        "otpauth_uri": uri,
        "qr_code": totp::qr_svg_data_uri(&uri)?,
        "recovery_codes": codes,
        "message": "scan the QR code, then confirm with a code at POST /api/auth/2fa/verify-setup; the recovery codes are shown only now",
    })))
}

/// Accepts `code` for a stored (sealed) secret if it is current and newer than the last
/// code accepted; records its step so it cannot be used again.
async fn accept_totp(
    state: &AppState,
    user_id: i64,
    sealed: &[u8],
    code: &str,
    last_step: i64,
) -> Result<Option<i64>> {
    let secret = state.auth.secret_box.open_sealed(sealed)?;
    let now = u64::try_from(now_unix()).unwrap_or(0);
    let Some(step) = totp::matching_step(&secret, code, now) else {
        return Ok(None);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    if step <= last_step {
        return Err(AppError::unauthenticated(
            "code_already_used",
            "this code was already used; wait for the next one",
        ));
    }
    // Conditional: two requests racing with the same code cannot both win.
    let won = state
        .meta
        .write(move |tx| store::claim_totp_step(tx, user_id, step))
        .await?;
    if !won {
        return Err(AppError::unauthenticated(
            "code_already_used",
            "this code was already used; wait for the next one",
        ));
    }
    Ok(Some(step))
}

/// (sealed active secret, sealed pending secret, last step) of a user.
async fn totp_state(
    state: &AppState,
    user_id: i64,
) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>, i64)> {
    let t = state
        .meta
        .read(move |c| store::totp_state(c, user_id))
        .await?;
    Ok((t.secret, t.pending, t.last_step))
}

/// `POST /api/auth/2fa/verify-setup`: a code from the new secret turns 2FA on.
pub(crate) async fn verify_two_factor_setup(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Json(body): Json<CodeOnly>,
) -> Result<Json<Value>> {
    let user_id = principal.require_user()?;
    let (_, pending, last_step) = totp_state(&state, user_id).await?;
    let Some(pending) = pending else {
        return Err(AppError::Conflict {
            code: "no_pending_setup",
            message: "start with POST /api/auth/2fa/setup".into(),
        });
    };
    if accept_totp(&state, user_id, &pending, &body.code, last_step)
        .await?
        .is_none()
    {
        return Err(AppError::bad_request(
            "invalid_code",
            "the code does not match; check the device's clock and try the current code",
        ));
    }
    state
        .meta
        .write(move |tx| store::enable_two_factor(tx, user_id))
        .await?;
    audit::account_changed(&state, &principal, "2fa.enabled", &principal.email, ip).await;
    Ok(Json(json!({"success": true, "two_factor_enabled": true})))
}

/// `POST /api/auth/2fa/verify`: the second sign-in step, with a TOTP or recovery code.
pub(crate) async fn verify_two_factor(
    State(state): State<AppState>,
    session: Session,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<SignInCode>,
) -> Result<Json<Value>> {
    let Some(pending) = session
        .get::<PendingTwoFactor>(SESSION_PENDING)
        .await
        .map_err(session_error)?
    else {
        return Err(AppError::unauthenticated(
            "no_pending_sign_in",
            "there is no sign-in waiting for a two-factor code; sign in with your password first",
        ));
    };
    let expired = || {
        AppError::unauthenticated(
            "two_factor_expired",
            "this sign-in took too long or had too many wrong codes; sign in with your password again",
        )
    };
    if now_unix() - pending.started_at > PENDING_SECONDS {
        session
            .remove_value(SESSION_PENDING)
            .await
            .map_err(session_error)?;
        return Err(expired());
    }
    // Counted before the code is looked at, in one atomic statement: parallel guesses on
    // one session each get their own number, and the sixth is not evaluated at all.
    let pending_id = pending.id.clone();
    let tries = state
        .meta
        .write(move |tx| store::count_two_factor_try(tx, &pending_id))
        .await?;
    if tries > PENDING_TRIES {
        session
            .remove_value(SESSION_PENDING)
            .await
            .map_err(session_error)?;
        return Err(expired());
    }
    let user = load_user(&state, pending.user_id).await?;
    let e = user.email.clone();
    if let Some(retry_after) = state.meta.read(move |c| store::locked_for(c, &e)).await? {
        return Err(AppError::Locked { retry_after });
    }
    let (secret, _, last_step) = totp_state(&state, user.id).await?;
    let valid_user = user.is_active() && user.session_epoch == pending.epoch;
    let mut ok = false;
    let mut method = "totp";
    if valid_user && let Some(sealed) = secret {
        if !body.is_recovery {
            ok = accept_totp(&state, user.id, &sealed, &body.code, last_step)
                .await?
                .is_some();
        }
        if !ok {
            let hash = tokens::sha256_hex(&tokens::normalize_recovery_code(&body.code));
            let id = user.id;
            ok = state
                .meta
                .write(move |tx| store::use_recovery_code(tx, id, &hash))
                .await?;
            method = "recovery_code";
        }
    }
    if !ok {
        audit::record(&state, None, "2fa.failure", Some(&user.email), ip, None).await;
        // A wrong second factor counts toward the account's lockout like a wrong password.
        let error = failed_sign_in(&state, &user.email, ip).await;
        if matches!(error, AppError::Locked { .. }) {
            return Err(error);
        }
        return Err(AppError::unauthenticated(
            "invalid_code",
            format!(
                "the code is wrong ({} of {PENDING_TRIES} tries left)",
                PENDING_TRIES.saturating_sub(tries)
            ),
        ));
    }
    let pending_id = pending.id.clone();
    state
        .meta
        .write(move |tx| store::clear_two_factor_tries(tx, &pending_id))
        .await?;
    let answer = complete_sign_in(&state, &session, &user, ip, &headers).await?;
    audit::record(
        &state,
        None,
        "login.success",
        Some(&user.email),
        ip,
        Some(json!({"second_factor": method})),
    )
    .await;
    Ok(Json(answer))
}

/// The password and a current authenticator code of a user with two-factor sign-in on.
async fn confirm_password_and_code(
    state: &AppState,
    user_id: i64,
    body: PasswordAndCode,
) -> Result<User> {
    let user = confirm_password(state, user_id, body.password).await?;
    let (secret, _, last_step) = totp_state(state, user_id).await?;
    let Some(sealed) = secret.filter(|_| user.totp_enabled) else {
        return Err(AppError::Conflict {
            code: "two_factor_not_enabled",
            message: "two-factor sign-in is not on".into(),
        });
    };
    if accept_totp(state, user_id, &sealed, &body.code, last_step)
        .await?
        .is_none()
    {
        return Err(AppError::bad_request(
            "invalid_code",
            "the code from the authenticator app does not match",
        ));
    }
    Ok(user)
}

/// `POST /api/auth/2fa/disable`.
pub(crate) async fn disable_two_factor(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Json(body): Json<PasswordAndCode>,
) -> Result<Json<Value>> {
    let user_id = principal.require_user()?;
    // A stolen session that learnt the password must not remove the second factor: the
    // authenticator's current code is asked for too.
    let user = confirm_password_and_code(&state, user_id, body).await?;
    state
        .meta
        .write(move |tx| store::disable_two_factor(tx, user_id))
        .await?;
    audit::account_changed(&state, &principal, "2fa.disabled", &user.email, ip).await;
    Ok(Json(json!({"success": true, "two_factor_enabled": false})))
}

/// `POST /api/auth/2fa/regenerate-recovery`: new codes; the old ones stop working.
pub(crate) async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Json(body): Json<PasswordAndCode>,
) -> Result<(StatusCode, Json<Value>)> {
    let user_id = principal.require_user()?;
    let user = confirm_password_and_code(&state, user_id, body).await?;
    let (codes, hashes) = new_recovery_codes();
    state
        .meta
        .write(move |tx| store::replace_recovery_codes(tx, user_id, &hashes))
        .await?;
    audit::record(
        &state,
        Some(&principal),
        "2fa.recovery_regenerated",
        Some(&user.email),
        ip,
        None,
    )
    .await;
    Ok((StatusCode::OK, Json(json!({"recovery_codes": codes}))))
}
