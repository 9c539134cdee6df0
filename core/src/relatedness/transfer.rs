//! `transfer`: the relatedness network learns, from clicked rows, how much of the
//! (standardised, detached) click score would improve each instance's conversion logit; a
//! larger share gives a lower tau. Its input is always detached, so it learns from that
//! auxiliary loss alone; the contrastive term sees tau as a constant. The default `readout`
//! learns tau the same way without the contrastive term.

use candle_core::{Result, Tensor};

use super::{Mode, ModelHooks, TauKind, Weighted};
use crate::config::LossConfig;
use crate::data::Batch;
use crate::loss::bce_with_logits_elems;
use crate::model::Outputs;

pub struct Transfer;

impl ModelHooks for Transfer {
    fn tau_kind(&self) -> TauKind {
        TauKind::Learned
    }

    fn detach_input(&self) -> bool {
        true
    }
}

impl Mode for Transfer {
    fn aux_loss(&self, out: &Outputs, batch: &Batch, loss: &LossConfig) -> Result<Option<Weighted>> {
        let Some(r) = &out.tau_logit else { return Ok(None) };
        let l = transfer_loss(
            &out.logit_ctr,
            &out.logit_cvr,
            r,
            batch,
            loss.transfer_scale as f64,
            loss.transfer_offset as f64,
        )?;
        Ok(Some(Weighted { loss: l, weight: loss.transfer_weight as f64 }))
    }
}

/// BCE over clicked rows of the conversion logit o - kappa r s, where s is the click logit
/// standardised over the batch and o = alpha l_cvr + (1 - alpha) (l_cvr's mean over the
/// batch's clicked rows), alpha = `loss.transfer_offset`. Both logits are detached, so only the
/// relatedness logit r learns: it goes negative (low tau) where adding the click score
/// predicts conversions better than the CVR tower alone, i.e. where click and purchase are
/// related beyond what the model already shares, and positive where the tower leans on the
/// click signal more than the conversions support. Unlike a [0, 1] gate, r has a finite
/// optimum on both sides, so nothing pushes tau onto a bound.
pub fn transfer_loss(
    logit_ctr: &Tensor,
    logit_cvr: &Tensor,
    r: &Tensor,
    batch: &Batch,
    kappa: f64,
    alpha: f64,
) -> Result<Tensor> {
    let c = logit_ctr.detach();
    let centred = c.broadcast_sub(&c.mean_all()?)?;
    let s = centred.broadcast_div(&(centred.sqr()?.mean_all()? + 1e-6)?.sqrt()?)?;
    let clicks = batch.click.sum_all()?.maximum(1.0)?;
    let v = logit_cvr.detach();
    let offset = if alpha == 1.0 {
        v
    } else {
        let mean = ((&v * &batch.click)?.sum_all()? / &clicks)?;
        ((&v * alpha)? + mean.broadcast_as(v.shape())?.affine(1.0 - alpha, 0.0)?)?
    };
    let logit = (offset - ((r * &s)? * kappa)?)?;
    let per = bce_with_logits_elems(&logit, &batch.conversion)?;
    (per * &batch.click)?.sum_all()? / clicks
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
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
        let l =
            transfer_loss(click_logit.as_tensor(), cvr_logit.as_tensor(), r.as_tensor(), &batch, 0.25, 1.0).unwrap();
        let g = l.backward().unwrap();
        assert!(g.get(click_logit.as_tensor()).is_none() && g.get(cvr_logit.as_tensor()).is_none(), "only r learns");
        let gr: Vec<f32> = g.get(r.as_tensor()).unwrap().to_vec1().unwrap();
        // Descent lowers r (and so tau) on every clicked row, and leaves the others alone.
        assert!(gr[..4].iter().all(|&x| x > 0.0), "{gr:?}");
        assert!(gr[4..].iter().all(|&x| x == 0.0), "{gr:?}");
        // Conversions against the click score raise r instead.
        let against = Batch { conversion: t(&[1., 1., 0., 0., 0., 0.]), ..batch };
        let l =
            transfer_loss(click_logit.as_tensor(), cvr_logit.as_tensor(), r.as_tensor(), &against, 0.25, 1.0).unwrap();
        let gr: Vec<f32> = l.backward().unwrap().get(r.as_tensor()).unwrap().to_vec1().unwrap();
        assert!(gr[..4].iter().all(|&x| x < 0.0), "{gr:?}");
    }

    /// With the CVR tower already predicting the conversions that follow the click score, the
    /// residual reading (alpha = 1) has little left to learn; alpha = 0 still reads that
    /// conversions follow the click score.
    #[test]
    fn the_offset_decides_whether_tau_reads_the_residual_or_the_whole_dependence() {
        let dev = Device::Cpu;
        let click_logit = t(&[-3., -1., 1., 3., 0.]);
        let cvr_logit = t(&[-4., -4., 4., 4., 9.]);
        let batch = Batch {
            cat: Tensor::zeros((5, 0), DType::U32, &dev).unwrap(),
            num: Tensor::zeros((5, 0), DType::F32, &dev).unwrap(),
            click: t(&[1., 1., 1., 1., 0.]),
            conversion: t(&[0., 0., 1., 1., 0.]),
        };
        let grad = |alpha: f64| -> Vec<f32> {
            let r = Var::new(&[0f32; 5], &dev).unwrap();
            let l = transfer_loss(&click_logit, &cvr_logit, r.as_tensor(), &batch, 0.25, alpha).unwrap();
            l.backward().unwrap().get(r.as_tensor()).unwrap().to_vec1().unwrap()
        };
        let (residual, whole) = (grad(1.0), grad(0.0));
        assert!(whole[..4].iter().all(|&x| x > 0.0) && whole[4] == 0.0, "{whole:?}");
        let size = |g: &[f32]| g.iter().map(|x| x.abs()).sum::<f32>();
        assert!(size(&whole) > 5.0 * size(&residual), "{whole:?} {residual:?}");
        // The unclicked row's logit (9) does not enter the mean: with alpha = 0 every clicked
        // row starts from the clicked rows' mean, 0, so p = 0.5 and the gradient is kappa s (p - y).
        let s = [-3f32, -1., 1., 3., 0.].map(|c| (c - 0.0) / (20f32 / 5.0 + 1e-6).sqrt());
        for (i, y) in [0f32, 0., 1., 1.].into_iter().enumerate() {
            assert!((whole[i] - 0.25 * s[i] * (y - 0.5) / 4.0).abs() < 1e-5, "{i}: {whole:?}");
        }
    }
}
