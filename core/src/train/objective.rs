//! The training objective: how the loss functions of `loss.rs` and the relatedness mode's
//! own terms add up to what one step minimises.

use candle_core::{Result, Tensor};

use crate::config::LossConfig;
use crate::data::Batch;
use crate::loss::{bce_with_logits, bce_with_logits_elems, contrastive, product_bce};
use crate::model::Outputs;
use crate::relatedness::{prior_loss, Mode};
use crate::rng::Rng;

/// The loss terms of one batch; `total` is what is minimised.
#[derive(Debug, Clone)]
pub struct LossTerms {
    pub total: Tensor,
    pub ctr: Tensor,
    pub ctcvr: Tensor,
    pub cvr_click: Option<Tensor>,
    pub cl: Option<Tensor>,
    pub tau_prior: Option<Tensor>,
    /// The relatedness mode's auxiliary loss (`transfer`'s), if it has one.
    pub aux: Option<Tensor>,
}

/// Per-step facts the objective needs beyond the config.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// Multiplier of lambda in [0, 1] (the warm-up ramp).
    pub cl_scale: f64,
    /// Centre r0 of the prior on the relatedness logit, when the model learns tau.
    pub tau_prior_center: Option<f64>,
}

/// L = L_ctr + L_ctcvr [+ L_cvr_click] + lambda L_cl [+ beta mean((r - r0)^2)] [+ w L_aux].
pub fn compute(
    out: &Outputs,
    batch: &Batch,
    cfg: &LossConfig,
    mode: &dyn Mode,
    ctx: StepContext,
    rng: &mut Rng,
) -> Result<LossTerms> {
    let ctr = bce_with_logits(&out.logit_ctr, &batch.click)?;
    let ctcvr = product_bce(&out.logit_ctr_in_ctcvr, &out.logit_cvr, &batch.conversion)?;
    let mut total = (&ctr + &ctcvr)?;
    let cvr_click = if cfg.cvr_click_loss {
        let per = bce_with_logits_elems(&out.logit_cvr, &batch.conversion)?;
        let clicks = batch.click.sum_all()?;
        let l = ((per * &batch.click)?.sum_all()? / clicks.maximum(1.0)?)?;
        total = (total + &l)?;
        Some(l)
    } else {
        None
    };
    let lambda = cfg.lambda as f64 * ctx.cl_scale;
    let cl = match out.tau.as_ref().filter(|_| mode.aligns()) {
        None => None,
        Some(tau) => {
            let l = contrastive(&out.z_ctr, &out.z_cvr, &mode.contrastive_tau(tau)?, cfg, rng)?;
            if lambda > 0.0 {
                total = (total + (&l * lambda)?)?;
            }
            Some(l)
        }
    };
    let tau_prior = match (&out.tau_logit, ctx.tau_prior_center) {
        (Some(r), Some(r0)) if cfg.tau_prior_weight > 0.0 && cl.is_some() => {
            let l = prior_loss(r, r0)?;
            total = (total + (&l * cfg.tau_prior_weight as f64)?)?;
            Some(l)
        }
        _ => None,
    };
    let aux = match mode.aux_loss(out, batch, cfg)? {
        Some(w) => {
            if w.weight > 0.0 {
                total = (total + (&w.loss * w.weight)?)?;
            }
            Some(w.loss)
        }
        None => None,
    };
    Ok(LossTerms { total, ctr, ctcvr, cvr_click, cl, tau_prior, aux })
}
