//! What-if sweeps: one feature varied over its range (numerics) or its values
//! (categoricals) with everything else held at the current instance, predicted in one
//! batched `Bundle::predict` call; and the geometry of the inline SVG chart.

use adaftr_core::inference::{Instance, Prediction};
use adaftr_core::schema::{CategoricalField, NumericField, Schema};

use crate::editor::numeric_range;

/// Points of a numeric sweep.
pub const NUMERIC_POINTS: usize = 64;
/// Categorical sweeps show at most this many values (OOV plus the first known ones).
pub const MAX_CATEGORICAL_POINTS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureRef {
    Cat(usize),
    Num(usize),
}

impl FeatureRef {
    /// A stable key for `<option value>`s and element ids.
    pub fn key(self) -> String {
        match self {
            FeatureRef::Cat(i) => format!("cat-{i}"),
            FeatureRef::Num(i) => format!("num-{i}"),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        let (kind, i) = key.split_once('-')?;
        let i = i.parse().ok()?;
        match kind {
            "cat" => Some(FeatureRef::Cat(i)),
            "num" => Some(FeatureRef::Num(i)),
            _ => None,
        }
    }

    /// A number for the panel worker's wire format: even for a categorical, odd for a
    /// numeric.
    pub fn code(self) -> u32 {
        match self {
            FeatureRef::Cat(i) => 2 * i as u32,
            FeatureRef::Num(i) => 2 * i as u32 + 1,
        }
    }

    pub fn from_code(code: u32) -> Option<Self> {
        let i = usize::try_from(code / 2).ok()?;
        Some(if code.is_multiple_of(2) { FeatureRef::Cat(i) } else { FeatureRef::Num(i) })
    }

    pub fn name(self, schema: &Schema) -> Option<&str> {
        match self {
            FeatureRef::Cat(i) => schema.categorical.get(i).map(|f| f.name.as_str()),
            FeatureRef::Num(i) => schema.numeric.get(i).map(|f| f.name.as_str()),
        }
    }

    pub fn exists(self, schema: &Schema) -> bool {
        self.name(schema).is_some()
    }

    /// Sets this feature of `inst` to `v`: a raw numeric, or a categorical id as `f32` (the
    /// form the sensitivity panel's and the relatedness map's grids hold their values in).
    pub fn set(self, inst: &mut Instance, v: f32) {
        match self {
            FeatureRef::Num(i) => inst.num[i] = v,
            FeatureRef::Cat(i) => inst.cat[i] = v as u32,
        }
    }
}

/// Every feature of a schema, categoricals first.
pub fn all_features(schema: &Schema) -> Vec<FeatureRef> {
    (0..schema.num_categorical()).map(FeatureRef::Cat).chain((0..schema.num_numeric()).map(FeatureRef::Num)).collect()
}

/// The first feature to sweep by default: the first numeric, else the first categorical.
pub fn default_feature(schema: &Schema) -> Option<FeatureRef> {
    if schema.num_numeric() > 0 {
        Some(FeatureRef::Num(0))
    } else if schema.num_categorical() > 0 {
        Some(FeatureRef::Cat(0))
    } else {
        None
    }
}

/// `n` evenly spaced values over a numeric field's slider range, both ends included
/// (the what-if chart, the sensitivity panel and the relatedness map all sample so).
pub fn numeric_points(f: &NumericField, n: usize) -> Vec<f32> {
    let (lo, hi) = numeric_range(f);
    match n {
        0 => Vec::new(),
        1 => vec![lo],
        _ => (0..n).map(|k| lo + (hi - lo) * k as f32 / (n - 1) as f32).collect(),
    }
}

/// At most `cap` ids of a categorical field: OOV (0) and the most frequent known values
/// (vocabularies are in order of training frequency), with `current` added when the cap
/// leaves it out, so a capped sample still contains the instance's own value. Ascending.
pub fn capped_ids(f: &CategoricalField, current: u32, cap: usize) -> Vec<u32> {
    let shown = f.cardinality().min(cap.max(1)) as u32;
    let mut ids: Vec<u32> = (0..shown).collect();
    if current >= shown && (current as usize) < f.cardinality() {
        ids.push(current);
    }
    ids
}

/// The instances of one sweep and how to label them.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    pub feature: FeatureRef,
    pub numeric: bool,
    /// X positions: raw values (numeric) or 0, 1, 2, ... (categorical).
    pub xs: Vec<f32>,
    pub labels: Vec<String>,
    pub instances: Vec<Instance>,
    /// Where the current instance's value falls (x position).
    pub current_x: f32,
    /// Values left out of a long categorical sweep.
    pub omitted: usize,
}

