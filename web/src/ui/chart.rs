//! The what-if chart: one feature swept, the others held, drawn as inline SVG; a
//! compared model's curves dashed over the same axes.

use std::rc::Rc;

use adaftr_core::inference::Prediction;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use super::compare::Overlay;
use crate::model::LoadedModel;
use crate::state::Action;
use crate::sweep::{self, chart_compared, points_attr, FeatureRef, SweepPlan};

pub(super) type SweepResult = Option<Result<(SweepPlan, Vec<Prediction>), String>>;

#[derive(Properties, PartialEq)]
pub struct WhatIfProps {
    pub model: Rc<LoadedModel>,
    pub feature: Option<FeatureRef>,
    pub sweep: Rc<SweepResult>,
    pub on_action: Callback<Action>,
    /// A compared model's curves.
    #[prop_or_default]
    pub overlay: Rc<Option<Overlay>>,
}

const COLOURS: [(&str, &str); 4] =
    [("pCTR", "#1f6feb"), ("pCVR", "#d4730b"), ("pCTCVR", "#1a7f37"), ("tau", "#8250df")];

fn colour(name: &str) -> &'static str {
    COLOURS.iter().find(|(n, _)| *n == name).map_or("#333", |(_, c)| c)
}

#[function_component(WhatIf)]
pub fn what_if(p: &WhatIfProps) -> Html {
    let schema = &p.model.bundle.schema;
    let node = use_node_ref();
    {
        let node = node.clone();
        use_effect_with(p.feature, move |f| {
            if let (Some(sel), Some(f)) = (node.cast::<HtmlSelectElement>(), f) {
                sel.set_value(&f.key());
            }
        });
    }
    let onchange = {
        let on_action = p.on_action.clone();
        Callback::from(move |e: Event| {
            let sel: HtmlSelectElement = e.target_unchecked_into();
            if let Some(f) = FeatureRef::parse(&sel.value()) {
                on_action.emit(Action::Sweep(f));
            }
        })
    };
    let options = sweep::all_features(schema).into_iter().map(|f| {
        let kind = if matches!(f, FeatureRef::Cat(_)) { "categorical" } else { "numeric" };
        html! { <option value={f.key()} selected={p.feature == Some(f)}>{ format!("{} ({kind})", f.name(schema).unwrap_or("?")) }</option> }
    });
    let body = match p.sweep.as_ref() {
        Some(Ok((plan, preds))) => draw(plan, preds, &p.model, p.overlay.as_ref().as_ref()),
        Some(Err(e)) => {
            html! { <p class="error" role="alert">{ format!("Sweep failed: {e}") }</p> }
        }
        None => html! {},
    };
    html! {
        <section class="card whatif" aria-labelledby="adaftr-whatif-title">
            <h2 id="adaftr-whatif-title">{ "What if…" }</h2>
            <div class="field">
                <label for="adaftr-sweep-feature">{ "Vary this feature, keep the others:" }</label>
                <select id="adaftr-sweep-feature" ref={node} {onchange}>{ for options }</select>
            </div>
            { body }
        </section>
    }
}

