//! API keys: creation, listing, revocation, and the lookup every keyed request makes.
//!
//! Lookups go through [`KeyCache`], so a keyed request costs a hash and a map read rather
//! than a database round trip. Any change to keys or users clears the cache, so a
//! revocation, a role change or a deactivation applies to the very next request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{self, now_text, now_unix};
use super::{Principal, Role, Via, audit, tokens};
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::time::unix_text;
use crate::web::extract::{ClientIp, Json, List, Path, Query};

/// How often `last_used_at` is written for a busy key.
const TOUCH_EVERY_SECONDS: i64 = 60;

#[derive(Debug)]
pub(crate) struct CachedKey {
    key_id: i64,
    user_id: i64,
    email: String,
    role: Role,
    expires_at: Option<i64>,
    must_change_password: bool,
    totp_enabled: bool,
    last_touch: AtomicI64,
}

#[derive(Default)]
pub struct KeyCache {
    by_hash: RwLock<HashMap<String, Arc<CachedKey>>>,
}

impl KeyCache {
    /// Forgets everything; called after any change to keys or users.
    pub fn clear(&self) {
        crate::locks::write(&self.by_hash).clear();
    }

    fn get(&self, hash: &str) -> Option<Arc<CachedKey>> {
        crate::locks::read(&self.by_hash).get(hash).cloned()
    }

    fn put(&self, hash: String, key: Arc<CachedKey>) {
        crate::locks::write(&self.by_hash).insert(hash, key);
    }
}

/// The caller a presented key stands for, or a 401 saying why not.
pub(crate) async fn authenticate(state: &AppState, presented: &str) -> Result<Principal> {
    let hash = tokens::sha256_hex(presented);
    let cached = match state.auth.keys.get(&hash) {
        Some(k) => k,
        None => {
            let h = hash.clone();
            let row = state
                .meta
                .read(move |c| store::key_owner(c, &h))
                .await
                .map_err(|e| AppError::Internal(e.into()))?;
            let Some(owner) = row else {
                return Err(AppError::unauthenticated(
                    "invalid_api_key",
                    "this API key is not valid (unknown, revoked, or its owner is deactivated)",
                ));
            };
            let key = Arc::new(CachedKey {
                key_id: owner.key_id,
                user_id: owner.user_id,
                email: owner.email,
                role: owner.role,
                expires_at: owner.expires_at,
                must_change_password: owner.must_change_password,
                totp_enabled: owner.totp_enabled,
                last_touch: AtomicI64::new(0),
            });
            state.auth.keys.put(hash, key.clone());
            key
        }
    };
    let now = now_unix();
    if cached.expires_at.is_some_and(|e| e <= now) {
        return Err(AppError::unauthenticated(
            "api_key_expired",
            "this API key has expired; create a new one",
        ));
    }
    let last = cached.last_touch.load(Ordering::Relaxed);
    if now - last >= TOUCH_EVERY_SECONDS
        && cached
            .last_touch
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let (meta, id, at) = (state.meta.clone(), cached.key_id, now_text());
        state.tasks.spawn("api_key:touch", async move {
            let _ = meta.write(move |tx| store::touch_key(tx, id, &at)).await;
        });
    }
    Ok(Principal {
        user_id: Some(cached.user_id),
        email: cached.email.clone(),
        role: cached.role,
        via: Via::ApiKey {
            key_id: cached.key_id,
        },
        must_change_password: cached.must_change_password,
        needs_two_factor: state.config.auth.require_2fa && !cached.totp_enabled,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    name: String,
    /// Days until the key stops working; none means it does not expire.
    #[serde(default)]
    expires_in_days: Option<u32>,
    /// The reference's way: when the key stops working (RFC 3339).
    #[serde(default)]
    expires_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// `POST /api/auth/api-keys`: the key is in this answer and nowhere else, ever.
pub(crate) async fn create_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<Value>)> {
    let user_id = principal.require_user()?;
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_request(
            "invalid_name",
            "a key needs a name of 1 to 100 characters (say what uses it)",
        ));
    }
    if body.expires_in_days == Some(0) || body.expires_in_days.is_some_and(|d| d > 3650) {
        return Err(AppError::bad_request(
            "invalid_expiry",
            "expires_in_days must be between 1 and 3650 (or left out for no expiry)",
        ));
    }
    let key = tokens::new_api_key();
    let hash = tokens::sha256_hex(&key);
    let prefix = tokens::shown_prefix(&key);
    let expires_at = match (body.expires_in_days, body.expires_at) {
        (Some(_), Some(_)) => {
            return Err(AppError::bad_request(
                "invalid_expiry",
                "give expires_in_days or expires_at, not both",
            ));
        }
        (Some(d), None) => Some(now_unix() + i64::from(d) * 86_400),
        (None, Some(at)) if at.timestamp() <= now_unix() => {
            return Err(AppError::bad_request(
                "invalid_expiry",
                "expires_at is in the past",
            ));
        }
        (None, at) => at.map(|a| a.timestamp()),
    };
    let created_at = now_text();
    let (n, p, c) = (name.clone(), prefix.clone(), created_at.clone());
    let id = state
        .meta
        .write(move |tx| store::insert_key(tx, user_id, &n, &p, &hash, &c, expires_at))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    audit::record(
        &state,
        Some(&principal),
        "api_key.create",
        Some(&format!("key {id} ({name})")),
        ip,
        None,
    )
    .await;
    Ok((
        StatusCode::OK,
        Json(json!({
            "id": id.to_string(),
            "name": name,
            "key": key,
            "key_prefix": prefix,
            "last_used_at": None::<String>,
            "prefix": prefix,
            "role": principal.role,
            "created_at": created_at,
            "expires_at": expires_at.and_then(unix_text),
            "message": "store this key now: Kura keeps only a hash and cannot show it again",
        })),
    ))
}

