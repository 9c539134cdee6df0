//! Where the tasks are related: tau (or pCVR) over a grid of two features with the others
//! held at the instance, all cells in one batched `Bundle::predict` call; the heat map's
//! geometry and colours; and the instances of the examples shipped with a model, whose tau
//! spread the map's strip plot shows.
//!
//! The grid: a numeric axis takes [`NUMERIC_POINTS`] evenly spaced values over the field's
//! slider range ([`sweep::numeric_points`]); a categorical axis takes OOV and the most
//! frequent known values, [`MAX_CATEGORICAL_VALUES`] ids at most, plus the instance's own
//! value when the cap leaves it out ([`sweep::capped_ids`]). Cell `(i, j)` is the instance
//! with the x feature set to `xs[i]` and the y feature to `ys[j]`; the batch is row-major
//! in y (row `j * xs.len() + i`).

use adaftr_core::inference::{Instance, Prediction};
use adaftr_core::schema::Schema;

use crate::editor::{instance_from_example, Example};
use crate::sensitivity::{rank, Output, Row};
use crate::sweep::{self, FeatureRef};
use crate::variations::Variations;

/// Values per numeric axis.
pub const NUMERIC_POINTS: usize = 24;
/// Ids per categorical axis (OOV and the most frequent values).
pub const MAX_CATEGORICAL_VALUES: usize = 24;

/// One axis of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub feature: FeatureRef,
    /// Raw values (numeric) or ids (categorical, as `f32`), in order.
    pub values: Vec<f32>,
    /// A short label per value.
    pub labels: Vec<String>,
    /// Where the instance sits, in cells from the first cell's centre: interpolated for a
    /// numeric, the index of its own id for a categorical.
    pub current: f32,
}

impl Axis {
    fn new(schema: &Schema, inst: &Instance, feature: FeatureRef) -> Option<Self> {
        match feature {
            FeatureRef::Num(i) => {
                let values = sweep::numeric_points(schema.numeric.get(i)?, NUMERIC_POINTS);
                let (lo, hi) = (values[0], values[values.len() - 1]);
                let at = *inst.num.get(i)?;
                let current = if hi > lo { (at - lo) / (hi - lo) * (values.len() - 1) as f32 } else { 0.0 };
                Some(Axis { feature, labels: values.iter().map(|x| format!("{x:.3}")).collect(), values, current })
            }
            FeatureRef::Cat(i) => {
                let f = schema.categorical.get(i)?;
                let cur = *inst.cat.get(i)?;
                let ids = sweep::capped_ids(f, cur, MAX_CATEGORICAL_VALUES);
                let current = ids.iter().position(|&id| id == cur).unwrap_or(0) as f32;
                Some(Axis {
                    feature,
                    labels: ids.iter().map(|&id| f.decode(id).unwrap_or("OOV").to_string()).collect(),
                    values: ids.into_iter().map(|id| id as f32).collect(),
                    current,
                })
            }
        }
    }

    pub fn numeric(&self) -> bool {
        matches!(self.feature, FeatureRef::Num(_))
    }

    /// The values as JSON: raw numbers for a numeric axis, integer ids for a categorical one.
    pub fn values_json(&self) -> String {
        if self.numeric() {
            serde_json::to_string(&self.values).unwrap_or_default()
        } else {
            serde_json::to_string(&self.values.iter().map(|&v| v as u32).collect::<Vec<_>>()).unwrap_or_default()
        }
    }
}

/// The grid's axes and rows (row-major in y).
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub x: Axis,
    pub y: Axis,
    pub rows: Variations,
}

/// The grid for `inst` over features `x` and `y` (public so the end-to-end test rebuilds
/// it); `None` when either feature is not in the schema or they are the same feature.
pub fn plan(schema: &Schema, inst: &Instance, x: FeatureRef, y: FeatureRef) -> Option<Grid> {
    if x == y {
        return None;
    }
    let (ax, ay) = (Axis::new(schema, inst, x)?, Axis::new(schema, inst, y)?);
    let mut rows = Variations::new(inst.clone());
    for &yv in &ay.values {
        for &xv in &ax.values {
            rows.push(&[(x, xv), (y, yv)]);
        }
    }
    Some(Grid { x: ax, y: ay, rows })
}

