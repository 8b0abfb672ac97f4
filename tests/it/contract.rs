//! The reference API as a contract. Every probe of `tests/contract/probes.json` is made
//! against Kura in order, on the same data, schedule and webhook the reference product was
//! recorded with (`tests/contract/record.py` → `reference.json`). Each answer must carry
//! the reference's status and every key path of the reference's answer with the same JSON
//! type: Kura may add keys, never lack, rename or retype one. Probes marked `deviation`
//! are where Kura refuses on purpose (README: Compatibility with the reference API): they
//! must answer differently. A failure lists every difference, probe by probe.

use std::collections::BTreeMap;
use std::time::Duration;

use kura::auth::{Role, totp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::accounts::{Browser, PASSWORD, now};
use crate::harness::{TestApp, eventually};

const PROBES: &str = include_str!("../contract/probes.json");
const REFERENCE: &str = include_str!("../contract/reference.json");

/// Objects whose keys are data (schema names, source names), not part of the shape.
const MAPS: &[&str] = &[
    "$.disk_breakdown.duckdb.schema_sizes",
    "$.disk_breakdown.csv_uploads.by_source",
];

/// The file record.py writes for the reference product: id, region, amount, sold_at.
fn sales_csv() -> String {
    let regions = ["north", "south", "east", "west"];
    let mut out = String::from("id,region,amount,sold_at\n");
    for i in 1..=200u32 {
        out.push_str(&format!(
            "{i},{},{}.{:02},2024-{:02}-{:02}\n",
            regions[(i % 4) as usize],
            (i * 37) % 1000,
            i % 100,
            1 + i % 12,
            1 + i % 28
        ));
    }
    out
}

const EXTRA_CSV: &str = "id,region,amount,sold_at\n9001,north,1.50,2024-06-01\n";

/// `{path: type}` of a JSON value; array items merge under `path[]` (as record.py does).
fn shape(value: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    let ty = match value {
        Value::Object(map) => {
            for (k, v) in map {
                shape(v, &format!("{path}.{k}"), out);
            }
            "object"
        }
        Value::Array(items) => {
            for item in items {
                let mut one = BTreeMap::new();
                shape(item, &format!("{path}[]"), &mut one);
                for (k, t) in one {
                    let slot = out.entry(k).or_insert("null");
                    if *slot == "null" {
                        *slot = t;
                    }
                }
            }
            "array"
        }
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Null => "null",
    };
    out.insert(path.to_owned(), ty);
}

/// What a reference-shaped client could trip on in `kura`: a missing path or another
/// type. `null` on either side is a value, not a type (a schedule that has not run yet),
/// and what lies below a Kura `null` or an empty Kura array cannot be checked.
fn differences(reference: &BTreeMap<String, String>, kura: &BTreeMap<String, &str>) -> Vec<String> {
    let mut out = Vec::new();
    'paths: for (path, ref_ty) in reference {
        if MAPS.iter().any(|m| path.starts_with(&format!("{m}."))) {
            continue;
        }
        // Walk up: below a null, or below an array Kura has with no items, nothing to see.
        let mut parent = path.as_str();
        while let Some(i) = parent.rfind(['.', '[']) {
            parent = &parent[..i];
            match kura.get(parent) {
                Some(&"null") => continue 'paths,
                Some(&"array") if !kura.keys().any(|k| k.starts_with(&format!("{parent}[]"))) => {
                    continue 'paths;
                }
                _ => {}
            }
        }
        match kura.get(path.as_str()) {
            None => out.push(format!("missing {path}")),
            Some(ty) if *ty != ref_ty && *ty != "null" && ref_ty != "null" => {
                out.push(format!("{path}: {ty}, the reference has {ref_ty}"));
            }
            Some(_) => {}
        }
    }
    out
}

fn capture(body: &Value, spec: &str) -> Option<String> {
    let (expr, modifier) = spec.split_once('#').unwrap_or((spec, ""));
    let pointer: String = expr
        .trim_start_matches('$')
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{s}"))
        .collect();
    let value = body.pointer(&pointer)?;
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(if modifier == "last_segment" {
        text.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned()
    } else {
        text
    })
}

