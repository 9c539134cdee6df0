//! Batch prediction over a dataset and the evaluation report built from it.

use std::io::Read;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::{read_with_schema, Dataset, LoadOptions, LoadReport};
use crate::error::Result;
use crate::metrics::{auc, group_auc, logloss, spearman, Distribution};
use crate::model::AdaFtr;
use crate::schema::Schema;

/// Per-row model outputs, in dataset order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predictions {
    pub pctr: Vec<f32>,
    pub pcvr: Vec<f32>,
    pub pctcvr: Vec<f32>,
    /// Empty when the model has no temperature (`cl = none`).
    pub tau: Vec<f32>,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_vec1::<f32>()?)
}

/// Runs the model over every row of `ds` in batches of `batch_size`.
pub fn predict(model: &AdaFtr, ds: &Dataset, batch_size: usize, device: &Device) -> Result<Predictions> {
    let mut p = Predictions::default();
    predict_into(&mut p, model, ds, ds.len(), batch_size, device)?;
    Ok(p)
}

/// Appends the predictions of the first `rows` rows of `ds`, in batches of `batch_size`.
fn predict_into(
    p: &mut Predictions,
    model: &AdaFtr,
    ds: &Dataset,
    rows: usize,
    batch_size: usize,
    device: &Device,
) -> Result<()> {
    let batch_size = batch_size.max(1);
    let mut start = 0;
    while start < rows {
        let b = ds.range_batch(start, batch_size.min(rows - start), device)?;
        let out = model.forward(&b.cat, &b.num)?;
        p.pctr.extend(to_vec(&out.pctr)?);
        p.pcvr.extend(to_vec(&out.pcvr)?);
        p.pctcvr.extend(to_vec(&out.pctcvr)?);
        if let Some(tau) = &out.tau {
            p.tau.extend(to_vec(tau)?);
        }
        start += batch_size;
    }
    Ok(())
}

impl Predictions {
    pub fn len(&self) -> usize {
        self.pctr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pctr.is_empty()
    }
}

/// A labelled file's predictions and labels, read a chunk at a time.
pub struct Scored {
    pub predictions: Predictions,
    /// The labels and group ids of every row, without features (what
    /// [`Evaluation::compute`] reads).
    pub labels: Dataset,
    pub report: LoadReport,
}

/// Runs the model over every row of a labelled CSV without holding its features: rows are
/// predicted while the next ones are parsed, and only the predictions, labels and group ids
/// are kept (about 20 bytes a row, against some 300 loaded). The batches are those of
/// [`predict`] on the loaded file, so the predictions are the same bits.
pub fn score_reader<R: Read>(
    model: &AdaFtr,
    reader: R,
    label: &str,
    schema: &Schema,
    opts: &LoadOptions,
    batch_size: usize,
    device: &Device,
) -> Result<Scored> {
    let (n_cat, n_num) = (schema.num_categorical(), schema.num_numeric());
    let batch_size = batch_size.max(1);
    let mut predictions = Predictions::default();
    let mut labels = Dataset::new(n_cat, n_num);
    // Rows not yet predicted: fewer than a batch between chunks.
    let mut pending = Dataset::new(n_cat, n_num);
    let report = read_with_schema(reader, label, schema, opts, |chunk| {
        labels.click.extend_from(&chunk.click);
        labels.conversion.extend_from(&chunk.conversion);
        if let Some(ids) = &chunk.group {
            labels.group.get_or_insert_with(Vec::new).extend_from_slice(ids);
        }
        pending.append_rows(&chunk);
        let whole = pending.len() / batch_size * batch_size;
        predict_into(&mut predictions, model, &pending, whole, batch_size, device)?;
        let mut rest = Dataset::new(n_cat, n_num);
        for i in whole..pending.len() {
            rest.push(pending.cat_row(i), pending.num_row(i), pending.click.get(i), pending.conversion.get(i));
        }
        pending = rest;
        Ok(())
    })?;
    predict_into(&mut predictions, model, &pending, pending.len(), batch_size, device)?;
    Ok(Scored { predictions, labels, report })
}

/// The metrics of one dataset (docs/MODEL.md lists them). AUCs are `None` where a class is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Evaluation {
    pub auc_ctr: Option<f64>,
    /// Over clicked rows only.
    pub auc_cvr: Option<f64>,
    pub auc_ctcvr: Option<f64>,
    pub logloss_ctr: Option<f64>,
    pub logloss_cvr: Option<f64>,
    pub logloss_ctcvr: Option<f64>,
    /// CTR AUC averaged within groups (e.g. search_id), when the data has groups.
    #[serde(default)]
    pub gauc_ctr: Option<f64>,
    pub rows: usize,
    pub clicks: usize,
    pub conversions: usize,
    #[serde(default)]
    pub tau: Option<Distribution>,
}

impl Evaluation {
    pub fn compute(p: &Predictions, ds: &Dataset) -> Self {
        let n = ds.len();
        let click: Vec<bool> = (0..n).map(|i| ds.click.get(i)).collect();
        let conv: Vec<bool> = (0..n).map(|i| ds.conversion.get(i)).collect();
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (pctr, pcvr, pctcvr) = (f(&p.pctr), f(&p.pcvr), f(&p.pctcvr));
        let clicked: Vec<usize> = (0..n).filter(|&i| click[i]).collect();
        let pcvr_clicked: Vec<f64> = clicked.iter().map(|&i| pcvr[i]).collect();
        let conv_clicked: Vec<bool> = clicked.iter().map(|&i| conv[i]).collect();
        Self {
            auc_ctr: auc(&pctr, &click),
            auc_cvr: auc(&pcvr_clicked, &conv_clicked),
            auc_ctcvr: auc(&pctcvr, &conv),
            logloss_ctr: logloss(&pctr, &click),
            logloss_cvr: logloss(&pcvr_clicked, &conv_clicked),
            logloss_ctcvr: logloss(&pctcvr, &conv),
            gauc_ctr: ds.group.as_ref().and_then(|g| group_auc(&pctr, &click, g)),
            rows: n,
            clicks: clicked.len(),
            conversions: conv.iter().filter(|&&c| c).count(),
            tau: (!p.tau.is_empty()).then(|| Distribution::of(&f(&p.tau))),
        }
    }

    /// The early-stopping score: mean of CTR and CTCVR AUC (missing ones count as 0.5).
    pub fn score(&self) -> f64 {
        (self.auc_ctr.unwrap_or(0.5) + self.auc_ctcvr.unwrap_or(0.5)) / 2.0
    }
}

/// Spearman correlation between predicted tau and a known per-row relatedness.
pub fn tau_rank_correlation(tau: &[f32], truth: &[f64]) -> Option<f64> {
    if tau.len() != truth.len() {
        return None;
    }
    spearman(&tau.iter().map(|&t| t as f64).collect::<Vec<_>>(), truth)
}

/// Share of temperatures within `margin` (a fraction of the range) of either bound: the
/// collapse detector of the relatedness network.
pub fn fraction_near_bounds(tau: &[f32], tau_min: f32, tau_max: f32, margin: f32) -> f64 {
    if tau.is_empty() {
        return 0.0;
    }
    let eps = margin * (tau_max - tau_min);
    tau.iter().filter(|&&t| t - tau_min <= eps || tau_max - t <= eps).count() as f64 / tau.len() as f64
}