#[derive(Deserialize)]
pub(crate) struct ListKeys {
    /// Revoked keys too (the reference lists only the usable ones).
    #[serde(default)]
    include_revoked: bool,
}

/// `GET /api/auth/api-keys`: the caller's keys (prefix only), revoked ones on request.
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListKeys>,
) -> Result<List<Value>> {
    let user_id = principal.require_user()?;
    let now = now_unix();
    let keys = state
        .meta
        .read(move |c| store::keys_of(c, user_id, q.include_revoked))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .iter()
        .map(|k| key_json(k, now))
        .collect();
    Ok(List::all(keys))
}

/// A key in the reference's listing shape (`key_prefix`) with Kura's keys beside it.
fn key_json(k: &store::KeyRow, now: i64) -> Value {
    json!({
        "id": k.id.to_string(),
        "name": k.name,
        "key_prefix": k.prefix,
        "prefix": k.prefix,
        "created_at": k.created_at,
        "expires_at": k.expires_at.and_then(unix_text),
        "last_used_at": k.last_used_at,
        "revoked_at": k.revoked_at,
        "status": k.status(now),
    })
}

/// `DELETE /api/auth/api-keys/{id}`: revokes one of the caller's keys (admins: anyone's).
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Path(id): Path<i64>,
) -> Result<Json<Value>> {
    let user_id = principal.require_user()?;
    let any_owner = principal.can(super::Permission::UsersManage);
    let revoked = state
        .meta
        .write(move |tx| store::revoke_key(tx, id, user_id, any_owner))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    state.auth.keys.clear();
    if !revoked {
        return Err(AppError::NotFound(format!(
            "you have no active API key {id}"
        )));
    }
    audit::record(
        &state,
        Some(&principal),
        "api_key.revoke",
        Some(&format!("key {id}")),
        ip,
        None,
    )
    .await;
    Ok(Json(
        json!({"success": true, "id": id.to_string(), "revoked": true}),
    ))
}
