//! Account rows in the metadata store. Plain functions over a SQLite connection, run
//! inside `MetaDb::read` / `MetaDb::write` closures by the handlers.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::permissions::Role;

pub(crate) use crate::time::now_text;

pub(crate) fn now_unix() -> i64 {
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
    pub(crate) display_name: String,
    pub role: Role,
    pub status: String,
    pub(crate) must_change_password: bool,
    pub totp_enabled: bool,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub last_login_at: Option<String>,
    /// Failed sign-ins counted against this email since the last success.
    pub(crate) failed_login_attempts: i64,
    /// Unix seconds until which sign-in is refused (0: not locked).
    pub(crate) locked_until: i64,
    /// Unix seconds at which the newest open invitation expires.
    pub(crate) invite_expires_at: Option<i64>,
    pub(crate) password_hash: Option<String>,
    pub(crate) session_epoch: i64,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// Sign-in is refused for now after failed attempts.
    pub(crate) fn is_locked(&self) -> bool {
        self.locked_until > now_unix()
    }

    /// The user as the reference answers a user: the user object itself, with `user`
    /// nested as well (its sign-in answer's shape, and Kura's earlier one).
    pub(crate) fn answer(&self) -> serde_json::Value {
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

pub(crate) fn user_by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
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

pub(crate) fn count_users(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
}

/// Active admins other than `except`: the last one cannot be demoted, deactivated or deleted.
pub(crate) fn other_active_admins(c: &Connection, except: i64) -> rusqlite::Result<i64> {
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
pub(crate) fn end_sessions(
    c: &Connection,
    user_id: i64,
    keep: Option<&str>,
) -> rusqlite::Result<()> {
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
pub(crate) fn record_failure(
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
pub(crate) fn count_two_factor_try(c: &Connection, pending_id: &str) -> rusqlite::Result<u32> {
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
pub(crate) fn clear_two_factor_tries(c: &Connection, pending_id: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM two_factor_attempts WHERE pending_id = ?1",
        [pending_id],
    )
    .map(drop)
}

/// Seconds left on a lock of `email`, if it is locked.
pub(crate) fn locked_for(c: &Connection, email: &str) -> rusqlite::Result<Option<u64>> {
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

pub(crate) fn clear_failures(c: &Connection, email: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM login_throttle WHERE email = ?1",
        [email.trim()],
    )?;
    Ok(())
}

/// Stamps a successful sign-in.
pub(crate) fn touch_login(c: &Connection, user_id: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET last_login_at = ?2 WHERE id = ?1",
        params![user_id, now_text()],
    )
    .map(|_| ())
}

pub(crate) fn set_display_name(c: &Connection, user_id: i64, name: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET display_name = ?2 WHERE id = ?1",
        params![user_id, name],
    )
    .map(|_| ())
}

pub(crate) fn set_role(c: &Connection, user_id: i64, role: Role) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, role.as_str(), now_text()],
    )
    .map(|_| ())
}

/// Closes the account: sign-in stops, its sessions end, and its API keys are revoked for
/// good (reactivating it must not bring back credentials handed out before).
pub(crate) fn deactivate(c: &Connection, user_id: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET status = 'deactivated', updated_at = ?2 WHERE id = ?1",
        params![user_id, now_text()],
    )?;
    c.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user_id, now_text()],
    )?;
    end_sessions(c, user_id, None)
}

/// Opens a closed account again: active, or invited when no password was ever set.
pub(crate) fn reactivate(c: &Connection, user_id: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET status = CASE WHEN password_hash IS NULL THEN 'invited' ELSE 'active' END, \
         updated_at = ?2 WHERE id = ?1",
        params![user_id, now_text()],
    )
    .map(|_| ())
}

/// Deletes the account; its keys, sessions, invites and codes go with it (foreign keys).
pub(crate) fn delete_user(c: &Connection, user_id: i64) -> rusqlite::Result<()> {
    c.execute("DELETE FROM users WHERE id = ?1", [user_id])
        .map(|_| ())
}

// ---- sessions -------------------------------------------------------------------------

/// One signed-in session of a user, as the sessions list shows it.
#[derive(Debug, Clone)]
pub(crate) struct SessionRow {
    pub(crate) public_id: String,
    pub(crate) created_at: String,
    pub(crate) last_seen_at: String,
    /// Unix seconds.
    pub(crate) expires_at: i64,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
}

