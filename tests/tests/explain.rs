//! End-to-end: the panels that explain the model agree with native `core`. The built site in
//! headless Chromium (harness: `common/mod.rs`): the sensitivity ranking and the relatedness
//! map are recomputed natively from the page's instance and compared to 1e-5, the shipped
//! comparison model's predictions likewise, a link with an encoded instance reproduces it,
//! an example reaches every input of the editor, the field search filters the editor, and
//! every control is labelled and works from the keyboard.

mod common;

use adaftr_core::bundle::{self, Bundle};
use adaftr_core::inference::{Instance, Prediction};
use adaftr_web::editor::{numeric_range, random_instance};
use adaftr_web::format::show_value;
use adaftr_web::sensitivity::{self, Output};
use adaftr_web::sweep::{all_features, FeatureRef};
use adaftr_web::{compare, fragment, relmap};
use candle_core::Device;
use common::*;
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use serde_json::Value;

const TOLERANCE: f32 = 1e-5;

fn close(page: f32, native: f32, what: &str) {
    assert!((page - native).abs() <= TOLERANCE, "{what}: page {page} vs native {native}");
}

async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.attr(name).await.ok()?
}

async fn json_attr(c: &Client, css: &str, name: &str) -> Value {
    serde_json::from_str(&attr(c, css, name).await.unwrap_or_else(|| panic!("{css} has no {name}"))).unwrap()
}

fn feature(schema: &adaftr_core::schema::Schema, name: &str) -> FeatureRef {
    all_features(schema).into_iter().find(|f| f.name(schema) == Some(name)).unwrap()
}

/// Waits until both panels show the page's state: their batches may be in the panel
/// worker, and a panel shows the last one back, marked busy, until they return.
async fn settled(c: &Client) {
    wait_for(c, "the panels' batches", |c| async move {
        let s = attr(&c, "#adaftr-sensitivity-state", "aria-busy").await;
        let m = attr(&c, "#adaftr-relmap-state", "aria-busy").await;
        (s.as_deref() == Some("false") && m.as_deref() == Some("false")).then_some(())
    })
    .await;
}

/// The sensitivity ranking the page shows equals the one computed natively for its instance.
async fn check_sensitivity(c: &Client, b: &Bundle, inst: &Instance) {
    settled(c).await;
    let rank_by = Output::parse(&attr(c, "#adaftr-sensitivity", "data-rank-by").await.unwrap()).unwrap();
    let page = json_attr(c, "#adaftr-sensitivity", "data-ranking").await;
    let plan = sensitivity::plan(&b.schema, inst);
    let rows = sensitivity::summarise(&b.schema, &plan, &b.predict(&plan.rows.instances()).unwrap()).unwrap();
    let native = sensitivity::rank(&rows, rank_by);
    let page = page.as_array().unwrap();
    assert_eq!(page.len(), b.schema.num_categorical() + b.schema.num_numeric(), "a row per feature");
    let width = |r: &Value| r[rank_by.key()]["max"].as_f64().unwrap() - r[rank_by.key()]["min"].as_f64().unwrap();
    assert!(page.windows(2).all(|w| width(&w[0]) >= width(&w[1])), "ranked by {rank_by:?}");
    for (p, n) in page.iter().zip(&native) {
        let name = p["feature"].as_str().unwrap();
        // Equal widths may tie in a different order; the numbers must agree row for row.
        let n = if name == n.name { n } else { native.iter().find(|r| r.name == name).unwrap() };
        for o in Output::ALL {
            let (Some(span), Some(pv)) = (n.span(o), p.get(o.key()).filter(|v| !v.is_null())) else { continue };
            close(pv["min"].as_f64().unwrap() as f32, span.min, &format!("{name} {} min", o.key()));
            close(pv["max"].as_f64().unwrap() as f32, span.max, &format!("{name} {} max", o.key()));
        }
    }
}

/// The relatedness map's cells equal native predictions on the same grid.
async fn check_relmap(c: &Client, b: &Bundle, inst: &Instance) -> usize {
    settled(c).await;
    let x = feature(&b.schema, &attr(c, "#adaftr-relmap", "data-x").await.unwrap());
    let y = feature(&b.schema, &attr(c, "#adaftr-relmap", "data-y").await.unwrap());
    let grid = relmap::plan(&b.schema, inst, x, y).unwrap();
    let preds = b.predict(&grid.rows.instances()).unwrap();
    let nx = grid.x.values.len();
    for (key, of) in
        [("data-tau", (|p: &Prediction| p.tau.unwrap()) as fn(&Prediction) -> f32), ("data-pcvr", |p| p.pcvr)]
    {
        let page = json_attr(c, "#adaftr-relmap", key).await;
        let rows = page.as_array().unwrap();
        assert_eq!(rows.len(), grid.y.values.len());
        for (j, row) in rows.iter().enumerate() {
            let row = row.as_array().unwrap();
            assert_eq!(row.len(), nx);
            for (i, v) in row.iter().enumerate() {
                close(v.as_f64().unwrap() as f32, of(&preds[j * nx + i]), &format!("map {key} cell ({i}, {j})"));
            }
        }
    }
    grid.rows.len()
}

