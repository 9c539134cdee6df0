//! Where the tasks are related: the relatedness map (tau or pCVR over two features, a heat
//! map of canvas pixels under an SVG of axes, legend and the instance's ring) and tau over
//! the examples shipped with the model.

use std::rc::Rc;

use yew::prelude::*;

use super::select::Select;
use crate::format::{exact, tau_position};
use crate::model::LoadedModel;
use crate::relmap::{self as map, cell_centre, pixels, value_range, RelMap};
use crate::sensitivity::Output;
use crate::state::{Action, PanelAction};
use crate::sweep::{self, FeatureRef};

#[derive(Properties, PartialEq)]
pub struct RelMapProps {
    pub model: Rc<LoadedModel>,
    pub map: Rc<Option<Result<RelMap, String>>>,
    pub x: Option<FeatureRef>,
    pub y: Option<FeatureRef>,
    pub show: Output,
    /// tau of each shipped example, and of the instance.
    pub example_taus: Rc<Vec<(String, f32)>>,
    pub tau: Option<f32>,
    pub on_action: Callback<Action>,
}

#[function_component(RelatednessMap)]
pub fn relatedness_map(p: &RelMapProps) -> Html {
    let schema = &p.model.bundle.schema;
    let features = use_memo(p.model.id, |_| {
        Rc::new(
            sweep::all_features(schema)
                .into_iter()
                .map(|f| {
                    let kind = if matches!(f, FeatureRef::Cat(_)) { "categorical" } else { "numeric" };
                    (f.key(), format!("{} ({kind})", f.name(schema).unwrap_or("?")))
                })
                .collect::<Vec<_>>(),
        )
    });
    let has_tau = p.tau.is_some();
    let shows = use_memo(has_tau, |&has_tau| {
        Rc::new(
            [Output::Tau, Output::Pcvr]
                .into_iter()
                .filter(|o| has_tau || *o != Output::Tau)
                .map(|o| (o.key().to_string(), o.label().to_string()))
                .collect::<Vec<_>>(),
        )
    });
    let show = if p.show == Output::Pctr { Output::Tau } else { p.show }.or_available(has_tau);
    let axis = |y: bool| {
        let on_action = p.on_action.clone();
        Callback::from(move |v: String| {
            if let Some(feature) = FeatureRef::parse(&v) {
                on_action.emit(Action::Panel(PanelAction::MapAxis { y, feature }));
            }
        })
    };
    let on_show =
        p.on_action.reform(|v: String| Action::Panel(PanelAction::MapShow(Output::parse(&v).unwrap_or_default())));
    // Memoised on the map itself: an edit re-renders this panel for the instance's ring on
    // the examples' strip, while the map may still be the last one (in the panel worker).
    let body = use_memo((p.map.clone(), show, p.model.id), |(map, show, _)| match map.as_ref() {
        Some(Ok(m)) => heat_map(m, *show, schema),
        Some(Err(e)) => html! { <p class="error" role="alert">{ format!("Relatedness map failed: {e}") }</p> },
        None => html! { <p class="hint">{ "The map needs two features." }</p> },
    });
    let (lo, hi) = p.model.tau_bounds();
    html! {
        <section class="card relmap" aria-labelledby="adaftr-relmap-title">
            <h2 id="adaftr-relmap-title">{ "Where the tasks are related" }</h2>
            <div class="relmap-controls">
                <Select id="adaftr-map-x" label="Across:" options={(*features).clone()} value={p.x.map(FeatureRef::key).unwrap_or_default()} on_change={axis(false)} />
                <Select id="adaftr-map-y" label="Up:" options={(*features).clone()} value={p.y.map(FeatureRef::key).unwrap_or_default()} on_change={axis(true)} />
                <Select id="adaftr-map-show" label="Colour by:" options={(*shows).clone()} value={show.key().to_string()} on_change={on_show} />
            </div>
            { (*body).clone() }
            if !p.example_taus.is_empty() {
                { strip(&p.example_taus, p.tau, lo, hi) }
            }
        </section>
    }
}