/// The user's sessions that have not expired at `now` (unix s), oldest first.
pub(crate) fn sessions_of(
    c: &Connection,
    user_id: i64,
    now: i64,
) -> rusqlite::Result<Vec<SessionRow>> {
    let mut stmt = c.prepare(
        "SELECT public_id, created_at, last_seen_at, expires_at, \
         json_extract(data, '$.auth.ip'), json_extract(data, '$.auth.user_agent') \
         FROM sessions WHERE user_id = ?1 AND expires_at > ?2 ORDER BY created_at",
    )?;
    stmt.query_map(params![user_id, now], |r| {
        Ok(SessionRow {
            public_id: r.get(0)?,
            created_at: r.get(1)?,
            last_seen_at: r.get(2)?,
            expires_at: r.get(3)?,
            ip: r.get(4)?,
            user_agent: r.get(5)?,
        })
    })?
    .collect()
}

/// Ends one session of the user; false when the user has none by that id.
pub(crate) fn end_session(c: &Connection, user_id: i64, public_id: &str) -> rusqlite::Result<bool> {
    c.execute(
        "DELETE FROM sessions WHERE public_id = ?1 AND user_id = ?2",
        params![public_id, user_id],
    )
    .map(|n| n > 0)
}

pub(crate) fn count_sessions(c: &Connection, user_id: i64) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM sessions WHERE user_id = ?1",
        [user_id],
        |r| r.get(0),
    )
}

// ---- invitations ----------------------------------------------------------------------

/// A new invitation for the user (its token's digest), replacing any earlier one.
pub(crate) fn replace_invite(
    c: &Connection,
    user_id: i64,
    token_hash: &str,
    expires_at: i64,
) -> rusqlite::Result<()> {
    delete_invites(c, user_id)?;
    c.execute(
        "INSERT INTO invites (token_hash, user_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash, user_id, expires_at, now_text()],
    )
    .map(|_| ())
}

pub(crate) fn delete_invites(c: &Connection, user_id: i64) -> rusqlite::Result<()> {
    c.execute("DELETE FROM invites WHERE user_id = ?1", [user_id])
        .map(|_| ())
}

/// The invited user whose invitation has this token digest and is still open at `now`.
pub(crate) fn invited_user(
    c: &Connection,
    token_hash: &str,
    now: i64,
) -> rusqlite::Result<Option<User>> {
    let id: Option<i64> = c
        .query_row(
            "SELECT i.user_id FROM invites i JOIN users u ON u.id = i.user_id \
             WHERE i.token_hash = ?1 AND i.expires_at > ?2 AND u.status = 'invited'",
            params![token_hash, now],
            |r| r.get(0),
        )
        .optional()?;
    id.map(|id| user_by_id(c, id))
        .transpose()
        .map(Option::flatten)
}

// ---- two-factor sign-in ---------------------------------------------------------------

/// A user's TOTP secrets (sealed) and the last time step a code was accepted for.
#[derive(Debug, Clone, Default)]
pub(crate) struct TotpState {
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) pending: Option<Vec<u8>>,
    pub(crate) last_step: i64,
}

pub(crate) fn totp_state(c: &Connection, user_id: i64) -> rusqlite::Result<TotpState> {
    c.query_row(
        "SELECT totp_secret, totp_pending, totp_last_step FROM users WHERE id = ?1",
        [user_id],
        |r| {
            Ok(TotpState {
                secret: r.get(0)?,
                pending: r.get(1)?,
                last_step: r.get(2)?,
            })
        },
    )
}

/// Claims the time step of an accepted code. Conditional, so two requests racing with the
/// same code cannot both win: false when a code of this step (or a later one) was used.
pub(crate) fn claim_totp_step(c: &Connection, user_id: i64, step: i64) -> rusqlite::Result<bool> {
    c.execute(
        "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
        params![user_id, step],
    )
    .map(|n| n == 1)
}

/// An enrolment begins: the new secret waits, with its recovery codes, for a code from it.
pub(crate) fn begin_two_factor(
    c: &Connection,
    user_id: i64,
    sealed_secret: &[u8],
    code_hashes: &[String],
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET totp_pending = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, sealed_secret, now_text()],
    )?;
    c.execute(
        "DELETE FROM recovery_codes WHERE user_id = ?1 AND pending = 1",
        [user_id],
    )?;
    insert_recovery_codes(c, user_id, code_hashes, true)
}

/// The pending secret and codes become the active ones; the old codes stop working.
pub(crate) fn enable_two_factor(c: &Connection, user_id: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, updated_at = ?2 WHERE id = ?1",
        params![user_id, now_text()],
    )?;
    c.execute(
        "DELETE FROM recovery_codes WHERE user_id = ?1 AND pending = 0",
        [user_id],
    )?;
    c.execute(
        "UPDATE recovery_codes SET pending = 0 WHERE user_id = ?1",
        [user_id],
    )
    .map(|_| ())
}

pub(crate) fn disable_two_factor(c: &Connection, user_id: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, updated_at = ?2 WHERE id = ?1",
        params![user_id, now_text()],
    )?;
    c.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])
        .map(|_| ())
}

