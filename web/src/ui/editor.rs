//! The feature editor: one labelled input per schema field, grouped by side and within a
//! side by the fields' groups, with a search that narrows the list (`crate::fields`).

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use adaftr_core::inference::Instance;
use adaftr_core::schema::NumericField;
use js_sys::Array;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{
    Element, HtmlInputElement, HtmlSelectElement, IntersectionObserver, IntersectionObserverEntry,
    IntersectionObserverInit,
};
use yew::prelude::*;

use super::paint::{after_next_paint, follow_up_begins};
use crate::editor::{numeric_range, OffScreen};
use crate::fields::{self, Field, FieldRef, Query};
use crate::format::show_value;
use crate::model::LoadedModel;
use crate::state::Action;

/// A field's height on a desktop screen, its description included: the estimate of an
/// off-screen group's height (see the editor's groups).
const FIELD_HEIGHT_PX: usize = 110;

#[derive(Properties, PartialEq)]
pub struct EditorProps {
    pub model: Rc<LoadedModel>,
    pub instance: Instance,
    /// What the inputs off the screen show while they are behind `instance`
    /// ([`use_off_screen`]).
    #[prop_or_default]
    pub off_screen: Option<Instance>,
    pub example: Option<String>,
    pub on_action: Callback<Action>,
}

#[derive(Properties, PartialEq)]
struct HeadProps {
    /// The id of the input the label names.
    input: AttrValue,
    /// The id of the help paragraph, where the field has one.
    help: Option<AttrValue>,
    field: Rc<Field>,
}

/// The label of a field's input, and under it its column name (where a label hides it)
/// and description. A component of its own so that a new value, which changes only the
/// input, does not rebuild and diff the text around it.
#[function_component(FieldHead)]
fn field_head(p: &HeadProps) -> Html {
    let f = &p.field;
    html! {
        <div class="field-head">
            <label for={p.input.clone()}>{ f.display.clone() }</label>
            if let Some(help) = &p.help {
                <p class="help" id={help.clone()}>
                    if f.has_label() {
                        <code class="field-name">{ f.name.clone() }</code>
                    }
                    { f.description.clone().unwrap_or_default() }
                </p>
            }
        </div>
    }
}

/// A field's input id, and the id of its help paragraph (what the input's
/// `aria-describedby` names) where it has one.
fn field_ids(prefix: &str, i: usize, f: &Field) -> (AttrValue, Option<AttrValue>) {
    let id = format!("adaftr-{prefix}-{i}");
    let help = (f.has_label() || f.description.is_some()).then(|| AttrValue::from(format!("{id}-help")));
    (id.into(), help)
}

#[derive(Properties, PartialEq)]
struct OptionsProps {
    vocab: Rc<Vec<String>>,
}

/// A categorical field's options, value 0 first. They depend on the vocabulary alone, so a
/// new selection re-renders none of them (one field has 1,200).
#[function_component(CatOptions)]
fn cat_options(p: &OptionsProps) -> Html {
    html! {
        <>
            <option value="0">{ "unknown (OOV)" }</option>
            { for p.vocab.iter().enumerate().map(|(k, v)| html! { <option value={(k + 1).to_string()}>{ v.clone() }</option> }) }
        </>
    }
}

#[derive(Properties, PartialEq)]
struct CatProps {
    index: usize,
    field: Rc<Field>,
    vocab: Rc<Vec<String>>,
    value: u32,
    on_action: Callback<Action>,
}