/// A grid and the outputs of its cells (row-major in y, like the batch).
#[derive(Debug, Clone, PartialEq)]
pub struct RelMap {
    pub x: Axis,
    pub y: Axis,
    pub pcvr: Vec<f32>,
    /// `None` for a model that predicts no tau.
    pub tau: Option<Vec<f32>>,
}

impl RelMap {
    /// The map from the grid and its batch's predictions (`None` when they do not match).
    pub fn new(grid: Grid, preds: &[Prediction]) -> Option<Self> {
        if preds.len() != grid.rows.len() {
            return None;
        }
        Some(RelMap {
            pcvr: preds.iter().map(|p| p.pcvr).collect(),
            tau: preds.iter().map(|p| p.tau).collect(),
            x: grid.x,
            y: grid.y,
        })
    }

    pub fn size(&self) -> (usize, usize) {
        (self.x.values.len(), self.y.values.len())
    }

    /// The cells of one output (`None`: tau of a model without one, or pCTR, not kept).
    pub fn cells(&self, o: Output) -> Option<&[f32]> {
        match o {
            Output::Pcvr => Some(&self.pcvr),
            Output::Tau => self.tau.as_deref(),
            Output::Pctr => None,
        }
    }

    /// One output as JSON rows: `rows[j][i]` is the cell at `xs[i]`, `ys[j]`.
    pub fn rows_json(&self, o: Output) -> String {
        let nx = self.x.values.len().max(1);
        self.cells(o)
            .map_or(String::new(), |c| serde_json::to_string(&c.chunks(nx).collect::<Vec<_>>()).unwrap_or_default())
    }
}

/// The smallest and largest finite value (`(0, 1)` for none), for the colour scale.
pub fn value_range(values: &[f32]) -> (f32, f32) {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f32::INFINITY, f32::min);
    let hi = finite.fold(f32::NEG_INFINITY, f32::max);
    if lo.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

/// The colour scale (viridis, dark purple to yellow) sampled at five stops.
const STOPS: [[f32; 3]; 5] =
    [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];

/// The colour of `v` on a scale from `lo` (first stop) to `hi` (last): red, green, blue.
pub fn rgb(v: f32, lo: f32, hi: f32) -> [u8; 3] {
    let t = if hi > lo && v.is_finite() { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 };
    let s = t * (STOPS.len() - 1) as f32;
    let k = (s.floor() as usize).min(STOPS.len() - 2);
    let f = s - k as f32;
    std::array::from_fn(|ch| (STOPS[k][ch] + (STOPS[k + 1][ch] - STOPS[k][ch]) * f).round() as u8)
}

/// The map's cells as an image of `nx` x `ny` pixels, RGBA row-major from the top row: the
/// pixel of cell (i, j) (j counted up from the bottom) at row `ny - 1 - j`.
pub fn pixels(cells: &[f32], nx: usize, ny: usize, lo: f32, hi: f32) -> Vec<u8> {
    let mut out = vec![255u8; nx * ny * 4];
    for (k, &v) in cells.iter().enumerate().take(nx * ny) {
        let (i, j) = (k % nx, k / nx);
        let at = ((ny - 1 - j) * nx + i) * 4;
        out[at..at + 3].copy_from_slice(&rgb(v, lo, hi));
    }
    out
}

/// The default axes: the two numeric features that move tau most for the instance the
/// ranking was made for (pCVR for a model without tau), topped up with the best ranked
/// features of any kind when there are fewer than two numerics.
pub fn default_axes(schema: &Schema, rows: &[Row]) -> (Option<FeatureRef>, Option<FeatureRef>) {
    let has_tau = rows.iter().all(|r| r.tau.is_some());
    let ranked: Vec<FeatureRef> = if rows.is_empty() {
        sweep::all_features(schema)
    } else {
        rank(rows, Output::Tau.or_available(has_tau)).into_iter().map(|r| r.feature).collect()
    };
    let mut pick: Vec<FeatureRef> =
        ranked.iter().copied().filter(|f| matches!(f, FeatureRef::Num(_))).take(2).collect();
    for f in &ranked {
        if pick.len() < 2 && !pick.contains(f) {
            pick.push(*f);
        }
    }
    (pick.first().copied(), pick.get(1).copied())
}

