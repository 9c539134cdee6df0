//! The explaining panels' batches, predicted on the page's thread or in the panel worker.
//!
//! The sensitivity panel and the relatedness map are the page's largest inference (about
//! 5 ms a change, against well under a millisecond for the prediction and the what-if
//! sweep). Off the page's thread, they run while the page renders the edit itself, and the
//! panels follow as soon as their batches come back. Both ways run [`PanelBatch`]: the same
//! rows, the same `Bundle::predict` and the same summary, so the panels show the same
//! numbers wherever the batch ran.
//!
//! The wire format between the page and the worker is plain typed arrays: a batch as its
//! instance and each row's changes ([`Variations`]), and the predictions as four `f32` a
//! row (pCTR, pCVR, pCTCVR, tau; tau NaN for a model without one). `f32` travels bit for
//! bit.

use std::rc::Rc;

use adaftr_core::bundle::{self, Bundle};
use adaftr_core::inference::{Instance, Prediction};
use candle_core::Device;

use crate::model::LoadedModel;
use crate::relmap::{self, Grid, RelMap};
use crate::sensitivity::{self, Plan, Row};
use crate::sweep::FeatureRef;
use crate::variations::{Encoded, Variations};

/// A batch a panel shows the predictions of: its rows, and what it makes of them.
pub trait PanelBatch {
    type Out;
    fn rows(&self) -> &Variations;
    /// The panel's view of the rows' predictions; `None` when they are not this batch's.
    fn finish(self, preds: &[Prediction]) -> Option<Self::Out>;
}

/// The sensitivity panel's batch: every feature moved across its range.
pub struct SensitivityBatch {
    model: Rc<LoadedModel>,
    plan: Plan,
}

impl SensitivityBatch {
    pub fn new(model: Rc<LoadedModel>, inst: &Instance) -> Self {
        let plan = sensitivity::plan(&model.bundle.schema, inst);
        Self { model, plan }
    }
}

impl PanelBatch for SensitivityBatch {
    type Out = Vec<Row>;
    fn rows(&self) -> &Variations {
        &self.plan.rows
    }
    fn finish(self, preds: &[Prediction]) -> Option<Vec<Row>> {
        sensitivity::summarise(&self.model.bundle.schema, &self.plan, preds)
    }
}

/// The relatedness map's batch; `None` when the axes are not two features of the schema.
pub fn map_batch(model: &LoadedModel, inst: &Instance, x: Option<FeatureRef>, y: Option<FeatureRef>) -> Option<Grid> {
    relmap::plan(&model.bundle.schema, inst, x?, y?)
}

impl PanelBatch for Grid {
    type Out = RelMap;
    fn rows(&self) -> &Variations {
        &self.rows
    }
    fn finish(self, preds: &[Prediction]) -> Option<RelMap> {
        RelMap::new(self, preds)
    }
}

/// The batch's rows predicted by `bundle`, and the panel's view of them: what the page's
/// thread runs when no worker is at hand.
pub fn run<B: PanelBatch>(bundle: &Bundle, batch: B) -> Result<B::Out, String> {
    let preds = bundle.predict(&batch.rows().instances()).map_err(|e| e.to_string())?;
    finish(batch, &preds)
}

/// The panel's view of predictions that came back for `batch`.
pub fn finish<B: PanelBatch>(batch: B, preds: &[Prediction]) -> Result<B::Out, String> {
    batch.finish(preds).ok_or_else(|| "the batch came back short".to_string())
}

/// Floats a prediction travels as.
pub const PER_ROW: usize = 4;

pub fn encode_predictions(preds: &[Prediction]) -> Vec<f32> {
    preds.iter().flat_map(|p| [p.pctr, p.pcvr, p.pctcvr, p.tau.unwrap_or(f32::NAN)]).collect()
}

pub fn decode_predictions(v: &[f32]) -> Result<Vec<Prediction>, String> {
    if !v.len().is_multiple_of(PER_ROW) {
        return Err(format!("{} floats are not whole predictions of {PER_ROW}", v.len()));
    }
    Ok(v.chunks_exact(PER_ROW)
        .map(|p| Prediction { pctr: p[0], pcvr: p[1], pctcvr: p[2], tau: (!p[3].is_nan()).then_some(p[3]) })
        .collect())
}