/// Uses one unused recovery code with this digest; false when there is none.
pub(crate) fn use_recovery_code(
    c: &Connection,
    user_id: i64,
    code_hash: &str,
) -> rusqlite::Result<bool> {
    c.execute(
        "UPDATE recovery_codes SET used_at = ?3 WHERE id = \
         (SELECT id FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2 \
          AND pending = 0 AND used_at IS NULL LIMIT 1)",
        params![user_id, code_hash, now_text()],
    )
    .map(|n| n == 1)
}

/// New active recovery codes; every earlier one stops working.
pub(crate) fn replace_recovery_codes(
    c: &Connection,
    user_id: i64,
    code_hashes: &[String],
) -> rusqlite::Result<()> {
    c.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
    insert_recovery_codes(c, user_id, code_hashes, false)
}

fn insert_recovery_codes(
    c: &Connection,
    user_id: i64,
    code_hashes: &[String],
    pending: bool,
) -> rusqlite::Result<()> {
    let mut stmt =
        c.prepare("INSERT INTO recovery_codes (user_id, code_hash, pending) VALUES (?1, ?2, ?3)")?;
    for h in code_hashes {
        stmt.execute(params![user_id, h, pending])?;
    }
    Ok(())
}

// ---- API keys -------------------------------------------------------------------------

/// The account an API key acts for (the key unrevoked, its owner active).
#[derive(Debug, Clone)]
pub(crate) struct KeyOwner {
    pub(crate) key_id: i64,
    pub(crate) user_id: i64,
    pub(crate) email: String,
    pub(crate) role: Role,
    /// Unix seconds.
    pub(crate) expires_at: Option<i64>,
    pub(crate) must_change_password: bool,
    pub(crate) totp_enabled: bool,
}

pub(crate) fn key_owner(c: &Connection, key_hash: &str) -> rusqlite::Result<Option<KeyOwner>> {
    c.query_row(
        "SELECT k.id, u.id, u.email, u.role, k.expires_at, u.must_change_password, \
         u.totp_secret IS NOT NULL \
         FROM api_keys k JOIN users u ON u.id = k.user_id \
         WHERE k.key_hash = ?1 AND k.revoked_at IS NULL AND u.status = 'active'",
        [key_hash],
        |r| {
            Ok(KeyOwner {
                key_id: r.get(0)?,
                user_id: r.get(1)?,
                email: r.get(2)?,
                role: Role::parse(&r.get::<_, String>(3)?).unwrap_or(Role::Viewer),
                expires_at: r.get(4)?,
                must_change_password: r.get(5)?,
                totp_enabled: r.get(6)?,
            })
        },
    )
    .optional()
}

/// Records that the key was used at `at`.
pub(crate) fn touch_key(c: &Connection, key_id: i64, at: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
        params![key_id, at],
    )
    .map(|_| ())
}

/// A new key (its digest, never the key); returns its id.
pub(crate) fn insert_key(
    c: &Connection,
    user_id: i64,
    name: &str,
    prefix: &str,
    key_hash: &str,
    created_at: &str,
    expires_at: Option<i64>,
) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user_id, name, prefix, key_hash, created_at, expires_at],
    )?;
    Ok(c.last_insert_rowid())
}

/// An API key as its owner sees it listed.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) created_at: String,
    /// Unix seconds.
    pub(crate) expires_at: Option<i64>,
    pub(crate) last_used_at: Option<String>,
    pub(crate) revoked_at: Option<String>,
}

impl KeyRow {
    /// active, expired or revoked, at `now` (unix s).
    pub(crate) fn status(&self, now: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// The user's keys, oldest first; revoked ones only when asked.
pub(crate) fn keys_of(
    c: &Connection,
    user_id: i64,
    include_revoked: bool,
) -> rusqlite::Result<Vec<KeyRow>> {
    let mut stmt = c.prepare(
        "SELECT id, name, prefix, created_at, expires_at, last_used_at, revoked_at \
         FROM api_keys WHERE user_id = ?1 AND (revoked_at IS NULL OR ?2) ORDER BY id",
    )?;
    stmt.query_map(params![user_id, include_revoked], |r| {
        Ok(KeyRow {
            id: r.get(0)?,
            name: r.get(1)?,
            prefix: r.get(2)?,
            created_at: r.get(3)?,
            expires_at: r.get(4)?,
            last_used_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    })?
    .collect()
}

/// Revokes an active key of `user_id` (of anyone when `any_owner`); false when there is no
/// such key.
pub(crate) fn revoke_key(
    c: &Connection,
    key_id: i64,
    user_id: i64,
    any_owner: bool,
) -> rusqlite::Result<bool> {
    c.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND revoked_at IS NULL \
         AND (user_id = ?2 OR ?4)",
        params![key_id, user_id, now_text(), any_owner],
    )
    .map(|n| n > 0)
}
