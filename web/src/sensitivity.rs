//! Which features matter for one instance: every feature moved over its range with the
//! others held, all in one batched `Bundle::predict` call, and how far each output moves.
//!
//! What each feature is moved over:
//! - a numeric field: [`NUMERIC_POINTS`] evenly spaced values over its slider range
//!   ([`sweep::numeric_points`], both ends included);
//! - a categorical field: OOV and its most frequent known values, [`MAX_CATEGORICAL_VALUES`]
//!   ids at most, plus the instance's own value when the cap leaves it out
//!   ([`sweep::capped_ids`]); the long tail of a large vocabulary is not tried.
//!
//! The instance itself is row 0 of the batch and counts in every feature's range, so each
//! range contains the prediction the page shows.

use std::ops::Range;

use adaftr_core::inference::{Instance, Prediction};
use adaftr_core::schema::Schema;
use serde::Serialize;

use crate::sweep::{self, FeatureRef};
use crate::variations::Variations;

/// Values tried per numeric field: its minimum, middle and maximum (and the instance's own
/// value, row 0). Three keep the panel of the default model (63 numeric, 16 categorical
/// fields) at 289 rows, about 2 ms in the browser (BENCHMARKS.md); five cost 415 rows,
/// 40% more time on every edit.
pub const NUMERIC_POINTS: usize = 3;
/// Ids tried per categorical field (OOV and the most frequent values).
pub const MAX_CATEGORICAL_VALUES: usize = 8;

/// One of the model's outputs, for ranking features and colouring the relatedness map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Output {
    Pctr,
    Pcvr,
    /// The default: the demo is about relatedness, and the ranking for tau is what picks
    /// the relatedness map's axes.
    #[default]
    Tau,
}

impl Output {
    pub const ALL: [Output; 3] = [Output::Pctr, Output::Pcvr, Output::Tau];

    pub fn key(self) -> &'static str {
        match self {
            Output::Pctr => "pctr",
            Output::Pcvr => "pcvr",
            Output::Tau => "tau",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Output::Pctr => "pCTR",
            Output::Pcvr => "pCVR",
            Output::Tau => "tau",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.key() == key)
    }

    /// This output of a prediction (`None`: tau of a model without one).
    pub fn of(self, p: &Prediction) -> Option<f32> {
        match self {
            Output::Pctr => Some(p.pctr),
            Output::Pcvr => Some(p.pcvr),
            Output::Tau => p.tau,
        }
    }

    /// What to show when this one is chosen: tau falls back to pCVR for a model that
    /// predicts no tau.
    pub fn or_available(self, has_tau: bool) -> Self {
        if self == Output::Tau && !has_tau {
            Output::Pcvr
        } else {
            self
        }
    }
}

/// The rows of one feature in a [`Plan`]'s batch (row 0, the instance, belongs to all).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub feature: FeatureRef,
    pub rows: Range<usize>,
}

/// The batch: the instance, then each feature's values in [`sweep::all_features`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rows: Variations,
    pub probes: Vec<Probe>,
}

/// Rows shown until the visitor asks for all of them: the top of the ranking is what the
/// panel is for, and each row shown costs its render, layout and paint on every edit
/// (all 79 of the default model's took about 3 ms of a frame).
pub const TOP_ROWS: usize = 12;

/// The values feature `f` is moved over (raw numerics, or ids as `f32`).
pub fn values(schema: &Schema, inst: &Instance, f: FeatureRef) -> Vec<f32> {
    match f {
        FeatureRef::Num(i) => schema.numeric.get(i).map_or(Vec::new(), |n| sweep::numeric_points(n, NUMERIC_POINTS)),
        FeatureRef::Cat(i) => match (schema.categorical.get(i), inst.cat.get(i)) {
            (Some(c), Some(&cur)) => {
                sweep::capped_ids(c, cur, MAX_CATEGORICAL_VALUES).into_iter().map(|id| id as f32).collect()
            }
            _ => Vec::new(),
        },
    }
}

/// The rows of the panel for `inst` (public so the end-to-end test rebuilds them).
pub fn plan(schema: &Schema, inst: &Instance) -> Plan {
    let mut rows = Variations::new(inst.clone());
    rows.push(&[]);
    let mut probes = Vec::new();
    for f in sweep::all_features(schema) {
        let start = rows.len();
        for v in values(schema, inst, f) {
            rows.push(&[(f, v)]);
        }
        probes.push(Probe { feature: f, rows: start..rows.len() });
    }
    Plan { rows, probes }
}

/// The smallest and largest value of one output over a feature's rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Span {
    pub min: f32,
    pub max: f32,
}

impl Span {
    fn of(values: impl Iterator<Item = f32>) -> Option<Self> {
        values.fold(None, |acc, v| match acc {
            None => Some(Span { min: v, max: v }),
            Some(s) => Some(Span { min: s.min.min(v), max: s.max.max(v) }),
        })
    }

