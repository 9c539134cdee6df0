//! Losses: click BCE, the entire-space CTCVR product loss, the optional click-space CVR
//! loss, and InfoNCE with a per-instance temperature. Everything works from logits so that
//! probabilities near 0 or 1 never produce infinities.

use candle_core::{DType, Device, Result, Tensor};

use crate::config::{ClMode, LossConfig, Negatives, Similarity};
use crate::data::Batch;
use crate::model::Outputs;
use crate::rng::Rng;

/// softplus(x) = ln(1 + e^x), computed as max(x, 0) + ln(1 + e^-|x|).
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Per-element BCE of sigmoid(logits) against targets in {0, 1}.
pub fn bce_with_logits_elems(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    // y softplus(-a) + (1 - y) softplus(a) = softplus(a) - y a
    softplus(logits)? - (targets * logits)?
}

pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    bce_with_logits_elems(logits, targets)?.mean_all()
}

/// Mean BCE of p = sigmoid(a) sigmoid(b) against `targets`, without forming p:
/// -ln p = softplus(-a) + softplus(-b) and
/// ln(1 - p) = logsumexp(-a, -b, -a - b) - softplus(-a) - softplus(-b).
pub fn product_bce(a: &Tensor, b: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (na, nb) = (a.neg()?, b.neg()?);
    let neg_log_p = (softplus(&na)? + softplus(&nb)?)?;
    let terms = Tensor::stack(&[&na, &nb, &(&na + &nb)?], 1)?;
    let log_1mp = (logsumexp(&terms, 1)? - &neg_log_p)?;
    let ones = targets.ones_like()?;
    let loss = ((targets * &neg_log_p)? - ((ones - targets)? * log_1mp)?)?;
    loss.mean_all()
}

/// Numerically stable log-sum-exp over `dim`, which is removed.
pub fn logsumexp(x: &Tensor, dim: usize) -> Result<Tensor> {
    let m = x.max_keepdim(dim)?.detach();
    (x.broadcast_sub(&m)?.exp()?.sum_keepdim(dim)?.log()? + m)?.squeeze(dim)
}

/// The (N, N) similarity matrix s_ij between h_ctr row i and h_cvr row j.
pub fn similarity(h_ctr: &Tensor, h_cvr: &Tensor, sim: Similarity) -> Result<Tensor> {
    let (u, v) = match sim {
        Similarity::Cosine => (l2_normalize(h_ctr)?, l2_normalize(h_cvr)?),
        Similarity::Dot => (h_ctr.clone(), h_cvr.clone()),
    };
    u.matmul(&v.t()?)
}

/// Row-wise L2 normalisation; the epsilon keeps all-zero rows (dead ReLU) finite.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// InfoNCE with per-row temperature over a full score matrix:
/// -(1/N) sum_i [ s_ii / tau_i - logsumexp_j(s_ij / tau_i) ].
pub fn info_nce_rows(s: &Tensor, tau: &Tensor) -> Result<Tensor> {
    let n = s.dim(0)?;
    let logits = s.broadcast_div(&tau.unsqueeze(1)?)?;
    let pos = diagonal(&logits, n)?;
    (logsumexp(&logits, 1)? - pos)?.mean_all()
}

/// The diagonal of an (n, n) matrix, as one gather of the flattened matrix (cheaper than
/// masking with an identity matrix, in the forward and the backward pass).
fn diagonal(m: &Tensor, n: usize) -> Result<Tensor> {
    let idx: Vec<u32> = (0..n as u32).map(|i| i * (n as u32 + 1)).collect();
    m.flatten_all()?.index_select(&Tensor::from_vec(idx, n, m.device())?, 0)
}

/// InfoNCE where row i is contrasted against the rows `neg[i, :]` (N, M) of the batch:
/// -(1/N) sum_i [ s_ii / tau_i - logsumexp(s_ii, s_i,neg) / tau_i ].
pub fn info_nce_sampled_rows(s: &Tensor, tau: &Tensor, neg: &Tensor) -> Result<Tensor> {
    let n = s.dim(0)?;
    let pos = diagonal(s, n)?.unsqueeze(1)?;
    let cand = Tensor::cat(&[&pos, &s.gather(neg, 1)?], 1)?; // (N, 1 + M), positive first
    let logits = cand.broadcast_div(&tau.unsqueeze(1)?)?;
    let pos_logit = logits.narrow(1, 0, 1)?.squeeze(1)?;
    (logsumexp(&logits, 1)? - pos_logit)?.mean_all()
}

/// For each row i, `m` indices drawn uniformly from the other rows of an N-row batch.
pub fn sample_negatives(n: usize, m: usize, rng: &mut Rng, device: &Device) -> Result<Tensor> {
    let mut idx = Vec::with_capacity(n * m);
    for i in 0..n {
        for _ in 0..m {
            // Draw from n - 1 values and skip i.
            let j = rng.below((n - 1).max(1) as u64) as usize;
            idx.push((if j >= i { j + 1 } else { j }).min(n - 1) as u32);
        }
    }
    Tensor::from_vec(idx, (n, m), device)
}

