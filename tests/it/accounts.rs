//! Accounts over HTTP: the role matrix walk, sign-in with 2FA, lockout, CSRF, sessions,
//! API keys, the last-admin guards, auth-disabled mode, the WebSocket, secrets, invites.

use std::time::{SystemTime, UNIX_EPOCH};

use kura::auth::{Access, Role, password, store, tokens, totp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestApp;

pub(crate) const PASSWORD: &str = "quiet-lantern-42";

pub(crate) async fn auth_app() -> TestApp {
    TestApp::with_config(|c| {
        c.auth.enabled = true;
        c.auth.rate_limit_per_minute = 100_000;
        c.auth.rate_limit_burst = 100_000;
    })
    .await
}

impl TestApp {
    /// An active user with `PASSWORD`, straight into the store.
    pub(crate) async fn add_user(&self, email: &str, role: Role) -> i64 {
        let hash = password::hash(PASSWORD).unwrap();
        let email = email.to_owned();
        self.state
            .meta
            .write(move |tx| store::insert_user(tx, &email, "", role, Some(&hash), false))
            .await
            .unwrap()
    }

    /// A new API key of `user_id`, straight into the store.
    pub(crate) async fn key_for(&self, user_id: i64) -> String {
        let key = tokens::new_api_key();
        let (hash, prefix) = (tokens::sha256_hex(&key), tokens::shown_prefix(&key));
        self.state
            .meta
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) VALUES (?1, 't', ?2, ?3, 'now')",
                    rusqlite::params![user_id, prefix, hash],
                )
            })
            .await
            .unwrap();
        key
    }

    pub(crate) fn browser(&self) -> Browser {
        Browser {
            base: self.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            csrf: None,
            bearer: None,
            extra: Vec::new(),
        }
    }
}

/// A client that keeps the session cookie (and can act like a browser page or a script).
pub(crate) struct Browser {
    base: String,
    client: reqwest::Client,
    cookie: Option<String>,
    pub(crate) csrf: Option<String>,
    pub(crate) bearer: Option<String>,
    /// Headers sent with every request (`Origin`, ...).
    pub(crate) extra: Vec<(&'static str, String)>,
}

impl Browser {
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.answer(req).await
    }

    /// A multipart upload of one file (field `file`), as the upload form sends it.
    pub(crate) async fn upload(
        &mut self,
        path: &str,
        file_name: &str,
        content: Vec<u8>,
    ) -> (StatusCode, Value) {
        let part = reqwest::multipart::Part::bytes(content).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let req = self.request(Method::POST, path).multipart(form);
        self.answer(req).await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        for (k, v) in &self.extra {
            req = req.header(*k, v);
        }
        req
    }

    async fn answer(&mut self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = req.send().await.unwrap();
        if let Some(set) = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or("").to_owned();
            // An expired cookie (logout, flushed session) clears ours.
            self.cookie = if set.contains("Max-Age=0") || pair.ends_with('=') {
                None
            } else {
                Some(pair)
            };
        }
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The session cookie (`kura_session=...`), once signed in.
    pub(crate) fn cookie(&self) -> Option<String> {
        self.cookie.clone()
    }

