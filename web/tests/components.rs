//! Component tests in a real browser (headless Chromium through wasm-bindgen-test-runner):
//! `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p adaftr-web --target wasm32-unknown-unknown`
//! (scripts/web-test.sh). Each test mounts the app on a fresh element with the shipped
//! default model given as bytes, and drives it with bubbling DOM events as a user would.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use adaftr_core::inference::{Instance, Prediction};
use adaftr_web::ui::{App, AppProps, Source};
use candle_core::Device;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{DataTransfer, Element, Event, EventInit, HtmlInputElement, HtmlSelectElement};

wasm_bindgen_test_configure!(run_in_browser);

const MODEL: &[u8] = include_bytes!("../assets/default-model.safetensors");
const EXAMPLES: &str = include_str!("../assets/examples.json");

async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window().unwrap().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms).unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

/// Polls until `f` gives a value (5 s at most).
async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..250 {
        if let Some(v) = f() {
            return v;
        }
        sleep(20).await;
    }
    panic!("timed out waiting for {what}");
}

struct Mounted {
    root: Element,
    /// Destroyed with the test: an app left running would go on writing the URL fragment
    /// (after its edits settle) into the next test's page.
    app: Option<yew::AppHandle<App>>,
}

impl Mounted {
    async fn new() -> Self {
        Self::with_link("").await
    }

    /// Mounts with the URL fragment set to `link` first: the page reads its state from it,
    /// and writes it back on every change, so every test starts from a fragment of its own.
    async fn with_link(link: &str) -> Self {
        web_sys::window().unwrap().location().set_hash(link).unwrap();
        let doc = web_sys::window().unwrap().document().unwrap();
        let root = doc.create_element("div").unwrap();
        doc.body().unwrap().append_child(&root).unwrap();
        let source = Source::Bytes {
            name: "default-model.safetensors".into(),
            model: Rc::new(MODEL.to_vec()),
            examples_json: Some(Rc::from(EXAMPLES)),
        };
        let app = yew::Renderer::<App>::with_root_and_props(root.clone(), AppProps { source }).render();
        let m = Mounted { root, app: Some(app) };
        until("the default model's predictions", || m.attr("#adaftr-predictions", "data-pctr")).await;
        m
    }

    fn find(&self, sel: &str) -> Option<Element> {
        self.root.query_selector(sel).unwrap()
    }

    fn attr(&self, sel: &str, name: &str) -> Option<String> {
        self.find(sel)?.get_attribute(name)
    }

    fn prediction(&self) -> (Prediction, Instance) {
        let get = |n: &str| self.attr("#adaftr-predictions", n).unwrap();
        let f = |n: &str| get(n).parse::<f32>().unwrap();
        let p = Prediction {
            pctr: f("data-pctr"),
            pcvr: f("data-pcvr"),
            pctcvr: f("data-pctcvr"),
            tau: Some(f("data-tau")),
        };
        (p, serde_json::from_str(&get("data-instance")).unwrap())
    }

    fn fire(&self, el: &Element, kind: &str) {
        let init = EventInit::new();
        init.set_bubbles(true);
        el.dispatch_event(&Event::new_with_event_init_dict(kind, &init).unwrap()).unwrap();
    }

    fn upload(&self, name: &str, bytes: &[u8]) {
        let parts = Array::of1(&Uint8Array::from(bytes));
        let file = web_sys::File::new_with_u8_array_sequence(&parts, name).unwrap();
        self.upload_file(file);
    }

    fn upload_file(&self, file: web_sys::File) {
        let dt = DataTransfer::new().unwrap();
        dt.items().add_with_file(&file).unwrap();
        let input: HtmlInputElement = self.find("#adaftr-upload").unwrap().dyn_into().unwrap();
        input.set_files(dt.files().as_ref());
        self.fire(&input, "change");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(app) = self.app.take() {
            app.destroy();
        }
        self.root.remove();
    }
}

fn bundle() -> adaftr_core::bundle::Bundle {
    adaftr_core::bundle::load(MODEL, &Device::Cpu).unwrap()
}

fn native(instance: &Instance) -> Prediction {
    bundle().predict(std::slice::from_ref(instance)).unwrap()[0]
}

/// A categorical field with at least two known values (the tests do not assume a schema,
/// so they keep working when the shipped default model is regenerated).
fn some_categorical(b: &adaftr_core::bundle::Bundle) -> usize {
    b.schema.categorical.iter().position(|f| f.vocab().len() >= 2).expect("a categorical field with 2+ values")
}

#[wasm_bindgen_test]
async fn shows_predictions_chart_card_and_timings() {
    let b = bundle();
    let m = Mounted::new().await;
    let (p, inst) = m.prediction();
    assert_eq!(p, native(&inst), "the page shows core's prediction for the shown instance");
    let text = m.find("#adaftr-pctr").unwrap().text_content().unwrap();
    assert!(text.ends_with('%'), "{text}");
    assert!(m.find("#adaftr-reading").unwrap().text_content().unwrap().contains("related"));
    assert_eq!(m.attr("#adaftr-chart", "data-points").as_deref(), Some("64"));
    assert_eq!(m.root.query_selector_all("#adaftr-chart polyline").unwrap().length(), 4);
    let card = m.find("#adaftr-card").unwrap().text_content().unwrap();
    assert!(card.contains(b.config.model.backbone.name()), "{card}");
    assert!(m.find("#adaftr-diag").unwrap().text_content().unwrap().contains("sweep of 64 points"));
    // One labelled input per feature, plus the field search, the sweep picker, the upload,
    // the Train panel's seven (CSV, schema, start, backbone, mode, epochs, validation
    // share), the sensitivity ranking's output and the relatedness map's three (x, y,
    // output).
    let inputs = m.root.query_selector_all("select, input").unwrap();
    assert_eq!(inputs.length() as usize, b.schema.num_categorical() + b.schema.num_numeric() + 3 + 7 + 1 + 3);
    for k in 0..inputs.length() {
        let el: Element = inputs.item(k).unwrap().dyn_into().unwrap();
        let id = el.id();
        assert!(m.find(&format!("label[for='{id}']")).is_some(), "input #{id} has no label");
    }
}