fn heat_map(m: &RelMap, show: Output, schema: &adaftr_core::schema::Schema) -> Html {
    let (nx, ny) = m.size();
    let cells = m.cells(show).unwrap_or(&[]);
    let (lo, hi) = value_range(cells);
    let name = |f: FeatureRef| f.name(schema).unwrap_or("?").to_string();
    let (xn, yn) = (name(m.x.feature), name(m.y.feature));
    let image = Rc::new(pixels(cells, nx, ny, lo, hi));
    let (cx, cy) = cell_centre(m.x.current, m.y.current, nx, ny);
    let ends = |a: &map::Axis| {
        if a.numeric() {
            (a.labels.first().cloned().unwrap_or_default(), a.labels.last().cloned().unwrap_or_default())
        } else {
            (
                format!("{} values: {}", a.labels.len(), a.labels.first().cloned().unwrap_or_default()),
                a.labels.last().cloned().unwrap_or_default(),
            )
        }
    };
    let ((x0, x1), (y0, y1)) = (ends(&m.x), ends(&m.y));
    let (left, right, top, bottom) = (map::LEFT, map::LEFT + map::PLOT, map::TOP, map::TOP + map::PLOT);
    let fmt = |v: f32| if show == Output::Tau { format!("{v:.3}") } else { crate::format::percent(v) };
    let desc = format!(
        "{} over {xn} (across, {nx} values) and {yn} (up, {ny} values): from {} to {}; the ring marks the instance",
        show.label(),
        fmt(lo),
        fmt(hi)
    );
    let legend_w = map::PLOT;
    let reading =
        if show == Output::Tau { "low tau = closely related" } else { "probability of a purchase after a click" };
    html! {
        <figure class="chart relmap-figure">
            <CanvasImage id="adaftr-relmap-cells" class="cells" {image} {nx} {ny} area={[map::LEFT, map::TOP, map::PLOT, map::PLOT]} />
            <CanvasImage id="adaftr-relmap-legend" class="scale" image={legend_image()} nx={LEGEND_STEPS} ny={1}
                area={[map::LEFT, map::LEGEND_TOP, map::PLOT, 10.0]} />
            <svg id="adaftr-relmap" viewBox={format!("0 0 {} {}", map::WIDTH, map::HEIGHT)} role="img" aria-label={desc.clone()}
                data-x={xn.clone()} data-y={yn.clone()} data-xs={m.x.values_json()} data-ys={m.y.values_json()}
                data-tau={m.rows_json(Output::Tau)} data-pcvr={m.rows_json(Output::Pcvr)} data-show={show.key()}
                data-points={(nx * ny).to_string()} data-min={exact(lo)} data-max={exact(hi)}>
                <title>{ desc }</title>
                <circle class="current" cx={cx.to_string()} cy={cy.to_string()} r="7" />
                <circle class="current-inner" cx={cx.to_string()} cy={cy.to_string()} r="3" />
                <text x={left.to_string()} y={(bottom + 14.0).to_string()} text-anchor="start">{ x0 }</text>
                <text x={right.to_string()} y={(bottom + 14.0).to_string()} text-anchor="end">{ x1 }</text>
                <text x={((left + right) / 2.0).to_string()} y={(bottom + 28.0).to_string()} text-anchor="middle" class="axis-name">{ format!("{xn} →") }</text>
                // The y axis is labelled on the plot's right, where the figure has room for a
                // long name (left of the plot it was cut off at the figure's edge).
                <text x={(right + 6.0).to_string()} y={bottom.to_string()} text-anchor="start">{ y0 }</text>
                <text x={(right + 6.0).to_string()} y={(top + 10.0).to_string()} text-anchor="start">{ y1 }</text>
                <text x={(right + 6.0).to_string()} y={((top + bottom) / 2.0).to_string()} text-anchor="start" class="axis-name">{ format!("{yn} ↑") }</text>
                <text x={left.to_string()} y={(map::LEGEND_TOP + 24.0).to_string()} text-anchor="start">{ fmt(lo) }</text>
                <text x={(left + legend_w).to_string()} y={(map::LEGEND_TOP + 24.0).to_string()} text-anchor="end">{ fmt(hi) }</text>
                <text x={(left + legend_w / 2.0).to_string()} y={(map::LEGEND_TOP + 24.0).to_string()} text-anchor="middle">{ format!("{} ({reading})", show.label()) }</text>
            </svg>
        </figure>
    }
}

/// Colours along the legend's scale bar, drawn smoothed.
const LEGEND_STEPS: usize = 64;

thread_local! {
    static LEGEND: Rc<Vec<u8>> = Rc::new(pixels(
        &(0..LEGEND_STEPS).map(|k| k as f32 / (LEGEND_STEPS - 1) as f32).collect::<Vec<_>>(),
        LEGEND_STEPS,
        1,
        0.0,
        1.0,
    ));
}