/// The instances of the examples shipped with a model.
pub fn example_instances(schema: &Schema, examples: &[Example]) -> Vec<Instance> {
    examples.iter().map(|e| instance_from_example(schema, e)).collect()
}

/// Heat map layout (SVG user units): room for the y labels on the left, the x labels and
/// the colour legend below.
pub const WIDTH: f32 = 640.0;
pub const LEFT: f32 = 64.0;
pub const TOP: f32 = 8.0;
pub const PLOT: f32 = 360.0;
pub const LEGEND_TOP: f32 = TOP + PLOT + 36.0;
pub const HEIGHT: f32 = LEGEND_TOP + 34.0;

/// The centre of a position in cells (`Axis::current`), in SVG units.
pub fn cell_centre(cx: f32, cy: f32, nx: usize, ny: usize) -> (f32, f32) {
    let (w, h) = (PLOT / nx.max(1) as f32, PLOT / ny.max(1) as f32);
    (LEFT + (cx + 0.5) * w, TOP + PLOT - (cy + 0.5) * h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{demo_examples, demo_schema};
    use crate::editor::random_instance;
    use crate::model::tests::bundle_bytes;
    use crate::model::LoadedModel;
    use crate::sensitivity;

    #[test]
    fn the_grid_sets_two_features_and_keeps_the_rest() {
        let s = demo_schema();
        let inst = random_instance(&s, 3);
        let g = plan(&s, &inst, FeatureRef::Num(1), FeatureRef::Cat(2)).unwrap();
        let (nx, ny) = (g.x.values.len(), g.y.values.len());
        assert_eq!((nx, ny), (NUMERIC_POINTS, s.categorical[2].cardinality()));
        let instances = g.rows.instances();
        assert_eq!(instances.len(), nx * ny);
        for (j, &yv) in g.y.values.iter().enumerate() {
            for (i, &xv) in g.x.values.iter().enumerate() {
                let v = &instances[j * nx + i];
                assert_eq!((v.num[1], v.cat[2]), (xv, yv as u32));
                assert_eq!((v.num[0], v.num[2], v.num[3]), (inst.num[0], inst.num[2], inst.num[3]));
                assert_eq!((v.cat[0], v.cat[1]), (inst.cat[0], inst.cat[1]));
            }
        }
        assert_eq!(g.x.values, sweep::numeric_points(&s.numeric[1], NUMERIC_POINTS));
        let (lo, hi) = crate::editor::numeric_range(&s.numeric[1]);
        assert!((g.x.current - (inst.num[1] - lo) / (hi - lo) * 23.0).abs() < 1e-4);
        assert_eq!(g.y.current, inst.cat[2] as f32, "every id is on a short axis, in order");
        assert_eq!(g.y.labels[0], "OOV");
        assert_eq!(g.y.values_json(), "[0,1,2,3,4,5,6]");
        assert!(plan(&s, &inst, FeatureRef::Num(1), FeatureRef::Num(1)).is_none());
        assert!(plan(&s, &inst, FeatureRef::Num(1), FeatureRef::Num(9)).is_none());
    }

    #[test]
    fn the_map_is_the_batch_of_single_predictions() {
        let m = LoadedModel::from_bytes(1, "m", bundle_bytes(), vec![]).unwrap();
        let b = &m.bundle;
        let inst = random_instance(&b.schema, 8);
        let g = plan(&b.schema, &inst, FeatureRef::Num(0), FeatureRef::Num(3)).unwrap();
        let instances = g.rows.instances();
        let preds = b.predict(&instances).unwrap();
        let map = RelMap::new(g.clone(), &preds).unwrap();
        assert_eq!(map.size(), (24, 24));
        let tau = map.cells(Output::Tau).unwrap();
        for (k, v) in instances.iter().enumerate().step_by(37) {
            let one = b.predict(std::slice::from_ref(v)).unwrap()[0];
            assert!((one.tau.unwrap() - tau[k]).abs() < 1e-6 && (one.pcvr - map.pcvr[k]).abs() < 1e-6);
        }
        let rows: Vec<Vec<f32>> = serde_json::from_str(&map.rows_json(Output::Tau)).unwrap();
        assert_eq!((rows.len(), rows[0].len()), (24, 24));
        assert_eq!(rows[5][7], tau[5 * 24 + 7], "rows[j][i] is (xs[i], ys[j]), exactly");
        let (lo, hi) = value_range(tau);
        assert!(lo < hi, "tau varies over the grid");
        assert!(map.cells(Output::Pctr).is_none());
        assert!(RelMap::new(g, &preds[1..]).is_none());

        // The default axes are the two numerics that move tau most.
        let sp = sensitivity::plan(&b.schema, &inst);
        let srows = sensitivity::summarise(&b.schema, &sp, &b.predict(&sp.rows.instances()).unwrap()).unwrap();
        let top: Vec<FeatureRef> = sensitivity::rank(&srows, Output::Tau)
            .into_iter()
            .map(|r| r.feature)
            .filter(|f| matches!(f, FeatureRef::Num(_)))
            .take(2)
            .collect();
        assert_eq!(default_axes(&b.schema, &srows), (Some(top[0]), Some(top[1])));
    }

    #[test]
    fn default_axes_without_a_ranking_or_numerics() {
        let s = demo_schema();
        assert_eq!(default_axes(&s, &[]), (Some(FeatureRef::Num(0)), Some(FeatureRef::Num(1))));
        let mut one = s.clone();
        one.numeric.truncate(1);
        assert_eq!(default_axes(&one, &[]), (Some(FeatureRef::Num(0)), Some(FeatureRef::Cat(0))));
        let mut none = s;
        none.numeric.clear();
        none.categorical.truncate(1);
        assert_eq!(default_axes(&none, &[]), (Some(FeatureRef::Cat(0)), None));
    }

    #[test]
    fn colours_and_geometry() {
        assert_eq!(rgb(0.0, 0.0, 1.0), [0x44, 0x01, 0x54]);
        assert_eq!(rgb(1.0, 0.0, 1.0), [0xfd, 0xe7, 0x25]);
        assert_eq!(rgb(0.5, 0.0, 1.0), [0x21, 0x91, 0x8c]);
        assert_eq!(rgb(7.0, 0.0, 1.0), [0xfd, 0xe7, 0x25], "clamped");
        assert_eq!(rgb(0.3, 0.3, 0.3), rgb(0.5, 0.0, 1.0), "a flat map is one colour");
        let px = pixels(&[0.0, 1.0, 0.5, 0.25, 0.75, 1.0], 3, 2, 0.0, 1.0);
        assert_eq!(px.len(), 3 * 2 * 4);
        assert_eq!(px[..4], [0x3b, 0x52, 0x8b, 255], "cell (0, 1) (0.25) is the top row's first pixel");
        assert_eq!(px[12..16], [0x44, 0x01, 0x54, 255], "cell (0, 0) (0.0) is the bottom row's");
        assert_eq!(value_range(&[0.3, f32::NAN, 0.1, 0.2]), (0.1, 0.3));
        assert_eq!(value_range(&[]), (0.0, 1.0));
        let (cx, cy) = cell_centre(0.0, 0.0, 24, 24);
        assert!((cx - (LEFT + PLOT / 48.0)).abs() < 1e-4 && (cy - (TOP + PLOT - PLOT / 48.0)).abs() < 1e-4);
    }

    #[test]
    fn example_instances_follow_the_examples() {
        let s = demo_schema();
        let ex = demo_examples(&s, 4, 1);
        let v = example_instances(&s, &ex);
        assert_eq!(v.len(), 4);
        assert_eq!(v[2], instance_from_example(&s, &ex[2]));
        assert!(example_instances(&s, &[]).is_empty());
    }
}
