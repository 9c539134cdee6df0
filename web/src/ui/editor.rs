//! The feature editor: one labelled input per schema field, grouped by side and within a
//! side by the fields' groups, with a search that narrows the list (`crate::fields`).

use std::rc::Rc;

use adaftr_core::inference::Instance;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::editor::numeric_range;
use crate::fields::{self, Field, FieldRef, Query};
use crate::model::LoadedModel;
use crate::state::Action;

/// A field's height on a desktop screen, its description included: the estimate of an
/// off-screen group's height (see the editor's groups).
const FIELD_HEIGHT_PX: usize = 110;

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

/// The label of a field's input, and under it its column name (where a label hides it)
/// and description; the help's id is what the input's `aria-describedby` names.
fn field_head(id: &str, f: &Field) -> (Html, Option<String>) {
    let help_id = format!("{id}-help");
    let has_help = f.has_label() || f.description.is_some();
    let head = html! {
        <div class="field-head">
            <label for={id.to_string()}>{ f.display.clone() }</label>
            if has_help {
                <p class="help" id={help_id.clone()}>
                    if f.has_label() {
                        <code class="field-name">{ f.name.clone() }</code>
                    }
                    { f.description.clone().unwrap_or_default() }
                </p>
            }
        </div>
    };
    (head, has_help.then_some(help_id))
}

#[derive(Properties, PartialEq)]
struct CatProps {
    index: usize,
    field: Field,
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
    let (head, help) = field_head(&id, &p.field);
    html! {
        <div class="field">
            { head }
            <select id={id} ref={node} {onchange} data-field={p.field.name.clone()} aria-describedby={help}>
                <option value="0" selected={p.value == 0}>{ "unknown (OOV)" }</option>
                { for p.vocab.iter().enumerate().map(|(k, v)| {
                    let id = k as u32 + 1;
                    html! { <option value={id.to_string()} selected={p.value == id}>{ v.clone() }</option> }
                }) }
            </select>
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct NumProps {
    index: usize,
    field: Field,
    lo: f32,
    hi: f32,
    value: f32,
    on_action: Callback<Action>,
}

/// A numeric field's slider: a component of its own, like [`CatInput`], so that an edit
/// re-renders the one field it changed rather than all of them.
#[function_component(NumInput)]
fn num_input(p: &NumProps) -> Html {
    let (i, lo, hi, x) = (p.index, p.lo, p.hi, p.value);
    let id = format!("adaftr-num-{i}");
    let oninput = p.on_action.reform(move |e: InputEvent| {
        let input: HtmlInputElement = e.target_unchecked_into();
        Action::SetNum(i, input.value().parse().unwrap_or(f32::NAN))
    });
    let shown = show_value(x, lo, hi);
    let (head, help) = field_head(&id, &p.field);
    html! {
        <div class="field">
            { head }
            <div class="slider">
                <input type="range" id={id.clone()} min={lo.to_string()} max={hi.to_string()}
                    step={((hi - lo) / 200.0).to_string()} value={x.to_string()} {oninput}
                    aria-valuetext={shown.clone()} data-field={p.field.name.clone()} aria-describedby={help} />
                <output for={id} id={format!("adaftr-num-{i}-value")}>{ shown }</output>
            </div>
        </div>
    }
}

#[function_component(FeatureEditor)]
pub fn feature_editor(p: &EditorProps) -> Html {
    let schema = &p.model.bundle.schema;
    let vocabs = use_memo(p.model.id, |_| {
        p.model.bundle.schema.categorical.iter().map(|f| Rc::new(f.vocab().to_vec())).collect::<Vec<_>>()
    });
    let layout = use_memo(p.model.id, |_| fields::layout(&p.model.bundle.schema));
    let query = use_state(String::new);
    let shown = {
        let layout = layout.clone();
        use_memo((p.model.id, (*query).clone()), move |(_, q)| fields::filter(&layout, &Query::new(q)))
    };
    let (sides, n_shown) = (&shown.0, shown.1);
    let total = schema.num_categorical() + schema.num_numeric();
    let on_search = {
        let query = query.clone();
        Callback::from(move |e: InputEvent| query.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let random = p.on_action.reform(|_: MouseEvent| Action::Random((js_sys::Math::random() * 1e15) as u64));
    let reset = p.on_action.reform(|_: MouseEvent| Action::Reset);
    let input = |f: &Field| match f.field {
        FieldRef::Cat(i) => html! {
            <CatInput key={f.name.clone()} index={i} field={f.clone()} vocab={vocabs[i].clone()}
                value={p.instance.cat[i]} on_action={p.on_action.clone()} />
        },
        FieldRef::Num(i) => {
            let (lo, hi) = numeric_range(&schema.numeric[i]);
            html! {
                <NumInput key={f.name.clone()} index={i} field={f.clone()} {lo} {hi} value={p.instance.num[i]}
                    on_action={p.on_action.clone()} />
            }
        }
    };
    // Each keyed list is the only child of its element: yew diffs a mixed list by position
    // from its end, which would rebuild the search box (and lose its focus) whenever the
    // number of sides shown changes.
    let side_sets = sides.iter().map(|s| {
        let key = s.title.split(' ').next().unwrap_or("x").to_lowercase();
        let groups = s.groups.iter().enumerate().map(|(k, g)| {
            // Groups off screen skip layout (`content-visibility: auto` in style.css): a random
            // example changes every input, and laying all 79 out was half of that edit's work.
            // Until a group has been on screen, its height is this estimate.
            let style = format!("contain-intrinsic-height: auto {}px", FIELD_HEIGHT_PX * g.fields.len());
            match &g.title {
                Some(title) => html! {
                    <fieldset class="group" key={format!("g-{title}")} data-group={title.clone()} {style}>
                        <legend>{ title.clone() }</legend>
                        <div>{ for g.fields.iter().map(&input) }</div>
                    </fieldset>
                },
                None => html! {
                    <div class="group" key={format!("u-{k}")} {style}>{ for g.fields.iter().map(&input) }</div>
                },
            }
        });
        html! {
            <fieldset class="side" id={format!("adaftr-side-{key}")} key={key.clone()}>
                <legend>{ s.title }</legend>
                <div>{ for groups }</div>
            </fieldset>
        }
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
            <div class="field-search" role="search">
                <label for="adaftr-field-search">{ "Find a field" }</label>
                <input type="search" id="adaftr-field-search" value={(*query).clone()} oninput={on_search}
                    placeholder="name or description" autocomplete="off" aria-describedby="adaftr-field-count" />
                <p id="adaftr-field-count" class={classes!("hint", (n_shown == 0).then_some("none"))} aria-live="polite"
                    data-shown={n_shown.to_string()} data-total={total.to_string()}>
                    { fields::count_text(n_shown, total, &query) }
                </p>
            </div>
            <div>{ for side_sets }</div>
        </section>
    }
}