#[wasm_bindgen_test]
async fn editing_inputs_updates_predictions_and_sweep() {
    let b = bundle();
    let m = Mounted::new().await;
    let (before, inst0) = m.prediction();

    let f = &b.schema.numeric[0];
    let (lo, hi) = adaftr_web::editor::numeric_range(f);
    let slider: HtmlInputElement = m.find("#adaftr-num-0").unwrap().dyn_into().unwrap();
    let target = lo + 0.9 * (hi - lo);
    slider.set_value(&target.to_string());
    // The browser snaps the value to the slider's step.
    let v: f32 = slider.value().parse().unwrap();
    assert!((v - target).abs() <= (hi - lo) / 200.0, "{v} vs {target}");
    m.fire(&slider, "input");
    let (p1, inst1) = until("numeric edit", || {
        let (p, i) = m.prediction();
        (i.num[0] == v).then_some((p, i))
    })
    .await;
    assert_eq!(p1, native(&inst1));
    assert_ne!(inst1, inst0);
    assert_eq!(
        m.find("#adaftr-num-0-value").unwrap().text_content().unwrap(),
        adaftr_web::format::show_value(v, lo, hi)
    );

    let c = some_categorical(&b);
    let select: HtmlSelectElement = m.find(&format!("#adaftr-cat-{c}")).unwrap().dyn_into().unwrap();
    select.set_value("2");
    m.fire(&select, "change");
    let (p2, inst2) = until("categorical edit", || {
        let (p, i) = m.prediction();
        (i.cat[c] == 2).then_some((p, i))
    })
    .await;
    assert_eq!(inst2.num[0], v);
    assert_eq!(p2, native(&inst2));

    // Sweep a categorical: one point per value plus OOV.
    let sweep: HtmlSelectElement = m.find("#adaftr-sweep-feature").unwrap().dyn_into().unwrap();
    sweep.set_value(&format!("cat-{c}"));
    m.fire(&sweep, "change");
    let points = b.schema.categorical[c].cardinality().min(adaftr_web::sweep::MAX_CATEGORICAL_POINTS).to_string();
    until("categorical sweep", || (m.attr("#adaftr-chart", "data-points")? == points).then_some(())).await;
    assert_eq!(m.attr("#adaftr-chart", "data-feature").as_deref(), Some(b.schema.categorical[c].name.as_str()));

    // Reset restores the default instance and the select follows the state.
    let reset = m.find("#adaftr-reset").unwrap();
    reset.dyn_ref::<web_sys::HtmlElement>().unwrap().click();
    until("reset", || (m.prediction().0 == before).then_some(())).await;
    until("select follows reset", || (select.value() == "1").then_some(())).await;

    // Random: an example shipped with the model, or random values.
    m.find("#adaftr-random").unwrap().dyn_ref::<web_sys::HtmlElement>().unwrap().click();
    let (p3, inst3) = until("random instance", || {
        let (p, i) = m.prediction();
        (i != inst0).then_some((p, i))
    })
    .await;
    assert_eq!(p3, native(&inst3));
}

#[wasm_bindgen_test]
async fn bad_uploads_leave_the_model_working() {
    let b = bundle();
    let m = Mounted::new().await;
    let (lo, hi) = adaftr_web::editor::numeric_range(&b.schema.numeric[0]);
    let slider: HtmlInputElement = m.find("#adaftr-num-0").unwrap().dyn_into().unwrap();
    slider.set_value(&(lo + 0.2 * (hi - lo)).to_string());
    let v: f32 = slider.value().parse().unwrap();
    m.fire(&slider, "input");
    until("edit", || (m.prediction().1.num[0] == v).then_some(())).await;
    let (p, inst) = m.prediction();
    let id = m.attr("#adaftr-predictions", "data-model-id").unwrap();

    m.upload("corrupt.safetensors", b"this is not a safetensors file at all");
    let err = until("error", || m.find("#adaftr-error")).await.text_content().unwrap();
    assert!(err.contains("corrupt.safetensors") && err.contains("not a usable AdaFTR model"), "{err}");
    assert_eq!(m.prediction(), (p, inst.clone()));
    assert_eq!(m.attr("#adaftr-predictions", "data-model-id").unwrap(), id);

    // Truncated bundle.
    m.find("#adaftr-error-dismiss").unwrap().dyn_ref::<web_sys::HtmlElement>().unwrap().click();
    until("dismissed", || m.find("#adaftr-error").is_none().then_some(())).await;
    m.upload("truncated.safetensors", &MODEL[..MODEL.len() - 100]);
    let err = until("error", || m.find("#adaftr-error")).await.text_content().unwrap();
    assert!(err.contains("truncated.safetensors"), "{err}");
    assert_eq!(m.prediction(), (p, inst.clone()));

    // Oversized: refused from File.size alone.
    let big = js_sys::ArrayBuffer::new(64 * 1024 * 1024 + 1);
    let file = web_sys::File::new_with_buffer_source_sequence(&Array::of1(&big), "huge.safetensors").unwrap();
    m.upload_file(file);
    until("size error", || {
        let t = m.find("#adaftr-error")?.text_content()?;
        t.contains("huge.safetensors").then_some(t)
    })
    .await;
    assert_eq!(m.prediction(), (p, inst));

    // A good upload switches the model (new id) and clears the error.
    m.upload("again.safetensors", MODEL);
    until("new model", || (m.attr("#adaftr-predictions", "data-model-id")? != id).then_some(())).await;
    assert!(m.find("#adaftr-error").is_none());
    assert_eq!(m.find("#adaftr-model-name").unwrap().text_content().unwrap(), "again.safetensors");
}