pub fn plan(schema: &Schema, inst: &Instance, feature: FeatureRef) -> Option<SweepPlan> {
    match feature {
        FeatureRef::Num(i) => {
            let f = schema.numeric.get(i)?;
            let xs = numeric_points(f, NUMERIC_POINTS);
            let instances = xs
                .iter()
                .map(|&x| {
                    let mut v = inst.clone();
                    v.num[i] = x;
                    v
                })
                .collect();
            Some(SweepPlan {
                feature,
                numeric: true,
                labels: xs.iter().map(|x| format!("{x:.3}")).collect(),
                xs,
                instances,
                current_x: *inst.num.get(i)?,
                omitted: 0,
            })
        }
        FeatureRef::Cat(i) => {
            let f = schema.categorical.get(i)?;
            let card = f.cardinality();
            let shown = card.min(MAX_CATEGORICAL_POINTS);
            let ids: Vec<u32> = (0..shown as u32).collect();
            let cur = *inst.cat.get(i)?;
            let instances = ids
                .iter()
                .map(|&id| {
                    let mut v = inst.clone();
                    v.cat[i] = id;
                    v
                })
                .collect();
            Some(SweepPlan {
                feature,
                numeric: false,
                xs: ids.iter().map(|&id| id as f32).collect(),
                labels: ids.iter().map(|&id| f.decode(id).unwrap_or("unknown (OOV)").to_string()).collect(),
                instances,
                current_x: cur as f32,
                omitted: card - shown,
            })
        }
    }
}

/// Chart layout (SVG user units).
pub const WIDTH: f32 = 640.0;
pub const PANEL_HEIGHT: f32 = 150.0;
pub const GAP: f32 = 36.0;
pub const LEFT: f32 = 56.0;
pub const RIGHT: f32 = 12.0;
pub const TOP: f32 = 12.0;

/// One line of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: &'static str,
    /// `x,y` pairs for an SVG `points` attribute.
    pub points: Vec<(f32, f32)>,
}

/// The drawable chart: probability lines in the top panel, tau in the bottom one.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub probs: Vec<Line>,
    pub tau: Option<Line>,
    /// A compared model's lines (probabilities, then tau if it has one), same axes.
    pub other: Vec<Line>,
    /// Top of the probability axis (auto-scaled to the largest value).
    pub prob_max: f32,
    pub tau_range: (f32, f32),
    pub current_px: f32,
    /// Y of each panel's top and bottom.
    pub prob_panel: (f32, f32),
    pub tau_panel: (f32, f32),
    pub height: f32,
}

/// A "nice" axis top at or above `x` (1, 2, 2.5, 5 times a power of ten).
pub fn nice_ceiling(x: f32) -> f32 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let p = 10f32.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= x * 0.9999 {
            return (m * p).min(1.0);
        }
    }
    1.0
}

pub fn points_attr(points: &[(f32, f32)]) -> String {
    points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")
}

pub fn chart(plan: &SweepPlan, preds: &[Prediction], tau_min: f32, tau_max: f32) -> Chart {
    chart_compared(plan, preds, None, tau_min, tau_max)
}

