//! Account rows in the metadata store. Plain functions over a SQLite connection, run
//! inside `MetaDb::read` / `MetaDb::write` closures by the handlers.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::permissions::Role;

pub use crate::time::now_text;

pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An account. Serialised in the reference product's user shape (`id` as a string,
/// `is_active`, `last_login`, `has_pending_invite`, ...) with Kura's own keys beside it
/// (`status`, `display_name`, `last_login_at`): one serializer for every route that
/// answers with a user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub status: String,
    pub must_change_password: bool,
    pub totp_enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    pub last_login_at: Option<String>,
    /// Failed sign-ins counted against this email since the last success.
    pub failed_login_attempts: i64,
    /// Unix seconds until which sign-in is refused (0: not locked).
    pub locked_until: i64,
    /// Unix seconds at which the newest open invitation expires.
    pub invite_expires_at: Option<i64>,
    pub password_hash: Option<String>,
    pub session_epoch: i64,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The user as the reference answers a user: the user object itself, with `user`
    /// nested as well (its sign-in answer's shape, and Kura's earlier one).
    pub fn answer(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}));
        body["user"] = serde_json::json!(self);
        body
    }
}

use crate::time::unix_text;

impl Serialize for User {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let locked = (self.locked_until > now_unix()).then_some(self.locked_until);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id.to_string())?;
        m.serialize_entry("email", &self.email)?;
        m.serialize_entry("role", &self.role)?;
        m.serialize_entry("is_active", &self.is_active())?;
        m.serialize_entry("totp_enabled", &self.totp_enabled)?;
        m.serialize_entry("oauth_provider", &None::<String>)?;
        m.serialize_entry("failed_login_attempts", &self.failed_login_attempts)?;
        m.serialize_entry("locked_until", &locked.and_then(unix_text))?;
        m.serialize_entry("must_change_password", &self.must_change_password)?;
        m.serialize_entry("last_login", &self.last_login_at)?;
        m.serialize_entry(
            "invite_expires_at",
            &self.invite_expires_at.and_then(unix_text),
        )?;
        m.serialize_entry("created_at", &self.created_at)?;
        m.serialize_entry("updated_at", &self.updated_at)?;
        m.serialize_entry("has_pending_invite", &(self.status == "invited"))?;
        m.serialize_entry("status", &self.status)?;
        m.serialize_entry("display_name", &self.display_name)?;
        m.serialize_entry("last_login_at", &self.last_login_at)?;
        m.end()
    }
}

const USER_COLUMNS: &str = "u.id, u.email, u.display_name, u.role, u.status, \
     u.must_change_password, u.totp_secret IS NOT NULL, u.created_at, u.last_login_at, \
     u.password_hash, u.session_epoch, u.updated_at, coalesce(t.failures, 0), \
     coalesce(t.locked_until, 0), \
     (SELECT max(i.expires_at) FROM invites i WHERE i.user_id = u.id)";

/// `FROM` clause for [`USER_COLUMNS`].
const USER_FROM: &str = "users u LEFT JOIN login_throttle t ON t.email = u.email";

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        display_name: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        status: r.get(4)?,
        must_change_password: r.get(5)?,
        totp_enabled: r.get(6)?,
        created_at: r.get(7)?,
        last_login_at: r.get(8)?,
        password_hash: r.get(9)?,
        session_epoch: r.get(10)?,
        updated_at: r.get(11)?,
        failed_login_attempts: r.get(12)?,
        locked_until: r.get(13)?,
        invite_expires_at: r.get(14)?,
    })
}

pub fn user_by_email(c: &Connection, email: &str) -> rusqlite::Result<Option<User>> {
    c.query_row(
        &format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.email = ?1"),
        [email.trim()],
        user_row,
    )
    .optional()
}

pub fn user_by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    c.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.id = ?1"
    ))?
    .query_row([id], user_row)
    .optional()
}

pub fn list_users(c: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {USER_COLUMNS} FROM {USER_FROM} ORDER BY u.id"
    ))?;
    stmt.query_map([], user_row)?.collect()
}

pub fn count_users(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
}

/// Active admins other than `except`: the last one cannot be demoted, deactivated or deleted.
pub fn other_active_admins(c: &Connection, except: i64) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM users WHERE role = 'admin' AND status = 'active' AND id <> ?1",
        [except],
        |r| r.get(0),
    )
}

