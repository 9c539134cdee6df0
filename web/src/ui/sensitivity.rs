//! Which features matter for this instance: the features ranked by how far each moves the
//! chosen output; a row is a button that shows its feature in the what-if chart.

use std::rc::Rc;

use yew::prelude::*;

use super::select::Select;
use crate::format::{exact, percent};
use crate::sensitivity::{self, rank, Output, Row, Span, TOP_ROWS};
use crate::state::{Action, PanelAction};
use crate::sweep::FeatureRef;

#[derive(Properties, PartialEq)]
pub struct SensitivityProps {
    pub rows: Rc<Option<Result<Vec<Row>, String>>>,
    pub rank_by: Output,
    /// The feature the what-if chart shows.
    pub sweep: Option<FeatureRef>,
    pub on_action: Callback<Action>,
}

fn show(o: Output, s: Span) -> String {
    match o {
        Output::Tau => format!("{:.3}–{:.3}", s.min, s.max),
        _ => format!("{}–{}", percent(s.min), percent(s.max)),
    }
}

#[function_component(Sensitivity)]
pub fn sensitivity_panel(p: &SensitivityProps) -> Html {
    let all = use_state_eq(|| false);
    let options = use_memo((), |_| {
        Rc::new(Output::ALL.iter().map(|o| (o.key().to_string(), o.label().to_string())).collect::<Vec<_>>())
    });
    let rows = match p.rows.as_ref() {
        Some(Ok(rows)) => rows,
        Some(Err(e)) => {
            return html! { <section class="card sensitivity" id="adaftr-sensitivity"><p class="error" role="alert">{ format!("Sensitivity failed: {e}") }</p></section> }
        }
        None => return html! {},
    };
    let has_tau = rows.iter().all(|r| r.tau.is_some());
    let by = p.rank_by.or_available(has_tau);
    let ranked = rank(rows, by);
    let json = serde_json::to_string(&ranked).unwrap_or_default();
    let widest = ranked.first().and_then(|r| r.span(by)).map_or(0.0, Span::width);
    let on_rank =
        p.on_action.reform(|v: String| Action::Panel(PanelAction::RankBy(Output::parse(&v).unwrap_or_default())));
    let outputs: Vec<Output> = Output::ALL.into_iter().filter(|o| has_tau || *o != Output::Tau).collect();
    let row = |r: &&Row| {
        let f = r.feature;
        let onclick = p.on_action.reform(move |_: MouseEvent| Action::Sweep(f));
        let w = r.span(by).map_or(0.0, Span::width);
        let share = if widest > 0.0 { w / widest * 100.0 } else { 0.0 };
        let ranges = outputs
            .iter()
            .filter_map(|&o| Some(format!("{} {}", o.label(), show(o, r.span(o)?))))
            .collect::<Vec<_>>()
            .join(" · ");
        html! {
            <li>
                <button type="button" class="sens-row" data-feature={r.name.clone()} data-width={exact(w)}
                    aria-pressed={(p.sweep == Some(f)).to_string()} {onclick}>
                    <span class="sens-name">{ format!("{} ({})", r.name, r.kind) }</span>
                    <span class="sens-bar" aria-hidden="true"><i style={format!("width:{share:.1}%")}></i></span>
                    <span class="sens-ranges">{ ranges }</span>
                </button>
            </li>
        }
    };
    html! {
        <section class="card sensitivity" id="adaftr-sensitivity" aria-labelledby="adaftr-sensitivity-title"
            data-ranking={json} data-rank-by={by.key()}>
            <h2 id="adaftr-sensitivity-title">{ "Which features matter, for this instance" }</h2>
            <Select id="adaftr-rank-by" label="Rank features by how far they move:" options={(*options).clone()}
                value={by.key().to_string()} on_change={on_rank} />
            <p class="hint">{ format!(
                "Each feature is moved over its range with the others held: a numeric over {} values from its minimum to its maximum, a categorical over unknown (OOV) and its {} most frequent values; the instance's own values count too. The bar is how far {} moves, against the top feature. Choose a feature to see it in the what-if chart.",
                sensitivity::NUMERIC_POINTS, sensitivity::MAX_CATEGORICAL_VALUES - 1, by.label()
            ) }</p>
            <ol class="sens-list">{ for ranked.iter().take(if *all { ranked.len() } else { TOP_ROWS }).map(row) }</ol>
            if ranked.len() > TOP_ROWS {
                <button type="button" id="adaftr-sens-all" aria-expanded={all.to_string()}
                    onclick={{ let all = all.clone(); move |_: MouseEvent| all.set(!*all) }}>
                    { if *all { format!("Show the top {TOP_ROWS}") } else { format!("Show all {} features", ranked.len()) } }
                </button>
            }
        </section>
    }
}