fn legend_image() -> Rc<Vec<u8>> {
    LEGEND.with(Rc::clone)
}

#[derive(Properties, PartialEq)]
struct CanvasImageProps {
    id: AttrValue,
    class: AttrValue,
    /// RGBA, `nx` x `ny`, top row first (`relmap::pixels`).
    image: Rc<Vec<u8>>,
    nx: usize,
    ny: usize,
    /// Where it lies on the map's SVG: x, y, width, height in its units.
    area: [f32; 4],
}

/// An image of a few pixels scaled over an area of the map's SVG, under it (the SVG draws
/// the axes and the instance's ring over it): the map's cells, one pixel each and crisp,
/// and the legend's colour scale. Written with one `putImageData` after each render,
/// before the frame is painted: as 576 SVG rectangles the cells cost an attribute diff
/// and a style recalculation each on every edit.
#[function_component(CanvasImage)]
fn canvas_image(p: &CanvasImageProps) -> Html {
    let canvas = use_node_ref();
    {
        let canvas = canvas.clone();
        use_effect_with((p.image.clone(), p.nx, p.ny), move |(image, nx, ny)| draw(&canvas, image, *nx, *ny));
    }
    let pct = |v: f32, of: f32| format!("{:.4}%", v / of * 100.0);
    let [x, y, w, h] = p.area;
    let style = format!(
        "left:{};top:{};width:{};height:{}",
        pct(x, map::WIDTH),
        pct(y, map::HEIGHT),
        pct(w, map::WIDTH),
        pct(h, map::HEIGHT)
    );
    html! {
        <canvas ref={canvas} id={p.id.clone()} class={p.class.clone()} width={p.nx.to_string()} height={p.ny.to_string()}
            {style} aria-hidden="true"></canvas>
    }
}

fn draw(canvas: &NodeRef, image: &[u8], nx: usize, ny: usize) {
    use wasm_bindgen::{Clamped, JsCast};
    let Some(canvas) = canvas.cast::<web_sys::HtmlCanvasElement>() else { return };
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let Ok(ctx) = ctx.dyn_into::<web_sys::CanvasRenderingContext2d>() else { return };
    if nx == 0 || ny == 0 || image.len() != nx * ny * 4 {
        return;
    }
    if let Ok(data) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(image), nx as u32, ny as u32) {
        let _ = ctx.put_image_data(&data, 0.0, 0.0);
    }
}

/// tau of each shipped example on the model's tau range, the instance's marked.
fn strip(taus: &[(String, f32)], tau: Option<f32>, lo: f32, hi: f32) -> Html {
    let (left, width) = (map::LEFT, map::PLOT);
    let x = |t: f32| left + tau_position(t, lo, hi) * width;
    let json = serde_json::to_string(&taus.iter().map(|(_, t)| *t).collect::<Vec<_>>()).unwrap_or_default();
    html! {
        <figure class="chart strip">
            <svg id="adaftr-example-taus" viewBox={format!("0 0 {} 46", map::WIDTH)} role="img"
                aria-label={format!("tau of the {} examples shipped with the model, from {lo} to {hi}, and of this instance", taus.len())}
                data-taus={json} data-tau={tau.map(exact).unwrap_or_default()}>
                <line class="strip-axis" x1={left.to_string()} y1="20" x2={(left + width).to_string()} y2="20" />
                { for taus.iter().map(|(label, t)| html! {
                    <line class="example" x1={x(*t).to_string()} y1="10" x2={x(*t).to_string()} y2="30">
                        <title>{ format!("{label}: tau {t:.3}") }</title>
                    </line>
                }) }
                if let Some(t) = tau {
                    <circle class="current" cx={x(t).to_string()} cy="20" r="6"><title>{ format!("this instance: tau {t:.3}") }</title></circle>
                }
                <text x={(left - 4.0).to_string()} y="24" text-anchor="end">{ "examples" }</text>
                <text x={left.to_string()} y="42" text-anchor="start">{ format!("{lo}") }</text>
                <text x={(left + width).to_string()} y="42" text-anchor="end">{ format!("{hi}") }</text>
            </svg>
            <figcaption class="legend"><span class="muted">{ format!("tau of the {} examples shipped with the model (ticks) and of this instance (ring)", taus.len()) }</span></figcaption>
        </figure>
    }
}