/// A `<select>` whose selection follows the state: set as the element's value after each
/// render that changes it or the options, so Reset and Random work after the user has
/// changed it.
#[function_component(CatInput)]
fn cat_input(p: &CatProps) -> Html {
    let node = use_node_ref();
    {
        let node = node.clone();
        use_effect_with((p.value, p.vocab.clone()), move |(v, _)| {
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
    let (id, help) = field_ids("cat", i, &p.field);
    html! {
        <div class="field">
            <FieldHead input={id.clone()} help={help.clone()} field={p.field.clone()} />
            <select {id} ref={node} {onchange} data-field={p.field.name.clone()} aria-describedby={help}>
                <CatOptions vocab={p.vocab.clone()} />
            </select>
        </div>
    }
}

/// A slider's range and the attributes that follow from it, made once per model rather
/// than formatted again on every value.
#[derive(PartialEq)]
struct SliderRange {
    lo: f32,
    hi: f32,
    min: AttrValue,
    max: AttrValue,
    step: AttrValue,
}

impl SliderRange {
    fn new(f: &NumericField) -> Self {
        let (lo, hi) = numeric_range(f);
        let attr = |x: f32| AttrValue::from(x.to_string());
        Self { lo, hi, min: attr(lo), max: attr(hi), step: attr((hi - lo) / 200.0) }
    }
}

#[derive(Properties, PartialEq)]
struct NumProps {
    index: usize,
    field: Rc<Field>,
    range: Rc<SliderRange>,
    value: f32,
    on_action: Callback<Action>,
}

/// A numeric field's slider: a component of its own, like [`CatInput`], so that an edit
/// re-renders the one field it changed rather than all of them.
#[function_component(NumInput)]
fn num_input(p: &NumProps) -> Html {
    let (i, r, x) = (p.index, &p.range, p.value);
    let oninput = p.on_action.reform(move |e: InputEvent| {
        let input: HtmlInputElement = e.target_unchecked_into();
        Action::SetNum(i, input.value().parse().unwrap_or(f32::NAN))
    });
    let shown = show_value(x, r.lo, r.hi);
    let (id, help) = field_ids("num", i, &p.field);
    html! {
        <div class="field">
            <FieldHead input={id.clone()} help={help.clone()} field={p.field.clone()} />
            <div class="slider">
                <input type="range" id={id.clone()} min={r.min.clone()} max={r.max.clone()}
                    step={r.step.clone()} value={x.to_string()} {oninput}
                    aria-valuetext={shown.clone()} data-field={p.field.name.clone()} aria-describedby={help} />
                <output for={id} id={format!("adaftr-num-{i}-value")}>{ shown }</output>
            </div>
        </div>
    }
}

/// What the editor's inputs off the screen show (see [`OffScreen`]): `None` when they show
/// `inst`. While they are behind, they follow in a render of their own just after the first
/// paint with `others_done` (the panels current), so in a frame of their own rather than on
/// top of the panels'; but after [`CATCH_UP_WITHIN`] frames at most, so that a panel worker
/// that never answers cannot leave them behind. A follow-up, timed like the panels'
/// ([`super::paint`]).
#[hook]
pub fn use_off_screen(model: Option<u64>, inst: &Instance, others_done: bool) -> Option<Instance> {
    let update = use_force_update();
    let c = use_memo((), |_| CatchUp {
        off: RefCell::new(OffScreen::new(model, inst)),
        asked: Cell::new(false),
        others_done: Cell::new(true),
        update,
    });
    c.others_done.set(others_done);
    let behind = c.off.borrow_mut().see(model, inst);
    let wait = behind.is_some();
    use_effect(move || {
        if wait && !c.asked.replace(true) {
            catch_up_after_paint(c, CATCH_UP_WITHIN);
        }
    });
    behind
}

/// The most frames the editor's inputs off the screen wait for the panels.
const CATCH_UP_WITHIN: u32 = 3;

struct CatchUp {
    off: RefCell<OffScreen>,
    asked: Cell<bool>,
    others_done: Cell<bool>,
    update: UseForceUpdateHandle,
}

fn catch_up_after_paint(c: Rc<CatchUp>, frames: u32) {
    after_next_paint(move |_, _| {
        if !c.others_done.get() && frames > 1 {
            return catch_up_after_paint(c, frames - 1);
        }
        follow_up_begins();
        c.off.borrow_mut().catch_up();
        c.asked.set(false);
        c.update.force_update();
    });
}

/// Which inputs are on or near the screen, by column name, kept by an
/// `IntersectionObserver` on the inputs under `root`; `None` where there is no observer
/// (every input then counts as on screen). Observed again when the inputs shown change.
#[hook]
fn use_on_screen(root: NodeRef, inputs: (u64, String)) -> Rc<RefCell<Option<HashSet<String>>>> {
    let seen = use_mut_ref(|| None);
    {
        let seen = seen.clone();
        use_effect_with(inputs, move |_| {
            // Until an observer is watching these inputs, every input counts as on screen.
            *seen.borrow_mut() = None;
            let observer = root.cast::<Element>().and_then(|el| observe(&el, seen.clone()));
            move || {
                if let Some((o, _on_change)) = observer {
                    o.disconnect();
                }
            }
        });
    }
    seen
}

type OnChange = Closure<dyn FnMut(Array)>;

/// Watches the inputs under `root`, keeping `seen` (empty at first: the observer reports
/// each input once it starts); `None` where no observer can be made.
fn observe(root: &Element, seen: Rc<RefCell<Option<HashSet<String>>>>) -> Option<(IntersectionObserver, OnChange)> {
    let on_change = {
        let seen = seen.clone();
        Closure::<dyn FnMut(Array)>::new(move |entries: Array| {
            let mut seen = seen.borrow_mut();
            let Some(seen) = seen.as_mut() else { return };
            for e in entries.iter() {
                let e: IntersectionObserverEntry = e.unchecked_into();
                let Some(name) = e.target().get_attribute("data-field") else { continue };
                if e.is_intersecting() {
                    seen.insert(name);
                } else {
                    seen.remove(&name);
                }
            }
        })
    };
    // A margin, so that an input scrolled into view was already counted.
    let init = IntersectionObserverInit::new();
    init.set_root_margin("200px 0px");
    let observer = IntersectionObserver::new_with_options(on_change.as_ref().unchecked_ref(), &init).ok()?;
    let inputs = root.query_selector_all("[data-field]").ok()?;
    *seen.borrow_mut() = Some(HashSet::new());
    for i in 0..inputs.length() {
        if let Some(el) = inputs.item(i).and_then(|n| n.dyn_into::<Element>().ok()) {
            observer.observe(&el);
        }
    }
    Some((observer, on_change))
}

#[function_component(FeatureEditor)]
pub fn feature_editor(p: &EditorProps) -> Html {
    let schema = &p.model.bundle.schema;
    let vocabs = use_memo(p.model.id, |_| {
        p.model.bundle.schema.categorical.iter().map(|f| Rc::new(f.vocab().to_vec())).collect::<Vec<_>>()
    });
    let ranges = use_memo(p.model.id, |_| {
        p.model.bundle.schema.numeric.iter().map(|f| Rc::new(SliderRange::new(f))).collect::<Vec<_>>()
    });
    let layout = use_memo(p.model.id, |_| fields::layout(&p.model.bundle.schema));
    let query = use_state(String::new);
    let shown = {
        let layout = layout.clone();
        use_memo((p.model.id, (*query).clone()), move |(_, q)| fields::filter(&layout, &Query::new(q)))
    };
    let (sides, n_shown) = (&shown.0, shown.1);
    let root = use_node_ref();
    let on_screen = use_on_screen(root.clone(), (p.model.id, (*query).clone()));
    let on_screen = on_screen.borrow();
    // An input off the screen shows `off_screen` while there is one.
    let source = |f: &Field| match (&p.off_screen, on_screen.as_ref()) {
        (Some(off), Some(seen)) if !seen.contains(&f.name) => off,
        _ => &p.instance,
    };
    let total = schema.num_categorical() + schema.num_numeric();
    let on_search = {
        let query = query.clone();
        Callback::from(move |e: InputEvent| query.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let random = p.on_action.reform(|_: MouseEvent| Action::Random((js_sys::Math::random() * 1e15) as u64));
    let reset = p.on_action.reform(|_: MouseEvent| Action::Reset);
    let input = |f: &Rc<Field>| match f.field {
        FieldRef::Cat(i) => html! {
            <CatInput key={f.name.clone()} index={i} field={f.clone()} vocab={vocabs[i].clone()}
                value={source(f).cat[i]} on_action={p.on_action.clone()} />
        },
        FieldRef::Num(i) => html! {
            <NumInput key={f.name.clone()} index={i} field={f.clone()} range={ranges[i].clone()}
                value={source(f).num[i]} on_action={p.on_action.clone()} />
        },
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
        <section class="card editor" aria-labelledby="adaftr-editor-title" ref={root}
            aria-busy={p.off_screen.is_some().to_string()}>
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
