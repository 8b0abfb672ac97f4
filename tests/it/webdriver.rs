//! A small WebDriver client (the W3C protocol over HTTP, spoken to Debian's chromedriver)
//! for the browser tests: navigate, find, click, type, run a script, wait, screenshot.
//! No browser-automation crate: the protocol is a handful of JSON calls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian puts them; `KURA_CHROMIUM` / `KURA_CHROMEDRIVER` override.
fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Screenshots land here: `$KURA_ARTIFACTS` or the test target's temp dir.
pub(crate) fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("KURA_ARTIFACTS").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) struct Driver {
    process: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    pub(crate) downloads: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // End the session first: chromedriver then quits Chromium. Killing chromedriver
        // alone left every test's Chromium running (dozens of them after a full run).
        self.end_session();
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    /// `DELETE /session/{id}`, synchronously (a `Drop` cannot await): a plain HTTP/1.1
    /// request to chromedriver, waiting for its answer, which comes once Chromium is gone.
    fn end_session(&self) {
        use std::io::{Read, Write};
        let Some(addr) = self.base.strip_prefix("http://") else {
            return;
        };
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.session
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
    }
}

impl Driver {
    /// Starts chromedriver and a headless Chromium `width`×`height`. Fails with a clear
    /// message when Chromium is not installed (`.ci/run` installs it).
    pub(crate) async fn start(width: u32, height: u32) -> Self {
        let chromium = binary("KURA_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("KURA_CHROMEDRIVER", "/usr/bin/chromedriver");
        assert!(
            chromium.exists() && chromedriver.exists(),
            "browser tests need {} and {} (Debian: apt-get install chromium chromium-driver; .ci/run does this)",
            chromium.display(),
            chromedriver.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let ready = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(
                ready.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let downloads = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}"), "--lang=en-US"],
                "prefs": {"download.default_directory": downloads.path(), "download.prompt_for_download": false},
            },
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("cannot start Chromium: {r}"))
            .to_owned();
        let driver = Self {
            process,
            http,
            session,
            base,
            downloads,
        };
        // Headless Chromium saves downloads only when told where.
        driver
            .call(
                "POST",
                "/goog/cdp/execute",
                json!({"cmd": "Browser.setDownloadBehavior",
                       "params": {"behavior": "allow", "downloadPath": driver.downloads.path()}}),
            )
            .await;
        driver
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        match self.try_call(method, path, body).await {
            Ok(v) => v,
            Err((err, message)) => panic!("WebDriver {method} {path}: {err}: {message}"),
        }
    }

    /// One WebDriver command; its error code and message when it fails.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Value,
    ) -> Result<Value, (String, Value)> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(err) = r["value"]["error"].as_str() {
            return Err((err.to_owned(), r["value"]["message"].clone()));
        }
        Ok(r["value"].clone())
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    /// The element matching `css`, waiting up to 10 s for it to appear.
    pub(crate) async fn find(&self, css: &str) -> String {
        let script = "return document.querySelector(arguments[0]) !== null";
        self.wait_for(&format!("element {css}"), script, json!([css]))
            .await;
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Clicks the element matching `css`. A live page may re-render it between finding and
    /// clicking (a sync's event redraws the list): then it is found again, as a user's
    /// second click would.
    pub(crate) async fn click(&self, css: &str) {
        for _ in 0..5 {
            let id = self.find(css).await;
            match self
                .try_call("POST", &format!("/element/{id}/click"), json!({}))
                .await
            {
                Ok(_) => return,
                Err((err, _)) if err == "stale element reference" => continue,
                Err((err, message)) => panic!("WebDriver click {css}: {err}: {message}"),
            }
        }
        panic!("{css} was re-rendered under every click");
    }

    /// Types `text` into the element (for a file input: the file's path).
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub(crate) async fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Runs an async `script` whose last argument is the callback to call with the result.
    pub(crate) async fn js_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Polls `script` until it returns something truthy (10 s), and returns that.
    pub(crate) async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(script, args.clone()).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if started.elapsed() > Duration::from_secs(10) {
                let text = self
                    .js("return document.body.innerText.slice(0, 2000)", json!([]))
                    .await;
                panic!("timed out waiting for {what}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text content of the first element matching `css`.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await;
        self.js(
            "return document.querySelector(arguments[0]).textContent",
            json!([css]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Saves a full-page PNG as `<artifacts>/<name>.png`.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", json!({})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The first file that finished downloading into the download folder (10 s).
    pub(crate) async fn downloaded(&self, suffix: &str) -> PathBuf {
        let started = Instant::now();
        loop {
            if let Some(p) = find_download(self.downloads.path(), suffix) {
                return p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no *{suffix} file was downloaded"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn find_download(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
}