/// The contrastive loss of a batch of representations with per-row temperatures.
pub fn contrastive(h_ctr: &Tensor, h_cvr: &Tensor, tau: &Tensor, cfg: &LossConfig, rng: &mut Rng) -> Result<Tensor> {
    let s = similarity(h_ctr, h_cvr, cfg.similarity)?;
    if cfg.negatives == Negatives::InBatch && s.device().is_cpu() && s.dtype() == DType::F32 {
        // One fused kernel instead of the op-by-op graph below (same value and gradients up
        // to float rounding; see nce.rs).
        return crate::nce::info_nce_in_batch(&s, tau, cfg.symmetric);
    }
    let n = s.dim(0)?;
    let one_way = |s: &Tensor, rng: &mut Rng| match cfg.negatives {
        Negatives::InBatch => info_nce_rows(s, tau),
        Negatives::Sampled => {
            let neg = sample_negatives(n, cfg.sampled_negatives.min(n.saturating_sub(1)).max(1), rng, s.device())?;
            info_nce_sampled_rows(s, tau, &neg)
        }
    };
    let rows = one_way(&s, rng)?;
    if cfg.symmetric {
        let cols = one_way(&s.t()?.contiguous()?, rng)?;
        (rows + cols)? * 0.5
    } else {
        Ok(rows)
    }
}

/// The loss terms of one batch; `total` is what is minimised.
#[derive(Debug, Clone)]
pub struct LossTerms {
    pub total: Tensor,
    pub ctr: Tensor,
    pub ctcvr: Tensor,
    pub cvr_click: Option<Tensor>,
    pub cl: Option<Tensor>,
    pub tau_prior: Option<Tensor>,
    /// `transfer` mode's auxiliary loss (trains the relatedness network only).
    pub transfer: Option<Tensor>,
}

/// Per-step facts the loss needs beyond the config.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    /// Keep the CTR network out of the CTCVR gradient (single-task).
    pub detach_ctr_in_ctcvr: bool,
    /// Multiplier of lambda in [0, 1] (the warm-up ramp).
    pub cl_scale: f64,
    /// Centre r0 of the prior on the relatedness logit, when the model learns tau.
    pub tau_prior_center: Option<f64>,
}

/// L = L_ctr + L_ctcvr [+ L_cvr_click] + lambda L_cl [+ beta mean((r - r0)^2)].
pub fn compute(out: &Outputs, batch: &Batch, cfg: &LossConfig, ctx: StepContext, rng: &mut Rng) -> Result<LossTerms> {
    let ctr = bce_with_logits(&out.logit_ctr, &batch.click)?;
    let a = if ctx.detach_ctr_in_ctcvr { out.logit_ctr.detach() } else { out.logit_ctr.clone() };
    let ctcvr = product_bce(&a, &out.logit_cvr, &batch.conversion)?;
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
    let cl = match (cfg.cl, &out.tau) {
        (ClMode::None, _) | (_, None) => None,
        (mode, Some(tau)) => {
            // In `transfer` mode tau is learned from its own loss below, not from this one.
            let tau = if mode == ClMode::Transfer { tau.detach() } else { tau.clone() };
            let l = contrastive(&out.z_ctr, &out.z_cvr, &tau, cfg, rng)?;
            if lambda > 0.0 {
                total = (total + (&l * lambda)?)?;
            }
            Some(l)
        }
    };
    let tau_prior = match (&out.tau_logit, ctx.tau_prior_center) {
        (Some(r), Some(r0)) if cfg.tau_prior_weight > 0.0 && cl.is_some() => {
            let l = (r - r0)?.sqr()?.mean_all()?;
            total = (total + (&l * cfg.tau_prior_weight as f64)?)?;
            Some(l)
        }
        _ => None,
    };
    let transfer = match (cfg.cl, &out.tau_logit) {
        (ClMode::Transfer, Some(r)) => {
            let l = transfer_loss(&out.logit_ctr, &out.logit_cvr, r, batch, cfg.transfer_scale as f64)?;
            if cfg.transfer_weight > 0.0 {
                total = (total + (&l * cfg.transfer_weight as f64)?)?;
            }
            Some(l)
        }
        _ => None,
    };
    Ok(LossTerms { total, ctr, ctcvr, cvr_click, cl, tau_prior, transfer })
}

/// `transfer` mode: BCE over clicked rows of the conversion logit l_cvr - kappa r s, where
/// s is the click logit standardised over the batch. Both logits are detached, so only the
/// relatedness logit r learns: it goes negative (low tau) where adding the click score
/// predicts conversions better than the CVR tower alone, i.e. where click and purchase are
/// related beyond what the model already shares, and positive where the tower leans on the
/// click signal more than the conversions support. Unlike a [0, 1] gate, r has a finite
/// optimum on both sides, so nothing pushes tau onto a bound.
pub fn transfer_loss(logit_ctr: &Tensor, logit_cvr: &Tensor, r: &Tensor, batch: &Batch, kappa: f64) -> Result<Tensor> {
    let c = logit_ctr.detach();
    let centred = c.broadcast_sub(&c.mean_all()?)?;
    let s = centred.broadcast_div(&(centred.sqr()?.mean_all()? + 1e-6)?.sqrt()?)?;
    let logit = (logit_cvr.detach() - ((r * &s)? * kappa)?)?;
    let per = bce_with_logits_elems(&logit, &batch.conversion)?;
    let clicks = batch.click.sum_all()?;
    (per * &batch.click)?.sum_all()? / clicks.maximum(1.0)?
}

