//! The feature editor: one labelled input per schema field, grouped by side.

use std::rc::Rc;

use adaftr_core::inference::Instance;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::editor::numeric_range;
use crate::model::{LoadedModel, SIDES};
use crate::state::Action;

#[derive(Properties, PartialEq)]
pub struct EditorProps {
    pub model: Rc<LoadedModel>,
    pub instance: Instance,
    pub example: Option<String>,
    pub on_action: Callback<Action>,
}

/// A numeric value with a precision that suits its range.
pub fn show_value(x: f32, lo: f32, hi: f32) -> String {
    let span = (hi - lo).abs();
    if span >= 100.0 {
        format!("{x:.1}")
    } else if span >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[derive(Properties, PartialEq)]
struct CatProps {
    index: usize,
    name: AttrValue,
    vocab: Rc<Vec<String>>,
    value: u32,
    on_action: Callback<Action>,
}

/// A `<select>` whose selection follows the state (set as a property, so Reset and
/// Random work after the user has changed it).
#[function_component(CatInput)]
fn cat_input(p: &CatProps) -> Html {
    let node = use_node_ref();
    {
        let node = node.clone();
        use_effect_with(p.value, move |v| {
            if let Some(sel) = node.cast::<HtmlSelectElement>() {
                sel.set_value(&v.to_string());
            }
        });
    }
    let i = p.index;
    let onchange = p.on_action.reform(move |e: Event| {
        let sel: HtmlSelectElement = e.target_unchecked_into();
        Action::SetCat(i, sel.value().parse().unwrap_or(0))
    });
    let id = format!("adaftr-cat-{i}");
    html! {
        <div class="field">
            <label for={id.clone()}>{ p.name.clone() }</label>
            <select id={id} ref={node} {onchange} data-field={p.name.clone()}>
                <option value="0" selected={p.value == 0}>{ "unknown (OOV)" }</option>
                { for p.vocab.iter().enumerate().map(|(k, v)| {
                    let id = k as u32 + 1;
                    html! { <option value={id.to_string()} selected={p.value == id}>{ v.clone() }</option> }
                }) }
            </select>
        </div>
    }
}

#[function_component(FeatureEditor)]
pub fn feature_editor(p: &EditorProps) -> Html {
    let schema = &p.model.bundle.schema;
    let vocabs = use_memo(p.model.id, |_| {
        p.model.bundle.schema.categorical.iter().map(|f| Rc::new(f.vocab().to_vec())).collect::<Vec<_>>()
    });
    let random = p.on_action.reform(|_: MouseEvent| Action::Random((js_sys::Math::random() * 1e15) as u64));
    let reset = p.on_action.reform(|_: MouseEvent| Action::Reset);
    let groups = SIDES.iter().filter_map(|&(side, title)| {
        let cats: Vec<usize> = (0..schema.num_categorical()).filter(|&i| schema.categorical[i].side == side).collect();
        let nums: Vec<usize> = (0..schema.num_numeric()).filter(|&i| schema.numeric[i].side == side).collect();
        if cats.is_empty() && nums.is_empty() {
            return None;
        }
        let cat_inputs = cats.into_iter().map(|i| {
            html! {
                <CatInput index={i} name={AttrValue::from(schema.categorical[i].name.clone())}
                    vocab={vocabs[i].clone()} value={p.instance.cat[i]} on_action={p.on_action.clone()} />
            }
        });
        let num_inputs = nums.into_iter().map(|i| {
            let f = &schema.numeric[i];
            let (lo, hi) = numeric_range(f);
            let x = p.instance.num[i];
            let id = format!("adaftr-num-{i}");
            let oninput = p.on_action.reform(move |e: InputEvent| {
                let input: HtmlInputElement = e.target_unchecked_into();
                Action::SetNum(i, input.value().parse().unwrap_or(f32::NAN))
            });
            let shown = show_value(x, lo, hi);
            html! {
                <div class="field">
                    <label for={id.clone()}>{ f.name.clone() }</label>
                    <div class="slider">
                        <input type="range" id={id.clone()} min={lo.to_string()} max={hi.to_string()}
                            step={((hi - lo) / 200.0).to_string()} value={x.to_string()} {oninput}
                            aria-valuetext={shown.clone()} data-field={f.name.clone()} />
                        <output for={id} id={format!("adaftr-num-{i}-value")}>{ shown }</output>
                    </div>
                </div>
            }
        });
        let gid = format!("adaftr-side-{}", title.split(' ').next().unwrap_or("x").to_lowercase());
        Some(html! {
            <fieldset class="side" id={gid}>
                <legend>{ title }</legend>
                { for cat_inputs }
                { for num_inputs }
            </fieldset>
        })
    });
    let has_examples = !p.model.examples.is_empty();
    html! {
        <section class="card editor" aria-labelledby="adaftr-editor-title">
            <h2 id="adaftr-editor-title">{ "Instance" }</h2>
            <div class="buttons">
                <button type="button" id="adaftr-random" onclick={random}>
                    { if has_examples { "Random example" } else { "Random values" } }
                </button>
                <button type="button" id="adaftr-reset" onclick={reset}>{ "Reset" }</button>
                if let Some(label) = &p.example {
                    <span class="example-label" id="adaftr-example-label">{ format!("Showing: {label}") }</span>
                }
            </div>
            { for groups }
        </section>
    }
}