fn substitute(value: &Value, vars: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => {
            let mut s = s.clone();
            for (name, offset) in [("totp_prev", -1i64), ("totp_next", 1), ("totp", 0)] {
                let placeholder = format!("{{{name}}}");
                if s.contains(&placeholder) {
                    let secret = totp::decode_base32(&vars["totp_secret"]).unwrap();
                    let at = now().checked_add_signed(offset * 30).unwrap();
                    s = s.replace(&placeholder, &totp::code_at(&secret, at).unwrap());
                }
            }
            for (k, v) in vars {
                s = s.replace(&format!("{{{k}}}"), v);
            }
            Value::String(s)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, vars)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, vars)).collect()),
        other => other.clone(),
    }
}

/// A webhook receiver that answers 200 to anything.
async fn webhook_receiver() -> String {
    let router = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

async fn settle(app: &TestApp) {
    let settled = eventually(Duration::from_secs(30), || async {
        app.state.syncs.running().is_empty().then_some(())
    })
    .await;
    assert!(settled.is_some(), "a sync did not finish");
}

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let mut b = app.browser();
    b.extra.push(("x-requested-with", "XMLHttpRequest".into()));
    let (status, _) = b.login(email, PASSWORD).await;
    assert_eq!(status, 200, "{email} signs in");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shared_route_answers_in_the_reference_shape() {
    let probes: Value = serde_json::from_str(PROBES).unwrap();
    let reference: Value = serde_json::from_str(REFERENCE).unwrap();
    let hook = webhook_receiver().await;
    let schedules = format!(
        "schedules:\n  - name: nightly_sales\n    cron: 0 2 * * *\n    sources: [sales]\n\
         notifications:\n  webhooks:\n    - {{name: ops, url: \"{hook}\", format: generic}}\n"
    );
    let app = TestApp::with_config(|c| {
        c.auth.enabled = true;
        c.auth.rate_limit_per_minute = 100_000;
        c.auth.rate_limit_burst = 100_000;
        std::fs::write(c.root.join("schedules.yml"), &schedules).unwrap();
    })
    .await;
    let root = app.dir.path().to_path_buf();
    let source_dir = root.join("data/uploads/sales");
    std::fs::create_dir_all(&source_dir).unwrap();
    std::fs::write(source_dir.join("sales.csv"), sales_csv()).unwrap();
    // The first admin, as the reference's `dango init` makes it, with a known password.
    let hash = kura::auth::password::hash(PASSWORD).unwrap();
    app.state
        .meta
        .write(move |tx| {
            let admin = kura::auth::store::user_by_email(tx, "admin@localhost")?.unwrap();
            kura::auth::store::set_password(tx, admin.id, &hash, false)
        })
        .await
        .unwrap();
    for (email, role) in [
        ("editor@example.com", Role::Editor),
        ("viewer@example.com", Role::Viewer),
        ("changer@example.com", Role::Viewer),
        ("twofa@example.com", Role::Viewer),
    ] {
        app.add_user(email, role).await;
    }
    let mut admin = signed_in(&app, "admin@localhost").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while admin.get("/api/sources/sales/details").await.1["row_count"] != 200 {
        assert!(std::time::Instant::now() < deadline, "the sales file loads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, me) = admin.get("/api/auth/me").await;
    let mut spare = signed_in(&app, "admin@localhost").await;
    let (_, sessions) = spare.get("/api/auth/sessions").await;
    let spare_id = sessions
        .as_array()
        .and_then(|list| list.iter().find(|s| s["is_current"] == true))
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();

    let mut callers: BTreeMap<String, Browser> = BTreeMap::new();
    for name in ["anon", "invited", "twofa_pending"] {
        let mut b = app.browser();
        b.extra.push(("x-requested-with", "XMLHttpRequest".into()));
        callers.insert(name.into(), b);
    }
    let mut bad = app.browser();
    bad.bearer = Some("kura_not_a_real_key".into());
    callers.insert("bad_bearer".into(), bad);
    // A page of the reference UI: the admin's cookie, its own Origin, X-Requested-With
    // and no X-CSRF-Token.
    let mut page = app.browser();
    page.extra = vec![
        ("cookie", admin.cookie().unwrap()),
        ("origin", app.base.clone()),
        ("x-requested-with", "XMLHttpRequest".into()),
    ];
    callers.insert("admin_browser".into(), page);
    for (name, email) in [
        ("editor", "editor@example.com"),
        ("viewer", "viewer@example.com"),
        ("changer", "changer@example.com"),
        ("twofa", "twofa@example.com"),
    ] {
        callers.insert(name.into(), signed_in(&app, email).await);
    }
    callers.insert("admin".into(), admin);

    let mut vars: BTreeMap<String, String> = BTreeMap::from([
        ("password".into(), PASSWORD.into()),
        (
            "source_dir".into(),
            source_dir.canonicalize().unwrap().display().to_string(),
        ),
        ("admin_id".into(), capture(&me, "$.id").unwrap_or_default()),
        ("unknown_user_id".into(), "999999".into()),
        ("spare_session_id".into(), spare_id),
    ]);

    let mut report = Vec::new();
    for probe in probes["probes"].as_array().unwrap() {
        let id = probe["id"].as_str().unwrap();
        let who = probe["as"].as_str().unwrap();
        if who == "bearer" {
            let mut b = app.browser();
            b.bearer = vars.get("bearer").cloned();
            callers.insert("bearer".into(), b);
        }
        let caller = callers
            .get_mut(who)
            .unwrap_or_else(|| panic!("caller {who}"));
        let method = Method::from_bytes(probe["method"].as_str().unwrap().as_bytes()).unwrap();
        let path = substitute(&probe["path"], &vars);
        let path = path.as_str().unwrap();
        let body = probe.get("body").map(|b| substitute(b, &vars));
        let (status, answer) = match probe["upload"].as_str() {
            Some(file) => {
                caller
                    .upload(path, file, EXTRA_CSV.as_bytes().to_vec())
                    .await
            }
            None => caller.send(method, path, body).await,
        };
        let expected = &reference["answers"][id];
        let ref_status = expected["status"].as_u64().unwrap();
        if let Some(why) = probe["deviation"].as_str() {
            if u64::from(status.as_u16()) == ref_status {
                report.push(format!(
                    "{id}: answers {status} like the reference, but {why}"
                ));
            }
        } else {
            let mut problems = Vec::new();
            if u64::from(status.as_u16()) != ref_status {
                problems.push(format!(
                    "status {status}, the reference answers {ref_status}"
                ));
            }
            let reference_shape: BTreeMap<String, String> =
                serde_json::from_value(expected["shape"].clone()).unwrap();
            let mut kura_shape = BTreeMap::new();
            shape(&answer, "$", &mut kura_shape);
            problems.extend(differences(&reference_shape, &kura_shape));
            if !problems.is_empty() {
                report.push(format!(
                    "{id} ({} {path}): {}",
                    probe["method"],
                    problems.join("; ")
                ));
            }
        }
        if status.is_success()
            && let Some(captures) = probe["capture"].as_object()
        {
            for (var, spec) in captures {
                if let Some(v) = capture(&answer, spec.as_str().unwrap()) {
                    vars.insert(var.clone(), v);
                }
            }
        }
        if probe["settle"] == true {
            settle(&app).await;
        }
    }
    assert!(
        report.is_empty(),
        "{} of {} probes differ from the reference:\n  {}",
        report.len(),
        probes["probes"].as_array().unwrap().len(),
        report.join("\n  ")
    );
    app.stop().await;
}

#[test]
fn shapes_compare_as_a_superset() {
    let reference: BTreeMap<String, String> = [
        ("$", "array"),
        ("$[]", "object"),
        ("$[].name", "string"),
        ("$[].last_run", "object"),
        ("$[].last_run.id", "number"),
        ("$[].note", "null"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let check = |v: Value| {
        let mut s = BTreeMap::new();
        shape(&v, "$", &mut s);
        differences(&reference, &s)
    };
    // Extra keys and a not-yet-run schedule (null) are fine.
    assert!(check(json!([{"name": "a", "last_run": null, "note": 1, "extra": true}])).is_empty());
    assert!(
        check(json!([])).is_empty(),
        "nothing to compare in an empty list"
    );
    assert!(check(json!({"items": []})).contains(&"$: object, the reference has array".to_owned()));
    assert_eq!(
        check(json!([{"name": 1, "last_run": {"id": "x"}, "note": null}])),
        vec![
            "$[].last_run.id: string, the reference has number".to_owned(),
            "$[].name: number, the reference has string".to_owned()
        ]
    );
    assert_eq!(
        check(json!([{"last_run": {}, "note": null}])),
        vec![
            "missing $[].last_run.id".to_owned(),
            "missing $[].name".to_owned()
        ]
    );
}
