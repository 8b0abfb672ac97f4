//! Benchmarks for schedules (issue: schedules from YAML).
//!
//! `cargo bench --bench schedules` prints, each next to a baseline from the same run:
//!
//! 1. parsing and validating a `schedules.yml` of 1,000 schedules (baseline: serde_yaml
//!    reading the same text into a plain value, no checks);
//! 2. the server's idle CPU with those 1,000 schedules loaded (baseline: the same server
//!    with no schedules), as a share of one core;
//! 3. how long after its tick a job starts (a `* * * * *` schedule on the system clock;
//!    waits for two minute boundaries).
//!
//! Timings are printed, never asserted: these machines are shared and noisy.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark stops loudly on any failure"
)]
#![expect(
    clippy::disallowed_methods,
    reason = "this benchmark waits in real time on purpose (idle CPU, ticks)"
)]

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};

mod support;

const KURA: &str = env!("CARGO_BIN_EXE_kura");

fn thousand_schedules() -> String {
    let crons = [
        "0 2 * * *",
        "every_hour",
        "*/15 * * * *",
        "30 6 * * 1-5",
        "weekly",
        "0 0 1 * *",
    ];
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];
    let mut text = String::from("schedules:\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "  - name: job_{i}\n    cron: \"{}\"\n    timezone: {}\n    sources: [uploads]\n    retries: {}\n",
            crons[i % crons.len()],
            zones[i % zones.len()],
            i % 3
        ));
    }
    text
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(schedules: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        kura::project::init(dir.path(), false).unwrap();
        std::fs::write(dir.path().join("schedules.yml"), schedules).unwrap();
        let port = support::free_port();
        let child = support::spawn_kura(
            KURA,
            dir.path(),
            port,
            &[("RUST_LOG", "warn"), ("KURA__AUTH__ENABLED", "false")],
            Stdio::null(),
        );
        let server = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.get("/api/status").is_none() {
            assert!(Instant::now() < deadline, "kura did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn get(&self, path: &str) -> Option<serde_json::Value> {
        http::get_json(&format!("http://127.0.0.1:{}{path}", self.port))
    }

    /// User + system CPU time of the server so far.
    fn cpu(&self) -> Duration {
        support::process_cpu(self.child.id())
    }

    fn idle_cpu_share(&self, secs: u64) -> f64 {
        std::thread::sleep(Duration::from_secs(3));
        let before = self.cpu();
        std::thread::sleep(Duration::from_secs(secs));
        (self.cpu() - before).as_secs_f64() / secs as f64
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

mod http {
    /// A GET with the standard library only (this bench needs nothing more).
    pub(crate) fn get_json(url: &str) -> Option<serde_json::Value> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/')?;
        let mut s = std::net::TcpStream::connect(host).ok()?;
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        if !text.starts_with("HTTP/1.1 200") {
            return None;
        }
        let body = text.split_once("\r\n\r\n")?.1;
        serde_json::from_str(body).ok()
    }
}

fn main() {
    println!(
        "Kura schedules benchmark ({} cores)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. Parse and validate 1,000 schedules.
    let text = thousand_schedules();
    let sources: BTreeSet<String> = ["uploads".to_owned()].into();
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        let parsed = kura::schedules::file::parse(&text, &sources).unwrap();
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(parsed.schedules.len(), 1000);
        let t = Instant::now();
        let _: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        base.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (o, b) = (median(ours), median(base));
    println!(
        "[load] 1,000 schedules parsed and validated in {o:.1} ms (target < 100 ms); serde_yaml alone {b:.1} ms; ratio {:.2}",
        o / b
    );

    // 2. Idle CPU with and without them.
    let empty = Server::start("schedules: []\n");
    let base_share = empty.idle_cpu_share(10);
    empty.stop();
    let full = Server::start(&text);
    let listed = full.get("/api/schedules").unwrap();
    assert_eq!(listed["schedules"].as_array().unwrap().len(), 1000);
    let share = full.idle_cpu_share(10);
    full.stop();
    println!(
        "[idle] server CPU with 1,000 schedules: {:.2}% of a core (target < 1%); with none: {:.2}%",
        share * 100.0,
        base_share * 100.0
    );

    // 3. Tick -> job start, on the system clock.
    let server = Server::start(
        "schedules:\n  - name: minutely\n    cron: \"* * * * *\"\n    sources: [uploads]\n",
    );
    let mut lags = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    while lags.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let history = server
            .get("/api/schedules/minutely/history?limit=10")
            .unwrap();
        lags = history["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["trigger"] == "cron")
            .map(|r| {
                let started: DateTime<Utc> = r["started_at"].as_str().unwrap().parse().unwrap();
                let tick = started.with_second(0).unwrap().with_nanosecond(0).unwrap();
                (started - tick).num_microseconds().unwrap() as f64 / 1000.0
            })
            .collect();
    }
    server.stop();
    let shown: Vec<String> = lags.iter().map(|l| format!("{l:.1}")).collect();
    println!(
        "[tick] a job starts {} ms after its tick (target < 50 ms; {} ticks seen)",
        shown.join(" and "),
        lags.len()
    );
}
