//! `TestApp`: a project in a temp dir, served on a random loopback port.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kura::{AppState, Config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) struct TestApp {
    pub(crate) dir: TempDir,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Two small tables the SQL corpora and query tests use.
pub(crate) const FIXTURE_SQL: &str = "
CREATE TABLE customers (id INTEGER, name VARCHAR, region VARCHAR, since TIMESTAMP);
INSERT INTO customers VALUES
  (1, 'Ada', 'north', TIMESTAMP '2023-01-01'),
  (2, 'Brook', 'south', TIMESTAMP '2023-06-01'),
  (3, 'Cyd', 'north', TIMESTAMP '2024-02-01');
CREATE TABLE orders (id INTEGER, customer_id INTEGER, region VARCHAR, product VARCHAR,
  amount DECIMAL(10,2), qty INTEGER, sold_at TIMESTAMP, tags VARCHAR[]);
INSERT INTO orders VALUES
  (1, 1, 'north', 'widget', 120.50, 2, TIMESTAMP '2024-03-01 10:00:00', ['promo', 'web']),
  (2, 2, 'south', 'gadget', 15.00, 1, TIMESTAMP '2024-03-02 11:30:00', ['store']),
  (3, 3, 'north', 'widget', 99.99, 3, TIMESTAMP '2024-03-05 09:15:00', []),
  (4, 1, 'south', 'doohickey', 5.25, 10, TIMESTAMP '2024-04-01 16:45:00', ['promo']),
  (5, 2, 'north', 'gadget', 230.00, 1, TIMESTAMP '2024-04-03 08:00:00', NULL);
CREATE SCHEMA raw_demo;
CREATE TABLE raw_demo.demo AS SELECT * FROM orders;
";

impl TestApp {
    pub(crate) async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A fresh project whose config `tweak` may change before the server starts.
    pub(crate) async fn with_config(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::with_clock(
            std::sync::Arc::new(kura::schedules::clock::SystemClock),
            tweak,
        )
        .await
    }

    /// Like [`TestApp::with_config`], with the scheduler's clock given.
    pub(crate) async fn with_clock(
        clock: std::sync::Arc<dyn kura::schedules::clock::Clock>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        kura::project::init(dir.path(), false).expect("init");
        let mut config = Config::load_with_env(dir.path(), Vec::new()).expect("config");
        // Most tests are about other things: they run as the local admin of auth-disabled
        // mode (loopback only). Tests of accounts switch auth back on in `tweak`.
        config.auth.enabled = false;
        // Every test app shares this process, so its resident memory is theirs together:
        // the memory watchdog would stop one test's queries for another's. It is tested
        // in a server process of its own (tests/it/cli.rs).
        config.warehouse.max_process_memory = "1TB".into();
        tweak(&mut config);
        let state = AppState::with_clock(config, clock)
            .await
            .expect("app state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(kura::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        Self {
            dir,
            base,
            client: script_client(),
            state,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// The app with the fixture tables loaded through the single writer.
    pub(crate) async fn with_fixtures() -> Self {
        let app = Self::new().await;
        app.exec_writer(FIXTURE_SQL).await;
        app
    }

    /// Runs trusted SQL on the warehouse's writer thread (test set-up only).
    pub(crate) async fn exec_writer(&self, sql: &str) {
        let sql = sql.to_owned();
        self.state
            .warehouse
            .background(move |conn| conn.execute_batch(&sql))
            .await
            .expect("writer lane")
            .expect("fixture SQL");
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn warehouse_path(&self) -> PathBuf {
        self.state.warehouse.path().to_path_buf()
    }

    pub(crate) async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        let status = r.status();
        (status, r.json().await.expect("JSON body"))
    }

    pub(crate) async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status();
        (status, r.json().await.expect("JSON body"))
    }

    /// Uploads `content` as `name` into the `uploads` source (multipart field `file`).
    pub(crate) async fn upload(&self, name: &str, content: Vec<u8>) -> reqwest::Response {
        self.upload_to("uploads", name, content).await
    }

    /// Uploads `name` to the source `source` (its sync starts at once).
    pub(crate) async fn upload_to(
        &self,
        source: &str,
        name: &str,
        content: Vec<u8>,
    ) -> reqwest::Response {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name(name.to_owned()),
        );
        self.client
            .post(self.url(&format!("/api/sources/{source}/upload-csv")))
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    /// The gate's verdict on `sql` (and what it would run), taken on a query worker;
    /// nothing is executed.
    pub(crate) async fn gate_verdict(
        &self,
        sql: &str,
    ) -> Result<std::sync::Arc<str>, kura::query::QueryError> {
        let (gate, sql) = (self.state.gate.clone(), sql.to_owned());
        self.state
            .warehouse
            .interactive(Duration::from_secs(10), move |qc, _| {
                gate.check(&qc.conn, &sql).map(|checked| checked.sql)
            })
            .await
            .expect("a query worker")
    }

    pub(crate) async fn query(&self, sql: &str) -> (StatusCode, Value) {
        self.post_json("/api/query", json!({ "sql": sql })).await
    }

    /// Stops the server and the stores, as `kura serve` does on SIGTERM.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server");
        }
        self.state.shutdown().await;
    }
}

/// A client as a script uses one: with `auth.enabled: false` Kura wants a header a
/// cross-site form cannot send (`X-Requested-With`) on every write.
pub(crate) fn script_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-requested-with", "kura-tests".parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub(crate) async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