fn draw(plan: &SweepPlan, preds: &[Prediction], model: &LoadedModel, overlay: Option<&Overlay>) -> Html {
    let schema = &model.bundle.schema;
    let (mut lo, mut hi) = model.tau_bounds();
    let other = match overlay.and_then(|o| o.preds.as_ref()) {
        Some(Ok(o)) if o.len() == preds.len() => Some(o.as_slice()),
        _ => None,
    };
    if let (Some(o), Some(_)) = (overlay, other) {
        (lo, hi) = (lo.min(o.tau_bounds.0), hi.max(o.tau_bounds.1));
    }
    let c = chart_compared(plan, preds, other, lo, hi);
    let name = plan.feature.name(schema).unwrap_or("?").to_string();
    let w = sweep::WIDTH;
    let (x0, x1) = (sweep::LEFT, w - sweep::RIGHT);
    let axis = |(top, bottom): (f32, f32), lo_label: String, hi_label: String| {
        html! {
            <g class="axis">
                <line x1={x0.to_string()} y1={bottom.to_string()} x2={x1.to_string()} y2={bottom.to_string()} />
                <line x1={x0.to_string()} y1={top.to_string()} x2={x0.to_string()} y2={bottom.to_string()} />
                <line class="grid" x1={x0.to_string()} y1={((top + bottom) / 2.0).to_string()} x2={x1.to_string()} y2={((top + bottom) / 2.0).to_string()} />
                <text x={(x0 - 4.0).to_string()} y={(top + 4.0).to_string()} text-anchor="end">{ hi_label }</text>
                <text x={(x0 - 4.0).to_string()} y={(bottom + 4.0).to_string()} text-anchor="end">{ lo_label }</text>
            </g>
        }
    };
    let few = plan.xs.len() <= 12;
    let line = |l: &sweep::Line| {
        let col = colour(l.name);
        html! {
            <g class="series" data-series={l.name}>
                <polyline points={points_attr(&l.points)} fill="none" stroke={col} stroke-width="2" />
                if !plan.numeric {
                    { for l.points.iter().map(|(x, y)| html! { <circle cx={x.to_string()} cy={y.to_string()} r="3" fill={col} /> }) }
                }
            </g>
        }
    };
    // The compared model: the same colours, dashed, hollow markers.
    let other_line = |l: &sweep::Line| {
        let col = colour(l.name);
        html! {
            <g class="series compare" data-series={l.name} data-model="compare">
                <polyline points={points_attr(&l.points)} fill="none" stroke={col} stroke-width="2" stroke-dasharray="6 4" />
                if !plan.numeric {
                    { for l.points.iter().map(|(x, y)| html! { <circle cx={x.to_string()} cy={y.to_string()} r="3" fill="#fff" stroke={col} /> }) }
                }
            </g>
        }
    };
    let x_labels = if plan.numeric {
        let (a, b) =
            (plan.labels.first().cloned().unwrap_or_default(), plan.labels.last().cloned().unwrap_or_default());
        html! {
            <>
                <text x={x0.to_string()} y={(c.tau_panel.1 + 16.0).to_string()} text-anchor="start">{ a }</text>
                <text x={x1.to_string()} y={(c.tau_panel.1 + 16.0).to_string()} text-anchor="end">{ b }</text>
            </>
        }
    } else if few {
        html! { for plan.labels.iter().zip(&c.probs[0].points).map(|(l, (x, _))| html! {
            <text x={x.to_string()} y={(c.tau_panel.1 + 16.0).to_string()} text-anchor="middle" class="cat-label">{ l.clone() }</text>
        }) }
    } else {
        html! { <text x={x0.to_string()} y={(c.tau_panel.1 + 16.0).to_string()}>{ format!("{} values", plan.xs.len()) }</text> }
    };
    let mut desc = format!(
        "pCTR, pCVR and pCTCVR (top, 0 to {:.3}) and tau (bottom, {} to {}) as {name} varies over {} {}",
        c.prob_max,
        c.tau_range.0,
        c.tau_range.1,
        plan.xs.len(),
        if plan.numeric { "points" } else { "values" }
    );
    if let (Some(o), Some(_)) = (overlay, other) {
        desc.push_str(&format!("; dashed: the same for {}", o.name));
    }
    html! {
        <figure class="chart">
            <svg id="adaftr-chart" viewBox={format!("0 0 {w} {}", c.height)} role="img" aria-label={desc.clone()}
                data-points={plan.xs.len().to_string()} data-feature={name.clone()} preserveAspectRatio="xMidYMid meet"
                data-compare-ms={overlay.map(|o| o.ms.to_string())}>
                <title>{ desc }</title>
                { axis(c.prob_panel, "0".into(), format!("{:.3}", c.prob_max)) }
                { axis(c.tau_panel, format!("{}", c.tau_range.0), format!("{}", c.tau_range.1)) }
                <line class="current" x1={c.current_px.to_string()} y1={c.prob_panel.0.to_string()}
                    x2={c.current_px.to_string()} y2={c.tau_panel.1.to_string()} />
                { for c.probs.iter().map(line) }
                { for c.tau.iter().map(line) }
                { for c.other.iter().map(other_line) }
                { x_labels }
            </svg>
            <figcaption class="legend">
                { for COLOURS.iter().map(|(n, col)| html! { <span><i style={format!("background:{col}")}></i>{ *n }</span> }) }
                <span class="muted">{ format!("dashed line: current {name}") }</span>
                if let Some(o) = overlay {
                    <span class="legend-models" id="adaftr-chart-models">
                        <span><i class="solid"></i>{ format!("{} (solid)", model.name) }</span>
                        <span><i class="dashed"></i>{ format!("{} (dashed)", o.name) }</span>
                        { overlay_note(o, &name) }
                    </span>
                }
                if plan.omitted > 0 {
                    <span class="muted">{ format!("{} more values not shown", plan.omitted) }</span>
                }
            </figcaption>
        </figure>
    }
}

/// Why the compared model's curves look as they do, when it is not plain.
fn overlay_note(o: &Overlay, feature: &str) -> Html {
    let text = match &o.preds {
        None => format!("{} shares no field with this model: no curves", o.name),
        Some(Err(e)) => format!("{} failed to predict: {e}", o.name),
        Some(Ok(_)) if !o.has_feature => format!("{} has no field {feature}: its curves are flat", o.name),
        Some(Ok(_)) => return html! {},
    };
    html! { <span class="muted" id="adaftr-chart-compare-note">{ text }</span> }
}
