//! Shared by the benchmarks: starting the real `kura` binary, and the load generators
//! (an in-process client and Debian's `wrk`).
#![allow(dead_code, reason = "each benchmark uses a part of this file")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value;

/// User + system CPU time of process `pid` so far (Linux `/proc`; 100 ticks a second).
pub(crate) fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    Duration::from_secs_f64((f[11] + f[12]) as f64 / 100.0)
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `kura serve DIR --port PORT` with `env`, its stdout dropped and its log to `stderr`.
pub(crate) fn spawn_kura(
    kura: &str,
    dir: &Path,
    port: u16,
    env: &[(&str, &str)],
    stderr: Stdio,
) -> Child {
    let mut cmd = Command::new(kura);
    cmd.args(["serve", dir.to_str().unwrap(), "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn kura")
}

/// Sends `body` (or a GET when None) from `conns` connections for `secs`; returns (rps, histogram in µs).
pub(crate) async fn load(
    url: String,
    body: Option<Value>,
    headers: &[(&str, String)],
    conns: usize,
    secs: u64,
) -> (f64, Histogram<u64>) {
    let make = body.map(|b| Arc::new(move |_: u64| b.clone()) as Bodies);
    load_bodies(url, make, headers, conns, secs).await
}

/// A request body per request number.
pub(crate) type Bodies = Arc<dyn Fn(u64) -> Value + Send + Sync>;

/// Like [`load`], with every request's body made by `make` from a number no other request
/// of the run gets (e.g. distinct literals, so no answer is ever cached).
pub(crate) async fn load_bodies(
    url: String,
    make: Option<Bodies>,
    headers: &[(&str, String)],
    conns: usize,
    secs: u64,
) -> (f64, Histogram<u64>) {
    let sequence = Arc::new(AtomicU64::new(0));
    let mut defaults = reqwest::header::HeaderMap::new();
    defaults.insert("x-requested-with", "kura-bench".parse().unwrap());
    for (k, v) in headers {
        defaults.insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let client = reqwest::Client::builder()
        .default_headers(defaults)
        .pool_max_idle_per_host(conns)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, make, stop, errors, sequence) = (
            client.clone(),
            url.clone(),
            make.clone(),
            stop.clone(),
            errors.clone(),
            sequence.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let req = match &make {
                    Some(make) => client
                        .post(&url)
                        .json(&make(sequence.fetch_add(1, Ordering::Relaxed))),
                    None => client.get(&url),
                };
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = h.record(t.elapsed().as_micros() as u64);
            }
            h
        }));
    }
    // Warm-up second excluded from nothing: connections are made in the first few ms.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    let rps = all.len() as f64 / started.elapsed().as_secs_f64();
    let e = errors.load(Ordering::Relaxed);
    if e > 0 {
        println!("  ({e} requests failed)");
    }
    (rps, all)
}

/// Runs Debian's `wrk` (a C load generator, much lighter than an in-process client on a
/// 2-core machine); `None` when it is not installed. Returns (req/s, p50 ms, p99 ms).
pub(crate) fn wrk(
    url: &str,
    body: Option<&str>,
    headers: &[(&str, String)],
    conns: usize,
    secs: u64,
) -> Option<(f64, f64, f64)> {
    let dir = tempfile::tempdir().ok()?;
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(body) = body {
        let script = dir.path().join("post.lua");
        let lua = format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"X-Requested-With\"] = \"kura-bench\"\n"
        );
        std::fs::write(&script, lua).ok()?;
        cmd.arg("-s").arg(&script);
    }
    let out = cmd.arg(url).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.contains("Non-2xx") {
        println!("  (wrk saw non-2xx answers)\n{text}");
    }
    let ms = |v: &str| {
        let v = v.trim();
        if let Some(x) = v.strip_suffix("us") {
            x.parse::<f64>().ok().map(|x| x / 1000.0)
        } else if let Some(x) = v.strip_suffix("ms") {
            x.parse::<f64>().ok()
        } else {
            v.strip_suffix('s')
                .and_then(|x| x.parse::<f64>().ok())
                .map(|x| x * 1000.0)
        }
    };
    let find = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
    };
    Some((
        find("Requests/sec:")?.parse().ok()?,
        ms(&find("50%")?)?,
        ms(&find("99%")?)?,
    ))
}

/// A client as scripts use one: with auth off, Kura wants `X-Requested-With` on writes.
pub(crate) fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-requested-with", "kura-bench".parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Waits (30 s at most) until the server on `port` answers `/api/status`.
pub(crate) async fn wait_ready(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = client
            .get(format!("http://127.0.0.1:{port}/api/status"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return;
        }
        assert!(Instant::now() < deadline, "kura did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A kB field of process `pid`'s `/proc/<pid>/status` (`"VmRSS:"`, `"VmHWM:"`); 0 when
/// unreadable.
pub(crate) fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of process `pid` in MiB.
pub(crate) fn rss_mib(pid: u32) -> f64 {
    proc_status_kb(pid, "VmRSS:") as f64 / 1024.0
}