    pub fn width(self) -> f32 {
        self.max - self.min
    }
}

/// How far one feature moves each output for this instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    #[serde(skip)]
    pub feature: FeatureRef,
    #[serde(rename = "feature")]
    pub name: String,
    /// `"numeric"` or `"categorical"`.
    pub kind: &'static str,
    /// Rows of the batch this feature was moved over (the instance included).
    pub points: usize,
    pub pctr: Span,
    pub pcvr: Span,
    /// `None` for a model that predicts no tau.
    pub tau: Option<Span>,
}

impl Row {
    pub fn span(&self, by: Output) -> Option<Span> {
        match by {
            Output::Pctr => Some(self.pctr),
            Output::Pcvr => Some(self.pcvr),
            Output::Tau => self.tau,
        }
    }
}

/// Each feature's spans, in plan order; `None` when `preds` is not the plan's batch.
pub fn summarise(schema: &Schema, plan: &Plan, preds: &[Prediction]) -> Option<Vec<Row>> {
    if preds.len() != plan.rows.len() || preds.is_empty() {
        return None;
    }
    plan.probes
        .iter()
        .map(|p| {
            // Row 0 (the instance) first, then the feature's own rows.
            let rows: Vec<&Prediction> = std::iter::once(&preds[0]).chain(&preds[p.rows.clone()]).collect();
            let span = |o: Output| Span::of(rows.iter().filter_map(|r| o.of(r)));
            Some(Row {
                feature: p.feature,
                name: p.feature.name(schema)?.to_string(),
                kind: if matches!(p.feature, FeatureRef::Num(_)) { "numeric" } else { "categorical" },
                points: rows.len(),
                pctr: span(Output::Pctr)?,
                pcvr: span(Output::Pcvr)?,
                // All or nothing: a tau range over only some rows would mislead.
                tau: if rows.iter().all(|r| r.tau.is_some()) { span(Output::Tau) } else { None },
            })
        })
        .collect()
}