#[wasm_bindgen_test]
async fn drags_and_unrelated_updates_run_no_inference() {
    let b = bundle();
    let m = Mounted::new().await;
    let runs = || m.attr("#adaftr-diag", "data-predictions").unwrap().parse::<u64>().unwrap();
    let before = runs();
    assert!(before >= 1);

    // A drag over the upload zone highlights it, event after event, and predicts nothing.
    let zone = m.find("#adaftr-dropzone").unwrap();
    for _ in 0..20 {
        m.fire(&zone, "dragover");
    }
    until("the drag highlight", || m.find("#adaftr-dropzone.dragging")).await;
    m.fire(&zone, "dragleave");
    until("the highlight gone", || m.find("#adaftr-dropzone.dragging").is_none().then_some(())).await;
    // A failed upload and its dismissal re-render the app, with the same model and instance.
    m.upload("bad.safetensors", b"not a model");
    until("the error", || m.find("#adaftr-error")).await;
    m.find("#adaftr-error-dismiss").unwrap().dyn_ref::<web_sys::HtmlElement>().unwrap().click();
    until("dismissed", || m.find("#adaftr-error").is_none().then_some(())).await;
    assert_eq!(runs(), before, "renders without a new model or instance ran a prediction");

    // An edit runs exactly one.
    let (lo, hi) = adaftr_web::editor::numeric_range(&b.schema.numeric[0]);
    let slider: HtmlInputElement = m.find("#adaftr-num-0").unwrap().dyn_into().unwrap();
    slider.set_value(&(lo + 0.7 * (hi - lo)).to_string());
    let v: f32 = slider.value().parse().unwrap();
    m.fire(&slider, "input");
    until("the edit", || (m.prediction().1.num[0] == v).then_some(())).await;
    assert_eq!(runs(), before + 1);

    // The single-instance time is a mean over enough calls to read above the clock's
    // resolution (Chromium: 100 µs).
    let ms: f64 = m.attr("#adaftr-diag", "data-single-ms").unwrap().parse().unwrap();
    let text = m.find("#adaftr-diag").unwrap().text_content().unwrap();
    assert!(ms > 0.0 && !text.contains("one instance 0 µs") && text.contains("(mean of "), "{text}");
}

#[wasm_bindgen_test]
async fn the_train_panel_offers_fine_tuning_and_asks_for_a_file() {
    let m = Mounted::new().await;
    assert_eq!(m.attr("#adaftr-train", "data-phase").as_deref(), Some("Idle"));
    // A model is loaded, so it can be fine-tuned; every backbone and mode is offered.
    let fine: web_sys::HtmlOptionElement =
        m.find("#adaftr-train-start option[value='fine-tune']").unwrap().dyn_into().unwrap();
    assert!(!fine.disabled());
    let options = |sel: &str| m.root.query_selector_all(&format!("{sel} option")).unwrap().length() as usize;
    assert_eq!(options("#adaftr-train-backbone"), adaftr_core::config::Backbone::ALL.len());
    assert_eq!(options("#adaftr-train-cl"), adaftr_core::config::ClMode::ALL.len());
    // Train without a file: a message, nothing starts, the model stays.
    let (p, inst) = m.prediction();
    m.find("#adaftr-train-start-button").unwrap().dyn_ref::<web_sys::HtmlElement>().unwrap().click();
    let err = until("the missing-file message", || m.find("#adaftr-train-error")).await.text_content().unwrap();
    assert!(err.contains("Choose a CSV"), "{err}");
    assert_eq!(m.attr("#adaftr-train", "data-phase").as_deref(), Some("Idle"));
    assert_eq!(m.prediction(), (p, inst));
}

fn select(m: &Mounted, sel: &str, value: &str) {
    let el: HtmlSelectElement = m.find(sel).unwrap().dyn_into().unwrap();
    el.set_value(value);
    m.fire(&el, "change");
}

/// One row of the sensitivity ranking: feature, kind, [pctr, pcvr, tau] as (min, max).
type Ranked = (String, String, [(f32, f32); 3]);

/// The sensitivity ranking the page shows.
fn ranking(m: &Mounted) -> Vec<Ranked> {
    let json: serde_json::Value =
        serde_json::from_str(&m.attr("#adaftr-sensitivity", "data-ranking").unwrap()).unwrap();
    let span = |v: &serde_json::Value| (v["min"].as_f64().unwrap() as f32, v["max"].as_f64().unwrap() as f32);
    json.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["feature"].as_str().unwrap().to_string();
            (name, r["kind"].as_str().unwrap().to_string(), [span(&r["pctr"]), span(&r["pcvr"]), span(&r["tau"])])
        })
        .collect()
}

#[wasm_bindgen_test]
async fn the_sensitivity_panel_ranks_every_feature_and_picks_the_sweep() {
    use adaftr_web::sensitivity::{plan, summarise, Output};
    let b = bundle();
    let m = Mounted::new().await;
    // The top of the ranking, then every feature on request.
    let rows = || m.root.query_selector_all("#adaftr-sensitivity button.sens-row").unwrap().length() as usize;
    let total = b.schema.num_categorical() + b.schema.num_numeric();
    assert!(total > adaftr_web::sensitivity::TOP_ROWS);
    assert_eq!(rows(), adaftr_web::sensitivity::TOP_ROWS);
    let more = m.find("#adaftr-sens-all").unwrap();
    assert_eq!(more.get_attribute("aria-expanded").as_deref(), Some("false"));
    more.dyn_ref::<web_sys::HtmlElement>().unwrap().click();
    until("every feature listed", || (rows() == total).then_some(())).await;
    assert_eq!(more.get_attribute("aria-expanded").as_deref(), Some("true"));
    assert_eq!(m.attr("#adaftr-sensitivity", "data-rank-by").as_deref(), Some("tau"));

    // The page's ranking is core's, for the shown instance, widest tau range first.
    let (_, inst) = m.prediction();
    let p = plan(&b.schema, &inst);
    let native = summarise(&b.schema, &p, &b.predict(&p.rows.instances()).unwrap()).unwrap();
    let shown = ranking(&m);
    assert_eq!(shown.len(), native.len());
    for (name, kind, spans) in &shown {
        let row = native.iter().find(|r| &r.name == name).unwrap();
        assert_eq!(kind, row.kind);
        for (k, o) in Output::ALL.into_iter().enumerate() {
            let s = row.span(o).unwrap();
            assert!((spans[k].0 - s.min).abs() < 1e-6 && (spans[k].1 - s.max).abs() < 1e-6, "{name} {o:?}");
        }
    }
    let width = |r: &Ranked, k: usize| r.2[k].1 - r.2[k].0;
    assert!(shown.windows(2).all(|w| width(&w[0], 2) >= width(&w[1], 2)));
    assert!(width(&shown[0], 2) > 0.0);

    // Ranking by pCTR reorders the list.
    select(&m, "#adaftr-rank-by", "pctr");
    until("ranked by pCTR", || (m.attr("#adaftr-sensitivity", "data-rank-by")? == "pctr").then_some(())).await;
    let by_ctr = ranking(&m);
    assert!(by_ctr.windows(2).all(|w| width(&w[0], 0) >= width(&w[1], 0)));

    // A row is a button: choosing one shows its feature in the what-if chart.
    let pick = shown.iter().find(|r| r.1 == "categorical").unwrap().0.clone();
    let button = m.find(&format!("#adaftr-sensitivity button[data-feature='{pick}']")).unwrap();
    assert_eq!(button.tag_name(), "BUTTON");
    assert_ne!(m.attr("#adaftr-chart", "data-feature").as_deref(), Some(pick.as_str()));
    button.dyn_ref::<web_sys::HtmlElement>().unwrap().click();
    until("the chart shows the chosen feature", || (m.attr("#adaftr-chart", "data-feature")? == pick).then_some(()))
        .await;
    let sweep: HtmlSelectElement = m.find("#adaftr-sweep-feature").unwrap().dyn_into().unwrap();
    let c = b.schema.categorical.iter().position(|f| f.name == pick).unwrap();
    until("the sweep select follows", || (sweep.value() == format!("cat-{c}")).then_some(())).await;
    assert_eq!(button.get_attribute("aria-pressed").as_deref(), Some("true"));
}

