//! Project secrets: the `.env` file beside `project.yml`, managed over the API.
//!
//! Values are never logged, never returned whole (listings show a mask), and the file is
//! rewritten atomically with mode 0600. Lines the API does not own (comments, blank lines,
//! `export` forms) are kept as they were.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::web::extract::Path as UrlPath;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{Principal, audit};
use crate::blocking;
use crate::error::{AppError, Result};
use crate::web::extract::{ClientIp, Json};

/// The project's `.env`, with the lock its writers take turns on (read, change, replace
/// must not interleave). One per `AppState`, so apps in one process do not share it.
#[derive(Debug)]
pub(crate) struct EnvFile {
    path: std::path::PathBuf,
    write_lock: Mutex<()>,
}

impl EnvFile {
    pub(crate) fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            write_lock: Mutex::new(()),
        }
    }

    /// Changes one key in the file, atomically; returns whether the key existed.
    pub(crate) fn change(&self, key: &str, value: Option<&str>) -> std::io::Result<bool> {
        let _turn = crate::locks::lock(&self.write_lock);
        let (text, found) = edit(&read_file(&self.path)?, key, value);
        if value.is_some() || found {
            crate::project::write_private(&self.path, text.as_bytes())?;
        }
        Ok(found)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: String,
}

pub(crate) fn env_path(root: &Path) -> PathBuf {
    root.join(".env")
}

/// A key: an environment variable name (upper-case letters, digits, `_`; not a digit first).
pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses `KEY=value` lines (optionally `export KEY=...`, values optionally quoted).
pub(crate) fn parse(text: &str) -> Vec<Entry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, raw) = line.split_once('=')?;
    let key = key.trim();
    if !valid_key(key) {
        return None;
    }
    Some(Entry {
        key: key.to_owned(),
        value: unquote(raw.trim()),
    })
}

fn unquote(raw: &str) -> String {
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        let inner = &raw[1..raw.len() - 1];
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if raw.len() >= 2 && raw.starts_with('\'') && raw.ends_with('\'') {
        raw[1..raw.len() - 1].to_owned()
    } else {
        raw.to_owned()
    }
}

fn quote(value: &str) -> String {
    let plain = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./:@+,".contains(&b));
    if plain && !value.is_empty() {
        return value.to_owned();
    }
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// `value` masked for display: never more than a short head of a long value.
pub(crate) fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() >= 16 {
        format!("{}********", chars[..3].iter().collect::<String>())
    } else {
        "********".into()
    }
}