/// One panel's batch that is asked for: the state it is for, the batch, and its ticket
/// (batches are numbered in the order they are asked for).
pub struct Pending<K, B> {
    pub key: K,
    pub batch: B,
    ticket: u64,
}

/// What to do with a state's batch ([`PanelSlot::ask`]).
pub enum Next<K, B> {
    /// Nothing: the panel shows it, or it is in the worker or waiting there.
    Nothing,
    /// Post it to the worker; [`PanelSlot::back`] takes it with what comes back.
    Post(Pending<K, B>),
    /// Predict it on the page now, with [`PanelSlot::show_page`].
    OnPage(Pending<K, B>),
}

/// One panel's batches: what the panel shows, the batch in the worker and the one waiting
/// for it. One batch at a time is in the worker; a newer state waits for it and replaces
/// any other waiting one, so a dragged slider never queues work behind it. A batch back
/// is shown only if it was asked for after the one shown: the page may have predicted a
/// later state itself meanwhile (a model the worker did not hold yet).
pub struct PanelSlot<K, B: PanelBatch> {
    value: Rc<Option<Result<B::Out, String>>>,
    ms: f64,
    rows: usize,
    /// Whether the batch shown came back from the worker (rather than the page predicting it).
    off_thread: bool,
    shown_key: Option<K>,
    shown_ticket: u64,
    tickets: u64,
    in_worker: Option<K>,
    waiting: Option<Pending<K, B>>,
}

/// What a panel shows ([`PanelSlot::view`]).
pub struct Shown<T> {
    pub value: Rc<Option<Result<T, String>>>,
    /// The batch's inference time (ms): in the worker, or on the page.
    pub ms: f64,
    /// Rows in that batch.
    pub rows: usize,
    /// Whether `value` is for the current state (false while the worker has its batch).
    pub current: bool,
    pub off_thread: bool,
}

impl<K: PartialEq + Clone, B: PanelBatch> Default for PanelSlot<K, B> {
    fn default() -> Self {
        Self {
            value: Rc::new(None),
            ms: 0.0,
            rows: 0,
            off_thread: false,
            shown_key: None,
            shown_ticket: 0,
            tickets: 0,
            in_worker: None,
            waiting: None,
        }
    }
}

impl<K: PartialEq + Clone, B: PanelBatch> PanelSlot<K, B> {
    /// The panel's state is `key`, whose batch `make` builds (`None`: nothing to show);
    /// `worker`: whether the worker holds the model.
    pub fn ask(&mut self, key: &K, make: impl FnOnce() -> Option<B>, worker: bool) -> Next<K, B> {
        let known = self.shown_key.as_ref() == Some(key)
            || self.in_worker.as_ref() == Some(key)
            || self.waiting.as_ref().is_some_and(|w| w.key == *key);
        if known {
            return Next::Nothing;
        }
        self.tickets += 1;
        let ticket = self.tickets;
        let Some(batch) = make() else {
            self.put(key.clone(), ticket, None, 0.0, 0, false);
            return Next::Nothing;
        };
        let pending = Pending { key: key.clone(), batch, ticket };
        if !worker {
            return Next::OnPage(pending);
        }
        if self.in_worker.is_some() {
            self.waiting = Some(pending);
            return Next::Nothing;
        }
        self.in_worker = Some(pending.key.clone());
        Next::Post(pending)
    }

    /// Shows `value` for `key` (ticket `ticket`), unless a later state's is shown.
    fn put(
        &mut self,
        key: K,
        ticket: u64,
        value: Option<Result<B::Out, String>>,
        ms: f64,
        rows: usize,
        off_thread: bool,
    ) {
        if ticket < self.shown_ticket {
            return;
        }
        (self.value, self.ms, self.rows, self.off_thread) = (Rc::new(value), ms, rows, off_thread);
        (self.shown_key, self.shown_ticket) = (Some(key), ticket);
    }

