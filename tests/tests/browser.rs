//! End-to-end: the built site (`dist/`, from `trunk build`) served by a tiny HTTP server
//! under a sub-path (relative URLs must work from any static path), driven in headless
//! Chromium through /usr/bin/chromedriver with fantoccini. Predictions on the page are
//! compared with native `Bundle::predict` on the same bundle and instance.
//!
//! Skips (with a message) when chromedriver, Chromium or `dist/index.html` is missing, so
//! `cargo test --workspace` passes without the web toolchain; `scripts/web-test.sh` sets
//! `ADAFTR_E2E_REQUIRED=1`, which turns a skip into a failure.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use adaftr_core::bundle::{self, Bundle};
use adaftr_core::inference::{Instance, Prediction};
use adaftr_web::demo::{demo_config, other_schema, train_bundle};
use candle_core::Device;
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const SUB_PATH: &str = "/some/static/path/";

fn workspace() -> PathBuf {
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
fn start_server(root: PathBuf) -> String {
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

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver() -> (Driver, String) {
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

async fn connect(webdriver: &str, profile: &Path) -> Client {
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
async fn shown(c: &Client) -> Option<(Prediction, Instance, String)> {
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

async fn wait_for<T, F>(c: &Client, what: &str, check: impl FnMut(Client) -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    wait_long(c, what, 30, check).await
}

fn assert_matches_native(b: &Bundle, page: &Prediction, inst: &Instance) {
    let n = b.predict(std::slice::from_ref(inst)).unwrap()[0];
    let close = |x: f32, y: f32| (x - y).abs() <= 1e-5;
    assert!(
        close(n.pctr, page.pctr) && close(n.pcvr, page.pcvr) && close(n.pctcvr, page.pctcvr),
        "page {page:?} vs native {n:?}"
    );
    assert!(close(n.tau.unwrap(), page.tau.unwrap()), "tau: page {page:?} vs native {n:?}");
}

async fn screenshot(c: &Client, width: u32, height: u32, file: &Path) {
    c.set_window_size(width, height).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No horizontal scrolling at this width.
    let overflow = c.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![]).await.unwrap();
    assert!(overflow.as_f64().unwrap() <= 0.0, "page overflows horizontally by {overflow} px at {width} px");
    std::fs::write(file, c.screenshot().await.unwrap()).unwrap();
}

fn skip_reason() -> Option<String> {
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
fn skipped(test: &str) -> bool {
    let Some(why) = skip_reason() else { return false };
    assert!(std::env::var_os("ADAFTR_E2E_REQUIRED").is_none(), "end-to-end test required but: {why}");
    eprintln!("SKIPPED {test}: {why}");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_predicts_like_native_core() {
    if skipped("browser end-to-end test") {
        return;
    }
    let root = workspace();
    let dist = root.join("dist");
    let default =
        bundle::load(&std::fs::read(dist.join("assets/default-model.safetensors")).unwrap(), &Device::Cpu).unwrap();
    let tmp = std::env::temp_dir().join(format!("adaftr-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();

    let site = start_server(dist);
    let (_driver, webdriver) = start_chromedriver();
    let c = connect(&webdriver, &tmp.join("profile")).await;
    c.goto(&site).await.unwrap();

    // 1. The default model loads (by relative fetch, from a sub-path) and predicts.
    let (p0, inst0, id0) = wait_for(&c, "default model predictions", |c| async move { shown(&c).await }).await;
    assert_eq!(inst0.cat.len(), default.schema.num_categorical());
    assert_matches_native(&default, &p0, &inst0);
    let name = c.find(Locator::Css("#adaftr-model-name")).await.unwrap().text().await.unwrap();
    assert_eq!(name, "default-model.safetensors");

    // 2. A categorical (select) and a numeric (slider, by keyboard) change. Fields are
    // picked from the schema, so the test survives a regenerated default model.
    let c0 = default.schema.categorical.iter().position(|f| f.vocab().len() >= 3).expect("a field with 3+ values");
    let sel = c.find(Locator::Css(&format!("#adaftr-cat-{c0}"))).await.unwrap();
    sel.select_by_value("3").await.unwrap();
    let (p1, inst1, _) =
        wait_for(&c, "categorical change", |c| async move { shown(&c).await.filter(|(_, i, _)| i.cat[c0] == 3) }).await;
    assert_matches_native(&default, &p1, &inst1);
    let slider: Element = c.find(Locator::Css("#adaftr-num-0")).await.unwrap();
    for _ in 0..15 {
        slider.send_keys(&Key::Right.to_string()).await.unwrap();
    }
    let before = inst1.num[0];
    let (p2, inst2, _) = wait_for(&c, "numeric change", |c| async move {
        shown(&c).await.filter(|(_, i, _)| i.num[0] > before && i.cat[c0] == 3)
    })
    .await;
    assert_ne!(p2, p1);
    assert_matches_native(&default, &p2, &inst2);
    let chart_points = c.find(Locator::Css("#adaftr-chart")).await.unwrap().attr("data-points").await.unwrap();
    assert_eq!(chart_points.as_deref(), Some("64"));
    let diag = c.find(Locator::Css("#adaftr-diag")).await.unwrap().text().await.unwrap();
    eprintln!("diagnostics line: {diag}");

    let shots = root.join("target");
    std::fs::create_dir_all(&shots).unwrap();
    screenshot(&c, 1280, 1400, &shots.join("e2e-screenshot.png")).await;
    screenshot(&c, 390, 2400, &shots.join("e2e-screenshot-390.png")).await;

    // On a phone (390 px), an edit far down the editor leaves the predictions in view:
    // the sticky summary shows the new prediction at the top of the screen.
    c.set_window_size(390, 844).await.unwrap();
    let far = default.schema.num_numeric() - 1;
    let slider = c.find(Locator::Css(&format!("#adaftr-num-{far}"))).await.unwrap();
    c.execute("arguments[0].scrollIntoView({block: 'center'});", vec![serde_json::to_value(&slider).unwrap()])
        .await
        .unwrap();
    let before = shown(&c).await.unwrap().1.num[far];
    for _ in 0..10 {
        slider.send_keys(&Key::Right.to_string()).await.unwrap();
    }
    let (p_far, _, _) =
        wait_for(&c, "the edit far down", |c| async move { shown(&c).await.filter(|(_, i, _)| i.num[far] > before) })
            .await;
    let layout = c
        .execute(
            "const s = document.getElementById('adaftr-sticky').getBoundingClientRect(); \
             const f = arguments[0].getBoundingClientRect(); \
             return {top: s.top, bottom: s.bottom, h: window.innerHeight, field: f.top, \
                     pctr: document.getElementById('adaftr-sticky').dataset.pctr, y: window.scrollY};",
            vec![serde_json::to_value(&slider).unwrap()],
        )
        .await
        .unwrap();
    assert!(layout["y"].as_f64().unwrap() > 1000.0, "the page did not scroll to the field: {layout}");
    let (top, bottom, h) =
        (layout["top"].as_f64().unwrap(), layout["bottom"].as_f64().unwrap(), layout["h"].as_f64().unwrap());
    assert!(top >= 0.0 && bottom <= h, "the predictions are off screen after an edit at 390 px: {layout}");
    let sticky_pctr: f32 = layout["pctr"].as_str().unwrap().parse().unwrap();
    assert_eq!(sticky_pctr, p_far.pctr, "the summary shows the edited instance's prediction");
    std::fs::write(shots.join("e2e-phone-390-after-edit.png"), c.screenshot().await.unwrap()).unwrap();
    c.set_window_size(1280, 1000).await.unwrap();

    // 3. Upload a freshly trained bundle with a different schema.
    let mut cfg = demo_config(11);
    cfg.train.epochs = 1;
    let bytes = train_bundle(other_schema(), cfg, 1500).unwrap();
    let fresh = bundle::load(&bytes, &Device::Cpu).unwrap();
    let path = tmp.join("fresh-model.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let input = c.find(Locator::Css("#adaftr-upload")).await.unwrap();
    input.send_keys(path.to_str().unwrap()).await.unwrap();
    let (p3, inst3, id3) = wait_for(&c, "uploaded model", |c| {
        let id0 = id0.clone();
        async move { shown(&c).await.filter(|(_, _, id)| *id != id0) }
    })
    .await;
    assert_eq!(inst3.cat.len(), 2, "the editor follows the new schema");
    assert_matches_native(&fresh, &p3, &inst3);
    let name = c.find(Locator::Css("#adaftr-model-name")).await.unwrap().text().await.unwrap();
    assert_eq!(name, "fresh-model.safetensors");
    c.find(Locator::Css("#adaftr-cat-1")).await.unwrap().select_by_value("2").await.unwrap();
    let (p4, inst4, _) =
        wait_for(
            &c,
            "edit on the uploaded model",
            |c| async move { shown(&c).await.filter(|(_, i, _)| i.cat[1] == 2) },
        )
        .await;
    assert_matches_native(&fresh, &p4, &inst4);

    // 4. A corrupt file: a clear error, and the model and predictions stay.
    let bad = tmp.join("corrupt.safetensors");
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let input = c.find(Locator::Css("#adaftr-upload")).await.unwrap();
    input.send_keys(bad.to_str().unwrap()).await.unwrap();
    let err =
        wait_for(
            &c,
            "upload error",
            |c| async move { c.find(Locator::Css("#adaftr-error")).await.ok()?.text().await.ok() },
        )
        .await;
    assert!(err.contains("corrupt.safetensors") && err.contains("still loaded"), "{err}");
    let after = shown(&c).await.unwrap();
    assert_eq!(after, (p4, inst4, id3));

    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Polls `check` for up to `secs` seconds.
async fn wait_long<T, F>(c: &Client, what: &str, secs: u64, mut check: impl FnMut(Client) -> F) -> T
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

async fn train_phase(c: &Client) -> Option<String> {
    c.find(Locator::Css("#adaftr-train")).await.ok()?.attr("data-phase").await.ok()?
}

/// Fetches a URL in the page and returns its bytes as base64 (`arguments`: the URL).
const FETCH_AS_BASE64: &str = "const [url, done] = arguments; fetch(url).then(r => r.arrayBuffer()).then(b => { \
     const u = new Uint8Array(b); let s = ''; \
     for (let i = 0; i < u.length; i += 32768) s += String.fromCharCode.apply(null, u.subarray(i, i + 32768)); \
     done(btoa(s)); });";

/// Standard base64 (what the page's `btoa` writes) to bytes.
fn from_base64(s: &str) -> Vec<u8> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_trains_in_the_browser_as_native_core_does() {
    use adaftr_core::data::{generate, holdout, load_with_schema, LoadOptions, SynthConfig};
    use adaftr_core::evaluate::{predict, Evaluation};
    use adaftr_web::training::TrainRequest;

    if skipped("browser training end-to-end test") {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("adaftr-e2e-train-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    // A file large enough that training lasts a few seconds, so that the editor is used
    // while the worker trains.
    let csv_path = tmp.join("clicks.csv");
    let mut csv = Vec::new();
    generate(
        &SynthConfig { rows: 60_000, seed: 21, compute_auc: false, ..SynthConfig::default() },
        &mut csv,
        std::io::sink(),
    )
    .unwrap();
    std::fs::write(&csv_path, &csv).unwrap();

    let site = start_server(workspace().join("dist"));
    let (_driver, webdriver) = start_chromedriver();
    let c = connect(&webdriver, &tmp.join("profile")).await;
    c.goto(&site).await.unwrap();
    let (_, _, id0) = wait_for(&c, "default model predictions", |c| async move { shown(&c).await }).await;
    let default =
        bundle::load(&std::fs::read(workspace().join("dist/assets/default-model.safetensors")).unwrap(), &Device::Cpu)
            .unwrap();
    let field = default.schema.categorical.iter().position(|f| f.vocab().len() >= 3).expect("a field with 3+ values");

    // 1. One epoch from scratch on the file.
    let epochs = c.find(Locator::Css("#adaftr-train-epochs")).await.unwrap();
    epochs.clear().await.unwrap();
    epochs.send_keys("1").await.unwrap();
    c.find(Locator::Css("#adaftr-train-file")).await.unwrap().send_keys(csv_path.to_str().unwrap()).await.unwrap();
    c.find(Locator::Css("#adaftr-train-start-button")).await.unwrap().click().await.unwrap();
    wait_long(&c, "training to start", 60, |c| async move { train_phase(&c).await.filter(|p| p == "Training") }).await;

    // 2. The editor answers while the worker trains: a change of a categorical shows its
    // prediction within a generous bound.
    let mut latencies = Vec::new();
    for value in ["2", "1", "3"] {
        let t0 = Instant::now();
        c.find(Locator::Css(&format!("#adaftr-cat-{field}"))).await.unwrap().select_by_value(value).await.unwrap();
        let want: u32 = value.parse().unwrap();
        wait_for(
            &c,
            "an edit during training",
            |c| async move { shown(&c).await.filter(|(_, i, _)| i.cat[field] == want) },
        )
        .await;
        latencies.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let during = train_phase(&c).await.unwrap_or_default();
    eprintln!("edit-to-prediction while training ({during}): {latencies:.0?} ms (through webdriver)");
    assert!(latencies.iter().all(|&ms| ms < 2000.0), "the page froze while training: {latencies:?} ms");

    // 3. The run ends, the trained model becomes the current one, with curves drawn.
    wait_long(&c, "training to finish", 300, |c| async move { train_phase(&c).await.filter(|p| p == "Done") }).await;
    let (p1, inst1, id1) = wait_for(&c, "the trained model's predictions", |c| {
        let id0 = id0.clone();
        async move { shown(&c).await.filter(|(_, _, id)| *id != id0) }
    })
    .await;
    let name = c.find(Locator::Css("#adaftr-model-name")).await.unwrap().text().await.unwrap();
    assert_eq!(name, "trained on clicks.csv");
    for chart in ["#adaftr-train-loss", "#adaftr-train-aucs"] {
        assert!(c.find(Locator::Css(&format!("{chart} polyline"))).await.is_ok(), "{chart} is not drawn");
    }
    let row = c.find(Locator::Css("#adaftr-train-epochs tbody tr[data-epoch='1']")).await.unwrap();
    let auc = |v: Option<String>| v.and_then(|s| s.parse::<f64>().ok());
    let page_aucs = [
        auc(row.attr("data-auc-ctr").await.unwrap()),
        auc(row.attr("data-auc-cvr").await.unwrap()),
        auc(row.attr("data-auc-ctcvr").await.unwrap()),
    ];

    // 4. The download is a bundle that native core loads, predicts with as the page does,
    // and evaluates to the AUCs the page showed, on the same held-out rows.
    let href = c.find(Locator::Css("#adaftr-train-download")).await.unwrap().attr("href").await.unwrap().unwrap();
    let b64 = c.execute_async(FETCH_AS_BASE64, vec![json!(href)]).await.unwrap();
    let bytes = from_base64(b64.as_str().unwrap());
    let trained = bundle::load(&bytes, &Device::Cpu).unwrap();
    assert_eq!(trained.summary.notes.get("trained").map(String::as_str), Some("in the browser"));
    assert_matches_native(&trained, &p1, &inst1);
    let req = TrainRequest::default();
    let split = holdout(&csv[..], "clicks.csv", None, req.valid_fraction, req.seed).unwrap();
    let (valid, _) =
        load_with_schema(&split.valid[..], "clicks.csv", &trained.schema, &LoadOptions::default()).unwrap();
    let native = Evaluation::compute(&predict(&trained.model, &valid, 2048, &Device::Cpu).unwrap(), &valid);
    for (page, native) in page_aucs.iter().zip([native.auc_ctr, native.auc_cvr, native.auc_ctcvr]) {
        let (page, native) = (page.unwrap(), native.unwrap());
        assert!((page - native).abs() < 1e-4, "page AUC {page} vs native {native}");
    }

    // 5. Fine-tune the trained model for several epochs: Pause holds the step count,
    // Resume goes on, Stop ends the run with the model as it stood, which becomes current.
    c.find(Locator::Css("#adaftr-train-start")).await.unwrap().select_by_value("fine-tune").await.unwrap();
    let epochs = c.find(Locator::Css("#adaftr-train-epochs")).await.unwrap();
    epochs.clear().await.unwrap();
    epochs.send_keys("20").await.unwrap();
    c.find(Locator::Css("#adaftr-train-file")).await.unwrap().send_keys(csv_path.to_str().unwrap()).await.unwrap();
    c.find(Locator::Css("#adaftr-train-start-button")).await.unwrap().click().await.unwrap();
    let steps = |c: Client| async move {
        let s = c.find(Locator::Css("#adaftr-train-status")).await.ok()?.attr("data-steps").await.ok()??;
        s.parse::<usize>().ok()
    };
    wait_long(&c, "fine-tuning to make progress", 120, |c| async move { steps(c).await.filter(|&n| n >= 3) }).await;
    c.find(Locator::Css("#adaftr-train-pause")).await.unwrap().click().await.unwrap();
    wait_for(&c, "the pause", |c| async move { train_phase(&c).await.filter(|p| p == "Paused") }).await;
    // The slice that was running when Pause arrived may still report; then nothing moves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = steps(c.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(steps(c.clone()).await.unwrap(), held, "training went on while paused");
    c.find(Locator::Css("#adaftr-train-resume")).await.unwrap().click().await.unwrap();
    wait_long(&c, "training to resume", 60, |c| async move { steps(c).await.filter(|&n| n > held) }).await;
    c.find(Locator::Css("#adaftr-train-stop")).await.unwrap().click().await.unwrap();
    wait_long(&c, "the stop", 120, |c| async move { train_phase(&c).await.filter(|p| p == "Stopped") }).await;
    let (p2, inst2, id2) = wait_for(&c, "the stopped run's model", |c| {
        let id1 = id1.clone();
        async move { shown(&c).await.filter(|(_, _, id)| *id != id1) }
    })
    .await;
    let href = c.find(Locator::Css("#adaftr-train-download")).await.unwrap().attr("href").await.unwrap().unwrap();
    let b64 = c.execute_async(FETCH_AS_BASE64, vec![json!(href)]).await.unwrap();
    let stopped = bundle::load(&from_base64(b64.as_str().unwrap()), &Device::Cpu).unwrap();
    assert_matches_native(&stopped, &p2, &inst2);
    assert_eq!(stopped.schema, trained.schema, "fine-tuning keeps the model's schema");

    // 6. A malformed CSV: the error names the file, line and column; the model stays.
    let mut text = String::from_utf8(csv[..200_000].to_vec()).unwrap();
    text.truncate(text.rfind('\n').unwrap() + 1);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<String> = lines[0].split(',').map(str::to_string).collect();
    let col = header.iter().position(|h| h == "numerical_3").unwrap();
    let mut fields: Vec<String> = lines[120].split(',').map(str::to_string).collect();
    fields[col] = "oops".into();
    lines[120] = fields.join(",");
    let bad = tmp.join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    c.find(Locator::Css("#adaftr-train-file")).await.unwrap().send_keys(bad.to_str().unwrap()).await.unwrap();
    c.find(Locator::Css("#adaftr-train-start-button")).await.unwrap().click().await.unwrap();
    let err = wait_long(&c, "the training error", 60, |c| async move {
        c.find(Locator::Css("#adaftr-train-error")).await.ok()?.text().await.ok()
    })
    .await;
    assert!(err.contains("bad.csv:121") && err.contains("numerical_3"), "{err}");
    let after = shown(&c).await.unwrap();
    assert_eq!(after.2, id2, "a failed run replaced the model");
    assert_matches_native(&stopped, &after.0, &after.1);

    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
}
