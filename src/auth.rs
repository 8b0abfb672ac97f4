//! Accounts: who is asking ([`Principal`]) and what each route lets them do ([`Access`]).
//!
//! Every request passes [`middleware::authenticate`], which resolves the caller from an
//! API key (`Authorization: Bearer kura_ak_...`), the `kura` CLI's machine-local token, or
//! the session cookie, and then the route's own [`middleware::guard`], which enforces the
//! route's [`Access`] from the table in `routes.rs`: permission, forced password change,
//! required two-factor enrolment and, for cookie writes from a browser, CSRF.

pub mod admin;
pub mod audit;
pub mod handlers;
pub mod keys;
pub mod middleware;
pub mod pages;
pub mod password;
pub mod permissions;
pub mod ratelimit;
pub mod session_store;
pub mod store;
pub mod tokens;
pub mod totp;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

pub use permissions::{Permission, Role};

use crate::error::AppError;

/// What a route requires of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: signing in, accepting an invitation, the sign-in page.
    Public,
    /// The second sign-in step: a session that passed the password step only.
    PendingTwoFactor,
    /// Any signed-in caller, even one who must still change their password or enrol 2FA:
    /// the routes that let them do so.
    Account,
    /// Any signed-in caller in good standing (their own keys and sessions).
    SignedIn,
    /// A signed-in caller whose role holds the permission.
    Permission(Permission),
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Via {
    Session {
        public_id: String,
        #[serde(skip)]
        csrf: String,
    },
    ApiKey {
        key_id: i64,
    },
    /// The `kura` CLI on this machine, with the token the server wrote to `.kura/`.
    Cli,
    /// `auth.enabled: false` on a loopback bind: everyone local is an admin.
    AuthDisabled,
}

/// The caller of a request, placed in the request's extensions by `authenticate`.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// `None` for the CLI token and auth-disabled mode.
    pub(crate) user_id: Option<i64>,
    pub(crate) email: String,
    pub(crate) role: Role,
    pub(crate) via: Via,
    pub(crate) must_change_password: bool,
    /// `auth.require_2fa` is on and this user has not enrolled.
    pub(crate) needs_two_factor: bool,
}

impl Principal {
    /// What this caller may see of the warehouse, as a key: answers cached for one scope
    /// are never served to another. Today every role that may query sees every table, so
    /// the role is a (conservative) scope; per-role visibility keeps the cache honest.
    pub(crate) fn data_scope(&self) -> &'static str {
        self.role.as_str()
    }

    pub(crate) fn local_admin(via: Via) -> Self {
        let email = match via {
            Via::Cli => "cli@localhost",
            _ => "local@localhost",
        };
        Self {
            user_id: None,
            email: email.into(),
            role: Role::Admin,
            via,
            must_change_password: false,
            needs_two_factor: false,
        }
    }

    pub(crate) fn can(&self, p: Permission) -> bool {
        self.role.allows(p)
    }

    /// The user id of an account-bound caller, or a 400 naming why not.
    pub(crate) fn require_user(&self) -> Result<i64, AppError> {
        self.user_id.ok_or_else(|| {
            AppError::bad_request(
                "no_account",
                "this needs a user account; the local CLI token and auth-disabled mode have none",
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or_else(middleware::unauthenticated)
    }
}

/// What a signed-in session holds under the key `auth`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionAuth {
    pub(crate) user_id: i64,
    /// The user's `session_epoch` at sign-in; a later epoch ends this session.
    pub(crate) epoch: i64,
    pub(crate) csrf: String,
    pub(crate) signed_in_at: i64,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
}

/// What a session holds between the password step and the TOTP step (key `pending_2fa`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingTwoFactor {
    pub(crate) user_id: i64,
    pub(crate) epoch: i64,
    pub(crate) started_at: i64,
    /// Names this sign-in's row in `two_factor_attempts`, where wrong codes are counted.
    pub(crate) id: String,
}

pub(crate) const SESSION_AUTH: &str = "auth";
pub(crate) const SESSION_PENDING: &str = "pending_2fa";
pub(crate) const SESSION_COOKIE: &str = "kura_session";

/// Long-lived auth state owned by the app: the TOTP key, the CLI token, caches, limits.
pub struct AuthState {
    pub(crate) secret_box: totp::SecretBox,
    /// The token the `kura` CLI presents; written to `.kura/cli-token` (mode 0600).
    pub(crate) cli_token: String,
    pub keys: keys::KeyCache,
    pub(crate) limiter: ratelimit::RateLimiter,
    pub(crate) sessions: session_store::MetaSessionStore,
}

impl AuthState {
    pub(crate) fn open(
        config: &crate::Config,
        meta: &crate::db::meta::MetaDb,
    ) -> anyhow::Result<Self> {
        let state_dir = config.state_dir();
        let cli_token = format!("kura_cli_{}", tokens::random_base62(40));
        let path = state_dir.join("cli-token");
        crate::project::write_private(&path, cli_token.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(Self {
            secret_box: totp::SecretBox::open(&state_dir)?,
            cli_token,
            keys: keys::KeyCache::default(),
            limiter: ratelimit::RateLimiter::new(
                config.auth.rate_limit_per_minute,
                config.auth.rate_limit_burst,
            ),
            sessions: session_store::MetaSessionStore::new(meta.clone()),
        })
    }
}

/// Reads the CLI token of a project whose server is running, if any.
pub fn read_cli_token(state_dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join("cli-token"))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| t.starts_with("kura_cli_"))
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}