    pub(crate) async fn get(&mut self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn post(&mut self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn login(&mut self, email: &str, password: &str) -> (StatusCode, Value) {
        let answer = self
            .post(
                "/api/auth/login",
                json!({"email": email, "password": password}),
            )
            .await;
        if let Some(t) = answer.1["csrf_token"].as_str() {
            self.csrf = Some(t.to_owned());
        }
        answer
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "nosuch")
        .replace("{id}", "999999")
        .replace("{record_id}", "999999")
        .replace("{key}", "NO_SUCH_KEY")
        .replace("{job_id}", "999999")
        .replace("{table}", "nosuch")
}

#[tokio::test]
async fn every_route_enforces_the_role_matrix() {
    let app = auth_app().await;
    let mut callers = vec![(None, app.browser())];
    for role in Role::ALL {
        let id = app
            .add_user(&format!("{}@example.com", role.as_str()), role)
            .await;
        let mut b = app.browser();
        b.bearer = Some(app.key_for(id).await);
        callers.push((Some(role), b));
    }
    let specs = kura::routes::route_specs();
    assert!(specs.len() >= 45, "{} routes", specs.len());
    for spec in &specs {
        let path = concrete(spec.path);
        for (role, caller) in &mut callers {
            let body = (spec.method != Method::GET).then(|| json!({}));
            let (status, answer) = caller.send(spec.method.clone(), &path, body).await;
            let who = role.map_or("anonymous", Role::as_str);
            let ctx = format!("{} {} as {who}: {status} {answer}", spec.method, spec.path);
            match (spec.access, *role) {
                // Signing out without a session (anonymous, or with an API key) is a
                // 401, as the reference answers.
                (Access::Public, _) if spec.path == "/api/auth/logout" => {
                    assert!(
                        matches!(status, StatusCode::OK | StatusCode::UNAUTHORIZED),
                        "{ctx}"
                    );
                }
                (Access::Public, _) => {
                    assert_ne!(status, StatusCode::FORBIDDEN, "{ctx}");
                    assert_ne!(answer["error"], "unauthenticated", "{ctx}");
                }
                (_, None) => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{ctx}");
                }
                (Access::PendingTwoFactor, Some(_)) => {
                    assert_eq!(answer["error"], "no_pending_sign_in", "{ctx}");
                }
                (Access::Permission(p), Some(r)) if !r.allows(p) => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{ctx}");
                    assert_eq!(answer["error"], "permission_denied", "{ctx}");
                    assert_eq!(answer["permission"], p.as_str(), "{ctx}");
                }
                (_, Some(_)) => {
                    assert_ne!(status, StatusCode::UNAUTHORIZED, "{ctx}");
                    assert_ne!(status, StatusCode::FORBIDDEN, "{ctx}");
                }
            }
            if role.is_none()
                && spec.access != Access::Public
                && spec.access != Access::PendingTwoFactor
            {
                assert_eq!(answer["error"], "unauthenticated", "{ctx}");
            }
        }
    }
    // The anonymous 401 is JSON with a message that says what to do.
    let (_, answer) = app.browser().get("/api/status").await;
    assert!(
        answer["message"].as_str().unwrap().contains("sign in"),
        "{answer}"
    );
    app.stop().await;
}

