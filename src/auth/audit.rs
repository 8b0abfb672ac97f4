//! The audit log: who signed in or failed to, who changed roles, keys, 2FA, secrets,
//! passwords. Entries never hold a password, code, key or secret value.

use std::net::IpAddr;

use axum::extract::State;
use rusqlite::params;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Principal;
use super::store::now_text;
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::web::extract::{Json, Query};

/// Appends an entry inside a write transaction (for changes made outside a request).
pub(crate) fn insert(
    tx: &rusqlite::Transaction<'_>,
    actor: &str,
    action: &str,
    target: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO audit_log (ts, actor, action, target) VALUES (?1, ?2, ?3, ?4)",
        params![now_text(), actor, action, target],
    )?;
    Ok(())
}

/// Appends an entry. Failing to write one is logged, not fatal to the request.
pub(crate) async fn record(
    state: &AppState,
    actor: Option<&Principal>,
    action: &'static str,
    target: Option<&str>,
    ip: Option<IpAddr>,
    details: Option<Value>,
) {
    let actor = actor.map(|p| p.email.clone());
    let target = target.map(str::to_owned);
    let ip = ip.map(|i| i.to_string());
    let details = details.map(|d| d.to_string());
    let written = state
        .meta
        .write(move |tx| {
            tx.execute(
                "INSERT INTO audit_log (ts, actor, action, target, ip, details) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now_text(), actor, action, target, ip, details],
            )
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, action, "cannot write an audit entry");
    }
}

/// After a change to an account (role, status, password, 2FA, keys): cached key lookups
/// are dropped so the change applies to the very next request, and the change is audited.
pub(crate) async fn account_changed(
    state: &AppState,
    actor: &Principal,
    action: &'static str,
    target: &str,
    ip: Option<IpAddr>,
) {
    state.auth.keys.clear();
    record(state, Some(actor), action, Some(target), ip, None).await;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `GET /api/audit?limit=&offset=`: newest first.
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>> {
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let offset = page.offset.unwrap_or(0);
    let (total, entries) = state
        .meta
        .read(move |c| {
            let total: i64 = c.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))?;
            let mut stmt = c.prepare(
                "SELECT id, ts, actor, action, target, ip, details FROM audit_log \
                 ORDER BY id DESC LIMIT ?1 OFFSET ?2",
            )?;
            let entries = stmt
                .query_map(params![limit, offset], |r| {
                    let details: Option<String> = r.get(6)?;
                    Ok(json!({
                        "id": r.get::<_, i64>(0)?,
                        "timestamp": r.get::<_, String>(1)?,
                        "actor": r.get::<_, Option<String>>(2)?,
                        "action": r.get::<_, String>(3)?,
                        "target": r.get::<_, Option<String>>(4)?,
                        "ip": r.get::<_, Option<String>>(5)?,
                        "details": details.and_then(|d| serde_json::from_str::<Value>(&d).ok()),
                    }))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((total, entries))
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(Json(
        json!({"entries": entries, "total": total, "limit": limit, "offset": offset}),
    ))
}
