//! The app state and its transitions, kept free of the UI so it is tested natively.
//! The Yew app wraps [`State`] in a reducer and renders from it.

use std::rc::Rc;

use adaftr_core::inference::{Instance, Prediction};

use crate::compare::{self, Comparison};
use crate::editor::{default_instance, instance_from_example, random_instance, set_categorical, set_numeric};
use crate::fragment;
use crate::model::LoadedModel;
use crate::offload;
use crate::relmap;
use crate::sensitivity::Output;
use crate::sweep::{self, FeatureRef};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A model is being fetched or read.
    Loading(String),
    Loaded(Rc<LoadedModel>),
    /// Loading failed; the current model (if any) stays.
    LoadFailed(String),
    SetCat(usize, u32),
    SetNum(usize, f32),
    /// A random example (or random values when the model has none), from this seed.
    Random(u64),
    Reset,
    Sweep(FeatureRef),
    DismissError,
    /// A second model to compare with the first, on the same instance.
    CompareLoaded(Rc<LoadedModel>),
    StopComparing,
    /// The URL fragment (a shared link, [`fragment`]): read when the first model loads
    /// and whenever the fragment changes.
    Link(String),
    /// A choice in the sensitivity panel or the relatedness map.
    Panel(PanelAction),
}

impl Action {
    /// Whether the visitor changed what the page shows (the instance, the swept feature, a
    /// panel's choice), as opposed to a model arriving or a message dismissed: the page
    /// times these from dispatch to paint.
    pub fn is_edit(&self) -> bool {
        matches!(
            self,
            Action::SetCat(..)
                | Action::SetNum(..)
                | Action::Random(_)
                | Action::Reset
                | Action::Sweep(_)
                | Action::Panel(_)
                | Action::Link(_)
        )
    }
}

/// What the visitor chooses in the sensitivity panel and the relatedness map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PanelAction {
    /// Rank the features by how far they move this output.
    RankBy(Output),
    /// Put a feature on the map's x (`false`) or y (`true`) axis; the feature already on
    /// the other axis swaps over, so the axes never coincide.
    MapAxis { y: bool, feature: FeatureRef },
    /// Colour the map by this output.
    MapShow(Output),
}

/// The sensitivity panel's and the relatedness map's choices.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Panels {
    pub rank_by: Output,
    pub map_x: Option<FeatureRef>,
    pub map_y: Option<FeatureRef>,
    pub map_show: Output,
}

impl Panels {
    /// The choices for a newly loaded model, whose instance is `inst`: the map's axes are
    /// the two numerics the sensitivity ranking puts first for tau (one batched prediction).
    fn for_model(m: &Rc<LoadedModel>, inst: &Instance, keep: Panels) -> Self {
        let rows = offload::run(&m.bundle, offload::SensitivityBatch::new(m.clone(), inst)).ok();
        let (map_x, map_y) = relmap::default_axes(&m.bundle.schema, rows.as_deref().unwrap_or_default());
        Panels { map_x, map_y, ..keep }
    }

    fn apply(&mut self, schema: &adaftr_core::schema::Schema, a: PanelAction) {
        match a {
            PanelAction::RankBy(o) => self.rank_by = o,
            PanelAction::MapShow(o) => self.map_show = o,
            PanelAction::MapAxis { y, feature } if feature.exists(schema) => {
                let (this, other) =
                    if y { (&mut self.map_y, &mut self.map_x) } else { (&mut self.map_x, &mut self.map_y) };
                if *other == Some(feature) {
                    *other = *this;
                }
                *this = Some(feature);
            }
            PanelAction::MapAxis { .. } => {}
        }
    }
}

/// Which model a load fills: the one the editor edits, or the one compared with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slot {
    #[default]
    Main,
    Compare,
}

