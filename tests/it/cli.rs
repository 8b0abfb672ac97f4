//! The `kura` binary itself: init, serve, the serve lock, graceful shutdown, examples.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KURA: &str = env!("CARGO_BIN_EXE_kura");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server child process that is killed if the test ends (or panics) while it runs.
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn serve(dir: &Path, port: u16) -> Running {
    spawn_server(dir, port, Stdio::null())
}

/// A server whose log (stderr) the test reads; only for tests that make few requests,
/// since an unread pipe that fills up would block the server.
fn serve_with_log(dir: &Path, port: u16) -> Running {
    spawn_server(dir, port, Stdio::piped())
}

/// The log lines of a stopped [`serve_with_log`] server.
fn log_of(server: &mut Running) -> Vec<String> {
    BufReader::new(server.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect()
}

fn spawn_server(dir: &Path, port: u16, stderr: Stdio) -> Running {
    Running(
        Command::new(KURA)
            .args(["serve", dir.to_str().unwrap(), "--port", &port.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
}

/// A client that authenticates as the `kura` CLI does: with the machine-local token the
/// running server wrote to `.kura/cli-token`.
fn local_client(dir: &Path) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-requested-with", "kura-tests".parse().unwrap());
    if let Some(token) = kura::auth::read_cli_token(&dir.join(".kura")) {
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Polls until the server answers `/api/status`; returns a client signed in to it.
#[must_use = "the client is signed in to the server"]
async fn wait_ready(dir: &Path, port: u16) -> reqwest::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Read the token each time: a previous server's stale one is replaced at start.
        let client = local_client(dir);
        let r = client
            .get(format!("http://127.0.0.1:{port}/api/status"))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return client;
        }
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn terminate(child: &Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
}

#[test]
fn init_creates_the_skeleton_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kura serve"),
        "init says what to do next: {stdout}"
    );
    for p in [
        "project.yml",
        "schedules.yml",
        "data/uploads",
        ".kura",
        ".env",
    ] {
        assert!(dir.path().join(p).exists(), "{p}");
    }
    let again = Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap(), "--force"])
        .output()
        .unwrap();
    assert!(forced.status.success());
}

/// The password a `kura` command printed on a line of its own.
fn printed_password(stdout: &str) -> String {
    let line = stdout
        .lines()
        .rev()
        .find(|l| {
            let t = l.trim();
            t.len() == 20 && t.bytes().all(|b| b.is_ascii_alphanumeric())
                || t.starts_with("password: ")
        })
        .unwrap_or_else(|| panic!("no password in {stdout}"));
    line.trim().trim_start_matches("password: ").to_owned()
}

