//! End-to-end: training in the browser's worker, as native `core` trains. The built site
//! in headless Chromium (harness: `common/mod.rs`): a generated CSV trained for an epoch,
//! the editor used meanwhile, the downloaded bundle evaluated natively, Pause / Resume /
//! Stop, and a malformed CSV.

mod common;

use std::time::{Duration, Instant};

use adaftr_core::bundle;
use candle_core::Device;
use common::*;
use fantoccini::{Client, Locator};
use serde_json::json;

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