/// Chooses value `id` of the second categorical field; the instance once it is predicted.
async fn choose_cat1(c: &Client, id: u32) -> Instance {
    let sel = c.find(Locator::Css("#adaftr-cat-1")).await.unwrap();
    sel.select_by_value(&id.to_string()).await.unwrap();
    let (_, inst, _) =
        wait_for(c, "the edit", |c| async move { shown(&c).await.filter(|(_, i, _)| i.cat[1] == id) }).await;
    inst
}

/// The values of the editor's inputs, in page order (a JS expression).
const INPUT_VALUES: &str = "[...document.querySelectorAll('.editor [data-field]')].map(e => e.value)";

/// Clicks "Random example" and reads the editor's inputs before the click and in the frame
/// of the click's render (an animation-frame callback runs after that render, before the
/// inputs off the screen follow in a later one), and whether the editor was busy then.
fn example_first_frame() -> String {
    format!(
        "const done = arguments[arguments.length - 1]; \
         const before = {INPUT_VALUES}; \
         document.getElementById('adaftr-random').click(); \
         requestAnimationFrame(() => done({{before, first: {INPUT_VALUES}, \
           busy: document.querySelector('.editor').getAttribute('aria-busy')}}));"
    )
}

/// Every input of the editor: its values in page order, and as the page shows them, each
/// select's value by id and each slider's shown value by the id of its output.
fn editor_values() -> String {
    format!(
        "return {{values: {INPUT_VALUES}, shown: Object.fromEntries([ \
           ...[...document.querySelectorAll('.editor select[data-field]')].map(e => [e.id, e.value]), \
           ...[...document.querySelectorAll('.editor output')].map(o => [o.id, o.textContent])])}};"
    )
}

/// An example changes every field. Its own frame updates the inputs on the screen, with the
/// editor marked busy; the inputs off the screen follow after, and then every input shows
/// the page's instance.
async fn check_example_edit(c: &Client, b: &Bundle) {
    let before = shown(c).await.unwrap().1;
    let frame = c.execute_async(&example_first_frame(), vec![]).await.unwrap();
    assert_eq!(frame["busy"].as_str(), Some("true"), "the editor is busy until its inputs off the screen follow");
    let (_, inst, _) = wait_for(c, "the example", |c| {
        let before = before.clone();
        async move { shown(&c).await.filter(|(_, i, _)| *i != before) }
    })
    .await;
    wait_for(c, "the editor's inputs off the screen", |c| async move {
        attr(&c, ".editor", "aria-busy").await.filter(|b| b == "false")
    })
    .await;
    let now = c.execute(&editor_values(), vec![]).await.unwrap();
    let shown_value = |id: String| now["shown"][id].as_str().map(str::to_string);
    for (i, id) in inst.cat.iter().enumerate() {
        assert_eq!(shown_value(format!("adaftr-cat-{i}")), Some(id.to_string()), "categorical {i}");
    }
    for (i, x) in inst.num.iter().enumerate() {
        let (lo, hi) = numeric_range(&b.schema.numeric[i]);
        assert_eq!(shown_value(format!("adaftr-num-{i}-value")), Some(show_value(*x, lo, hi)), "numeric {i}");
    }
    // The example's own frame changed fewer inputs than the example did.
    let changed = |vals: &Value| {
        let (b, v) = (frame["before"].as_array().unwrap(), vals.as_array().unwrap());
        b.iter().zip(v).filter(|(x, y)| x != y).count()
    };
    let (in_first, in_all) = (changed(&frame["first"]), changed(&now["values"]));
    assert!(in_first < in_all, "the example's own frame changed {in_first} inputs of {in_all}");
}