/// Inserts a user; `password_hash` None means invited (no password yet).
pub fn insert_user(
    c: &Connection,
    email: &str,
    display_name: &str,
    role: Role,
    password_hash: Option<&str>,
    must_change_password: bool,
) -> rusqlite::Result<i64> {
    let now = now_text();
    let status = if password_hash.is_some() {
        "active"
    } else {
        "invited"
    };
    c.execute(
        "INSERT INTO users (email, display_name, role, password_hash, status, must_change_password, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            email.trim(),
            display_name,
            role.as_str(),
            password_hash,
            status,
            must_change_password,
            now
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// Sets a password; `must_change` marks it temporary. Ends every session of the user.
pub fn set_password(
    c: &Connection,
    user_id: i64,
    hash: &str,
    must_change: bool,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET password_hash = ?2, must_change_password = ?3, \
         status = CASE status WHEN 'invited' THEN 'active' ELSE status END, \
         updated_at = ?4 WHERE id = ?1",
        params![user_id, hash, must_change, now_text()],
    )?;
    end_sessions(c, user_id, None)
}

/// Ends the user's sessions (all, or all but `keep`, the one asking) at once: the rows go
/// and the epoch moves, so a request already in flight cannot bring one back.
pub fn end_sessions(c: &Connection, user_id: i64, keep: Option<&str>) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?1",
        [user_id],
    )?;
    match keep {
        Some(id) => {
            c.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND id <> ?2",
                params![user_id, id],
            )?;
            // The session kept follows the user to the new epoch.
            c.execute(
                "UPDATE sessions SET data = json_set(data, '$.auth.epoch', \
                 (SELECT session_epoch FROM users WHERE id = ?1)) WHERE id = ?2",
                params![user_id, id],
            )?;
        }
        None => {
            c.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
        }
    }
    Ok(())
}

/// Counts a failed sign-in for `email`; returns the lock end (unix s) when this locks it.
pub fn record_failure(
    c: &Connection,
    email: &str,
    attempts: u32,
    lock_seconds: i64,
) -> rusqlite::Result<Option<i64>> {
    let now = now_unix();
    c.execute(
        "INSERT INTO login_throttle (email, failures, locked_until) VALUES (?1, 1, 0) \
         ON CONFLICT(email) DO UPDATE SET failures = \
           CASE WHEN locked_until > 0 AND locked_until <= ?2 THEN 1 ELSE failures + 1 END, \
           locked_until = CASE WHEN locked_until <= ?2 THEN 0 ELSE locked_until END",
        params![email.trim().to_lowercase(), now],
    )?;
    let failures: i64 = c.query_row(
        "SELECT failures FROM login_throttle WHERE email = ?1",
        [email.trim()],
        |r| r.get(0),
    )?;
    if failures >= i64::from(attempts) {
        let until = now + lock_seconds;
        c.execute(
            "UPDATE login_throttle SET locked_until = ?2, failures = 0 WHERE email = ?1",
            params![email.trim(), until],
        )?;
        return Ok(Some(until));
    }
    Ok(None)
}

/// Counts one more try of the pending sign-in `pending_id` and returns the count,
/// atomically (one statement on the single writer), before the code is evaluated.
pub fn count_two_factor_try(c: &Connection, pending_id: &str) -> rusqlite::Result<u32> {
    let now = now_unix();
    c.execute(
        "DELETE FROM two_factor_attempts WHERE started_at < ?1",
        [now - 3600],
    )?;
    c.query_row(
        "INSERT INTO two_factor_attempts (pending_id, tries, started_at) VALUES (?1, 1, ?2) \
         ON CONFLICT(pending_id) DO UPDATE SET tries = tries + 1 RETURNING tries",
        params![pending_id, now],
        |r| r.get(0),
    )
}

/// Forgets a pending sign-in's tries (it succeeded).
pub fn clear_two_factor_tries(c: &Connection, pending_id: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM two_factor_attempts WHERE pending_id = ?1",
        [pending_id],
    )
    .map(drop)
}

/// Seconds left on a lock of `email`, if it is locked.
pub fn locked_for(c: &Connection, email: &str) -> rusqlite::Result<Option<u64>> {
    let until: Option<i64> = c
        .query_row(
            "SELECT locked_until FROM login_throttle WHERE email = ?1",
            [email.trim()],
            |r| r.get(0),
        )
        .optional()?;
    let now = now_unix();
    Ok(until.filter(|u| *u > now).map(|u| (u - now) as u64))
}

pub fn clear_failures(c: &Connection, email: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM login_throttle WHERE email = ?1",
        [email.trim()],
    )?;
    Ok(())
}