/// The relatedness map's canvas as drawn: RGBA, one pixel per cell, top row first.
fn map_pixels(m: &Mounted) -> Vec<u8> {
    canvas_pixels(m, "#adaftr-relmap-cells")
}

fn canvas_pixels(m: &Mounted, css: &str) -> Vec<u8> {
    let canvas: web_sys::HtmlCanvasElement = m.find(css).unwrap().dyn_into().unwrap();
    let ctx: web_sys::CanvasRenderingContext2d = canvas.get_context("2d").unwrap().unwrap().dyn_into().unwrap();
    ctx.get_image_data(0.0, 0.0, canvas.width() as f64, canvas.height() as f64).unwrap().data().0
}

/// The relatedness map's grid of one output, `rows[j][i]`.
fn grid(m: &Mounted, attr: &str) -> Vec<Vec<f32>> {
    serde_json::from_str(&m.attr("#adaftr-relmap", attr).unwrap()).unwrap()
}

#[wasm_bindgen_test]
async fn the_relatedness_map_follows_edits_and_axes() {
    use adaftr_web::relmap::plan;
    let b = bundle();
    let m = Mounted::new().await;
    let cells = || map_pixels(&m).len() / 4;
    assert!(cells() >= 24 * 24, "{}", cells());
    // The legend's colour scale runs from the lowest colour to the highest.
    let legend = canvas_pixels(&m, "#adaftr-relmap-legend");
    assert_eq!(legend[..3], adaftr_web::relmap::rgb(0.0, 0.0, 1.0));
    assert_eq!(legend[legend.len() - 4..][..3], adaftr_web::relmap::rgb(1.0, 0.0, 1.0));
    let feature = |name: &str| {
        adaftr_web::sweep::all_features(&b.schema).into_iter().find(|f| f.name(&b.schema) == Some(name)).unwrap()
    };
    // The default axes are the two numerics that move tau most.
    let (x, y) = (m.attr("#adaftr-relmap", "data-x").unwrap(), m.attr("#adaftr-relmap", "data-y").unwrap());
    let numerics: Vec<String> = ranking(&m).into_iter().filter(|r| r.1 == "numeric").map(|r| r.0).take(2).collect();
    assert_eq!([x.clone(), y.clone()], [numerics[0].clone(), numerics[1].clone()]);

    // The map is core's predictions over the grid of the shown instance.
    let check = |m: &Mounted| {
        let (_, inst) = m.prediction();
        let (x, y) = (m.attr("#adaftr-relmap", "data-x").unwrap(), m.attr("#adaftr-relmap", "data-y").unwrap());
        let g = plan(&b.schema, &inst, feature(&x), feature(&y)).unwrap();
        let xs: Vec<f32> = serde_json::from_str(&m.attr("#adaftr-relmap", "data-xs").unwrap()).unwrap();
        assert_eq!(xs, g.x.values);
        let preds = b.predict(&g.rows.instances()).unwrap();
        let (tau, pcvr) = (grid(m, "data-tau"), grid(m, "data-pcvr"));
        assert_eq!((tau.len(), tau[0].len()), (g.y.values.len(), g.x.values.len()));
        for (k, p) in preds.iter().enumerate() {
            let (i, j) = (k % xs.len(), k / xs.len());
            assert!((tau[j][i] - p.tau.unwrap()).abs() < 1e-6 && (pcvr[j][i] - p.pcvr).abs() < 1e-6);
        }
        // The canvas shows those cells: each pixel is its cell's colour, row 0 at the bottom.
        let shown = if m.attr("#adaftr-relmap", "data-show").unwrap() == "pcvr" { &pcvr } else { &tau };
        let flat: Vec<f32> = shown.iter().flatten().copied().collect();
        let (lo, hi) = adaftr_web::relmap::value_range(&flat);
        let (nx, ny) = (xs.len(), shown.len());
        assert_eq!(map_pixels(m), adaftr_web::relmap::pixels(&flat, nx, ny, lo, hi));
        let bottom_left = &map_pixels(m)[(ny - 1) * nx * 4..][..3];
        assert_eq!(bottom_left, adaftr_web::relmap::rgb(shown[0][0], lo, hi));
        tau
    };
    let before = check(&m);

    // An edit of a feature off the map redraws it.
    let n = (0..b.schema.num_numeric())
        .find(|&i| Some(b.schema.numeric[i].name.as_str()) != Some(x.as_str()) && b.schema.numeric[i].name != y)
        .unwrap();
    let (lo, hi) = adaftr_web::editor::numeric_range(&b.schema.numeric[n]);
    let slider: HtmlInputElement = m.find(&format!("#adaftr-num-{n}")).unwrap().dyn_into().unwrap();
    let old = m.attr("#adaftr-relmap", "data-tau").unwrap();
    slider.set_value(&(lo + 0.05 * (hi - lo)).to_string());
    m.fire(&slider, "input");
    until("the map after an edit", || (m.attr("#adaftr-relmap", "data-tau")? != old).then_some(())).await;
    assert_ne!(check(&m), before);

    // A categorical axis: its values, capped; choosing the other axis's feature swaps.
    let c = some_categorical(&b);
    select(&m, "#adaftr-map-x", &format!("cat-{c}"));
    let name = b.schema.categorical[c].name.clone();
    until("a categorical x axis", || (m.attr("#adaftr-relmap", "data-x")? == name).then_some(())).await;
    let nx = b.schema.categorical[c].cardinality().min(adaftr_web::relmap::MAX_CATEGORICAL_VALUES);
    assert!(cells() >= nx * 24 && cells() <= (nx + 1) * 24);
    check(&m);
    select(&m, "#adaftr-map-y", &format!("cat-{c}"));
    until("axes swapped", || (m.attr("#adaftr-relmap", "data-y")? == name).then_some(())).await;
    assert_eq!(m.attr("#adaftr-relmap", "data-x").unwrap(), y);
    check(&m);

    // Colour by pCVR: the same cells, other colours.
    let tau_fills = map_pixels(&m);
    select(&m, "#adaftr-map-show", "pcvr");
    until("coloured by pCVR", || (m.attr("#adaftr-relmap", "data-show")? == "pcvr").then_some(())).await;
    assert_ne!(map_pixels(&m), tau_fills);
    check(&m);
    assert_eq!(
        m.attr("#adaftr-relmap", "data-min").unwrap().parse::<f32>().unwrap(),
        grid(&m, "data-pcvr").iter().flatten().copied().fold(f32::INFINITY, f32::min)
    );

    // The shipped examples' tau, with the instance's.
    let taus: Vec<f32> = serde_json::from_str(&m.attr("#adaftr-example-taus", "data-taus").unwrap()).unwrap();
    let examples = adaftr_web::editor::parse_examples(EXAMPLES).unwrap();
    assert_eq!(taus.len(), examples.len());
    let inst = adaftr_web::editor::instance_from_example(&b.schema, &examples[0]);
    assert!((taus[0] - native(&inst).tau.unwrap()).abs() < 1e-6);
    assert_eq!(m.attr("#adaftr-example-taus", "data-tau"), m.attr("#adaftr-predictions", "data-tau"));
}

