//! Benchmarks for the web UI's figures (issue: the workbench in the browser).
//!
//! `cargo bench --bench live` prints, each next to a baseline from the same run:
//!
//! 1. WebSocket fan-out: 1,000 clients on `/ws`; for each of 30 events (file uploads), the
//!    delay from the event's timestamp to its arrival at every client — p50/p99 — and the
//!    server's RSS (baseline: the same events to one client, and the idle server's RSS);
//! 2. the overview page with 200 sources, over HTTP: p50/p99 of a warm render, and of the
//!    first render after a load changed the warehouse (baseline: a static file from the
//!    same server, which measures HTTP and auth alone).
//!
//! Timings are printed, never asserted: these machines are shared and noisy.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark stops loudly on any failure"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

mod support;

const KURA: &str = env!("CARGO_BIN_EXE_kura");
const EVENTS: usize = 30;

struct Server {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(prepare: impl FnOnce(&std::path::Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        kura::project::init(dir.path(), false).unwrap();
        prepare(dir.path());
        let port = support::free_port();
        let child = support::spawn_kura(
            KURA,
            dir.path(),
            port,
            &[("RUST_LOG", "warn"), ("KURA__AUTH__ENABLED", "false")],
            std::process::Stdio::null(),
        );
        support::wait_ready(port).await;
        Self {
            child,
            port,
            dir,
            http: support::client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn get_json(&self, path: &str) -> Value {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        r.json().await.unwrap()
    }

    async fn get_text(&self, path: &str) -> String {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        r.text().await.unwrap()
    }

    async fn upload(&self, name: &str) {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name(name.to_owned()),
        );
        let r = self
            .http
            .post(self.url("/api/sources/uploads/upload-csv?trigger_sync=false"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "upload failed: {}", r.status());
    }
}

/// Connected clients, and where they record each event's delay.
struct Listeners {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    hist: Arc<Mutex<Histogram<u64>>>,
}

/// Connects `n` WebSocket clients; each records, for every `csv_uploaded` event, the
/// delay from the event's timestamp to its arrival (µs).
async fn clients(port: u16, n: usize) -> Listeners {
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
            .await
            .unwrap();
        // The greeting first, so every client is registered before the events start.
        let hello = ws.next().await.unwrap().unwrap();
        assert!(hello.to_text().unwrap().contains("\"connected\""));
        let hist = hist.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                let arrived = Utc::now();
                // Only the event type and time are read: the client should cost little.
                if !text.contains("\"csv_uploaded\"") {
                    continue;
                }
                let v: Value = serde_json::from_str(&text).unwrap();
                let at: DateTime<Utc> = v["timestamp"].as_str().unwrap().parse().unwrap();
                local.push((arrived - at).num_microseconds().unwrap_or(0).max(0) as u64);
                if local.len() == EVENTS {
                    break;
                }
            }
            let mut h = hist.lock().unwrap();
            for v in local {
                h.record(v).unwrap();
            }
        }));
    }
    Listeners { tasks, hist }
}

/// Sends the events (files named `<prefix>_<i>.csv`) and waits for every listener to
/// have heard all of them.
async fn deliver(server: &Server, listeners: Listeners, prefix: &str) -> Histogram<u64> {
    for i in 0..EVENTS {
        server.upload(&format!("{prefix}_{i}.csv")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in listeners.tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a client missed events")
            .unwrap();
    }
    Arc::try_unwrap(listeners.hist)
        .unwrap()
        .into_inner()
        .unwrap()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

async fn websocket_fan_out() {
    println!("1. WebSocket fan-out ({EVENTS} events)");
    let server = Server::start(|_| {}).await;
    let idle_rss = support::rss_mib(server.child.id());
    let one = deliver(&server, clients(server.port, 1).await, "one").await;
    println!("   baseline, 1 client:   {}", percentiles(&one));
    // Connected, listening, and RSS read while all 1,000 are there.
    let listeners = clients(server.port, 1000).await;
    let listed = server.get_json("/api/clients").await;
    let connected_rss = support::rss_mib(server.child.id());
    let many = deliver(&server, listeners, "many").await;
    println!(
        "   1,000 clients:        p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} deliveries; target p99 < 100 ms)",
        ms(many.value_at_quantile(0.5)),
        ms(many.value_at_quantile(0.99)),
        ms(many.max()),
        many.len()
    );
    println!(
        "   /api/clients listed {} connections",
        listed["count"].as_u64().unwrap_or(0)
    );
    println!(
        "   server RSS: idle {idle_rss:.1} MiB, with 1,000 clients {connected_rss:.1} MiB (target < 150 MB; ratio {:.2})",
        connected_rss / idle_rss
    );
}

fn percentiles(h: &Histogram<u64>) -> String {
    format!(
        "p50 {:.2} ms  p99 {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99))
    )
}

async fn overview_with_200_sources() {
    println!("2. The overview page with 200 sources");
    let server = Server::start(|dir| {
        for i in 0..200 {
            let d = dir.join(format!("data/uploads/source_{i:03}"));
            std::fs::create_dir_all(&d).unwrap();
            let mut csv = String::from("id,amount,region\n");
            for r in 0..50 {
                csv.push_str(&format!("{r},{}.5,r{}\n", r * 3 + i, r % 4));
            }
            std::fs::write(d.join("data.csv"), csv).unwrap();
        }
    })
    .await;
    // The start-up sync loads all 200.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v = server.get_json("/api/sources").await;
        let synced = v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "synced")
            .count();
        if synced == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {synced} of 200 sources loaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = server.get_text("/").await;
    // The 200, and the uploads folder itself.
    assert_eq!(page.matches("class=\"source-card").count(), 201);
    let (_, static_file) = support::load(server.url("/static/kura.css"), None, &[], 1, 3).await;
    let (rps, warm) = support::load(server.url("/"), None, &[], 1, 3).await;
    println!("   baseline, a static file: {}", percentiles(&static_file));
    println!(
        "   overview, warm:          {}  ({rps:.0} pages/s; {} KB; target < 20 ms)",
        percentiles(&warm),
        page.len() / 1024
    );
    // After a load, the first render reads the warehouse again.
    let mut cold = Histogram::<u64>::new(3).unwrap();
    for i in 0..10 {
        let csv = format!("id,amount,region\n{i},1.0,x\n");
        std::fs::write(
            server
                .dir
                .path()
                .join(format!("data/uploads/source_000/more_{i}.csv")),
            csv,
        )
        .unwrap();
        // The watcher loads it; wait for the load's log line (the activity log is in
        // the metadata store, so asking does not read the warehouse view back in).
        let loaded = format!(
            "/api/logs?source=source_000&q=now%20has%20{}%20rows",
            51 + i
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logs = server.get_json(&loaded).await;
            let done = logs["logs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "freshness_update");
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "more_{i}.csv never loaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        let r = server.http.get(server.url("/")).send().await.unwrap();
        let _ = r.bytes().await.unwrap();
        cold.record(t.elapsed().as_micros() as u64).unwrap();
    }
    println!("   overview, first after a load: {}", percentiles(&cold));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    websocket_fan_out().await;
    overview_with_200_sources().await;
}
