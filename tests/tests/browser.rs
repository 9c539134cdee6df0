//! End-to-end: the demo predicts as native `core` does. The built site in headless
//! Chromium (harness: `common/mod.rs`); predictions on the page are compared with native
//! `Bundle::predict` on the same bundle and instance, after edits, on a phone-sized
//! screen, after an upload and after a corrupt upload.

mod common;

use adaftr_core::bundle;
use adaftr_web::demo::{demo_config, other_schema, train_bundle};
use candle_core::Device;
use common::*;
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::Locator;

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