/// A scalar tensor's value as f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn product_bce_matches_naive_and_is_stable_at_the_extremes() {
        let a = t(&[0.3, -1.2, 2.0]);
        let b = t(&[-0.5, 0.7, 1.5]);
        let y = t(&[1.0, 0.0, 1.0]);
        let got = scalar(&product_bce(&a, &b, &y).unwrap()).unwrap();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let naive: f64 = [(0.3, -0.5, 1.0), (-1.2, 0.7, 0.0), (2.0, 1.5, 1.0)]
            .iter()
            .map(|&(a, b, y)| {
                let p = sig(a) * sig(b);
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            })
            .sum::<f64>()
            / 3.0;
        assert!((got - naive).abs() < 1e-5, "{got} vs {naive}");
        // p -> 0 with y = 1 and p -> 1 with y = 0: large but finite, and correct.
        let huge = scalar(&product_bce(&t(&[-60.0]), &t(&[-60.0]), &t(&[1.0])).unwrap()).unwrap();
        assert!((huge - 120.0).abs() < 1e-3, "{huge}");
        let near1 = scalar(&product_bce(&t(&[60.0]), &t(&[60.0]), &t(&[0.0])).unwrap()).unwrap();
        assert!(near1.is_finite() && (near1 - 59.3069).abs() < 1e-2, "{near1}");
        // Perfect predictions give ~0 loss, not NaN.
        let zero = scalar(&product_bce(&t(&[60.0]), &t(&[60.0]), &t(&[1.0])).unwrap()).unwrap();
        assert!(zero.abs() < 1e-6);
        // Gradients stay finite at the extremes.
        let va = Var::new(&[-80f32, 80.0], &Device::Cpu).unwrap();
        let l = product_bce(va.as_tensor(), &t(&[-80.0, 80.0]), &t(&[1.0, 0.0])).unwrap();
        let g = l.backward().unwrap();
        let ga: Vec<f32> = g.get(va.as_tensor()).unwrap().to_vec1().unwrap();
        assert!(ga.iter().all(|x| x.is_finite()), "{ga:?}");
    }

    #[test]
    fn transfer_loss_lowers_tau_where_conversions_follow_the_click_score() {
        let dev = Device::Cpu;
        // Rows 0-3 clicked; among them conversions go with the click score (rows 2, 3).
        // Rows 4-5 are not clicked and must not matter.
        let click_logit = Var::new(&[-3f32, -1.0, 1.0, 3.0, 5.0, -5.0], &dev).unwrap();
        let cvr_logit = Var::new(&[0f32; 6], &dev).unwrap();
        let r = Var::new(&[0f32; 6], &dev).unwrap();
        let batch = Batch {
            cat: Tensor::zeros((6, 0), DType::U32, &dev).unwrap(),
            num: Tensor::zeros((6, 0), DType::F32, &dev).unwrap(),
            click: t(&[1., 1., 1., 1., 0., 0.]),
            conversion: t(&[0., 0., 1., 1., 0., 0.]),
        };
        let l = transfer_loss(click_logit.as_tensor(), cvr_logit.as_tensor(), r.as_tensor(), &batch, 0.25).unwrap();
        let g = l.backward().unwrap();
        assert!(g.get(click_logit.as_tensor()).is_none() && g.get(cvr_logit.as_tensor()).is_none(), "only r learns");
        let gr: Vec<f32> = g.get(r.as_tensor()).unwrap().to_vec1().unwrap();
        // Descent lowers r (and so tau) on every clicked row, and leaves the others alone.
        assert!(gr[..4].iter().all(|&x| x > 0.0), "{gr:?}");
        assert!(gr[4..].iter().all(|&x| x == 0.0), "{gr:?}");
        // Conversions against the click score raise r instead.
        let against = Batch { conversion: t(&[1., 1., 0., 0., 0., 0.]), ..batch };
        let l = transfer_loss(click_logit.as_tensor(), cvr_logit.as_tensor(), r.as_tensor(), &against, 0.25).unwrap();
        let gr: Vec<f32> = l.backward().unwrap().get(r.as_tensor()).unwrap().to_vec1().unwrap();
        assert!(gr[..4].iter().all(|&x| x < 0.0), "{gr:?}");
    }

    #[test]
    fn bce_with_logits_known_value() {
        // BCE(sigmoid(0), 1) = ln 2; BCE(sigmoid(100), 0) = 100.
        let l = scalar(&bce_with_logits(&t(&[0.0, 100.0]), &t(&[1.0, 0.0])).unwrap()).unwrap();
        assert!((l - (2f64.ln() + 100.0) / 2.0).abs() < 1e-4, "{l}");
    }
}