    /// Predicts a batch [`Next::OnPage`] gave with `bundle` and shows it, timed by `clock`
    /// (ms).
    pub fn show_page(&mut self, p: Pending<K, B>, bundle: &Bundle, clock: impl Fn() -> f64) {
        let rows = p.batch.rows().len();
        let t0 = clock();
        let value = run(bundle, p.batch);
        let ms = clock() - t0;
        self.put(p.key, p.ticket, Some(value), ms, rows, false);
    }

    /// A batch [`Next::Post`] gave is back: its predictions and the
    /// worker's time, or why it failed (the page then predicts this state itself at the next
    /// [`ask`](Self::ask) without the worker). Returns the waiting batch, now to post.
    pub fn back(&mut self, p: Pending<K, B>, reply: Result<(Vec<Prediction>, f64), String>) -> Option<Pending<K, B>> {
        self.in_worker = None;
        match reply {
            Ok((preds, ms)) => {
                let rows = p.batch.rows().len();
                let value = finish(p.batch, &preds);
                self.put(p.key, p.ticket, Some(value), ms, rows, true);
            }
            Err(_) => {
                self.shown_key = None;
                self.waiting = None;
            }
        }
        let next = self.waiting.take()?;
        self.in_worker = Some(next.key.clone());
        Some(next)
    }

    /// The waiting batch could not be posted after all (the worker is gone): the next
    /// [`ask`](Self::ask) predicts its state on the page.
    pub fn dropped(&mut self) {
        self.in_worker = None;
    }

    /// What the panel shows while its state is `key`.
    pub fn view(&self, key: &K) -> Shown<B::Out> {
        Shown {
            value: self.value.clone(),
            ms: self.ms,
            rows: self.rows,
            current: self.shown_key.as_ref() == Some(key),
            off_thread: self.off_thread,
        }
    }
}

/// The worker's side: the model the page sent last (by the page's model id), and its
/// predictions for the batches that name it.
#[derive(Default)]
pub struct Predictor {
    model: Option<(u64, Bundle)>,
}

impl Predictor {
    /// Loads the bundle the page already checked; a failure leaves no model, so the page's
    /// batches for it are refused and the page predicts them itself.
    pub fn load(&mut self, id: u64, bytes: &[u8]) -> Result<(), String> {
        self.model = None;
        let b = bundle::load(bytes, &Device::Cpu).map_err(|e| e.to_string())?;
        self.model = Some((id, b));
        Ok(())
    }

