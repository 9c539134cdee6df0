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
//! categorical ids and its numerics, row-major, and the predictions as four `f32` a row
//! (pCTR, pCVR, pCTCVR, tau; tau NaN for a model without one). `f32` travels bit for bit.

use std::rc::Rc;

use adaftr_core::bundle::{self, Bundle};
use adaftr_core::inference::{Instance, Prediction};
use candle_core::Device;

use crate::model::LoadedModel;
use crate::relmap::{self, Grid, RelMap};
use crate::sensitivity::{self, Plan, Row};
use crate::sweep::FeatureRef;

/// A batch a panel shows the predictions of: its rows, and what it makes of them.
pub trait PanelBatch {
    type Out;
    fn rows(&self) -> &[Instance];
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
    fn rows(&self) -> &[Instance] {
        &self.plan.instances
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
    fn rows(&self) -> &[Instance] {
        &self.instances
    }
    fn finish(self, preds: &[Prediction]) -> Option<RelMap> {
        RelMap::new(self, preds)
    }
}

/// The batch's rows predicted by `bundle`, and the panel's view of them: what the page's
/// thread runs when no worker is at hand.
pub fn run<B: PanelBatch>(bundle: &Bundle, batch: B) -> Result<B::Out, String> {
    let preds = bundle.predict(batch.rows()).map_err(|e| e.to_string())?;
    finish(batch, &preds)
}

/// The panel's view of predictions that came back for `batch`.
pub fn finish<B: PanelBatch>(batch: B, preds: &[Prediction]) -> Result<B::Out, String> {
    batch.finish(preds).ok_or_else(|| "the batch came back short".to_string())
}

/// A batch's rows as the worker receives them: categorical ids and raw numerics, row-major.
pub fn encode_rows(rows: &[Instance]) -> (Vec<u32>, Vec<f32>) {
    let cat = rows.iter().flat_map(|r| r.cat.iter().copied()).collect();
    let num = rows.iter().flat_map(|r| r.num.iter().copied()).collect();
    (cat, num)
}

/// `n` rows of `n_cat` ids and `n_num` numerics each, from [`encode_rows`]'s arrays.
pub fn decode_rows(cat: &[u32], num: &[f32], n: usize, n_cat: usize, n_num: usize) -> Result<Vec<Instance>, String> {
    if cat.len() != n * n_cat || num.len() != n * n_num {
        return Err(format!(
            "a batch of {n} rows came with {} ids and {} numerics; the model has {n_cat} categorical and \
             {n_num} numeric fields",
            cat.len(),
            num.len()
        ));
    }
    Ok((0..n)
        .map(|r| Instance { cat: cat[r * n_cat..][..n_cat].to_vec(), num: num[r * n_num..][..n_num].to_vec() })
        .collect())
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

    /// The predictions of `n` encoded rows for model `id`, encoded.
    pub fn predict(&self, id: u64, cat: &[u32], num: &[f32], n: usize) -> Result<Vec<f32>, String> {
        let Some((_, b)) = self.model.as_ref().filter(|(loaded, _)| *loaded == id) else {
            return Err(format!("the worker has no model {id}"));
        };
        let rows = decode_rows(cat, num, n, b.schema.categorical.len(), b.schema.numeric.len())?;
        b.predict(&rows).map(|p| encode_predictions(&p)).map_err(|e| e.to_string())
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
        let (cat, num) = encode_rows(batch.rows());
        let n = batch.rows().len();
        let back = decode_predictions(&worker.predict(7, &cat, &num, n).unwrap()).unwrap();
        let here = m.bundle.predict(batch.rows()).unwrap();
        assert_eq!(back, here, "bit for bit, tau included");
        assert!(here.iter().all(|p| p.tau.is_some()));
        let via_worker = finish(batch, &back).unwrap();
        assert_eq!(via_worker, run(&m.bundle, SensitivityBatch::new(m.clone(), &inst)).unwrap());

        // The map's batch likewise.
        let x = Some(FeatureRef::Num(0));
        let y = Some(FeatureRef::Cat(0));
        let grid = map_batch(&m, &inst, x, y).unwrap();
        let (cat, num) = encode_rows(grid.rows());
        let back = decode_predictions(&worker.predict(7, &cat, &num, grid.rows().len()).unwrap()).unwrap();
        let via_worker = finish(grid, &back).unwrap();
        assert_eq!(via_worker, run(&m.bundle, map_batch(&m, &inst, x, y).unwrap()).unwrap());
        assert!(map_batch(&m, &inst, x, x).is_none() && map_batch(&m, &inst, None, y).is_none());
    }

    #[test]
    fn a_model_without_tau_travels_as_none() {
        // The shipped comparison model has no contrastive term.
        let bytes = std::fs::read(format!("{}/assets/plain-ple.safetensors", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let m = LoadedModel::from_bytes(2, "plain", &bytes, Vec::new()).unwrap();
        let rows = vec![default_instance(&m.bundle.schema)];
        let mut worker = Predictor::default();
        worker.load(2, &bytes).unwrap();
        let (cat, num) = encode_rows(&rows);
        let back = decode_predictions(&worker.predict(2, &cat, &num, 1).unwrap()).unwrap();
        assert_eq!(back, m.bundle.predict(&rows).unwrap());
        assert_eq!(back[0].tau, None);
    }

    #[test]
    fn the_worker_refuses_batches_it_cannot_predict() {
        let m = model();
        let rows = vec![default_instance(&m.bundle.schema); 2];
        let (cat, num) = encode_rows(&rows);
        let mut worker = Predictor::default();
        assert!(worker.predict(1, &cat, &num, 2).unwrap_err().contains("no model 1"));
        worker.load(1, &m.bytes).unwrap();
        assert!(worker.predict(2, &cat, &num, 2).unwrap_err().contains("no model 2"), "another model's batch");
        let short = worker.predict(1, &cat[1..], &num, 2).unwrap_err();
        assert!(short.contains("a batch of 2 rows"), "{short}");
        // A bundle that does not load leaves no model behind.
        assert!(worker.load(3, b"not a bundle").is_err());
        assert!(worker.predict(1, &cat, &num, 2).is_err());
        assert!(decode_predictions(&[0.5; 5]).is_err());
    }
}