#[tokio::test]
async fn two_factor_sign_in_with_replay_and_recovery_rules() {
    let app = auth_app().await;
    app.add_user("ada@example.com", Role::Editor).await;
    let mut b = app.browser();
    assert_eq!(b.login("ada@example.com", PASSWORD).await.0, StatusCode::OK);

    let (status, setup) = b
        .post("/api/auth/2fa/setup", json!({"password": PASSWORD}))
        .await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    assert!(
        setup["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    assert!(
        setup["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Kura:ada@example.com?secret=")
    );
    let codes: Vec<String> = setup["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let secret = totp::decode_base32(setup["secret"].as_str().unwrap()).unwrap();
    // A wrong code does not enable it.
    let (status, _) = b
        .post("/api/auth/2fa/verify-setup", json!({"code": "000000"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let t = now();
    let (status, answer) = b
        .post(
            "/api/auth/2fa/verify-setup",
            json!({"code": totp::code_at(&secret, t).unwrap()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        b.post("/api/auth/logout", json!({})).await.0,
        StatusCode::OK
    );
    assert_eq!(b.get("/api/status").await.0, StatusCode::UNAUTHORIZED);

    // The password step alone signs nobody in.
    let (status, answer) = b.login("ada@example.com", PASSWORD).await;
    assert_eq!(
        (status, answer["requires_2fa"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_eq!(b.get("/api/status").await.0, StatusCode::UNAUTHORIZED);
    // The code used for enrolment cannot be used again.
    let (status, answer) = b
        .post(
            "/api/auth/2fa/verify",
            json!({"code": totp::code_at(&secret, t).unwrap()}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("code_already_used")),
        "{answer}"
    );
    // The next step's code (within the ±1 window) is accepted once.
    let next = totp::code_at(&secret, t + 30).unwrap();
    let (status, answer) = b.post("/api/auth/2fa/verify", json!({"code": next})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(b.get("/api/status").await.0, StatusCode::OK);
    b.post("/api/auth/logout", json!({})).await;
    b.login("ada@example.com", PASSWORD).await;
    let (status, answer) = b.post("/api/auth/2fa/verify", json!({"code": next})).await;
    assert_eq!(answer["error"], "code_already_used", "{status} {answer}");

    // A recovery code works once.
    let (status, answer) = b
        .post(
            "/api/auth/2fa/verify",
            json!({"code": codes[3].to_uppercase()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    b.post("/api/auth/logout", json!({})).await;
    b.login("ada@example.com", PASSWORD).await;
    let (status, answer) = b
        .post("/api/auth/2fa/verify", json!({"code": codes[3]}))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_code"))
    );
    // Five wrong codes end the pending sign-in.
    for _ in 0..4 {
        b.post("/api/auth/2fa/verify", json!({"code": "123456"}))
            .await;
    }
    let (_, answer) = b
        .post("/api/auth/2fa/verify", json!({"code": codes[4]}))
        .await;
    assert_eq!(answer["error"], "two_factor_expired", "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn five_failures_lock_an_account_until_an_admin_unlocks_it() {
    let app = auth_app().await;
    let admin = app.add_user("boss@example.com", Role::Admin).await;
    let victim = app.add_user("vic@example.com", Role::Viewer).await;
    let mut b = app.browser();
    for i in 1..=5 {
        let (status, answer) = b.login("vic@example.com", "wrong-password-1").await;
        if i < 5 {
            assert_eq!(
                (status, answer["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_credentials"))
            );
        } else {
            assert_eq!(status, StatusCode::LOCKED, "{answer}");
            assert_eq!(answer["retry_after"], 900);
        }
    }
    // Even the right password is refused while locked, with the time left.
    let (status, answer) = b.login("vic@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::LOCKED);
    assert!(answer["retry_after"].as_u64().unwrap() > 800);
    // Unknown emails answer exactly like wrong passwords.
    let (status, answer) = b.login("nobody@example.com", PASSWORD).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_credentials"))
    );

    let mut a = app.browser();
    a.bearer = Some(app.key_for(admin).await);
    let (status, _) = a
        .post(&format!("/api/admin/users/{victim}/unlock"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b.login("vic@example.com", PASSWORD).await.0, StatusCode::OK);
    let (_, audit) = a.get("/api/audit?limit=50").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "login.failure",
        "account.locked",
        "login.locked_out",
        "user.unlock",
        "login.success",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_signs_in_from_one_address_and_guessing_is_still_stopped() {
    // The default limits, as a project gets them.
    let app = TestApp::with_config(|c| c.auth.enabled = true).await;
    let emails: Vec<String> = (0..20)
        .map(|i| format!("colleague{i}@example.com"))
        .collect();
    for email in &emails {
        app.add_user(email, Role::Editor).await;
    }
    // Twenty colleagues behind one address sign in one after another.
    let mut first = None;
    for email in &emails {
        let mut b = app.browser();
        let (status, answer) = b.login(email, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{email}: {answer}");
        first.get_or_insert(b);
    }
    // What a signed-in user does is never limited: a script making 15 keys in a row.
    let mut b = first.unwrap();
    for i in 0..15 {
        let (status, answer) = b
            .post("/api/auth/api-keys", json!({"name": format!("k{i}")}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    // Thirty guesses at once from one address: the burst passes, the rest wait.
    let guesses = (0..30).map(|i| {
        let mut g = app.browser();
        async move {
            g.login(&format!("x{i}@example.com"), "wrong-password-1")
                .await
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let limited: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .map(|(_, a)| a)
        .collect();
    assert!(
        limited.len() >= 10,
        "{} of 30 guesses were limited",
        limited.len()
    );
    assert!(limited[0]["retry_after"].as_u64().unwrap() >= 1);
    assert!(
        answers
            .iter()
            .all(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS || *s == StatusCode::BAD_REQUEST)
    );
    app.stop().await;
}

#[tokio::test]
async fn browser_writes_need_the_csrf_token_and_scripts_do_not() {
    let app = auth_app().await;
    app.add_user("ed@example.com", Role::Editor).await;
    let mut b = app.browser();
    b.login("ed@example.com", PASSWORD).await;
    let csrf = b.csrf.clone().unwrap();
    let own = app.base.clone();
    let query = json!({"sql": "SELECT 1 AS x"});
    // A script with the cookie: no Origin, no Sec-Fetch-Site.
    assert_eq!(b.post("/api/query", query.clone()).await.0, StatusCode::OK);
    // A page on another site.
    b.extra = vec![
        ("origin", "http://evil.example".into()),
        ("x-csrf-token", csrf.clone()),
    ];
    let (status, answer) = b.post("/api/query", query.clone()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf_failed"))
    );
    b.extra = vec![
        ("sec-fetch-site", "cross-site".into()),
        ("x-csrf-token", csrf.clone()),
    ];
    assert_eq!(
        b.post("/api/query", query.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    // Our own page without, or with a wrong, token.
    b.extra = vec![("origin", own.clone())];
    assert_eq!(
        b.post("/api/query", query.clone()).await.1["error"],
        "csrf_failed"
    );
    b.extra = vec![("origin", own.clone()), ("x-csrf-token", "nope".into())];
    assert_eq!(
        b.post("/api/query", query.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    // Our own page with it; reads never need it.
    b.extra = vec![
        ("origin", own.clone()),
        ("sec-fetch-site", "same-origin".into()),
        ("x-csrf-token", csrf),
    ];
    assert_eq!(b.post("/api/query", query.clone()).await.0, StatusCode::OK);
    b.extra = vec![("origin", "http://evil.example".into())];
    assert_eq!(b.get("/api/status").await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn ended_sessions_stop_working_on_the_next_request() {
    let app = auth_app().await;
    let admin = app.add_user("boss@example.com", Role::Admin).await;
    let ed = app.add_user("ed@example.com", Role::Editor).await;
    let (mut one, mut two, mut three) = (app.browser(), app.browser(), app.browser());
    for b in [&mut one, &mut two, &mut three] {
        assert_eq!(b.login("ed@example.com", PASSWORD).await.0, StatusCode::OK);
        assert_eq!(b.get("/api/status").await.0, StatusCode::OK);
    }
    // The user ends one of their sessions from another.
    let (_, list) = one.get("/api/auth/sessions").await;
    let sessions = list.as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{list}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        one.send(Method::DELETE, &format!("/api/auth/sessions/{other}"), None)
            .await
            .0,
        StatusCode::OK
    );
    let alive: Vec<StatusCode> = vec![
        two.get("/api/status").await.0,
        three.get("/api/status").await.0,
    ];
    assert!(
        alive.contains(&StatusCode::UNAUTHORIZED) && alive.contains(&StatusCode::OK),
        "{alive:?}"
    );
    // An admin revokes them all.
    let mut a = app.browser();
    a.bearer = Some(app.key_for(admin).await);
    assert_eq!(
        a.post(&format!("/api/admin/users/{ed}/revoke-sessions"), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(one.get("/api/status").await.0, StatusCode::UNAUTHORIZED);
    // A password change ends the others but keeps the one that made it.
    let (mut x, mut y) = (app.browser(), app.browser());
    x.login("ed@example.com", PASSWORD).await;
    y.login("ed@example.com", PASSWORD).await;
    let (status, answer) = x
        .post(
            "/api/auth/change-password",
            json!({"current_password": PASSWORD, "new_password": "harbour-kite-73"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(x.get("/api/status").await.0, StatusCode::OK);
    assert_eq!(y.get("/api/status").await.0, StatusCode::UNAUTHORIZED);
    // Deactivation ends everything, keys included.
    let key = app.key_for(ed).await;
    let mut k = app.browser();
    k.bearer = Some(key);
    assert_eq!(k.get("/api/status").await.0, StatusCode::OK);
    assert_eq!(
        a.post(&format!("/api/admin/users/{ed}/deactivate"), json!({}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(x.get("/api/status").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(k.get("/api/status").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        x.login("ed@example.com", "harbour-kite-73").await.1["error"],
        "account_deactivated"
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_and_revoked_keys_are_refused() {
    let app = auth_app().await;
    let ed = app.add_user("ed@example.com", Role::Editor).await;
    let mut b = app.browser();
    b.login("ed@example.com", PASSWORD).await;
    let (status, created) = b
        .post(
            "/api/auth/api-keys",
            json!({"name": "nightly script", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("kura_ak_"));
    let mut script = app.browser();
    script.bearer = Some(key.clone());
    assert_eq!(
        script
            .post("/api/query", json!({"sql": "SELECT 1"}))
            .await
            .0,
        StatusCode::OK
    );
    // Only the hash is stored; the listing shows the prefix.
    let (_, listed) = b.get("/api/auth/api-keys").await;
    assert_eq!(listed[0]["prefix"], created["prefix"]);
    assert_eq!(listed[0]["key_prefix"], created["key_prefix"]);
    assert!(!listed.to_string().contains(&key));
    let stored: i64 = app
        .state
        .meta
        .read({
            let k = key.clone();
            move |c| {
                c.query_row(
                    "SELECT count(*) FROM api_keys WHERE key_hash = ?1",
                    [tokens::sha256_hex(&k)],
                    |r| r.get(0),
                )
            }
        })
        .await
        .unwrap();
    assert_eq!(stored, 1);
    // Revoked: refused on the very next request.
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        b.send(Method::DELETE, &format!("/api/auth/api-keys/{id}"), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, answer) = script.get("/api/status").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_api_key"))
    );
    // Expired.
    let old = app.key_for(ed).await;
    app.state
        .meta
        .write(|tx| tx.execute("UPDATE api_keys SET expires_at = 1 WHERE name = 't'", []))
        .await
        .unwrap();
    app.state.auth.keys.clear();
    script.bearer = Some(old);
    let (status, answer) = script.get("/api/status").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("api_key_expired"))
    );
    // Made-up keys.
    script.bearer = Some(tokens::new_api_key());
    assert_eq!(script.get("/api/status").await.0, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = auth_app().await;
    let (one, two) = (
        app.add_user("one@example.com", Role::Admin).await,
        app.add_user("two@example.com", Role::Admin).await,
    );
    let mut a = app.browser();
    a.bearer = Some(app.key_for(one).await);
    let mut b = app.browser();
    b.bearer = Some(app.key_for(two).await);
    // The first admin (admin@localhost) leaves the admins, so one and two are the last two.
    let first = app
        .state
        .meta
        .read(|c| store::user_by_email(c, "admin@localhost"))
        .await
        .unwrap()
        .unwrap();
    let (status, _) = a
        .send(
            Method::PUT,
            &format!("/api/admin/users/{}/role", first.id),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..10 {
        let body = Some(json!({"role": "editor"}));
        let (path_two, path_one) = (
            format!("/api/admin/users/{two}/role"),
            format!("/api/admin/users/{one}/role"),
        );
        let (x, y) = tokio::join!(
            a.send(Method::PUT, &path_two, body.clone()),
            b.send(Method::PUT, &path_one, body),
        );
        let admins = app
            .state
            .meta
            .read(store::list_users)
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::Admin && u.is_active())
            .count();
        assert_eq!(admins, 1, "{x:?} {y:?}");
        // One demotion wins; the other is refused as the last admin's (409), or, when it
        // arrives after the first committed, because its caller is no admin any more.
        let mut statuses = [x.0, y.0];
        statuses.sort();
        assert!(
            matches!(
                statuses,
                [StatusCode::OK, StatusCode::FORBIDDEN | StatusCode::CONFLICT]
            ),
            "{x:?} {y:?}"
        );
        // Make both admins again for the next round (the one left does it).
        let survivor = if x.0 == StatusCode::OK {
            &mut a
        } else {
            &mut b
        };
        for id in [one, two] {
            survivor
                .send(
                    Method::PUT,
                    &format!("/api/admin/users/{id}/role"),
                    Some(json!({"role": "admin"})),
                )
                .await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_last_admin_stays_and_nobody_removes_themselves() {
    let app = auth_app().await;
    let boss = app.add_user("boss@example.com", Role::Admin).await;
    let ed = app.add_user("ed@example.com", Role::Editor).await;
    let mut a = app.browser();
    a.bearer = Some(app.key_for(boss).await);
    // admin@localhost (made at first start) is the other admin: deactivate it.
    let (_, users) = a.get("/api/admin/users").await;
    let first = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "admin@localhost")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        a.post(&format!("/api/admin/users/{first}/deactivate"), json!({}))
            .await
            .0,
        StatusCode::OK
    );

    let (status, answer) = a
        .send(
            Method::PUT,
            &format!("/api/admin/users/{boss}/role"),
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::CONFLICT, Some("last_admin"))
    );
    let (status, answer) = a
        .post(&format!("/api/admin/users/{boss}/deactivate"), json!({}))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::CONFLICT, Some("cannot_modify_self"))
    );
    let (status, _) = a
        .send(Method::DELETE, &format!("/api/admin/users/{boss}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // With a second admin, the first may step down.
    assert_eq!(
        a.send(
            Method::PUT,
            &format!("/api/admin/users/{ed}/role"),
            Some(json!({"role": "admin"}))
        )
        .await
        .0,
        StatusCode::OK
    );
    let (status, answer) = a
        .send(
            Method::PUT,
            &format!("/api/admin/users/{boss}/role"),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The role change applies to the next request.
    assert_eq!(
        a.get("/api/admin/users").await.1["error"],
        "permission_denied"
    );
    let (status, answer) = a
        .send(
            Method::PUT,
            &format!("/api/admin/users/{ed}/role"),
            Some(json!({"role": "chief"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_forced_password_change_is_enforced_by_the_server() {
    let app = auth_app().await;
    let boss = app.add_user("boss@example.com", Role::Admin).await;
    let mut a = app.browser();
    a.bearer = Some(app.key_for(boss).await);
    let (_, invited) = a
        .post(
            "/api/admin/users",
            json!({"email": "new@example.com", "role": "editor", "display_name": "New"}),
        )
        .await;
    let token = invited["invite_token"].as_str().unwrap().to_owned();
    assert!(
        invited["invite_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/invite/{token}"))
    );
    let (status, _) = a
        .post(
            "/api/admin/users",
            json!({"email": "NEW@example.com", "role": "editor"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Accepting the invitation checks the password rules and signs in.
    let mut n = app.browser();
    let (status, answer) = n
        .post(
            "/api/auth/accept-invite",
            json!({"token": token, "password": "password123"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("weak_password"))
    );
    let (status, answer) = n
        .post(
            "/api/auth/accept-invite",
            json!({"token": token, "password": PASSWORD, "display_name": "Nia"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["user"]["display_name"], "Nia");
    assert_eq!(n.get("/api/status").await.0, StatusCode::OK);
    assert_eq!(
        n.post(
            "/api/auth/accept-invite",
            json!({"token": token, "password": PASSWORD})
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );

    // An admin reset gives a temporary password that opens only the password change.
    let id = answer["user"]["id"].as_str().unwrap().to_owned();
    let (_, reset) = a
        .post(&format!("/api/admin/users/{id}/reset-password"), json!({}))
        .await;
    let temporary = reset["temporary_password"].as_str().unwrap().to_owned();
    assert_eq!(
        n.get("/api/status").await.0,
        StatusCode::UNAUTHORIZED,
        "the reset ended the session"
    );
    let (status, me) = n.login("new@example.com", &temporary).await;
    assert_eq!(
        (status, me["must_change_password"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (status, answer) = n.post("/api/query", json!({"sql": "SELECT 1"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("password_change_required"))
    );
    assert_eq!(n.get("/api/auth/me").await.0, StatusCode::OK);
    let (status, answer) = n
        .post(
            "/api/auth/change-password",
            json!({"current_password": temporary, "new_password": "new@example.com"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("weak_password"))
    );
    let (status, _) = n
        .post(
            "/api/auth/change-password",
            json!({"current_password": temporary, "new_password": "mossy-granite-88"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        n.post("/api/query", json!({"sql": "SELECT 1"})).await.0,
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn secrets_are_written_privately_and_never_shown_whole() {
    let app = auth_app().await;
    let boss = app.add_user("boss@example.com", Role::Admin).await;
    let mut a = app.browser();
    a.bearer = Some(app.key_for(boss).await);
    let value = "sk_live_51HxQbLkDx9aS0mEsEcReT";
    let (status, _) = a
        .post("/api/secrets", json!({"key": "STRIPE_KEY", "value": value}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = a
        .post("/api/secrets", json!({"key": "bad key", "value": "x"}))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_key"))
    );
    let env = std::fs::read_to_string(app.dir.path().join(".env")).unwrap();
    assert!(
        env.contains(&format!("STRIPE_KEY={value}")) && env.starts_with("# Secrets"),
        "{env}"
    );
    let (_, listed) = a.get("/api/secrets").await;
    assert_eq!(listed["secrets"][0]["key"], "STRIPE_KEY");
    assert_eq!(listed["secrets"][0]["masked_value"], "sk_********");
    let (_, audit) = a.get("/api/audit").await;
    assert!(audit.to_string().contains("secret.create") && !audit.to_string().contains(value));
    assert_eq!(
        a.send(Method::DELETE, "/api/secrets/STRIPE_KEY", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        a.send(Method::DELETE, "/api/secrets/STRIPE_KEY", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(
        !std::fs::read_to_string(app.dir.path().join(".env"))
            .unwrap()
            .contains("STRIPE_KEY")
    );
    app.stop().await;
}

#[tokio::test]
async fn auth_off_is_refused_beyond_loopback_and_is_a_local_admin_on_it() {
    let dir = tempfile::tempdir().unwrap();
    kura::project::init(dir.path(), false).unwrap();
    let env = vec![
        ("KURA__AUTH__ENABLED".to_owned(), "false".to_owned()),
        ("KURA__PLATFORM__BIND".to_owned(), "0.0.0.0".to_owned()),
    ];
    let err = kura::Config::load_with_env(dir.path(), env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("auth.enabled: false is allowed only on a loopback address"),
        "{err}"
    );
    // A bind set after loading (the --bind flag) is checked when the server starts.
    let mut config = kura::Config::load_with_env(dir.path(), Vec::new()).unwrap();
    config.auth.enabled = false;
    config.platform.bind = "0.0.0.0".parse().unwrap();
    let err = kura::AppState::new(config).await.err().unwrap().to_string();
    assert!(err.contains("loopback"), "{err}");

    // On loopback every route works without credentials.
    let app = TestApp::with_fixtures().await;
    let (status, me) = app.get_json("/api/auth/me").await;
    assert_eq!(
        (status, me["auth_enabled"].clone(), me["role"].clone()),
        (StatusCode::OK, json!(false), json!("admin"))
    );
    assert_eq!(app.get_json("/api/admin/users").await.0, StatusCode::OK);
    assert_eq!(
        app.query("SELECT count(*) FROM orders").await.0,
        StatusCode::OK
    );
    app.stop().await;
}

/// Opens `/ws` by hand (HTTP/1.1 upgrade) and returns the status line.
async fn ws_status(base: &str, path_and_query: &str, cookie: Option<&str>) -> String {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    ws_status_with(base, path_and_query, &cookie).await
}

/// [`ws_status`] with extra header lines (each ending in `\r\n`).
pub(crate) async fn ws_status_with(base: &str, path_and_query: &str, extra: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn the_websocket_needs_credentials() {
    let app = auth_app().await;
    let viewer = app.add_user("v@example.com", Role::Viewer).await;
    assert!(ws_status(&app.base, "/ws", None).await.contains("401"));
    assert!(
        ws_status(&app.base, "/ws?token=kura_ak_madeup", None)
            .await
            .contains("401")
    );
    let key = app.key_for(viewer).await;
    let line = ws_status(&app.base, &format!("/ws?token={key}"), None).await;
    assert!(line.contains("101"), "{line}");
    // ?token= is accepted on /ws only.
    let mut b = app.browser();
    assert_eq!(
        b.get(&format!("/api/status?token={key}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_send_browsers_to_sign_in_and_carry_the_csrf_token() {
    let app = auth_app().await;
    app.add_user("ed@example.com", Role::Editor).await;
    let mut b = app.browser();
    b.extra = vec![("accept", "text/html".into())];
    let page = |b: &mut Browser, path: &'static str| {
        let path = path.to_owned();
        let req = b
            .client
            .get(format!("{}{path}", b.base))
            .header("accept", "text/html");
        let req = match &b.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        async move { req.send().await.unwrap() }
    };
    let r = page(&mut b, "/settings/account").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=/settings/account");
    let r = page(&mut b, "/login").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("id=\"password-step\""));
    // A bad invitation link is an error page, not a form.
    let r = page(&mut b, "/invite/not-a-token").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("invitation is unknown"));

    b.extra.clear();
    b.login("ed@example.com", PASSWORD).await;
    let csrf = b.csrf.clone().unwrap();
    let r = page(&mut b, "/settings/account").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("<meta name=\"csrf-token\" content=\"{csrf}\">")));
    assert!(
        !html.contains("/settings/users"),
        "an editor is not offered user administration"
    );
    // A page the role does not allow is a 403 page.
    let r = page(&mut b, "/settings/users").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("users.manage"));
    // The page scripts are served.
    for asset in [
        "kura.js",
        "login.js",
        "account.js",
        "users.js",
        "secrets.js",
        "setup.js",
        "invite.js",
    ] {
        let (status, _) = b.get(&format!("/static/{asset}")).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
    }
    app.stop().await;
}

#[tokio::test]
async fn required_two_factor_blocks_everything_until_enrolled() {
    let app = TestApp::with_config(|c| {
        c.auth.enabled = true;
        c.auth.require_2fa = true;
        c.auth.rate_limit_per_minute = 100_000;
        c.auth.rate_limit_burst = 100_000;
    })
    .await;
    let id = app.add_user("ed@example.com", Role::Editor).await;
    let mut key = app.browser();
    key.bearer = Some(app.key_for(id).await);
    let mut b = app.browser();
    let (status, me) = b.login("ed@example.com", PASSWORD).await;
    assert_eq!(
        (status, me["two_factor_required"].clone()),
        (StatusCode::OK, json!(true))
    );
    for caller in [&mut b, &mut key] {
        let (status, answer) = caller.get("/api/status").await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (
                StatusCode::FORBIDDEN,
                Some("two_factor_enrollment_required")
            )
        );
    }
    let (_, setup) = b
        .post("/api/auth/2fa/setup", json!({"password": PASSWORD}))
        .await;
    let secret = totp::decode_base32(setup["secret"].as_str().unwrap()).unwrap();
    let code = totp::code_at(&secret, now()).unwrap();
    assert_eq!(
        b.post("/api/auth/2fa/verify-setup", json!({"code": code}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(b.get("/api/status").await.0, StatusCode::OK);
    assert_eq!(key.get("/api/status").await.0, StatusCode::OK);
    app.stop().await;
}

/// Deleting a user with the reference's confirmation: a mistyped email refuses and deletes
/// nothing; the right one (any case) deletes.
#[tokio::test]
async fn a_user_is_deleted_only_with_their_own_email_as_confirmation() {
    let app = auth_app().await;
    let admin = app.add_user("boss@example.com", Role::Admin).await;
    let victim = app.add_user("ed@example.com", Role::Editor).await;
    let mut a = app.browser();
    a.bearer = Some(app.key_for(admin).await);
    let path = format!("/api/admin/users/{victim}");
    let (status, body) = a
        .send(
            Method::DELETE,
            &path,
            Some(json!({"confirm_email": "eddie@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "confirmation_mismatch");
    assert!(
        body["message"].as_str().unwrap().contains("ed@example.com"),
        "{body}"
    );
    let listed = |users: &Value| {
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == "ed@example.com")
    };
    assert!(
        listed(&a.get("/api/admin/users").await.1),
        "the user is still there"
    );
    let (status, body) = a
        .send(
            Method::DELETE,
            &path,
            Some(json!({"confirm_email": " ED@example.com "})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"], true);
    assert!(!listed(&a.get("/api/admin/users").await.1));
    app.stop().await;
}
