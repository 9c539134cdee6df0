//! The end-to-end tests' harness: the built site (`dist/`, from `trunk build`) served by a
//! tiny HTTP server under a sub-path (relative URLs must work from any static path),
//! headless Chromium driven through /usr/bin/chromedriver with fantoccini, and what the
//! page shows read back from its data attributes.
//!
//! A test skips (with a message) when chromedriver, Chromium or `dist/index.html` is
//! missing, so `cargo test --workspace` passes without the web toolchain;
//! `scripts/web-test.sh` sets `ADAFTR_E2E_REQUIRED=1`, which turns a skip into a failure.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adaftr_core::bundle::Bundle;
use adaftr_core::inference::{Instance, Prediction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const SUB_PATH: &str = "/some/static/path/";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve_one(mut stream: TcpStream, root: &Path) {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Drain the headers.
    let mut h = String::new();
    while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
        h.clear();
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_string();
    let file = target.strip_prefix(SUB_PATH).filter(|rel| !rel.split('/').any(|p| p == "..")).map(|rel| {
        let p = root.join(rel);
        if rel.is_empty() || p.is_dir() {
            p.join("index.html")
        } else {
            p
        }
    });
    let (status, body, ctype) = match file.as_ref().and_then(|p| std::fs::read(p).ok().map(|b| (p, b))) {
        Some((p, b)) => ("200 OK", b, content_type(p)),
        None => ("404 Not Found", b"not found".to_vec(), "text/plain"),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
}

/// Serves `root` under [`SUB_PATH`] on 127.0.0.1; returns the site URL.
pub fn start_server(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || serve_one(stream, &root));
        }
    });
    format!("http://127.0.0.1:{port}{SUB_PATH}")
}

pub struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_chromedriver() -> (Driver, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Driver(child), format!("http://127.0.0.1:{port}"))
}

pub async fn connect(webdriver: &str, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let caps = json!({ "goog:chromeOptions": { "binary": CHROMIUM, "args": args } });
    let serde_json::Value::Object(caps) = caps else { unreachable!() };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("webdriver session")
}

/// What the page shows: the prediction (full precision) and the instance, from data-*.
pub async fn shown(c: &Client) -> Option<(Prediction, Instance, String)> {
    let el = c.find(Locator::Css("#adaftr-predictions")).await.ok()?;
    let a = |v: Option<String>| v.and_then(|s| s.parse::<f32>().ok());
    let pctr = a(el.attr("data-pctr").await.ok()?)?;
    let pcvr = a(el.attr("data-pcvr").await.ok()?)?;
    let pctcvr = a(el.attr("data-pctcvr").await.ok()?)?;
    let tau = a(el.attr("data-tau").await.ok()?);
    let inst: Instance = serde_json::from_str(&el.attr("data-instance").await.ok()??).ok()?;
    let id = el.attr("data-model-id").await.ok()??;
    Some((Prediction { pctr, pcvr, pctcvr, tau }, inst, id))
}

pub async fn wait_for<T, F>(c: &Client, what: &str, check: impl FnMut(Client) -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    wait_long(c, what, 30, check).await
}

pub fn assert_matches_native(b: &Bundle, page: &Prediction, inst: &Instance) {
    let n = b.predict(std::slice::from_ref(inst)).unwrap()[0];
    let close = |x: f32, y: f32| (x - y).abs() <= 1e-5;
    assert!(
        close(n.pctr, page.pctr) && close(n.pcvr, page.pcvr) && close(n.pctcvr, page.pctcvr),
        "page {page:?} vs native {n:?}"
    );
    assert!(close(n.tau.unwrap(), page.tau.unwrap()), "tau: page {page:?} vs native {n:?}");
}

pub async fn screenshot(c: &Client, width: u32, height: u32, file: &Path) {
    c.set_window_size(width, height).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No horizontal scrolling at this width.
    let overflow = c.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await.unwrap();
    assert!(overflow.as_f64().unwrap() <= 0.0, "page overflows horizontally by {overflow} px at {width} px");
    std::fs::write(file, c.screenshot().await.unwrap()).unwrap();
}

pub fn skip_reason() -> Option<String> {
    let dist = workspace().join("dist/index.html");
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        Some(format!("{CHROMEDRIVER} or {CHROMIUM} not found (run scripts/setup-web.sh)"))
    } else if !dist.exists() {
        Some(format!("{} not found (build the site: scripts/web-test.sh)", dist.display()))
    } else {
        None
    }
}

/// Whether a test is to be skipped, saying why; `ADAFTR_E2E_REQUIRED` turns a skip into a
/// failure.
pub fn skipped(test: &str) -> bool {
    let Some(why) = skip_reason() else { return false };
    assert!(std::env::var_os("ADAFTR_E2E_REQUIRED").is_none(), "end-to-end test required but: {why}");
    eprintln!("SKIPPED {test}: {why}");
    true
}

/// Polls `check` for up to `secs` seconds.
pub async fn wait_long<T, F>(c: &Client, what: &str, secs: u64, mut check: impl FnMut(Client) -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = check(c.clone()).await {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn train_phase(c: &Client) -> Option<String> {
    c.find(Locator::Css("#adaftr-train")).await.ok()?.attr("data-phase").await.ok()?
}

/// Fetches a URL in the page and returns its bytes as base64 (`arguments`: the URL).
pub const FETCH_AS_BASE64: &str = "const [url, done] = arguments; fetch(url).then(r => r.arrayBuffer()).then(b => { \
     const u = new Uint8Array(b); let s = ''; \
     for (let i = 0; i < u.length; i += 32768) s += String.fromCharCode.apply(null, u.subarray(i, i + 32768)); \
     done(btoa(s)); });";

/// Standard base64 (what the page's `btoa` writes) to bytes.
pub fn from_base64(s: &str) -> Vec<u8> {
    let value = |b: u8| match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s.bytes().filter(|&b| b != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&b| value(b) as u32).collect();
        let n = v.iter().enumerate().fold(0u32, |acc, (i, x)| acc | (x << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
