//! tower-sessions' `SessionStore` over the metadata database (table `sessions`).
//!
//! The session id is the cookie value: the store keeps only its SHA-256 ([`stored_id`]),
//! so a copy of `kura.db` signs no one in. Listings and `DELETE /api/auth/sessions/{id}`
//! use `public_id`, a shorter digest. The signed-in user's
//! id is copied out of the data into a column so sessions can be listed and ended per user.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};

use crate::db::meta::MetaDb;

#[derive(Clone)]
pub(crate) struct MetaSessionStore {
    meta: MetaDb,
}

impl std::fmt::Debug for MetaSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetaSessionStore")
    }
}

impl MetaSessionStore {
    pub(crate) fn new(meta: MetaDb) -> Self {
        Self { meta }
    }

    /// Removes expired sessions; returns how many.
    pub(crate) async fn purge_expired(&self) -> anyhow::Result<usize> {
        let now = super::store::now_unix();
        Ok(self
            .meta
            .write(move |tx| tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now]))
            .await?)
    }
}

/// What the `sessions.id` column holds for a session: the SHA-256 of the cookie value.
fn stored_id(id: &Id) -> String {
    super::tokens::sha256_hex(&format!("session:{id}"))
}

/// The id shown for a session: not the cookie value, but derived from it.
pub(crate) fn public_id(id: &Id) -> String {
    super::tokens::sha256_hex(&id.to_string())[..16].to_owned()
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for MetaSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // Ids are 128 random bits; on the rare collision draw another.
        loop {
            let id = stored_id(&record.id);
            let taken = self
                .meta
                .read(move |c| {
                    c.query_row("SELECT 1 FROM sessions WHERE id = ?1", [id], |_| Ok(()))
                        .optional()
                })
                .await
                .map_err(backend)?;
            if taken.is_none() {
                break;
            }
            record.id = Id::default();
        }
        self.save(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let id = stored_id(&record.id);
        let public = public_id(&record.id);
        let user_id = record
            .data
            .get("auth")
            .and_then(|a| a.get("user_id"))
            .and_then(serde_json::Value::as_i64);
        let data = serde_json::to_string(&record.data).map_err(backend)?;
        let expires = record.expiry_date.unix_timestamp();
        let now = super::store::now_text();
        self.meta
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO sessions (id, public_id, user_id, data, expires_at, created_at, last_seen_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                     ON CONFLICT(id) DO UPDATE SET user_id = ?3, data = ?4, expires_at = ?5, last_seen_at = ?6",
                    params![id, public, user_id, data, expires, now],
                )
            })
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let id = stored_id(session_id);
        let now = super::store::now_unix();
        let row = self
            .meta
            .read(move |c| {
                c.prepare_cached(
                    "SELECT data, expires_at FROM sessions WHERE id = ?1 AND expires_at > ?2",
                )?
                .query_row(params![id, now], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()
            })
            .await
            .map_err(backend)?;
        let Some((data, expires)) = row else {
            return Ok(None);
        };
        Ok(Some(Record {
            id: *session_id,
            data: serde_json::from_str(&data).map_err(backend)?,
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::from_unix_timestamp(expires)
                .map_err(backend)?,
        }))
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        let id = stored_id(session_id);
        self.meta
            .write(move |tx| tx.execute("DELETE FROM sessions WHERE id = ?1", [id]))
            .await
            .map_err(backend)?;
        Ok(())
    }
}