impl Slot {
    pub fn loaded(self, m: Rc<LoadedModel>) -> Action {
        match self {
            Slot::Main => Action::Loaded(m),
            Slot::Compare => Action::CompareLoaded(m),
        }
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("id", &self.id).field("name", &self.name).finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub model: Option<Rc<LoadedModel>>,
    pub instance: Instance,
    pub sweep: Option<FeatureRef>,
    pub error: Option<String>,
    pub loading: Option<String>,
    /// Label of the example last applied, if the instance came from one.
    pub example: Option<String>,
    pub panels: Panels,
    /// The model compared with `model`.
    pub compare: Option<Rc<LoadedModel>>,
    /// What the last link could not apply, or why it was ignored.
    pub link_note: Option<String>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            model: None,
            instance: Instance { cat: Vec::new(), num: Vec::new() },
            sweep: None,
            error: None,
            loading: None,
            example: None,
            panels: Panels::default(),
            compare: None,
            link_note: None,
        }
    }
}

impl State {
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Loading(what) => self.loading = Some(what),
            Action::Loaded(m) => {
                let schema = &m.bundle.schema;
                self.instance = default_instance(schema);
                // Keep sweeping the same feature when the new schema has it.
                let keep = self.sweep.zip(self.model.as_ref()).and_then(|(f, old)| {
                    let name = f.name(&old.bundle.schema)?;
                    sweep::all_features(schema).into_iter().find(|g| g.name(schema) == Some(name))
                });
                self.sweep = keep.or_else(|| sweep::default_feature(schema));
                self.panels = Panels::for_model(&m, &self.instance, self.panels);
                self.model = Some(m);
                self.error = None;
                self.loading = None;
                self.example = None;
            }
            Action::LoadFailed(msg) => {
                self.error = Some(msg);
                self.loading = None;
            }
            Action::SetCat(i, id) => {
                if let Some(m) = &self.model {
                    set_categorical(&m.bundle.schema, &mut self.instance, i, id);
                    self.example = None;
                }
            }
            Action::SetNum(i, x) => {
                if let Some(m) = &self.model {
                    set_numeric(&m.bundle.schema, &mut self.instance, i, x);
                    self.example = None;
                }
            }
            Action::Random(seed) => {
                if let Some(m) = &self.model {
                    let schema = &m.bundle.schema;
                    if m.examples.is_empty() {
                        self.instance = random_instance(schema, seed);
                        self.example = None;
                    } else {
                        let n = m.examples.len();
                        let mut k = (seed % n as u64) as usize;
                        // Never "randomly" pick the example already shown.
                        if n > 1 && self.example.as_deref() == Some(m.examples[k].label.as_str()) {
                            k = (k + 1) % n;
                        }
                        self.instance = instance_from_example(schema, &m.examples[k]);
                        self.example = Some(m.examples[k].label.clone());
                    }
                }
            }
            Action::Reset => {
                if let Some(m) = &self.model {
                    self.instance = default_instance(&m.bundle.schema);
                    self.example = None;
                }
            }
            Action::Sweep(f) => {
                if self.model.as_ref().is_some_and(|m| f.exists(&m.bundle.schema)) {
                    self.sweep = Some(f);
                }
            }
            Action::DismissError => self.error = None,
            Action::Panel(a) => {
                if let Some(m) = &self.model {
                    self.panels.apply(&m.bundle.schema, a);
                }
            }
            Action::CompareLoaded(m) => {
                self.compare = Some(m);
                self.error = None;
                self.loading = None;
            }
            Action::StopComparing => self.compare = None,
            Action::Link(frag) => {
                let Some(m) = &self.model else { return };
                match fragment::decode(&m.bundle.schema, &frag) {
                    Ok(None) => self.link_note = None,
                    Ok(Some(d)) => {
                        self.link_note = d.note();
                        self.sweep = d.sweep.or(self.sweep);
                        self.instance = d.instance;
                        self.example = None;
                    }
                    Err(why) => self.link_note = Some(why),
                }
            }
        }
    }

    /// The compared model's view of the current instance.
    pub fn comparison(&self) -> Option<Comparison> {
        let (m, other) = (self.model.as_ref()?, self.compare.as_ref()?);
        Some(compare::compare(&m.bundle.schema, &self.instance, &other.bundle))
    }

    /// The compared model's curve for the current sweep (one batched `Bundle::predict`).
    pub fn compare_sweep(&self, plan: &sweep::SweepPlan) -> Option<Result<Vec<Prediction>, String>> {
        let (m, other) = (self.model.as_ref()?, self.compare.as_ref()?);
        compare::sweep(&m.bundle.schema, plan, &other.bundle)
    }

    /// The URL fragment that reproduces the current instance and sweep.
    pub fn link(&self) -> Option<String> {
        let m = self.model.as_ref()?;
        Some(fragment::encode(&m.bundle.schema, &self.instance, self.sweep))
    }

    /// The prediction for the current instance (one `Bundle::predict` call).
    pub fn predict(&self) -> Option<Result<Prediction, String>> {
        let m = self.model.as_ref()?;
        Some(
            m.bundle
                .predict(std::slice::from_ref(&self.instance))
                .map_err(|e| e.to_string())
                .and_then(|v| v.into_iter().next().ok_or_else(|| "no prediction".to_string())),
        )
    }

    /// The current sweep and its predictions (one batched `Bundle::predict` call).
    pub fn sweep_predictions(&self) -> Option<Result<(sweep::SweepPlan, Vec<Prediction>), String>> {
        let m = self.model.as_ref()?;
        let plan = sweep::plan(&m.bundle.schema, &self.instance, self.sweep?)?;
        Some(m.bundle.predict(&plan.instances).map(|p| (plan, p)).map_err(|e| e.to_string()))
    }

    /// The sensitivity panel's batch for the current instance: how far each feature moves
    /// each output, in feature order, once predicted ([`offload`]: in the panel worker or on
    /// the page).
    pub fn sensitivity_batch(&self) -> Option<offload::SensitivityBatch> {
        let m = self.model.as_ref()?;
        Some(offload::SensitivityBatch::new(m.clone(), &self.instance))
    }

    /// The relatedness map's batch over the chosen axes.
    pub fn map_batch(&self) -> Option<relmap::Grid> {
        offload::map_batch(self.model.as_ref()?, &self.instance, self.panels.map_x, self.panels.map_y)
    }

    /// tau of each example shipped with the model (one batch; empty without examples or tau).
    pub fn example_taus(&self) -> Vec<(String, f32)> {
        let Some(m) = &self.model else { return Vec::new() };
        let instances = relmap::example_instances(&m.bundle.schema, &m.examples);
        let preds = if instances.is_empty() { Vec::new() } else { m.bundle.predict(&instances).unwrap_or_default() };
        m.examples.iter().zip(preds).filter_map(|(e, p)| Some((e.label.clone(), p.tau?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{demo_config, demo_examples, other_schema, train_bundle};
    use crate::model::tests::bundle_bytes;

    fn loaded(id: u64, with_examples: bool) -> Rc<LoadedModel> {
        let m = LoadedModel::from_bytes(id, "m", bundle_bytes(), vec![]).unwrap();
        let ex = if with_examples { demo_examples(&m.bundle.schema, 3, 9) } else { vec![] };
        Rc::new(LoadedModel { examples: ex, ..m })
    }

    #[test]
    fn edits_change_the_prediction_and_match_core() {
        let mut s = State::default();
        assert!(s.predict().is_none());
        s.apply(Action::Loaded(loaded(1, false)));
        let before = s.predict().unwrap().unwrap();
        s.apply(Action::SetNum(1, 450.0));
        s.apply(Action::SetCat(2, 4));
        assert_eq!(s.instance.num[1], 450.0);
        assert_eq!(s.instance.cat[2], 4);
        let after = s.predict().unwrap().unwrap();
        assert_ne!(before, after);
        let direct = s.model.as_ref().unwrap().bundle.predict(&[s.instance.clone()]).unwrap()[0];
        assert_eq!(after, direct);
        s.apply(Action::Reset);
        assert_eq!(s.predict().unwrap().unwrap(), before);
    }

    #[test]
    fn sweep_is_one_batch_matching_single_predictions() {
        let mut s = State::default();
        s.apply(Action::Loaded(loaded(1, false)));
        assert_eq!(s.sweep, Some(FeatureRef::Num(0)));
        s.apply(Action::Sweep(FeatureRef::Cat(1)));
        let (plan, preds) = s.sweep_predictions().unwrap().unwrap();
        assert_eq!(preds.len(), plan.instances.len());
        let b = &s.model.as_ref().unwrap().bundle;
        for (inst, p) in plan.instances.iter().zip(&preds) {
            let one = b.predict(std::slice::from_ref(inst)).unwrap()[0];
            assert!((one.pctr - p.pctr).abs() < 1e-6 && (one.tau.unwrap() - p.tau.unwrap()).abs() < 1e-6);
        }
        s.apply(Action::Sweep(FeatureRef::Num(42)));
        assert_eq!(s.sweep, Some(FeatureRef::Cat(1)), "unknown features are ignored");
    }

    #[test]
    fn failed_load_keeps_the_model() {
        let mut s = State::default();
        s.apply(Action::Loaded(loaded(1, false)));
        s.apply(Action::SetCat(0, 3));
        let p = s.predict().unwrap().unwrap();
        s.apply(Action::Loading("bad.safetensors".into()));
        s.apply(Action::LoadFailed("nope".into()));
        assert_eq!(s.error.as_deref(), Some("nope"));
        assert!(s.loading.is_none());
        assert_eq!(s.model.as_ref().unwrap().id, 1);
        assert_eq!(s.predict().unwrap().unwrap(), p);
        s.apply(Action::DismissError);
        assert!(s.error.is_none());
    }

    #[test]
    fn switching_models_rebuilds_the_instance() {
        let mut s = State::default();
        s.apply(Action::Loaded(loaded(1, false)));
        s.apply(Action::Sweep(FeatureRef::Cat(0)));
        s.apply(Action::LoadFailed("old error".into()));
        let mut cfg = demo_config(3);
        cfg.train.epochs = 1;
        let bytes = train_bundle(other_schema(), cfg, 400).unwrap();
        let other = LoadedModel::from_bytes(2, "other", &bytes, vec![]).unwrap();
        s.apply(Action::Loaded(Rc::new(other)));
        assert_eq!((s.instance.cat.len(), s.instance.num.len()), (2, 2));
        assert_eq!(s.sweep, Some(FeatureRef::Num(0)), "old feature is gone: back to the default");
        assert!(s.error.is_none());
        assert!(s.predict().unwrap().is_ok());
    }

    #[test]
    fn random_uses_examples_when_shipped() {
        let mut s = State::default();
        s.apply(Action::Loaded(loaded(1, true)));
        let m = s.model.clone().unwrap();
        s.apply(Action::Random(1));
        assert_eq!(s.example.as_deref(), Some("Example 2"));
        assert_eq!(s.instance, instance_from_example(&m.bundle.schema, &m.examples[1]));
        s.apply(Action::Random(1));
        assert_eq!(s.example.as_deref(), Some("Example 3"), "does not repeat the shown example");
        s.apply(Action::SetNum(0, 0.1));
        assert!(s.example.is_none());

        let mut t = State::default();
        t.apply(Action::Loaded(loaded(2, false)));
        t.apply(Action::Random(5));
        assert_eq!(t.instance, random_instance(&m.bundle.schema, 5));
    }

    #[test]
    fn panel_choices_and_map_axes() {
        let mut s = State::default();
        s.apply(Action::Panel(PanelAction::RankBy(Output::Pctr)));
        assert_eq!(s.panels, Panels::default(), "nothing to choose without a model");
        s.apply(Action::Loaded(loaded(1, false)));
        let m = s.model.clone().unwrap();
        let schema = &m.bundle.schema;
        // The default axes: the two numerics that move tau most at the loaded instance.
        let rows = offload::run(&m.bundle, s.sensitivity_batch().unwrap()).unwrap();
        let want = relmap::default_axes(schema, &rows);
        assert!(matches!(want, (Some(FeatureRef::Num(_)), Some(FeatureRef::Num(_)))));
        assert_eq!((s.panels.map_x, s.panels.map_y), want);
        assert_eq!((s.panels.rank_by, s.panels.map_show), (Output::Tau, Output::Tau));

        s.apply(Action::Panel(PanelAction::RankBy(Output::Pcvr)));
        s.apply(Action::Panel(PanelAction::MapShow(Output::Pcvr)));
        assert_eq!((s.panels.rank_by, s.panels.map_show), (Output::Pcvr, Output::Pcvr));
        s.apply(Action::Panel(PanelAction::MapAxis { y: false, feature: FeatureRef::Cat(2) }));
        assert_eq!((s.panels.map_x, s.panels.map_y), (Some(FeatureRef::Cat(2)), want.1));
        // Choosing the other axis's feature swaps the two.
        s.apply(Action::Panel(PanelAction::MapAxis { y: true, feature: FeatureRef::Cat(2) }));
        assert_eq!((s.panels.map_x, s.panels.map_y), (want.1, Some(FeatureRef::Cat(2))));
        s.apply(Action::Panel(PanelAction::MapAxis { y: true, feature: FeatureRef::Num(77) }));
        assert_eq!(s.panels.map_y, Some(FeatureRef::Cat(2)), "unknown features are ignored");

        let map = offload::run(&m.bundle, s.map_batch().unwrap()).unwrap();
        assert_eq!((map.x.feature, map.y.feature), (want.1.unwrap(), FeatureRef::Cat(2)));
        assert_eq!(map.size(), (relmap::NUMERIC_POINTS, schema.categorical[2].cardinality()));
        // An edit changes the map; the choices stay.
        let before = map.tau.clone();
        s.apply(Action::SetNum(0, 0.29));
        s.apply(Action::SetCat(0, 4));
        assert_ne!(offload::run(&m.bundle, s.map_batch().unwrap()).unwrap().tau, before);
        assert_eq!(s.panels.map_y, Some(FeatureRef::Cat(2)));

        // A new model gets its own axes and keeps the outputs chosen.
        s.apply(Action::Loaded(loaded(2, false)));
        assert_eq!((s.panels.map_x, s.panels.map_y), want);
        assert_eq!((s.panels.rank_by, s.panels.map_show), (Output::Pcvr, Output::Pcvr));
    }

    #[test]
    fn example_taus_come_from_one_batch() {
        let mut s = State::default();
        assert!(s.example_taus().is_empty());
        s.apply(Action::Loaded(loaded(1, true)));
        let m = s.model.clone().unwrap();
        let taus = s.example_taus();
        assert_eq!(taus.len(), 3);
        for ((label, tau), ex) in taus.iter().zip(&m.examples) {
            assert_eq!(label, &ex.label);
            let one = m.bundle.predict(&[instance_from_example(&m.bundle.schema, ex)]).unwrap()[0];
            assert!((one.tau.unwrap() - tau).abs() < 1e-6);
        }
        s.apply(Action::Loaded(loaded(2, false)));
        assert!(s.example_taus().is_empty());
    }

    fn other_model(id: u64) -> Rc<LoadedModel> {
        let mut cfg = demo_config(7);
        cfg.train.epochs = 1;
        let bytes = train_bundle(crate::demo::demo_schema(), cfg, 400).unwrap();
        Rc::new(LoadedModel::from_bytes(id, "b", &bytes, vec![]).unwrap())
    }

    #[test]
    fn a_compared_model_predicts_the_same_instance() {
        let mut s = State::default();
        s.apply(Action::Loaded(loaded(1, false)));
        assert!(s.comparison().is_none());
        s.apply(Action::Loading("b".into()));
        s.apply(Slot::Compare.loaded(other_model(2)));
        assert!(s.loading.is_none());
        assert_eq!(s.model.as_ref().unwrap().id, 1, "the edited model stays");
        s.apply(Action::SetNum(1, 120.0));
        s.apply(Action::SetCat(0, 0));
        let b = &s.compare.as_ref().unwrap().bundle;
        let c = s.comparison().unwrap();
        assert_eq!(c.mapping.instance, s.instance, "same schema: the same instance");
        assert_eq!(c.prediction.clone().unwrap().unwrap(), b.predict(std::slice::from_ref(&s.instance)).unwrap()[0]);
        assert_ne!(c.prediction.unwrap().unwrap(), s.predict().unwrap().unwrap(), "another model");

        let (plan, _) = s.sweep_predictions().unwrap().unwrap();
        let curve = s.compare_sweep(&plan).unwrap().unwrap();
        assert_eq!(curve, b.predict(&plan.instances).unwrap());

        // A new edited model keeps the comparison, mapped into it.
        let mut cfg = demo_config(3);
        cfg.train.epochs = 1;
        let bytes = train_bundle(other_schema(), cfg, 400).unwrap();
        s.apply(Slot::Main.loaded(Rc::new(LoadedModel::from_bytes(3, "o", &bytes, vec![]).unwrap())));
        assert_eq!(s.compare.as_ref().unwrap().id, 2);
        let c = s.comparison().unwrap();
        assert_eq!(c.mapping.matched, 0);
        assert!(c.prediction.is_none(), "nothing in common: no prediction");
        s.apply(Action::StopComparing);
        assert!(s.compare.is_none() && s.comparison().is_none());
    }

    #[test]
    fn a_failed_load_keeps_both_models() {
        let mut s = State::default();
        s.apply(Action::Loaded(loaded(1, false)));
        s.apply(Action::CompareLoaded(other_model(2)));
        s.apply(Action::SetCat(1, 2));
        let (p, c) = (s.predict(), s.comparison());
        s.apply(Action::Loading("bad.safetensors".into()));
        s.apply(Action::LoadFailed("`bad.safetensors` is not a usable AdaFTR model".into()));
        assert_eq!((s.model.as_ref().unwrap().id, s.compare.as_ref().unwrap().id), (1, 2));
        assert_eq!((s.predict(), s.comparison()), (p, c));
        assert!(s.error.is_some() && s.loading.is_none());
    }

    #[test]
    fn a_link_sets_the_instance_and_sweep() {
        let mut s = State::default();
        s.apply(Action::Link("v=1&n.item_price=7".into()));
        assert_eq!(s, State::default(), "no model yet: nothing to apply to");
        s.apply(Action::Loaded(loaded(1, true)));
        s.apply(Action::Random(2));
        s.apply(Action::Sweep(FeatureRef::Cat(3)));
        let link = s.link().unwrap();
        let (inst, sweep) = (s.instance.clone(), s.sweep);

        let mut t = State::default();
        t.apply(Action::Loaded(loaded(2, true)));
        t.apply(Action::Link(format!("#{link}")));
        assert_eq!((&t.instance, t.sweep, &t.link_note), (&inst, sweep, &None));
        assert_eq!(t.predict(), s.predict());

        // An ordinary anchor changes nothing; a partial link notes what it dropped and keeps
        // the sweep when it names none.
        t.apply(Action::Link("#adaftr-chart".into()));
        assert_eq!(t.instance, inst);
        t.apply(Action::Link("v=1&n.item_price=7&n.gone=1".into()));
        let mut want = default_instance(&t.model.as_ref().unwrap().bundle.schema);
        want.num[1] = 7.0;
        assert_eq!((&t.instance, t.sweep), (&want, sweep));
        assert!(t.link_note.as_deref().unwrap().contains("`n.gone`"));
        t.apply(Action::Link("v=9&n.item_price=8".into()));
        assert_eq!(t.instance, want, "another version: ignored");
        assert!(t.link_note.as_deref().unwrap().contains("v=9"));
    }
}