/// Resolves after the microtasks queued so far (Yew renders in one).
async fn settle() {
    JsFuture::from(js_sys::Promise::resolve(&wasm_bindgen::JsValue::NULL)).await.unwrap();
}

#[wasm_bindgen_test]
async fn an_edit_updates_every_panel_and_each_is_timed() {
    let b = bundle();
    let m = Mounted::new().await;
    let perf = web_sys::window().unwrap().performance().unwrap();
    let (lo, hi) = adaftr_web::editor::numeric_range(&b.schema.numeric[0]);
    let slider: HtmlInputElement = m.find("#adaftr-num-0").unwrap().dyn_into().unwrap();
    let diag = |n: &str| m.attr("#adaftr-diag", n).unwrap().parse::<f64>().unwrap();
    let (mut sens, mut map, mut sweep, mut total) = (vec![], vec![], vec![], vec![]);
    for k in 0..15 {
        let target = lo + (0.05 + 0.06 * k as f32) * (hi - lo);
        slider.set_value(&target.to_string());
        let v: f32 = slider.value().parse().unwrap();
        let old = m.attr("#adaftr-relmap", "data-tau").unwrap();
        let t0 = perf.now();
        m.fire(&slider, "input");
        // From the event to the DOM showing every panel's new numbers.
        let mut waited = 0;
        while m.prediction().1.num[0] != v || m.attr("#adaftr-relmap", "data-tau").unwrap() == old {
            settle().await;
            waited += 1;
            assert!(waited < 10_000, "the edit never showed");
        }
        total.push(perf.now() - t0);
        sens.push(diag("data-sensitivity-ms"));
        map.push(diag("data-relmap-ms"));
        sweep.push(diag("data-sweep-ms"));
        sleep(30).await;
    }
    // Redrawing the map alone (its colours switched, no inference): the SVG's cost in Yew.
    let mut redraw = vec![];
    for k in 0..10 {
        let show = if k % 2 == 0 { "pcvr" } else { "tau" };
        let t0 = perf.now();
        select(&m, "#adaftr-map-show", show);
        while m.attr("#adaftr-relmap", "data-show").unwrap() != show {
            settle().await;
        }
        redraw.push(perf.now() - t0);
        sleep(30).await;
    }
    assert_eq!(diag("data-relmap-points") as usize, 24 * 24);
    let points = diag("data-sensitivity-points") as usize;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (s, r, w, t, d) =
        (median(&mut sens), median(&mut map), median(&mut sweep), median(&mut total), median(&mut redraw));
    console_log!(
        "{}",
        format!(
        "edit timings (median of 15): sensitivity {s:.1} ms ({points} points), relatedness map {r:.1} ms (576 points), sweep {w:.1} ms, event to DOM {t:.1} ms, map redraw without inference {d:.1} ms; max {:.1}/{:.1}/{:.1} ms",
            sens.last().unwrap(),
            map.last().unwrap(),
            total.last().unwrap()
        )
    );
    // A generous bound, so a loaded machine cannot fail the test; the real numbers are logged.
    assert!(s < 100.0 && r < 100.0 && t < 300.0, "sensitivity {s} ms, map {r} ms, total {t} ms");
    assert!(m.find("#adaftr-diag").unwrap().text_content().unwrap().contains("relatedness map, 576 points"));
}

const COMPARE: &[u8] = include_bytes!("../assets/plain-ple.safetensors");

fn click(m: &Mounted, sel: &str) {
    m.find(sel).unwrap_or_else(|| panic!("no {sel}")).dyn_ref::<web_sys::HtmlElement>().unwrap().click();
}