/// Sets (`Some`) or removes (`None`) `key` in the `.env` text; returns the new text and
/// whether the key was there before.
pub(crate) fn edit(text: &str, key: &str, value: Option<&str>) -> (String, bool) {
    let mut out = String::new();
    let mut found = false;
    for line in text.lines() {
        if parse_line(line).is_some_and(|e| e.key == key) {
            found = true;
            if let Some(v) = value {
                out.push_str(&format!("{key}={}\n", quote(v)));
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !found && let Some(v) = value {
        out.push_str(&format!("{key}={}\n", quote(v)));
    }
    (out, found)
}

fn read_file(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// A secret as it is listed: its key and a masked value, never the value itself.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Listed {
    pub(crate) key: String,
    pub(crate) masked_value: String,
    pub(crate) source: &'static str,
    pub(crate) length: usize,
}

/// The project's secrets, masked, in the file's order.
pub(crate) async fn listed(state: &AppState) -> Result<Vec<Listed>> {
    let path = env_path(&state.config.root);
    let text = blocking::run(move || read_file(&path))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot read .env: {e}")))?;
    Ok(parse(&text)
        .into_iter()
        .map(|e| Listed {
            masked_value: mask(&e.value),
            length: e.value.chars().count(),
            key: e.key,
            source: "env",
        })
        .collect())
}

/// `GET /api/secrets`: names and masked values.
pub(crate) async fn list_secrets(State(state): State<AppState>) -> Result<Json<Value>> {
    let secrets = listed(&state).await?;
    // `env_vars` and `oauth_credentials` are the reference's keys (Kura keeps no OAuth
    // tokens); `secrets` is the same list under Kura's earlier name.
    Ok(Json(json!({
        "env_vars": secrets,
        "oauth_credentials": [],
        "secrets": secrets,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetSecret {
    key: String,
    value: String,
}

/// `POST /api/secrets`: creates or replaces one secret.
pub(crate) async fn set_secret(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    Json(body): Json<SetSecret>,
) -> Result<(StatusCode, Json<Value>)> {
    if !valid_key(&body.key) {
        return Err(AppError::bad_request(
            "invalid_key",
            "a secret's key uses upper-case letters, digits and _, and does not start with a digit",
        ));
    }
    if body.value.contains('\0') || body.value.len() > 64 * 1024 {
        return Err(AppError::bad_request(
            "invalid_value",
            "a secret's value must be text of at most 64 KiB",
        ));
    }
    let (key, value) = (body.key.clone(), body.value);
    let file = state.env_file.clone();
    let existed = blocking::run(move || file.change(&key, Some(&value)))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot write .env: {e}")))?;
    let action = if existed {
        "secret.update"
    } else {
        "secret.create"
    };
    audit::record(&state, Some(&principal), action, Some(&body.key), ip, None).await;
    let message = if existed {
        format!("{} replaced", body.key)
    } else {
        format!("{} added", body.key)
    };
    Ok((
        StatusCode::OK,
        Json(json!({"message": message, "key": body.key, "created": !existed})),
    ))
}

/// `DELETE /api/secrets/{key}`.
pub(crate) async fn delete_secret(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(ip): ClientIp,
    UrlPath(key): UrlPath<String>,
) -> Result<Json<Value>> {
    if !valid_key(&key) {
        return Err(AppError::NotFound(format!("there is no secret {key:?}")));
    }
    let k = key.clone();
    let file = state.env_file.clone();
    let existed = blocking::run(move || file.change(&k, None))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot write .env: {e}")))?;
    if !existed {
        return Err(AppError::NotFound(format!("there is no secret {key:?}")));
    }
    audit::record(
        &state,
        Some(&principal),
        "secret.delete",
        Some(&key),
        ip,
        None,
    )
    .await;
    Ok(Json(
        json!({"message": format!("{key} deleted"), "key": key, "deleted": true}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_other_lines_and_round_trip_values() {
        let text = "# comment\nexport A=1\nB=\"two words\"\n\nC='x'\n";
        assert_eq!(
            parse(text),
            vec![
                Entry {
                    key: "A".into(),
                    value: "1".into()
                },
                Entry {
                    key: "B".into(),
                    value: "two words".into()
                },
                Entry {
                    key: "C".into(),
                    value: "x".into()
                },
            ]
        );
        let (t, found) = edit(text, "B", Some("line\n\"quoted\" \\ end"));
        assert!(found);
        assert!(t.starts_with("# comment\nexport A=1\n"));
        let b = parse(&t).into_iter().find(|e| e.key == "B").unwrap();
        assert_eq!(b.value, "line\n\"quoted\" \\ end");
        let (t, found) = edit(&t, "A", None);
        assert!(found && !t.contains("A=1"));
        let (t, found) = edit(&t, "NEW_KEY", Some("v"));
        assert!(!found && t.ends_with("NEW_KEY=v\n"));
    }

    #[test]
    fn keys_and_masks() {
        assert!(valid_key("API_TOKEN_2"));
        assert!(!valid_key("2X") && !valid_key("lower") && !valid_key("A-B") && !valid_key(""));
        assert_eq!(mask("short"), "********");
        assert_eq!(mask("sk_live_0123456789abcdef"), "sk_********");
    }

    #[test]
    fn the_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        let file = EnvFile::new(path.clone());
        assert!(!file.change("A", Some("1")).unwrap());
        assert!(file.change("A", Some("2")).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=2\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Nothing but the file itself is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
