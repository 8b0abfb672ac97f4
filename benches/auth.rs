//! Benchmarks for accounts (issue: sign-in, sessions, TOTP, API keys, roles).
//!
//! `cargo bench --bench auth` starts the real `kura` binary on a fresh project, signs in
//! as the admin `kura init` printed, changes the password, creates an API key, and prints:
//!
//! 1. what API-key authentication adds per request at 16 connections: the same public
//!    route (a static file) with and without `Authorization: Bearer`, interleaved rounds,
//!    converted to time per request (Little's law: latency = connections / throughput)
//! 2. the CPU one sign-in costs (server CPU time over sequential sign-ins)
//! 3. `/api/status` p99 alone, then while 100 sign-ins arrive at once
//!
//! Timings are printed, never asserted: these machines are shared and noisy.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark stops loudly on any failure"
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

mod support;
use support::{load, wrk};

const KURA: &str = env!("CARGO_BIN_EXE_kura");
const NEW_PASSWORD: &str = "bench-harbour-kite-73";

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    admin_password: String,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(KURA)
            .args(["init", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let admin_password = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("password: "))
            .expect("kura init prints the admin password")
            .to_owned();
        let port = support::free_port();
        let child = support::spawn_kura(
            KURA,
            dir.path(),
            port,
            &[
                ("RUST_LOG", "warn"),
                // The sign-in storm below comes from one address; the limit is not measured here.
                ("KURA__AUTH__RATE_LIMIT_PER_MINUTE", "1000000"),
                ("KURA__AUTH__RATE_LIMIT_BURST", "1000000"),
            ],
            Stdio::null(),
        );
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            admin_password,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// User + system CPU time of the server so far.
    fn cpu(&self) -> Duration {
        support::process_cpu(self.child.id())
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn post(
    client: &reqwest::Client,
    url: String,
    cookie: Option<&str>,
    body: Value,
) -> (u16, Value, Option<String>) {
    let mut req = client.post(url).json(&body);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned());
    (
        r.status().as_u16(),
        r.json().await.unwrap_or(Value::Null),
        cookie,
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "Kura accounts benchmark ({} cores)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let server = Server::start();
    rt.block_on(run(&server));
    server.stop();
}

async fn run(server: &Server) {
    let client = support::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(server.url("/static/kura.css"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "kura did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first admin's real path: sign in, change the temporary password, make a key.
    let (status, _, cookie) = post(
        &client,
        server.url("/api/auth/login"),
        None,
        json!({"email": "admin@localhost", "password": server.admin_password}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, cookie) = post(
        &client,
        server.url("/api/auth/change-password"),
        cookie.as_deref(),
        json!({"current_password": server.admin_password, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, key, _) = post(
        &client,
        server.url("/api/auth/api-keys"),
        cookie.as_deref(),
        json!({"name": "bench"}),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    let bearer = vec![("authorization", format!("Bearer {key}"))];

    key_overhead(server, &bearer).await;
    sign_in_cost(server, &client).await;
    sign_in_storm(server, &bearer).await;
}

async fn key_overhead(server: &Server, bearer: &[(&str, String)]) {
    let url = server.url("/static/kura.css");
    let conns = 16;
    let mut open = Vec::new();
    let mut keyed = Vec::new();
    let via_wrk = wrk(&url, None, &[], conns, 1).is_some();
    for _ in 0..3 {
        if via_wrk {
            open.push(wrk(&url, None, &[], conns, 4).unwrap().0);
            keyed.push(wrk(&url, None, bearer, conns, 4).unwrap().0);
        } else {
            open.push(load(url.clone(), None, &[], conns, 4).await.0);
            keyed.push(load(url.clone(), None, bearer, conns, 4).await.0);
        }
    }
    let (a, b) = (median(open), median(keyed));
    let per_request_us = (conns as f64 / b - conns as f64 / a) * 1e6;
    println!(
        "[api_key] GET /static/kura.css, {conns} connections, load from {}: without credentials {a:.0} req/s, with an API key {b:.0} req/s (median of 3 interleaved rounds)",
        if via_wrk {
            "wrk"
        } else {
            "an in-process client"
        }
    );
    println!(
        "[api_key] API-key authentication adds {per_request_us:.1} µs per request (target < 50 µs); throughput ratio {:.2}\n",
        b / a
    );
}

async fn sign_in_cost(server: &Server, client: &reqwest::Client) {
    let n = 10;
    let cpu = server.cpu();
    let started = Instant::now();
    for _ in 0..n {
        let (status, _, _) = post(
            client,
            server.url("/api/auth/login"),
            None,
            json!({"email": "admin@localhost", "password": NEW_PASSWORD}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let cpu_ms = (server.cpu() - cpu).as_secs_f64() * 1000.0 / f64::from(n);
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
    println!(
        "[sign_in] one sign-in: {cpu_ms:.0} ms of server CPU (target 20-200 ms), {wall_ms:.0} ms wall (argon2id, 19 MiB, 2 iterations, 1 lane)\n"
    );
}

/// p99 of sequential `/api/status` calls for `secs`.
async fn status_p99(url: String, bearer: String, secs: u64) -> (Histogram<u64>, u64) {
    let client = support::client();
    let mut h = Histogram::<u64>::new(3).unwrap();
    let mut errors = 0;
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let t = Instant::now();
        match client
            .get(&url)
            .header("authorization", &bearer)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
            }
            _ => errors += 1,
        }
        let _ = h.record(t.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (h, errors)
}

async fn sign_in_storm(server: &Server, bearer: &[(&str, String)]) {
    let status_url = server.url("/api/status");
    let auth = bearer[0].1.clone();
    let (alone, _) = status_p99(status_url.clone(), auth.clone(), 3).await;
    let watcher = tokio::spawn(status_p99(status_url, auth, 6));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut storm = Vec::new();
    for i in 0..100 {
        let url = server.url("/api/auth/login");
        storm.push(tokio::spawn(async move {
            let client = support::client();
            // Half right, half wrong passwords for unknown users: both cost one argon2.
            let body = if i % 2 == 0 {
                json!({"email": "admin@localhost", "password": NEW_PASSWORD})
            } else {
                json!({"email": format!("nobody{i}@example.com"), "password": "wrong-password-1"})
            };
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let mut ok = 0;
    for s in storm {
        let code = s.await.unwrap();
        if code == 200 || code == 401 {
            ok += 1;
        }
    }
    let storm_s = started.elapsed().as_secs_f64();
    let (during, errors) = watcher.await.unwrap();
    println!(
        "[sign_in] 100 parallel sign-ins answered in {storm_s:.1} s ({ok} answered 200/401 as expected)"
    );
    println!(
        "[sign_in] GET /api/status p99: alone {:.2} ms, during the sign-in storm {:.2} ms (target < 20 ms; max {:.2} ms, {errors} errors)",
        alone.value_at_quantile(0.99) as f64 / 1000.0,
        during.value_at_quantile(0.99) as f64 / 1000.0,
        during.max() as f64 / 1000.0
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