fn upload_to(m: &Mounted, input: &str, name: &str, bytes: &[u8]) {
    let file = web_sys::File::new_with_u8_array_sequence(&Array::of1(&Uint8Array::from(bytes)), name).unwrap();
    let dt = DataTransfer::new().unwrap();
    dt.items().add_with_file(&file).unwrap();
    let input: HtmlInputElement = m.find(input).unwrap().dyn_into().unwrap();
    input.set_files(dt.files().as_ref());
    m.fire(&input, "change");
}

/// The second model's numbers as the comparison exposes them, and the instance it saw.
fn compared(m: &Mounted) -> Option<(Prediction, Instance)> {
    let f = |n: &str| m.attr("#adaftr-compare", n)?.parse::<f32>().ok();
    let tau = m.attr("#adaftr-compare", "data-tau")?;
    let p = Prediction {
        pctr: f("data-pctr")?,
        pcvr: f("data-pcvr")?,
        pctcvr: f("data-pctcvr")?,
        tau: (!tau.is_empty()).then(|| tau.parse().unwrap()),
    };
    Some((p, serde_json::from_str(&m.attr("#adaftr-compare", "data-instance")?).unwrap()))
}

#[wasm_bindgen_test]
async fn a_second_model_is_compared_side_by_side() {
    let b = adaftr_core::bundle::load(COMPARE, &Device::Cpu).unwrap();
    let m = Mounted::new().await;
    let main_id = m.attr("#adaftr-predictions", "data-model-id").unwrap();
    assert!(m.find("#adaftr-compare").is_none() && m.find("#adaftr-compare-upload").is_none());
    click(&m, "#adaftr-compare-open");
    until("the chooser", || m.find("#adaftr-compare-upload")).await;
    assert_eq!(m.attr("#adaftr-compare-open", "aria-expanded").as_deref(), Some("true"));

    // A bad file: the same error as the main upload, nothing compared, the model stays.
    let (p, inst) = m.prediction();
    upload_to(&m, "#adaftr-compare-upload", "broken.safetensors", &COMPARE[..COMPARE.len() / 2]);
    let err = until("error", || m.find("#adaftr-error")).await.text_content().unwrap();
    assert!(err.contains("broken.safetensors") && err.contains("not a usable AdaFTR model"), "{err}");
    assert!(m.find("#adaftr-compare").is_none());
    assert_eq!(m.prediction(), (p, inst.clone()));

    upload_to(&m, "#adaftr-compare-upload", "plain-ple.safetensors", COMPARE);
    let (q, seen) = until("the comparison", || compared(&m)).await;
    assert!(m.find("#adaftr-error").is_none());
    assert_eq!(seen, inst, "same schema: the same instance");
    assert_eq!(q, b.predict(std::slice::from_ref(&inst)).unwrap()[0], "the second bundle's own prediction");
    let fields = (b.schema.num_categorical() + b.schema.num_numeric()).to_string();
    assert_eq!(m.attr("#adaftr-compare", "data-matched"), Some(fields.clone()));
    assert_eq!(m.attr("#adaftr-compare", "data-fields"), Some(fields));
    assert!(m.find("#adaftr-compare-note").is_none(), "every field matched: nothing to say");
    let rows = m.root.query_selector_all("#adaftr-compare-table tbody tr").unwrap();
    assert_eq!(rows.length(), 3, "both models and their difference");
    let table = m.find("#adaftr-compare-table").unwrap().text_content().unwrap();
    assert!(table.contains("default-model.safetensors") && table.contains("plain-ple.safetensors"), "{table}");
    assert!(table.contains("pp"), "{table}");

    // The chart overlays the second model's curves, dashed, with a legend.
    let dashed = m.root.query_selector_all("#adaftr-chart g.compare polyline[stroke-dasharray]").unwrap().length();
    assert_eq!(dashed, 3 + u32::from(q.tau.is_some()));
    assert_eq!(m.root.query_selector_all("#adaftr-chart g.series:not(.compare) polyline").unwrap().length(), 4);
    let legend = m.find("#adaftr-chart-models").unwrap().text_content().unwrap();
    assert!(legend.contains("plain-ple.safetensors (dashed)"), "{legend}");

    // An edit moves both models; a categorical sweep overlays one point per value.
    let (lo, hi) = adaftr_web::editor::numeric_range(&b.schema.numeric[0]);
    let slider: HtmlInputElement = m.find("#adaftr-num-0").unwrap().dyn_into().unwrap();
    slider.set_value(&(lo + 0.3 * (hi - lo)).to_string());
    m.fire(&slider, "input");
    let (q2, seen2) = until("the compared edit", || compared(&m).filter(|(_, i)| *i != inst)).await;
    assert_eq!(seen2, m.prediction().1);
    assert_eq!(q2, b.predict(std::slice::from_ref(&seen2)).unwrap()[0]);
    let c = some_categorical(&b);
    let sweep: HtmlSelectElement = m.find("#adaftr-sweep-feature").unwrap().dyn_into().unwrap();
    sweep.set_value(&format!("cat-{c}"));
    m.fire(&sweep, "change");
    let n = b.schema.categorical[c].cardinality().min(adaftr_web::sweep::MAX_CATEGORICAL_POINTS) as u32;
    until("the compared categorical sweep", || {
        (m.root.query_selector_all("#adaftr-chart g.compare circle").unwrap().length() == dashed * n).then_some(())
    })
    .await;

    // A bad main upload keeps both models.
    let cid = m.attr("#adaftr-compare", "data-model-id").unwrap();
    m.upload("bad.safetensors", b"nope");
    until("error", || m.find("#adaftr-error")).await;
    assert_eq!(m.attr("#adaftr-predictions", "data-model-id").unwrap(), main_id);
    assert_eq!(m.attr("#adaftr-compare", "data-model-id").unwrap(), cid);

    click(&m, "#adaftr-compare-stop");
    until("comparison gone", || m.find("#adaftr-compare").is_none().then_some(())).await;
    assert_eq!(m.root.query_selector_all("#adaftr-chart g.compare").unwrap().length(), 0);
    assert!(m.find("#adaftr-compare-open").is_some());
}

fn window() -> web_sys::Window {
    web_sys::window().unwrap()
}

