//! Loss functions on tensors: click BCE, the entire-space CTCVR product loss, and InfoNCE
//! with a per-instance temperature. Everything works from logits so that probabilities
//! near 0 or 1 never produce infinities. How they combine into the training objective is
//! `train/objective.rs`; the relatedness modes' own terms live with each mode.

use candle_core::{DType, Device, Result, Tensor};

use crate::config::{LossConfig, Negatives, Similarity};
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
    let (u, v) = compared(h_ctr, h_cvr, sim)?;
    u.matmul(&v.t()?)
}

/// The two sides whose products are the similarities: normalised rows for cosine.
fn compared(h_ctr: &Tensor, h_cvr: &Tensor, sim: Similarity) -> Result<(Tensor, Tensor)> {
    Ok(match sim {
        Similarity::Cosine => (l2_normalize(h_ctr)?, l2_normalize(h_cvr)?),
        Similarity::Dot => (h_ctr.clone(), h_cvr.clone()),
    })
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
    if cfg.negatives == Negatives::InBatch && h_ctr.device().is_cpu() && h_ctr.dtype() == DType::F32 {
        // One fused kernel, the similarity product included, instead of the op-by-op graph
        // below (same value and gradients up to float rounding; see nce/).
        let (u, v) = compared(h_ctr, h_cvr, cfg.similarity)?;
        return crate::nce::info_nce_of_pair(&u, &v, tau, cfg.symmetric);
    }
    let s = similarity(h_ctr, h_cvr, cfg.similarity)?;
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
    fn bce_with_logits_known_value() {
        // BCE(sigmoid(0), 1) = ln 2; BCE(sigmoid(100), 0) = 100.
        let l = scalar(&bce_with_logits(&t(&[0.0, 100.0]), &t(&[1.0, 0.0])).unwrap()).unwrap();
        assert!((l - (2f64.ln() + 100.0) / 2.0).abs() < 1e-4, "{l}");
    }
}