/// [`chart`] with a second model's predictions for the same plan on the same axes (the
/// probability axis fits both).
pub fn chart_compared(
    plan: &SweepPlan,
    preds: &[Prediction],
    other: Option<&[Prediction]>,
    tau_min: f32,
    tau_max: f32,
) -> Chart {
    let n = plan.xs.len();
    let (x0, x1) = match (plan.xs.first(), plan.xs.last()) {
        (Some(&a), Some(&b)) if b > a => (a, b),
        (Some(&a), _) => (a - 0.5, a + 0.5),
        _ => (0.0, 1.0),
    };
    let px = |x: f32| LEFT + (x - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT);
    let prob_panel = (TOP, TOP + PANEL_HEIGHT);
    let tau_panel = (prob_panel.1 + GAP, prob_panel.1 + GAP + PANEL_HEIGHT);
    let all = preds.iter().chain(other.unwrap_or_default());
    let prob_max = nice_ceiling(all.flat_map(|p| [p.pctr, p.pcvr, p.pctcvr]).fold(0.0f32, |a, b| {
        if b.is_finite() {
            a.max(b)
        } else {
            a
        }
    }));
    let py = |v: f32| prob_panel.1 - (v / prob_max).clamp(0.0, 1.0) * PANEL_HEIGHT;
    let (tlo, thi) = if tau_max > tau_min { (tau_min, tau_max) } else { (0.0, 1.0) };
    let ty = |t: f32| tau_panel.1 - ((t - tlo) / (thi - tlo)).clamp(0.0, 1.0) * PANEL_HEIGHT;
    let lines = |preds: &[Prediction]| {
        let line = |name, get: &dyn Fn(&Prediction) -> f32| Line {
            name,
            points: plan.xs.iter().zip(preds).take(n).map(|(&x, p)| (px(x), py(get(p)))).collect(),
        };
        let probs = vec![line("pCTR", &|p| p.pctr), line("pCVR", &|p| p.pcvr), line("pCTCVR", &|p| p.pctcvr)];
        let tau = (!preds.is_empty() && preds.iter().all(|p| p.tau.is_some())).then(|| Line {
            name: "tau",
            points: plan.xs.iter().zip(preds).map(|(&x, p)| (px(x), ty(p.tau.unwrap_or(tlo)))).collect(),
        });
        (probs, tau)
    };
    let (probs, tau) = lines(preds);
    let other = other.map_or(Vec::new(), |o| {
        let (mut v, t) = lines(o);
        v.extend(t);
        v
    });
    Chart {
        probs,
        tau,
        other,
        prob_max,
        tau_range: (tlo, thi),
        current_px: px(plan.current_x),
        prob_panel,
        tau_panel,
        height: tau_panel.1 + 28.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_schema;
    use crate::editor::default_instance;

    #[test]
    fn feature_keys_round_trip() {
        for f in [FeatureRef::Cat(0), FeatureRef::Num(12)] {
            assert_eq!(FeatureRef::parse(&f.key()), Some(f));
        }
        for f in [FeatureRef::Cat(0), FeatureRef::Num(0), FeatureRef::Cat(7), FeatureRef::Num(12)] {
            assert_eq!(FeatureRef::from_code(f.code()), Some(f));
        }
        assert_ne!(FeatureRef::Cat(3).code(), FeatureRef::Num(3).code());
        assert_eq!(FeatureRef::parse("x-1"), None);
        assert_eq!(FeatureRef::parse("num-"), None);
        let s = demo_schema();
        assert_eq!(all_features(&s).len(), s.num_categorical() + s.num_numeric());
        assert_eq!(default_feature(&s), Some(FeatureRef::Num(0)));
        assert!(!FeatureRef::Num(99).exists(&s));
    }

    #[test]
    fn numeric_sweep_covers_the_range_and_changes_only_that_feature() {
        let s = demo_schema();
        let inst = default_instance(&s);
        let p = plan(&s, &inst, FeatureRef::Num(1)).unwrap();
        assert_eq!(p.instances.len(), NUMERIC_POINTS);
        assert_eq!(p.xs[0], s.numeric[1].min);
        assert!((p.xs[NUMERIC_POINTS - 1] - s.numeric[1].max).abs() < 1e-3);
        for (v, &x) in p.instances.iter().zip(&p.xs) {
            assert_eq!(v.num[1], x);
            assert_eq!(v.cat, inst.cat);
            assert_eq!((v.num[0], v.num[2]), (inst.num[0], inst.num[2]));
        }
        assert_eq!(p.current_x, inst.num[1]);
    }

    #[test]
    fn categorical_sweep_covers_every_value_and_oov() {
        let s = demo_schema();
        let inst = default_instance(&s);
        let p = plan(&s, &inst, FeatureRef::Cat(2)).unwrap();
        assert_eq!(p.instances.len(), s.categorical[2].cardinality());
        assert_eq!(p.labels[0], "unknown (OOV)");
        assert_eq!(p.labels[1], s.categorical[2].vocab()[0]);
        assert!(p.instances.iter().enumerate().all(|(k, v)| v.cat[2] == k as u32 && v.num == inst.num));
        assert_eq!(p.omitted, 0);
        assert!(plan(&s, &inst, FeatureRef::Cat(99)).is_none());
    }

    #[test]
    fn long_vocabularies_are_capped() {
        let mut s = demo_schema();
        s.categorical[0] = adaftr_core::schema::CategoricalField::new(
            "big",
            Default::default(),
            (0..1000).map(|i| i.to_string()).collect(),
        );
        let p = plan(&s, &default_instance(&s), FeatureRef::Cat(0)).unwrap();
        assert_eq!(p.instances.len(), MAX_CATEGORICAL_POINTS);
        assert_eq!(p.omitted, 1001 - MAX_CATEGORICAL_POINTS);
    }

    #[test]
    fn chart_maps_values_into_panels() {
        let s = demo_schema();
        let inst = default_instance(&s);
        let p = plan(&s, &inst, FeatureRef::Num(0)).unwrap();
        let preds: Vec<Prediction> = (0..p.xs.len())
            .map(|k| {
                let t = k as f32 / 63.0;
                Prediction { pctr: 0.5 * t, pcvr: 0.1, pctcvr: 0.05 * t, tau: Some(0.05 + 0.95 * t) }
            })
            .collect();
        let c = chart(&p, &preds, 0.05, 1.0);
        assert!((c.prob_max - 0.5).abs() < 1e-6, "{}", c.prob_max);
        let ctr = &c.probs[0].points;
        assert_eq!(ctr.len(), 64);
        assert!((ctr[0].0 - LEFT).abs() < 1e-3 && (ctr[63].0 - (WIDTH - RIGHT)).abs() < 1e-3);
        assert!((ctr[0].1 - c.prob_panel.1).abs() < 1e-3, "0 at the bottom");
        assert!((ctr[63].1 - c.prob_panel.0).abs() < 1e-3, "max at the top");
        let tau = c.tau.as_ref().unwrap();
        assert!((tau.points[0].1 - c.tau_panel.1).abs() < 1e-3);
        assert!((tau.points[63].1 - c.tau_panel.0).abs() < 1e-3);
        assert!(c.current_px > LEFT && c.current_px < WIDTH - RIGHT);
        assert_eq!(points_attr(&[(1.0, 2.25)]), "1.0,2.2");
        let no_tau: Vec<Prediction> = preds.iter().map(|p| Prediction { tau: None, ..*p }).collect();
        assert!(chart(&p, &no_tau, 0.05, 1.0).tau.is_none());
        assert!(c.other.is_empty());
    }

    #[test]
    fn a_compared_model_shares_the_axes() {
        let s = demo_schema();
        let p = plan(&s, &default_instance(&s), FeatureRef::Num(0)).unwrap();
        let a: Vec<Prediction> =
            (0..p.xs.len()).map(|_| Prediction { pctr: 0.1, pcvr: 0.1, pctcvr: 0.01, tau: Some(0.5) }).collect();
        let b: Vec<Prediction> = a.iter().map(|q| Prediction { pctr: 0.4, tau: None, ..*q }).collect();
        let c = chart_compared(&p, &a, Some(&b), 0.05, 1.0);
        assert!((c.prob_max - 0.5).abs() < 1e-6, "the axis fits the compared model too");
        assert_eq!(c.other.iter().map(|l| l.name).collect::<Vec<_>>(), ["pCTR", "pCVR", "pCTCVR"], "no tau: no line");
        assert_eq!(c.other[1].points, c.probs[1].points, "equal values, equal points");
        assert!(c.other[0].points[0].1 < c.probs[0].points[0].1, "higher pCTR is drawn higher");
        assert_eq!(chart_compared(&p, &a, None, 0.05, 1.0), chart(&p, &a, 0.05, 1.0));
    }

    #[test]
    fn nice_axis_tops() {
        for (x, top) in [(0.3, 0.5), (0.2, 0.2), (0.021, 0.025), (0.9, 1.0), (0.0, 1.0), (0.0004, 0.0005)] {
            assert!((nice_ceiling(x) - top).abs() < 1e-6 * top, "{x} -> {}", nice_ceiling(x));
        }
    }
}