/// Controls on the page with no accessible name, or taken out of the tab order.
const UNLABELLED: &str = "const out = []; \
    for (const el of document.querySelectorAll('button, input, select, textarea, a[href], [tabindex]')) { \
      if (el.type === 'hidden' || el.closest('[hidden]')) continue; \
      const named = (el.getAttribute('aria-label') || '').trim() || el.getAttribute('aria-labelledby') \
        || (el.labels && el.labels.length > 0) || (el.tagName === 'BUTTON' || el.tagName === 'A') && el.textContent.trim(); \
      if (!named || el.tabIndex < 0) out.push(el.outerHTML.slice(0, 120)); } \
    return out;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_explains_the_model_as_native_core_computes_it() {
    if skipped("explaining panels end-to-end test") {
        return;
    }
    let dist = workspace().join("dist");
    let default =
        bundle::load(&std::fs::read(dist.join("assets/default-model.safetensors")).unwrap(), &Device::Cpu).unwrap();
    let plain = bundle::load(&std::fs::read(dist.join("assets/plain-ple.safetensors")).unwrap(), &Device::Cpu).unwrap();
    let tmp = std::env::temp_dir().join(format!("adaftr-e2e-explain-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let site = start_server(dist);
    let (_driver, webdriver) = start_chromedriver();
    let c = connect(&webdriver, &tmp.join("profile")).await;
    c.goto(&site).await.unwrap();
    let (_, inst0, _) = wait_for(&c, "default model predictions", |c| async move { shown(&c).await }).await;

    // 1. Sensitivity and the relatedness map, at the start and after an edit.
    check_sensitivity(&c, &default, &inst0).await;
    let cells = check_relmap(&c, &default, &inst0).await;
    assert!(cells >= 24 * 24, "the map has {cells} cells");
    let inst1 = choose_cat1(&c, 2).await;
    // The panels show the same state as the prediction.
    check_sensitivity(&c, &default, &inst1).await;
    check_relmap(&c, &default, &inst1).await;
    // Once the panel worker holds the model, the panels' batches run there, and agree too.
    wait_for(&c, "the panel worker", |c| async move {
        attr(&c, "#adaftr-diag", "data-panel-worker").await.filter(|s| s == "true")
    })
    .await;
    let inst2 = choose_cat1(&c, 3).await;
    check_sensitivity(&c, &default, &inst2).await;
    check_relmap(&c, &default, &inst2).await;
    assert_eq!(attr(&c, "#adaftr-diag", "data-panels-off-thread").await.as_deref(), Some("true"));
    let paint = wait_for(&c, "the edit's paint time", |c| async move {
        attr(&c, "#adaftr-diag", "data-edit-to-paint-ms").await.filter(|s| !s.is_empty())
    })
    .await;
    let diag = c.find(Locator::Css("#adaftr-diag")).await.unwrap().text().await.unwrap();
    eprintln!("edit to paint {paint} ms; diagnostics: {diag}");
    check_example_edit(&c, &default).await;
    let (_, inst3, _) = shown(&c).await.unwrap();
    check_sensitivity(&c, &default, &inst3).await;

    // 2. From the keyboard: a sensitivity row chosen with Enter opens in the what-if chart.
    let row = c.find(Locator::Css("#adaftr-sensitivity button.sens-row:not([aria-pressed='true'])")).await.unwrap();
    let pick = row.attr("data-feature").await.unwrap().unwrap();
    row.send_keys(&Key::Enter.to_string()).await.unwrap();
    wait_for(&c, "the chart to show the chosen feature", |c| {
        let pick = pick.clone();
        async move { attr(&c, "#adaftr-chart", "data-feature").await.filter(|f| *f == pick) }
    })
    .await;

    // 3. The shipped comparison model: its predictions for the mapped instance are native's.
    c.find(Locator::Css("#adaftr-compare-open")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#adaftr-compare-shipped")).await.unwrap().click().await.unwrap();
    let second = wait_long(&c, "the comparison model", 60, |c| async move {
        attr(&c, "#adaftr-compare", "data-pctr").await.filter(|s| !s.is_empty())
    })
    .await;
    let (_, inst_now, _) = shown(&c).await.unwrap();
    let mapped: Instance = serde_json::from_str(&attr(&c, "#adaftr-compare", "data-instance").await.unwrap()).unwrap();
    assert_eq!(mapped, compare::map_instance(&default.schema, &inst_now, &plain.schema).instance);
    let native = plain.predict(std::slice::from_ref(&mapped)).unwrap()[0];
    close(second.parse().unwrap(), native.pctr, "second model pCTR");
    for (key, v) in [("data-pcvr", native.pcvr), ("data-pctcvr", native.pctcvr)] {
        close(attr(&c, "#adaftr-compare", key).await.unwrap().parse().unwrap(), v, key);
    }
    assert!(
        c.find(Locator::Css("#adaftr-chart g.series.compare polyline")).await.is_ok(),
        "the second model's curves are overlaid"
    );

    // 4. Every control is labelled and in the tab order (with both models and all panels).
    let unlabelled = c.execute(UNLABELLED, vec![]).await.unwrap();
    assert_eq!(unlabelled.as_array().unwrap().len(), 0, "controls without a name or tab stop: {unlabelled}");

    // 5. A link with an encoded instance and swept feature reproduces them on a fresh load.
    let want = random_instance(&default.schema, 77);
    let swept = FeatureRef::Num(default.schema.num_numeric() - 1);
    let link = format!("{site}#{}", fragment::encode(&default.schema, &want, Some(swept)));
    c.goto("about:blank").await.unwrap();
    c.goto(&link).await.unwrap();
    let (_, got, _) = wait_for(&c, "the linked instance", |c| {
        let want = want.clone();
        async move { shown(&c).await.filter(|(_, i, _)| *i == want) }
    })
    .await;
    assert_eq!(got, want);
    let name = swept.name(&default.schema).unwrap().to_string();
    wait_for(&c, "the linked sweep", |c| {
        let name = name.clone();
        async move { attr(&c, "#adaftr-chart", "data-feature").await.filter(|f| *f == name) }
    })
    .await;
    check_sensitivity(&c, &default, &want).await;

    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
}