#[wasm_bindgen_test]
async fn the_link_follows_every_change() {
    let b = bundle();
    let m = Mounted::new().await;
    let history = window().history().unwrap().length().unwrap();
    let decoded = || adaftr_web::fragment::decode(&b.schema, &window().location().hash().unwrap()).ok().flatten();
    let d = until("the first link", decoded).await;
    assert_eq!(d.instance, m.prediction().1);

    let (lo, hi) = adaftr_web::editor::numeric_range(&b.schema.numeric[0]);
    let slider: HtmlInputElement = m.find("#adaftr-num-0").unwrap().dyn_into().unwrap();
    slider.set_value(&(lo + 0.61 * (hi - lo)).to_string());
    let v: f32 = slider.value().parse().unwrap();
    m.fire(&slider, "input");
    let c = some_categorical(&b);
    let sweep: HtmlSelectElement = m.find("#adaftr-sweep-feature").unwrap().dyn_into().unwrap();
    sweep.set_value(&format!("cat-{c}"));
    m.fire(&sweep, "change");
    let d = until("the link after the edits", || {
        decoded().filter(|d| d.instance.num[0] == v && d.sweep == Some(adaftr_web::sweep::FeatureRef::Cat(c)))
    })
    .await;
    assert_eq!(d.instance, m.prediction().1, "the fragment decodes back to the shown instance");
    assert!(d.dropped.is_empty() && d.clamped.is_empty());
    assert_eq!(window().history().unwrap().length().unwrap(), history, "replaced, never pushed");

    // Copy link right after an edit copies that edit: the fragment is written at once,
    // not once the edit has settled.
    slider.set_value(&(lo + 0.27 * (hi - lo)).to_string());
    let v2: f32 = slider.value().parse().unwrap();
    m.fire(&slider, "input");
    until("the edit shown", || (m.prediction().1.num[0] == v2).then_some(())).await;
    // Copy link: the clipboard, or the link selected in a labelled field to copy by hand.
    click(&m, "#adaftr-copy-link");
    assert_eq!(decoded().map(|d| d.instance.num[0]), Some(v2), "the link copied holds the last edit");
    let how = until("the copy", || {
        if m.find("#adaftr-link-status")?.text_content()? == "Link copied." {
            return Some(None);
        }
        m.find("#adaftr-link-text").map(Some)
    })
    .await;
    if let Some(field) = how {
        let field: HtmlInputElement = field.dyn_into().unwrap();
        assert_eq!(field.value(), window().location().href().unwrap());
        assert!(m.find("label[for='adaftr-link-text']").is_some());
        assert_eq!(field.selection_end().unwrap(), Some(field.value().len() as u32), "selected for copying");
    }

    // A fragment typed into the address bar (hashchange) applies at once, and what the
    // model cannot use is said.
    // Fields the link leaves out take their default; the sweep stays.
    let mut want = adaftr_web::editor::default_instance(&b.schema);
    want.num[0] = lo;
    let name = &b.schema.numeric[0].name;
    let link = format!("#v=1&n.{name}={}&n.not_a_field=3", lo - 1000.0);
    window().location().set_hash(&link).unwrap();
    until("the typed link", || (m.prediction().1 == want).then_some(())).await;
    assert_eq!(m.attr("#adaftr-chart", "data-feature").as_deref(), Some(b.schema.categorical[c].name.as_str()));
    let note = until("the note", || m.find("#adaftr-link-note")).await.text_content().unwrap();
    assert!(note.contains("n.not_a_field") && note.contains("clamped"), "{note}");
}

#[wasm_bindgen_test]
async fn a_link_opens_the_view_it_was_made_from() {
    let b = bundle();
    let inst = adaftr_web::editor::random_instance(&b.schema, 42);
    let c = some_categorical(&b);
    let feature = adaftr_web::sweep::FeatureRef::Cat(c);
    let link = adaftr_web::fragment::encode(&b.schema, &inst, Some(feature));
    let m = Mounted::with_link(&link).await;
    let (p, shown) = until("the linked instance", || Some(m.prediction()).filter(|(_, i)| *i == inst)).await;
    assert_eq!(p, native(&inst), "the same instance, the same prediction");
    until("the linked sweep", || {
        (m.attr("#adaftr-chart", "data-feature")? == b.schema.categorical[c].name).then_some(())
    })
    .await;
    let sweep: HtmlSelectElement = m.find("#adaftr-sweep-feature").unwrap().dyn_into().unwrap();
    assert_eq!(sweep.value(), feature.key());
    assert_eq!(shown, inst);
    assert!(m.find("#adaftr-link-note").is_none());
    assert_eq!(window().location().hash().unwrap(), format!("#{link}"), "read, then written back unchanged");
}

#[wasm_bindgen_test]
async fn the_diagnostics_time_an_edit_to_its_painted_frame() {
    let m = Mounted::new().await;
    // Reading the (empty) URL fragment at start-up counts as an edit too: wait for it.
    sleep(300).await;
    let before = m.attr("#adaftr-diag", "data-edit-to-paint-ms");
    let slider: HtmlInputElement = m.find("#adaftr-num-0").unwrap().dyn_into().unwrap();
    slider.set_value(&slider.min());
    m.fire(&slider, "input");
    let ms: f64 = until("the edit's paint time", || {
        let now = m.attr("#adaftr-diag", "data-edit-to-paint-ms").filter(|s| !s.is_empty())?;
        (Some(&now) != before.as_ref()).then(|| now.parse().ok())?
    })
    .await;
    // The whole re-render (prediction, sweep, sensitivity, map) lies between the two clocks,
    // and in the page's own work, which excludes only the wait for the frame.
    let s: f64 = m.attr("#adaftr-diag", "data-sensitivity-ms").unwrap().parse().unwrap();
    let work: f64 = m.attr("#adaftr-diag", "data-edit-work-ms").unwrap().parse().unwrap();
    assert!(ms >= s && ms < 2000.0, "edit to paint {ms} ms, sensitivity {s} ms");
    assert!(work >= s && work <= ms, "work {work} ms, sensitivity {s} ms, edit to paint {ms} ms");
    console_log!("edit to paint: {ms} ms, work {work} ms");
    assert!(m
        .find("#adaftr-diag")
        .unwrap()
        .text_content()
        .unwrap()
        .contains("of work (inference, render, layout and paint)"));
}

