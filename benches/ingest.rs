//! Benchmarks for watched-folder ingestion (issue: drop a file, get a table).
//!
//! `cargo bench --bench ingest` starts the real `kura` binary on a temporary project and
//! prints each figure next to a baseline measured in the same run:
//!
//! 1. load time of 1M- and 5M-row CSV, and 1M-row Parquet and NDJSON files, from stable to
//!    committed (the sync's own duration), vs `CREATE TABLE t AS SELECT * FROM read_*(...)`
//!    in a standalone DuckDB (five alternating rounds each, ratio of the medians);
//! 2. `SELECT count(*)` on another table through `/api/query` while the 5M-row file loads;
//! 3. the server's peak RSS while loading the 5M-row file;
//! 4. drop-to-queryable for 10,000-row files, 50 renamed in and 50 written in place (p50,
//!    p99), vs DuckDB loading the same file in-process (`KURA_BENCH_ONLY=drop`: this alone);
//! 5. a thousand 1 KB files dropped at once: all loaded exactly once, and how long it took.
//!
//! Timings are printed, never asserted: these machines are shared and noisy.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark stops loudly on any failure"
)]

#[path = "../examples/gen_data.rs"]
mod gen_data;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const KURA: &str = env!("CARGO_BIN_EXE_kura");

struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        kura::project::init(dir.path(), false).expect("init");
        // KURA_BENCH_LOG=<file> keeps the server's log (level info) for a closer look.
        let log = std::env::var_os("KURA_BENCH_LOG").map(|p| std::fs::File::create(p).unwrap());
        let port = support::free_port();
        let child = support::spawn_kura(
            KURA,
            dir.path(),
            port,
            &[
                ("RUST_LOG", if log.is_some() { "info" } else { "warn" }),
                ("KURA__AUTH__ENABLED", "false"),
            ],
            log.map_or_else(Stdio::null, Stdio::from),
        );
        let server = Self {
            child,
            port,
            dir,
            client: support::client(),
        };
        support::wait_ready(server.port).await;
        server
    }

    fn uploads(&self) -> PathBuf {
        self.dir.path().join("data/uploads")
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let r = self
            .client
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())?;
        r.json().await.ok()
    }

    async fn query(&self, sql: &str) -> Option<Value> {
        let r = self
            .client
            .post(format!("http://127.0.0.1:{}/api/query", self.port))
            .json(&json!({"sql": sql}))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())?;
        r.json().await.ok()
    }

    fn rss_kb(&self, field: &str) -> u64 {
        support::proc_status_kb(self.child.id(), field)
    }

    /// Moves `staged` into the uploads folder as `name` and waits for the sync that loads
    /// it; returns that sync's own duration (from the file being stable to its commit).
    /// The outcome is heard on the WebSocket rather than polled, so this client takes no
    /// CPU from the load it measures.
    async fn drop_and_wait(&self, staged: &Path, name: &str) -> Duration {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", self.port))
                .await
                .unwrap();
        let hello = ws.next().await.unwrap().unwrap();
        assert!(hello.to_text().unwrap().contains("\"connected\""));
        std::fs::rename(staged, self.uploads().join(name)).unwrap();
        let rel = format!("data/uploads/{name}");
        let heard = tokio::time::timeout(Duration::from_secs(600), async {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                let event: Value = serde_json::from_str(&text).unwrap();
                if event["source"] != "uploads" {
                    continue;
                }
                match event["type"].as_str() {
                    // A watcher-started sync may find nothing new: only the one that
                    // loaded a file counts.
                    Some("sync_completed") if event["files_loaded"].as_u64() > Some(0) => {
                        return event;
                    }
                    Some("sync_failed") if event["file"] == rel.as_str() => {
                        panic!("{rel} failed to load: {event}")
                    }
                    _ => {}
                }
            }
            panic!("the WebSocket closed before {rel} loaded");
        })
        .await
        .unwrap_or_else(|_| panic!("{rel} never loaded"));
        // The sync that was heard is the one that loaded this file.
        let details = self.get("/api/sources/uploads/details").await.unwrap();
        let run = details["sync_history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["record_id"] == heard["record_id"])
            .unwrap_or_else(|| panic!("no sync record for {heard}"));
        assert!(
            run["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["path"] == rel.as_str() && f["outcome"] == "loaded"),
            "the sync heard did not load {rel}: {run}"
        );
        Duration::from_millis(heard["duration_ms"].as_u64().unwrap())
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Drop-to-queryable (figure 4) for 10,000-row files, 50 drops each way: renamed into
/// the folder and written in place (created, written, closed), against DuckDB loading the
/// same file in-process.
async fn drop_bench(server: &Server, work: &Path) {
    let template = work.join("drop_template.csv");
    gen_data::write("csv", 10_000, &template).unwrap();
    let content = std::fs::read(&template).unwrap();
    let mut renamed = Vec::new();
    let mut written = Vec::new();
    for i in 0..100 {
        let name = format!("drop_{i}.csv");
        let target = server.uploads().join(&name);
        let t = if i % 2 == 0 {
            let staged = work.join(&name);
            std::fs::copy(&template, &staged).unwrap();
            let t = Instant::now();
            std::fs::rename(&staged, &target).unwrap();
            t
        } else {
            let t = Instant::now();
            std::fs::write(&target, &content).unwrap();
            t
        };
        let sql = format!("SELECT count(*) FROM raw_uploads.drop_{i}");
        loop {
            if server
                .query(&sql)
                .await
                .is_some_and(|b| b["rows"][0][0] == 10_000)
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "drop {i} never became queryable"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if i % 2 == 0 {
            renamed.push(ms)
        } else {
            written.push(ms)
        }
    }
    let base: Vec<f64> = (0..10)
        .map(|_| {
            baseline_load(&format!("read_csv('{}')", template.display()), work).as_secs_f64()
                * 1000.0
        })
        .collect();
    let base = percentile(base, 0.5);
    if std::env::var_os("KURA_BENCH_LOG").is_some() {
        let each = |v: &[f64]| {
            v.iter()
                .map(|t| format!("{t:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("[drop] renamed, each (ms): {}", each(&renamed));
        println!("[drop] written, each (ms): {}", each(&written));
    }
    for (how, times) in [
        ("renamed into the folder", renamed),
        ("written in place and closed", written),
    ] {
        let (p50, p99) = (percentile(times.clone(), 0.5), percentile(times, 0.99));
        println!(
            "[drop] 10,000-row file {how}, drop -> queryable over 50 drops: p50 {p50:.0} ms, p99 {p99:.0} ms (target p50 < 500, p99 < 1000); baseline DuckDB read_csv CREATE TABLE AS in-process {base:.0} ms; ratio p50/baseline {:.2}",
            p50 / base
        );
    }
    println!();
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

#[expect(
    clippy::disallowed_methods,
    reason = "the standalone-DuckDB baseline needs its own instance"
)]
fn baseline_load(reader: &str, work: &Path) -> Duration {
    let db = work.join(format!("baseline-{}.duckdb", rand::random::<u32>()));
    let conn = duckdb::Connection::open(&db).unwrap();
    let t = Instant::now();
    conn.execute_batch(&format!("CREATE TABLE t AS SELECT * FROM {reader}"))
        .unwrap();
    let d = t.elapsed();
    drop(conn);
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(db.with_extension("duckdb.wal"));
    d
}

#[expect(
    clippy::disallowed_methods,
    reason = "converting test data needs a DuckDB instance"
)]
fn to_parquet(csv: &Path, parquet: &Path) {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT * FROM read_csv('{}')) TO '{}' (FORMAT parquet)",
        csv.display(),
        parquet.display()
    ))
    .unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    println!(
        "kura ingestion benchmarks ({} cores)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let server = Server::start().await;
    // Generated files live in the project (same file system, so a drop is a rename) but
    // outside the watched folder.
    let work = server.dir.path().join("gen");
    std::fs::create_dir_all(&work).unwrap();
    // `KURA_BENCH_ONLY=drop` measures drop-to-queryable alone (a minute, not half an hour).
    if std::env::var("KURA_BENCH_ONLY").is_ok_and(|v| v == "drop") {
        drop_bench(&server, &work).await;
        server.stop();
        return;
    }
    let csv_1m = work.join("orders_1m_csv.csv");
    let csv_5m = work.join("orders_5m_csv.csv");
    let ndjson_1m = work.join("orders_1m_ndjson.ndjson");
    let parquet_1m = work.join("orders_1m_parquet.parquet");
    let sizes = [
        ("csv", 1_000_000, &csv_1m),
        ("csv", 5_000_000, &csv_5m),
        ("ndjson", 1_000_000, &ndjson_1m),
    ];
    for (format, rows, path) in sizes {
        let bytes = gen_data::write(format, rows, path).unwrap();
        println!(
            "generated {} ({rows} rows, {:.0} MB)",
            path.file_name().unwrap().to_string_lossy(),
            bytes as f64 / 1e6
        );
    }
    to_parquet(&csv_1m, &parquet_1m);

    // 1. Load times against standalone DuckDB.
    let cases = [
        (
            "orders_1m_csv.csv",
            &csv_1m,
            format!("read_csv('{}')", csv_1m.display()),
        ),
        (
            "orders_1m_parquet.parquet",
            &parquet_1m,
            format!("read_parquet('{}')", parquet_1m.display()),
        ),
        (
            "orders_1m_ndjson.ndjson",
            &ndjson_1m,
            format!("read_json('{}')", ndjson_1m.display()),
        ),
        (
            "orders_5m_csv.csv",
            &csv_5m,
            format!("read_csv('{}')", csv_5m.display()),
        ),
    ];
    // Five rounds each, the baseline and Kura alternating (each round a new file and a
    // new table); the ratio is of the medians, since one run on a shared machine is noise.
    for (name, path, reader) in &cases {
        let (mut kura_ms, mut base_ms) = (Vec::new(), Vec::new());
        for round in 0..5 {
            base_ms.push(baseline_load(reader, &work).as_secs_f64() * 1000.0);
            let (stem, ext) = name.rsplit_once('.').unwrap();
            let dropped = format!("{stem}_r{round}.{ext}");
            std::fs::copy(path, work.join(&dropped)).unwrap();
            let load = server.drop_and_wait(&work.join(&dropped), &dropped).await;
            kura_ms.push(load.as_secs_f64() * 1000.0);
        }
        let each = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join("/")
        };
        let (k, b) = (
            percentile(kura_ms.clone(), 0.5),
            percentile(base_ms.clone(), 0.5),
        );
        println!(
            "[load] {name}: stable -> committed {k:.0} ms ({}); standalone DuckDB CREATE TABLE AS {b:.0} ms ({}); ratio of medians {:.2} (target <= 1.3)",
            each(&kura_ms),
            each(&base_ms),
            k / b
        );
    }

    // 2-3. The 5M-row CSV again (as another file), now with queries on another table
    // meanwhile and RSS sampled: its load time is not compared, the queries slow it.
    let stop = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let pid = server.child.id();
    let sampler = {
        let (stop, peak) = (stop.clone(), peak_rss.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss = support::proc_status_kb(pid, "VmRSS:");
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let querier = {
        let (stop, client, port) = (stop.clone(), server.client.clone(), server.port);
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = client
                    .post(format!("http://127.0.0.1:{port}/api/query"))
                    .json(&json!({"sql": "SELECT count(*) FROM raw_uploads.orders_1m_csv_r0"}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                errors += usize::from(!ok);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (lat, errors)
        })
    };
    let load = server.drop_and_wait(&csv_5m, "orders_5m.csv").await;
    println!(
        "[concurrent] the 5M-row load with queries alongside took {:.0} ms",
        load.as_secs_f64() * 1000.0
    );
    stop.store(true, Ordering::Relaxed);
    let (lat, errors) = querier.await.unwrap();
    sampler.await.unwrap();
    println!(
        "[concurrent] SELECT count(*) on another table during the 5M load: {} queries, p50 {:.1} ms, p99 {:.1} ms, {errors} errors (target p99 < 50 ms, no errors)",
        lat.len(),
        percentile(lat.clone(), 0.5),
        percentile(lat, 0.99)
    );
    println!(
        "[memory] server peak RSS while loading the 5M-row file: {:.0} MB sampled, VmHWM {:.0} MB (target < 1024 MB)\n",
        peak_rss.load(Ordering::Relaxed) as f64 / 1024.0,
        server.rss_kb("VmHWM:") as f64 / 1024.0
    );

    drop_bench(&server, &work).await;

    // 5. A thousand 1 KB files at once, into one folder source.
    let burst_src = work.join("burst");
    std::fs::create_dir_all(&burst_src).unwrap();
    let mut small = String::from("id,name,value\n");
    for i in 0..30 {
        small.push_str(&format!("{i},name-{i:04},{}\n", i * 7));
    }
    for i in 0..1000 {
        std::fs::write(burst_src.join(format!("f{i:04}.csv")), &small).unwrap();
    }
    let target = server.uploads().join("burst");
    std::fs::create_dir_all(&target).unwrap();
    let t = Instant::now();
    for i in 0..1000 {
        std::fs::rename(
            burst_src.join(format!("f{i:04}.csv")),
            target.join(format!("f{i:04}.csv")),
        )
        .unwrap();
    }
    let sql = "SELECT count(*), count(DISTINCT _kura_file) FROM raw_burst.burst";
    let result = loop {
        if let Some(b) = server.query(sql).await
            && b["rows"][0][1] == 1000
        {
            break b;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "the burst never finished loading"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = t.elapsed();
    println!(
        "[burst] 1,000 files of ~1 KB dropped at once: all loaded in {:.1} s (target < 30 s); rows {} (expected 30,000: each file exactly once)",
        elapsed.as_secs_f64(),
        result["rows"][0][0]
    );
    let runs = server.get("/api/sources/burst/details").await.unwrap();
    println!(
        "[burst] syncs it took: {}",
        runs["sync_history"].as_array().map_or(0, Vec::len)
    );
    server.stop();
}