    /// The predictions of a batch for model `id` ([`Variations::encode`]d), encoded.
    pub fn predict(&self, id: u64, rows: Encoded) -> Result<Vec<f32>, String> {
        let Some((_, b)) = self.model.as_ref().filter(|(loaded, _)| *loaded == id) else {
            return Err(format!("the worker has no model {id}"));
        };
        let rows = Variations::decode(rows, &b.schema)?;
        b.predict(&rows.instances()).map(|p| encode_predictions(&p)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editor::default_instance;
    use crate::model::tests::bundle_bytes;

    fn model() -> Rc<LoadedModel> {
        Rc::new(LoadedModel::from_bytes(1, "m", bundle_bytes(), Vec::new()).unwrap())
    }

    #[test]
    fn the_worker_predicts_what_the_page_would() {
        let m = model();
        let mut inst = default_instance(&m.bundle.schema);
        inst.num[0] = 0.37;
        let mut worker = Predictor::default();
        worker.load(7, &m.bytes).unwrap();

        // The sensitivity batch, through the wire format and the worker, against the page.
        let batch = SensitivityBatch::new(m.clone(), &inst);
        let back = decode_predictions(&worker.predict(7, batch.rows().encode()).unwrap()).unwrap();
        let here = m.bundle.predict(&batch.rows().instances()).unwrap();
        assert_eq!(back, here, "bit for bit, tau included");
        assert!(here.iter().all(|p| p.tau.is_some()));
        let via_worker = finish(batch, &back).unwrap();
        assert_eq!(via_worker, run(&m.bundle, SensitivityBatch::new(m.clone(), &inst)).unwrap());

        // The map's batch likewise.
        let x = Some(FeatureRef::Num(0));
        let y = Some(FeatureRef::Cat(0));
        let grid = map_batch(&m, &inst, x, y).unwrap();
        let back = decode_predictions(&worker.predict(7, grid.rows().encode()).unwrap()).unwrap();
        let via_worker = finish(grid, &back).unwrap();
        assert_eq!(via_worker, run(&m.bundle, map_batch(&m, &inst, x, y).unwrap()).unwrap());
        assert!(map_batch(&m, &inst, x, x).is_none() && map_batch(&m, &inst, None, y).is_none());
    }

    #[test]
    fn a_model_without_tau_travels_as_none() {
        // The shipped comparison model has no contrastive term.
        let bytes = std::fs::read(format!("{}/assets/plain-ple.safetensors", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let m = LoadedModel::from_bytes(2, "plain", &bytes, Vec::new()).unwrap();
        let mut rows = Variations::new(default_instance(&m.bundle.schema));
        rows.push(&[]);
        let mut worker = Predictor::default();
        worker.load(2, &bytes).unwrap();
        let back = decode_predictions(&worker.predict(2, rows.encode()).unwrap()).unwrap();
        assert_eq!(back, m.bundle.predict(&rows.instances()).unwrap());
        assert_eq!(back[0].tau, None);
    }

    /// A batch of copies of an instance whose view is their predicted pCTRs.
    struct Copies(Variations);

    impl Copies {
        fn of(inst: &Instance, n: usize) -> Self {
            let mut rows = Variations::new(inst.clone());
            (0..n).for_each(|_| rows.push(&[]));
            Copies(rows)
        }
    }

    impl PanelBatch for Copies {
        type Out = Vec<f32>;
        fn rows(&self) -> &Variations {
            &self.0
        }
        fn finish(self, preds: &[Prediction]) -> Option<Vec<f32>> {
            (preds.len() == self.0.len()).then(|| preds.iter().map(|p| p.pctr).collect())
        }
    }

    fn copies(n: usize) -> Option<Copies> {
        Some(Copies::of(&Instance { cat: vec![], num: vec![] }, n))
    }

    fn preds(pctr: f32, n: usize) -> Result<(Vec<Prediction>, f64), String> {
        Ok((vec![Prediction { pctr, pcvr: 0.0, pctcvr: 0.0, tau: None }; n], 2.5))
    }

    fn shows(slot: &PanelSlot<u32, Copies>, key: u32) -> (Option<f32>, bool) {
        let v = slot.view(&key);
        let first = v.value.as_ref().as_ref().and_then(|r| r.as_ref().ok()).and_then(|p| p.first().copied());
        (first, v.current)
    }

    #[test]
    fn a_slot_predicts_on_the_page_without_a_worker() {
        let m = model();
        let inst = default_instance(&m.bundle.schema);
        let want = m.bundle.predict(std::slice::from_ref(&inst)).unwrap()[0].pctr;
        let mut slot = PanelSlot::<u32, Copies>::default();
        let Next::OnPage(p) = slot.ask(&1, || Some(Copies::of(&inst, 3)), false) else { panic!("page") };
        slot.show_page(p, &m.bundle, || 0.0);
        assert_eq!(shows(&slot, 1), (Some(want), true));
        assert_eq!((slot.view(&1).rows, slot.view(&1).off_thread), (3, false));
        assert!(matches!(slot.ask(&1, || copies(3), false), Next::Nothing), "the same state is not asked twice");
        // A state with nothing to show (no map axes) shows nothing, at once.
        assert!(matches!(slot.ask(&2, || None, false), Next::Nothing));
        assert_eq!(shows(&slot, 2), (None, true));
    }

    #[test]
    fn a_slot_keeps_one_batch_in_the_worker_and_the_latest_waiting() {
        let mut slot = PanelSlot::<u32, Copies>::default();
        let Next::Post(p1) = slot.ask(&1, || copies(2), true) else { panic!("posted") };
        assert!(matches!(slot.ask(&1, || copies(2), true), Next::Nothing), "already in the worker");
        assert_eq!(shows(&slot, 1), (None, false));
        // Two more edits while the worker is busy: only the last waits.
        assert!(matches!(slot.ask(&2, || copies(2), true), Next::Nothing));
        assert!(matches!(slot.ask(&3, || copies(2), true), Next::Nothing));
        let p3 = slot.back(p1, preds(0.1, 2)).expect("the waiting batch");
        assert_eq!(p3.key, 3, "state 2 was replaced");
        // State 1's result is shown (marked not current) while state 3's is in the worker.
        assert_eq!(shows(&slot, 3), (Some(0.1), false));
        assert!(matches!(slot.ask(&3, || copies(2), true), Next::Nothing), "in the worker");
        assert!(slot.back(p3, preds(0.3, 2)).is_none());
        assert_eq!(shows(&slot, 3), (Some(0.3), true));
        let v = slot.view(&3);
        assert!(v.off_thread && v.ms == 2.5 && v.rows == 2);
        // A reply that does not fit the batch is an error, shown as one.
        let Next::Post(p4) = slot.ask(&4, || copies(2), true) else { panic!("posted") };
        assert!(slot.back(p4, preds(0.4, 1)).is_none());
        assert!(matches!(slot.view(&4).value.as_ref(), Some(Err(e)) if e.contains("short")));
    }

    #[test]
    fn a_slot_shows_no_batch_older_than_its_page_result() {
        let mut slot = PanelSlot::<u32, Copies>::default();
        let Next::Post(p1) = slot.ask(&1, || copies(1), true) else { panic!("posted") };
        // A new model the worker does not hold yet: the page predicts state 2 itself.
        let m = model();
        let inst = default_instance(&m.bundle.schema);
        let want = m.bundle.predict(std::slice::from_ref(&inst)).unwrap()[0].pctr;
        let Next::OnPage(p2) = slot.ask(&2, || Some(Copies::of(&inst, 1)), false) else { panic!("page") };
        slot.show_page(p2, &m.bundle, || 0.0);
        assert!(slot.back(p1, preds(0.1, 1)).is_none());
        assert_eq!(shows(&slot, 2), (Some(want), true), "state 1's late batch is not shown");
    }

    #[test]
    fn a_failed_batch_is_predicted_on_the_page() {
        let mut slot = PanelSlot::<u32, Copies>::default();
        let Next::Post(p1) = slot.ask(&1, || copies(1), true) else { panic!("posted") };
        assert!(matches!(slot.ask(&2, || copies(1), true), Next::Nothing));
        assert!(slot.back(p1, Err("the worker stopped".into())).is_none(), "nothing more goes to it");
        assert!(matches!(slot.ask(&2, || copies(1), false), Next::OnPage(_)));
        // Likewise a waiting batch that could not be posted.
        let mut slot = PanelSlot::<u32, Copies>::default();
        let Next::Post(p1) = slot.ask(&1, || copies(1), true) else { panic!("posted") };
        assert!(matches!(slot.ask(&2, || copies(1), true), Next::Nothing));
        let _p2 = slot.back(p1, preds(0.1, 1)).expect("waiting");
        slot.dropped();
        assert!(matches!(slot.ask(&2, || copies(1), false), Next::OnPage(_)));
    }

    #[test]
    fn the_worker_refuses_batches_it_cannot_predict() {
        let m = model();
        let rows = Copies::of(&default_instance(&m.bundle.schema), 2).0.encode();
        let mut worker = Predictor::default();
        assert!(worker.predict(1, rows.clone()).unwrap_err().contains("no model 1"));
        worker.load(1, &m.bytes).unwrap();
        assert!(worker.predict(2, rows.clone()).unwrap_err().contains("no model 2"), "another model's batch");
        let mut short = rows.clone();
        short.cat.pop();
        let why = worker.predict(1, short).unwrap_err();
        assert!(why.contains("the batch's instance has"), "{why}");
        // An id past the field's vocabulary is core's error, not a wrong row.
        let mut far = rows.clone();
        far.cat[0] = u32::MAX;
        assert!(worker.predict(1, far).unwrap_err().contains("out of range"));
        // A bundle that does not load leaves no model behind.
        assert!(worker.load(3, b"not a bundle").is_err());
        assert!(worker.predict(1, rows).is_err());
        assert!(decode_predictions(&[0.5; 5]).is_err());
    }
}