#[tokio::test]
async fn init_prints_the_first_admin_and_kura_user_manages_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("admin@localhost"), "{stdout}");
    let admin_password = printed_password(&stdout);
    let kura_user = |args: &[&str]| {
        let out = Command::new(KURA)
            .arg("user")
            .args(args)
            .args(["--project", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = kura_user(&["add", "ana@example.com", "--role", "editor"]);
    assert!(ok, "{out}");
    let ana_password = printed_password(&out);
    let (ok, out) = kura_user(&["add", "ana@example.com"]);
    assert!(!ok && out.contains("already"), "{out}");
    let (ok, out) = kura_user(&["add", "bo@example.com", "--role", "owner"]);
    assert!(!ok && out.contains("not a role"), "{out}");
    let (ok, out) = kura_user(&["list"]);
    assert!(
        ok && out.contains("admin@localhost")
            && out.contains("ana@example.com")
            && out.contains("editor"),
        "{out}"
    );

    // The server takes both temporary passwords, and insists they be changed.
    let port = free_port();
    let mut server = serve(dir.path(), port);
    let _ = wait_ready(dir.path(), port).await;
    let client = reqwest::Client::new();
    let login = |email: &'static str, password: String| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("http://127.0.0.1:{port}/api/auth/login"))
                .json(&serde_json::json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, me) = login("admin@localhost", admin_password).await;
    assert_eq!(
        (status, me["must_change_password"].clone()),
        (200, serde_json::json!(true)),
        "{me}"
    );
    let (status, me) = login("ana@example.com", ana_password.clone()).await;
    assert_eq!(
        (status, me["role"].clone()),
        (200, serde_json::json!("editor")),
        "{me}"
    );
    // A reset while the server runs takes effect at once.
    let (ok, out) = kura_user(&["reset-password", "ana@example.com"]);
    assert!(ok, "{out}");
    let fresh = printed_password(&out);
    assert_eq!(login("ana@example.com", ana_password).await.0, 400);
    assert_eq!(login("ana@example.com", fresh).await.0, 200);
    // `kura schedule run` asks the running server (with the CLI's token).
    std::fs::write(
        dir.path().join("schedules.yml"),
        "schedules:\n  - name: hourly\n    cron: every_hour\n    sources: [uploads]\n",
    )
    .unwrap();
    let out = Command::new(KURA)
        .args([
            "schedule",
            "run",
            "hourly",
            "--project",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("asking it") && text.contains("of hourly: success"),
        "{text}"
    );
    terminate(&server);
    server.wait().unwrap();
}

#[tokio::test]
async fn a_project_named_by_a_relative_path_still_loads_dropped_files() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("proj");
    Command::new(KURA)
        .args(["init", "proj"])
        .current_dir(parent.path())
        .output()
        .unwrap();
    let port = free_port();
    // As in the README: `kura serve examples/shop`, relative to where the shell is.
    let mut server = Running(
        Command::new(KURA)
            .args(["serve", "proj", "--port", &port.to_string()])
            .current_dir(parent.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = wait_ready(&dir, port).await;
    std::fs::write(dir.join("data/uploads/late.csv"), "a,b\n1,2\n3,4\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body: serde_json::Value = client
            .post(format!("http://127.0.0.1:{port}/api/query"))
            .json(&serde_json::json!({"sql": "SELECT count(*) FROM raw_uploads.late"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["rows"][0][0] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dropped file never loaded: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(&server);
    server.wait().unwrap();
}

#[test]
fn kura_schedule_validates_the_file_and_lists_next_runs() {
    let dir = tempfile::tempdir().unwrap();
    Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("data/uploads/sales")).unwrap();
    let schedule = |args: &[&str]| {
        let out = Command::new(KURA)
            .arg("schedule")
            .args(args)
            .args(["--project", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // The file `kura init` writes is valid.
    let (ok, out) = schedule(&["validate"]);
    assert!(ok && out.contains("0 schedule(s)"), "{out}");
    std::fs::write(
        dir.path().join("schedules.yml"),
        "schedules:\n  - name: nightly\n    cron: \"0 2 * * *\"\n    timezone: Europe/Berlin\n    sources: [sales]\n",
    )
    .unwrap();
    let (ok, out) = schedule(&["list"]);
    assert!(ok, "{out}");
    let line = out.lines().find(|l| l.starts_with("nightly")).unwrap();
    assert!(
        line.contains("0 2 * * *") && line.contains("Europe/Berlin") && line.contains("02:00 CE"),
        "{line}"
    );
    std::fs::write(
        dir.path().join("schedules.yml"),
        "schedules:\n  - name: feb31\n    cron: \"0 0 31 2 *\"\n    sources: [sales, nope]\n",
    )
    .unwrap();
    let (ok, out) = schedule(&["validate"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("line 2: schedule \"feb31\"") && out.contains("never fires"),
        "{out}"
    );
    assert!(out.contains("there is no source \"nope\""), "{out}");
    assert!(out.contains("2 problem(s)"), "{out}");

    // `kura schedule run`, without a server: the job runs in-process and is recorded.
    std::fs::write(
        dir.path().join("data/uploads/sales/jan.csv"),
        "day,amount\n2024-01-01,5\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("schedules.yml"),
        "schedules:\n  - name: nightly\n    cron: daily\n    sources: [sales]\n",
    )
    .unwrap();
    let (ok, out) = schedule(&["run", "nightly"]);
    assert!(ok, "{out}");
    assert!(out.contains("job 1 of nightly: success, 1 rows"), "{out}");
    let (ok, out) = schedule(&["run", "nope"]);
    assert!(!ok && out.contains("there is no schedule"), "{out}");
}

#[test]
fn a_bad_config_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::write(dir.path().join("project.yml"), "api:\n  query_timeout: 5\n").unwrap();
    let out = Command::new(KURA)
        .args(["serve", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("project.yml"), "{err}");
    assert!(
        err.contains("api") && err.contains("query_timeout"),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_project_fails_at_once_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let port = free_port();
    let mut first = serve_with_log(dir.path(), port);
    let _ = wait_ready(dir.path(), port).await;

    let started = Instant::now();
    let second = Command::new(KURA)
        .args([
            "serve",
            dir.path().to_str().unwrap(),
            "--port",
            &free_port().to_string(),
        ])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already serving"), "{err}");
    assert!(
        !err.to_lowercase().contains("could not set lock"),
        "not DuckDB's lock error: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    terminate(&first);
    let status = first.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let log = log_of(&mut first).join("\n");
    assert!(log.contains("Kura is serving"), "{log}");
    assert!(log.contains("checkpointed"), "{log}");
    assert!(log.contains("request"), "one line per request: {log}");
    // The lock is released: serving again works.
    let port = free_port();
    let mut again = serve(dir.path(), port);
    let _ = wait_ready(dir.path(), port).await;
    terminate(&again);
    again.wait().unwrap();
}

#[tokio::test]
async fn every_example_project_boots_and_answers_a_query() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let src = entry.unwrap().path();
        if !src.join("project.yml").exists() {
            continue;
        }
        seen += 1;
        // Work on a copy so the test never writes into the repository.
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&src, dir.path());
        let port = free_port();
        let mut child = serve(dir.path(), port);
        let _ = wait_ready(dir.path(), port).await;
        // Every file the example ships is loaded at startup and queryable.
        let client = local_client(dir.path());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = client
                .get(format!("http://127.0.0.1:{port}/api/sources"))
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = r.json().await.unwrap();
            let sources = body.as_array().cloned().unwrap_or_default();
            let settled = !sources.is_empty() && sources.iter().all(|s| s["status"] == "synced");
            if settled {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not load: {body}",
                src.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = client
            .post(format!("http://127.0.0.1:{port}/api/query"))
            .json(&serde_json::json!({"sql": "SELECT count(*) FROM information_schema.tables WHERE table_schema LIKE 'raw_%'"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", src.display());
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["rows"][0][0].as_i64().unwrap() >= 1, "{body}");
        terminate(&child);
        assert!(child.wait().unwrap().success());
    }
    assert!(seen >= 1, "no example project found");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[path = "../../examples/gen_data.rs"]
#[allow(dead_code, reason = "only `write` is used here")]
pub(crate) mod gen_data;

#[tokio::test]
async fn kill_9_during_a_load_quarantines_the_file_and_a_full_refresh_loads_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let port = free_port();
    let mut first = serve(dir.path(), port);
    let client = wait_ready(dir.path(), port).await;
    // Big enough that the load takes a while on this machine.
    let staged = dir.path().join("big.csv");
    gen_data::write("csv", 3_000_000, &staged).unwrap();
    std::fs::rename(&staged, dir.path().join("data/uploads/big.csv")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w: serde_json::Value = client
            .get(format!("http://127.0.0.1:{port}/api/watcher/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if w["syncing"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the load never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Into the load itself: its in-flight marker is written just before DuckDB reads it.
    let inflight = dir.path().join(".kura/inflight");
    while !crate::schedules::has_marker(&inflight) {
        assert!(Instant::now() < deadline, "the load never began");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    first.wait().unwrap();

    let port = free_port();
    let mut second = serve(dir.path(), port);
    let client = wait_ready(dir.path(), port).await;
    let url = format!("http://127.0.0.1:{port}/api/query");
    // The load was cut: nothing of it is there, and the file is quarantined (a kill -9
    // cannot be told from a file that crashed the server) until a full refresh asks.
    let ledger = "SELECT status, error FROM _kura.files WHERE path = 'data/uploads/big.csv'";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body: serde_json::Value = client
            .post(&url)
            .json(&serde_json::json!({"sql": ledger}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["rows"][0][0] == "failed" {
            assert!(
                body["rows"][0][1].as_str().unwrap().contains("quarantined"),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not quarantined: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A full refresh, once the startup sync that quarantined the file is over (it still
    // brings the staging views in step after its files).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .post(format!("http://127.0.0.1:{port}/api/sources/uploads/sync"))
            .json(&serde_json::json!({"full_refresh": true}))
            .send()
            .await
            .unwrap();
        if r.status() != reqwest::StatusCode::CONFLICT {
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            break;
        }
        assert!(Instant::now() < deadline, "the startup sync never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sql = "SELECT count(*), count(DISTINCT _kura_file), count(DISTINCT order_id) FROM raw_uploads.big";
    let deadline = Instant::now() + Duration::from_secs(120);
    let rows = loop {
        let r = client
            .post(&url)
            .json(&serde_json::json!({"sql": sql}))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            let body: serde_json::Value = r.json().await.unwrap();
            if body["rows"][0][0] == 3_000_000 {
                break body["rows"][0].clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the file was never loaded after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        rows,
        serde_json::json!([3_000_000, 1, 3_000_000]),
        "exactly once, no partial rows"
    );
    let r = client
        .post(&url)
        .json(&serde_json::json!({"sql": "SELECT count(*), min(status) FROM _kura.files WHERE path = 'data/uploads/big.csv'"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["rows"][0], serde_json::json!([1, "loaded"]));
    let staging: Vec<_> = std::fs::read_dir(dir.path().join(".kura/staging"))
        .unwrap()
        .flatten()
        .collect();
    assert!(staging.is_empty(), "staging is emptied");
    terminate(&second);
    second.wait().unwrap();
}

#[tokio::test]
async fn kura_sync_works_with_and_without_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    Command::new(KURA)
        .args(["init", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::write(dir.path().join("data/uploads/a.csv"), "x\n1\n2\n").unwrap();
    let alone = Command::new(KURA)
        .args(["sync", "--project", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&alone.stdout);
    assert!(
        alone.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    assert!(out.contains("uploads: 1 file(s) loaded, 2 rows"), "{out}");

    let port = free_port();
    let mut server = serve(dir.path(), port);
    let _ = wait_ready(dir.path(), port).await;
    std::fs::write(dir.path().join("data/uploads/b.csv"), "y\n1\n").unwrap();
    let via = Command::new(KURA)
        .args(["sync", "uploads", "--project", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&via.stdout);
    assert!(
        via.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&via.stderr)
    );
    assert!(out.contains("asking it"), "{out}");
    let r = local_client(dir.path())
        .post(format!("http://127.0.0.1:{port}/api/query"))
        .json(&serde_json::json!({"sql": "SELECT count(*) FROM raw_uploads.b"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["rows"][0][0], 1);
    let unknown = Command::new(KURA)
        .args(["sync", "nope", "--project", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    terminate(&server);
    server.wait().unwrap();
}

#[tokio::test]
async fn a_file_whose_load_killed_the_server_is_quarantined_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    kura::project::init(dir.path(), false).unwrap();
    let port = free_port();
    let mut server = serve(dir.path(), port);
    let _ = wait_ready(dir.path(), port).await;
    // Big enough that converting and loading it takes a while.
    let cells: Vec<Vec<String>> = (0..120_000)
        .map(|r| (0..8).map(|c| format!("r{r}c{c}")).collect())
        .collect();
    let rows: Vec<Vec<&str>> = cells
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let slices: Vec<&[&str]> = rows.iter().map(Vec::as_slice).collect();
    let book = crate::xlsx::workbook(&slices);
    let uploads = dir.path().join("data/uploads");
    std::fs::write(uploads.join(".big.xlsx.tmp"), &book).unwrap();
    std::fs::rename(uploads.join(".big.xlsx.tmp"), uploads.join("big.xlsx")).unwrap();
    // The load is marked before the workbook is converted: kill the server while it is.
    let inflight = dir.path().join(".kura/inflight");
    let deadline = Instant::now() + Duration::from_secs(30);
    let marked = || {
        std::fs::read_dir(&inflight).is_ok_and(|d| {
            d.flatten()
                .any(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
        })
    };
    while !marked() {
        assert!(Instant::now() < deadline, "the load never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    // The next start does not load it again (it would kill the server again).
    let _server = serve(dir.path(), port);
    let client = wait_ready(dir.path(), port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = loop {
        let body: serde_json::Value = client
            .get(format!(
                "http://127.0.0.1:{port}/api/sources/uploads/csv-files"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let file = body["files"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["name"] == "big.xlsx").cloned());
        if let Some(f) = file.filter(|f| f["status"] == "failed") {
            break f;
        }
        assert!(Instant::now() < deadline, "not quarantined: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        file["error"].as_str().unwrap().contains("quarantined"),
        "{file}"
    );
}

#[tokio::test]
async fn the_request_log_names_routes_not_the_tokens_in_paths() {
    let dir = tempfile::tempdir().unwrap();
    kura::project::init(dir.path(), false).unwrap();
    let port = free_port();
    let mut server = serve_with_log(dir.path(), port);
    let client = wait_ready(dir.path(), port).await;
    let token = "secret-invitation-token-0123456789";
    let r = client
        .get(format!("http://127.0.0.1:{port}/invite/{token}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error() || r.status().is_success());
    terminate(&server);
    server.wait().unwrap();
    let log = log_of(&mut server);
    assert!(
        log.iter().any(|l| l.contains("/invite/{token}")),
        "the route template is logged: {log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains(token)),
        "the token reached the log: {log:?}"
    );
}

#[tokio::test]
async fn a_query_past_the_memory_ceiling_is_stopped_and_the_server_answers_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    kura::project::init(dir.path(), false).unwrap();
    let port = free_port();
    // A server process of its own: the watchdog reads the whole process's memory.
    let _server = Running(
        Command::new(KURA)
            .args([
                "serve",
                dir.path().to_str().unwrap(),
                "--port",
                &port.to_string(),
            ])
            .env("KURA__WAREHOUSE__MEMORY_LIMIT", "200MB")
            .env("KURA__WAREHOUSE__MAX_PROCESS_MEMORY", "600MB")
            .env("KURA__API__QUERY_TIMEOUT_SECONDS", "120")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = wait_ready(dir.path(), port).await;
    let base = format!("http://127.0.0.1:{port}");
    // A 400 KB list per row (a constant size the gate accepts), 2,048 rows per vector:
    // DuckDB's buffer manager does not count these lists, so `memory_limit` does not stop
    // them and only the watchdog does.
    let query = client
        .post(format!("{base}/api/query"))
        .json(&serde_json::json!({"sql": "SELECT sum(len(list_concat(range(50000), [range]))) FROM range(2000000)"}))
        .send();
    let pid = _server.0.id();
    let meanwhile = async {
        // Once the query is building its lists (the process has grown by 100 MB), the
        // server must still answer.
        let start = rss_kb(pid);
        for _ in 0..600 {
            if rss_kb(pid) > start + 100 * 1024 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        client
            .get(format!("{base}/api/status"))
            .send()
            .await
            .unwrap()
            .status()
    };
    let (answer, status_meanwhile) = tokio::join!(query, meanwhile);
    assert!(status_meanwhile.is_success(), "{status_meanwhile}");
    let answer = answer.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "memory_limit_exceeded", "{body}");
    // The next query runs normally.
    let r = client
        .post(format!("{base}/api/query"))
        .json(&serde_json::json!({"sql": "SELECT 42"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// The resident memory of process `pid` (Linux).
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Copies the example project without what serving it made (state, warehouse).
fn copy_example(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".kura" || name.starts_with("warehouse.duckdb") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_example(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn the_example_projects_models_build_test_compile_and_list_with_and_without_a_server() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("shop");
    copy_example(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop"),
        &dir,
    );
    let kura = |args: &[&str]| {
        let out = Command::new(KURA)
            .args(args)
            .args(["--project", dir.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // No server: in-process. Load the files, then seeds, models and tests in DAG order.
    let (ok, out) = kura(&["sync"]);
    assert!(ok, "{out}");
    let (ok, out) = kura(&["build"]);
    assert!(ok, "{out}");
    for line in [
        "SUCCESS seed regions",
        "SUCCESS model customer_revenue",
        "PASS    test unique_stg_orders_order_id",
        "PASS    test no_negative_revenue",
    ] {
        assert!(out.contains(line), "{line} missing in:\n{out}");
    }
    let (ok, out) = kura(&["compile", "customer_revenue"]);
    assert!(
        ok && out.contains("as widget_revenue") && out.contains("\"main\".\"regions\""),
        "{out}"
    );
    let (ok, out) = kura(&["ls", "--select", "tag:finance"]);
    assert!(
        ok && out.contains("customer_revenue") && !out.contains("stg_orders"),
        "{out}"
    );
    let (ok, out) = kura(&["run", "--select", "nope"]);
    assert!(!ok && out.contains("matches no node"), "{out}");

    // With a server: the same commands ask it.
    let port = free_port();
    let mut server = Running(
        Command::new(KURA)
            .args(["serve", dir.to_str().unwrap(), "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _client = wait_ready(&dir, port).await;
    let (ok, out) = kura(&["run", "--select", "stg_orders+", "--full-refresh"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("asking it") && out.contains("SUCCESS model customer_revenue"),
        "{out}"
    );
    let (ok, out) = kura(&["test", "--select", "stg_orders"]);
    assert!(
        ok && out.contains("PASS    test accepted_values_stg_orders_region"),
        "{out}"
    );
    let (ok, out) = kura(&["compile", "daily_sales"]);
    assert!(ok && out.contains("stg_sales__sales"), "{out}");
    terminate(&server);
    server.wait().unwrap();
}