/// The rows by how far they move `by`, widest first; ties (and features that move nothing)
/// keep plan order, so a feature that cannot move the output ranks last.
pub fn rank(rows: &[Row], by: Output) -> Vec<&Row> {
    let mut ranked: Vec<&Row> = rows.iter().collect();
    let width = |r: &Row| r.span(by).map_or(0.0, Span::width);
    ranked.sort_by(|a, b| width(b).total_cmp(&width(a)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::demo_schema;
    use crate::editor::{default_instance, random_instance};
    use crate::model::tests::bundle_bytes;
    use crate::model::LoadedModel;
    use adaftr_core::schema::CategoricalField;

    fn model() -> LoadedModel {
        LoadedModel::from_bytes(1, "m", bundle_bytes(), vec![]).unwrap()
    }

    #[test]
    fn the_plan_moves_one_feature_at_a_time() {
        let s = demo_schema();
        let inst = random_instance(&s, 4);
        let p = plan(&s, &inst);
        let instances = p.rows.instances();
        assert_eq!(instances[0], inst);
        assert_eq!(p.probes.len(), s.num_categorical() + s.num_numeric());
        let cats: usize = s.categorical.iter().map(|f| f.cardinality().min(MAX_CATEGORICAL_VALUES)).sum();
        assert_eq!(instances.len(), 1 + cats + s.num_numeric() * NUMERIC_POINTS);
        for probe in &p.probes {
            let vals = values(&s, &inst, probe.feature);
            assert_eq!(probe.rows.len(), vals.len());
            for (row, v) in instances[probe.rows.clone()].iter().zip(vals) {
                let mut want = inst.clone();
                probe.feature.set(&mut want, v);
                assert_eq!(*row, want);
                // Everything else is the instance's.
                let differs = row.cat.iter().zip(&inst.cat).filter(|(a, b)| a != b).count()
                    + row.num.iter().zip(&inst.num).filter(|(a, b)| a != b).count();
                assert!(differs <= 1);
            }
        }
        let (lo, hi) = crate::editor::numeric_range(&s.numeric[1]);
        let num1 = values(&s, &inst, FeatureRef::Num(1));
        assert_eq!((num1[0], num1[NUMERIC_POINTS - 1]), (lo, hi));
    }

    #[test]
    fn large_vocabularies_are_capped_but_keep_the_current_value() {
        let mut s = demo_schema();
        s.categorical[0] = CategoricalField::new("big", Default::default(), (0..500).map(|i| i.to_string()).collect());
        let mut inst = default_instance(&s);
        inst.cat[0] = 321;
        let v = values(&s, &inst, FeatureRef::Cat(0));
        let mut want: Vec<f32> = (0..MAX_CATEGORICAL_VALUES).map(|i| i as f32).collect();
        want.push(321.0);
        assert_eq!(v, want);
        inst.cat[0] = 2;
        assert_eq!(values(&s, &inst, FeatureRef::Cat(0)).len(), MAX_CATEGORICAL_VALUES);
    }

    #[test]
    fn the_ranking_is_made_of_single_predictions() {
        let m = model();
        let b = &m.bundle;
        let inst = random_instance(&b.schema, 11);
        let p = plan(&b.schema, &inst);
        let instances = p.rows.instances();
        let preds = b.predict(&instances).unwrap();
        let rows = summarise(&b.schema, &p, &preds).unwrap();
        assert_eq!(rows.len(), p.probes.len());
        assert_eq!(1 + rows.iter().map(|r| r.points - 1).sum::<usize>(), instances.len(), "each row once");
        let single = |x: &Instance| b.predict(std::slice::from_ref(x)).unwrap()[0];
        let here = single(&inst);
        for (row, probe) in rows.iter().zip(&p.probes) {
            assert_eq!(row.name, probe.feature.name(&b.schema).unwrap());
            let mut all = vec![here];
            all.extend(instances[probe.rows.clone()].iter().map(single));
            for o in Output::ALL {
                let v = || all.iter().map(|q| o.of(q).unwrap());
                let (lo, hi) = (v().fold(f32::INFINITY, f32::min), v().fold(f32::NEG_INFINITY, f32::max));
                let s = row.span(o).unwrap();
                assert!(
                    (s.min - lo).abs() < 1e-6 && (s.max - hi).abs() < 1e-6,
                    "{} {o:?}: {s:?} vs {lo}..{hi}",
                    row.name
                );
                // The instance's own prediction lies in every range.
                let h = o.of(&here).unwrap();
                assert!(s.min <= h + 1e-6 && h <= s.max + 1e-6);
            }
        }
        for by in Output::ALL {
            let ranked = rank(&rows, by);
            assert_eq!(ranked.len(), rows.len());
            assert!(ranked.windows(2).all(|w| w[0].span(by).unwrap().width() >= w[1].span(by).unwrap().width()));
        }
        assert!(rows.iter().any(|r| r.tau.unwrap().width() > 0.0), "the demo model's tau depends on something");
    }

    #[test]
    fn a_feature_that_cannot_move_the_outputs_ranks_last() {
        let mut m = model();
        // A categorical field whose vocabulary is cut to nothing can only be OOV, and a
        // numeric field normalised by a huge scale encodes every value to (almost) the same
        // input: neither can move anything.
        let s = &mut m.bundle.schema;
        s.categorical[0] = CategoricalField::new(s.categorical[0].name.clone(), s.categorical[0].side, vec![]);
        s.numeric[2].scale = 1e30;
        let b = &m.bundle;
        let inst = random_instance(&b.schema, 2);
        let p = plan(&b.schema, &inst);
        let rows = summarise(&b.schema, &p, &b.predict(&p.rows.instances()).unwrap()).unwrap();
        for by in Output::ALL {
            let ranked = rank(&rows, by);
            let last: Vec<FeatureRef> = ranked[ranked.len() - 2..].iter().map(|r| r.feature).collect();
            assert_eq!(last, [FeatureRef::Cat(0), FeatureRef::Num(2)], "{by:?}");
            assert_eq!(ranked[ranked.len() - 1].span(by).unwrap().width(), 0.0);
            assert!(ranked[0].span(by).unwrap().width() > 0.0);
        }
        assert_eq!(rows[0].points, 2, "an OOV-only field: the instance and OOV, which it already is");
    }

    #[test]
    fn outputs_and_rows_serialise_for_the_page() {
        for o in Output::ALL {
            assert_eq!(Output::parse(o.key()), Some(o));
        }
        assert_eq!(Output::parse("ctcvr"), None);
        assert_eq!(Output::Tau.or_available(false), Output::Pcvr);
        assert_eq!(Output::Pctr.or_available(false), Output::Pctr);
        let p = Prediction { pctr: 0.1, pcvr: 0.2, pctcvr: 0.02, tau: None };
        assert_eq!((Output::Pcvr.of(&p), Output::Tau.of(&p)), (Some(0.2), None));
        let row = Row {
            feature: FeatureRef::Num(3),
            name: "x".into(),
            kind: "numeric",
            points: 6,
            pctr: Span { min: 0.1, max: 1.0 / 3.0 },
            pcvr: Span { min: 0.2, max: 0.2 },
            tau: None,
        };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(
            json,
            r#"{"feature":"x","kind":"numeric","points":6,"pctr":{"min":0.1,"max":0.33333334},"pcvr":{"min":0.2,"max":0.2},"tau":null}"#
        );
        let m = model();
        let inst = default_instance(&m.bundle.schema);
        let p = plan(&m.bundle.schema, &inst);
        assert!(summarise(&m.bundle.schema, &p, &[]).is_none());
    }
}