/// The ids of the feature inputs the editor shows (`adaftr-cat-i`, `adaftr-num-i`).
fn shown_fields(m: &Mounted) -> Vec<String> {
    let list = m.root.query_selector_all("[data-field]").unwrap();
    (0..list.length()).map(|k| list.item(k).unwrap().dyn_into::<Element>().unwrap().id()).collect()
}

/// The inputs whose column name, label or description contains `q`, any case: what the
/// search must leave, worked out here from the schema itself.
fn expected_fields(schema: &adaftr_core::schema::Schema, q: &str) -> std::collections::BTreeSet<String> {
    let q = q.to_lowercase();
    let hit = |name: &str, info: &adaftr_core::schema::FieldInfo| {
        [Some(name), info.label.as_deref(), info.description.as_deref()]
            .into_iter()
            .flatten()
            .any(|t| t.to_lowercase().contains(&q))
    };
    let cats = schema.categorical.iter().enumerate().filter(|(_, f)| hit(&f.name, &f.info));
    let nums = schema.numeric.iter().enumerate().filter(|(_, f)| hit(&f.name, &f.info));
    cats.map(|(i, _)| format!("adaftr-cat-{i}")).chain(nums.map(|(i, _)| format!("adaftr-num-{i}"))).collect()
}

#[wasm_bindgen_test]
async fn the_field_search_narrows_the_editor_and_says_how_many() {
    let b = bundle();
    let total = b.schema.num_categorical() + b.schema.num_numeric();
    let m = Mounted::new().await;
    let search: HtmlInputElement = m.find("#adaftr-field-search").unwrap().dyn_into().unwrap();
    assert!(m.find("label[for='adaftr-field-search']").is_some());
    assert_eq!(shown_fields(&m).len(), total);
    assert_eq!(m.attr("#adaftr-field-count", "data-shown"), Some(total.to_string()));

    // The shipped model is described: inputs show labels, with the column name and the
    // description as the help the input names.
    let labelled = b.schema.categorical.iter().position(|f| f.info.label.is_some()).expect("a labelled field");
    let f = &b.schema.categorical[labelled];
    let label = m.find(&format!("label[for='adaftr-cat-{labelled}']")).unwrap().text_content().unwrap();
    assert_eq!(Some(label.as_str()), f.info.label.as_deref());
    let help = m.attr(&format!("#adaftr-cat-{labelled}"), "aria-describedby").unwrap();
    let help = m.find(&format!("#{help}")).unwrap().text_content().unwrap();
    assert!(help.contains(&f.name) && help.contains(f.info.description.as_deref().unwrap()), "{help}");
    assert!(m.root.query_selector_all("fieldset.group legend").unwrap().length() > 0, "fields are grouped");

    // A word of a label (upper case), a column-name prefix, a word of a description.
    let word = f.info.label.as_deref().unwrap().split(' ').next().unwrap().to_uppercase();
    let in_description = f.info.description.as_deref().unwrap().split(' ').max_by_key(|w| w.len()).unwrap();
    let (p, inst) = m.prediction();
    let runs = || m.attr("#adaftr-diag", "data-predictions");
    let runs_before = runs();
    let name = b.schema.numeric[0].name.clone();
    for q in [word.as_str(), name.as_str(), in_description] {
        search.set_value(q);
        m.fire(&search, "input");
        let want = expected_fields(&b.schema, q);
        let mut got = std::collections::BTreeSet::new();
        for _ in 0..100 {
            got = shown_fields(&m).into_iter().collect();
            if got == want {
                break;
            }
            sleep(20).await;
        }
        assert_eq!(got, want, "the fields matching {q}");
        assert!(search.is_connected(), "narrowing the list keeps the search box (and its focus)");
        assert!(!got.is_empty() && got.len() < total, "{q}: {got:?}");
        let text = m.find("#adaftr-field-count").unwrap().text_content().unwrap();
        assert_eq!(text, format!("Showing {} of {total} fields", got.len()));
        assert_eq!(m.attr("#adaftr-field-count", "data-shown"), Some(got.len().to_string()));
    }
    // Searching changes no value and runs no prediction.
    assert_eq!(m.prediction(), (p, inst));
    assert_eq!(runs(), runs_before);

    search.set_value("no field is called this");
    m.fire(&search, "input");
    until("no match", || shown_fields(&m).is_empty().then_some(())).await;
    let text = m.find("#adaftr-field-count").unwrap().text_content().unwrap();
    assert!(text.contains("No field matches") && text.contains(&total.to_string()), "{text}");
    assert!(m.find("fieldset.side").is_none());

    search.set_value("");
    m.fire(&search, "input");
    until("every field back", || (shown_fields(&m).len() == total).then_some(())).await;
}

#[wasm_bindgen_test]
async fn a_bundle_without_descriptions_shows_column_names_and_searches_them() {
    let mut b = bundle();
    for f in &mut b.schema.categorical {
        f.info = Default::default();
    }
    for f in &mut b.schema.numeric {
        f.info = Default::default();
    }
    let plain = adaftr_core::bundle::save(&b.params, &b.config, &b.schema, &b.summary).unwrap();
    let m = Mounted::new().await;
    let id = m.attr("#adaftr-predictions", "data-model-id").unwrap();
    m.upload("plain.safetensors", &plain);
    until("the plain model", || (m.attr("#adaftr-predictions", "data-model-id")? != id).then_some(())).await;
    assert!(m.find("fieldset.group legend").is_none() && m.find(".help").is_none());
    let label = m.find("label[for='adaftr-num-0']").unwrap().text_content().unwrap();
    assert_eq!(label, b.schema.numeric[0].name);
    assert!(m.attr("#adaftr-num-0", "aria-describedby").is_none());

    let search: HtmlInputElement = m.find("#adaftr-field-search").unwrap().dyn_into().unwrap();
    let name = b.schema.categorical[0].name.clone();
    search.set_value(&name.to_uppercase());
    m.fire(&search, "input");
    let want = expected_fields(&b.schema, &name);
    assert!(want.contains("adaftr-cat-0"));
    until("the matching names", || {
        (shown_fields(&m).into_iter().collect::<std::collections::BTreeSet<_>>() == want).then_some(())
    })
    .await;
}
