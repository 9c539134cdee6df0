//! Where models come from: the default model (fetched, or given as bytes in tests), the
//! shipped comparison model beside it, and files the user uploads. Each ends in one
//! [`Action`] for the reducer, for the [`Slot`] it fills.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::editor::parse_examples;
use crate::model::{check_upload, LoadedModel};
use crate::state::{Action, Slot};

/// Where the default model comes from.
#[derive(Clone, PartialEq)]
pub enum Source {
    /// Fetched with relative URLs (the shipped site).
    Fetch { model_url: String, examples_url: Option<String> },
    /// Given as bytes (tests).
    Bytes { name: String, model: Rc<Vec<u8>>, examples_json: Option<Rc<str>> },
}

impl Default for Source {
    fn default() -> Self {
        Source::Fetch {
            model_url: "assets/default-model.safetensors".into(),
            examples_url: Some("assets/examples.json".into()),
        }
    }
}

/// The shipped comparison model's file, beside the default model.
const COMPARE_MODEL: &str = "plain-ple.safetensors";

impl Source {
    /// The shipped model to compare with, when the default model comes from the site.
    pub fn comparison(&self) -> Option<Source> {
        let Source::Fetch { model_url, .. } = self else { return None };
        let dir = model_url.rfind('/').map_or("", |i| &model_url[..=i]);
        Some(Source::Fetch { model_url: format!("{dir}{COMPARE_MODEL}"), examples_url: None })
    }
}

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

fn next_model_id() -> u64 {
    NEXT_ID.with(|c| {
        let id = c.get();
        c.set(id + 1);
        id
    })
}

pub(crate) fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| format!("{e:?}"))
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response =
        JsFuture::from(window.fetch_with_str(url)).await.map_err(js_err)?.dyn_into().map_err(js_err)?;
    if !resp.ok() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(js_err)?).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buf).to_vec())
}

/// Loads a model from `source` (and its examples, which are optional) into `slot`.
pub async fn load_source(source: Source, slot: Slot) -> Action {
    let (name, bytes, examples) = match source {
        Source::Bytes { name, model, examples_json } => {
            (name, Ok(model.to_vec()), examples_json.map(|s| s.to_string()))
        }
        Source::Fetch { model_url, examples_url } => {
            let bytes = fetch_bytes(&model_url).await;
            let examples = match examples_url {
                Some(u) => fetch_bytes(&u).await.ok().and_then(|b| String::from_utf8(b).ok()),
                None => None,
            };
            let name = model_url.rsplit('/').next().unwrap_or(&model_url).to_string();
            (name, bytes, examples)
        }
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            return Action::LoadFailed(match slot {
                Slot::Main => format!("Could not fetch the default model ({e}). Upload a model below."),
                Slot::Compare => format!("Could not fetch `{name}` ({e}). The current model is still loaded."),
            })
        }
    };
    // Examples are optional: a broken examples file only loses the examples.
    let examples = examples.and_then(|j| parse_examples(&j).ok()).unwrap_or_default();
    match LoadedModel::from_bytes(next_model_id(), &name, &bytes, examples) {
        Ok(m) => slot.loaded(Rc::new(m)),
        Err(e) => Action::LoadFailed(e),
    }
}

/// Checks the size first (the File's size, before reading), then reads and loads it into
/// `slot`, sending each step to `dispatch`. A failure leaves every slot as it was.
pub fn load_file(file: web_sys::File, slot: Slot, dispatch: impl Fn(Action) + 'static) {
    let name = file.name();
    if let Err(msg) = check_upload(&name, file.size()) {
        dispatch(Action::LoadFailed(msg));
        return;
    }
    dispatch(Action::Loading(name.clone()));
    spawn_local(async move {
        let action = match JsFuture::from(file.array_buffer()).await {
            Ok(buf) => {
                let bytes = Uint8Array::new(&buf).to_vec();
                match LoadedModel::from_bytes(next_model_id(), &name, &bytes, Vec::new()) {
                    Ok(m) => slot.loaded(Rc::new(m)),
                    Err(e) => Action::LoadFailed(e),
                }
            }
            Err(e) => Action::LoadFailed(format!(
                "Could not read `{name}`: {}. The current model is still loaded.",
                js_err(e)
            )),
        };
        dispatch(action);
    });
}

/// A model trained in this page (the Train panel's worker sent its bundle).
pub fn load_trained(name: &str, bytes: &[u8]) -> Action {
    match LoadedModel::from_bytes(next_model_id(), name, bytes, Vec::new()) {
        Ok(m) => Action::Loaded(Rc::new(m)),
        Err(e) => Action::LoadFailed(e),
    }
}
