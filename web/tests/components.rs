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
}

impl Mounted {
    async fn new() -> Self {
        let doc = web_sys::window().unwrap().document().unwrap();
        let root = doc.create_element("div").unwrap();
        doc.body().unwrap().append_child(&root).unwrap();
        let source = Source::Bytes {
            name: "default-model.safetensors".into(),
            model: Rc::new(MODEL.to_vec()),
            examples_json: Some(Rc::from(EXAMPLES)),
        };
        yew::Renderer::<App>::with_root_and_props(root.clone(), AppProps { source }).render();
        let m = Mounted { root };
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
    // One labelled input per feature, plus the field search, the sweep picker, the upload
    // and the Train panel's seven (CSV, schema, start, backbone, mode, epochs, validation
    // share).
    let inputs = m.root.query_selector_all("select, input").unwrap();
    assert_eq!(inputs.length() as usize, b.schema.num_categorical() + b.schema.num_numeric() + 3 + 7);
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
    assert_eq!(m.find("#adaftr-num-0-value").unwrap().text_content().unwrap(), adaftr_web::ui::show_value(v, lo, hi));

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
