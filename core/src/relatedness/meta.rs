//! `meta`: the relatedness network learns from the main loss after a one-step lookahead.
//! The contrastive term trains the model at the current temperatures (it sees tau as a
//! constant); the network phi receives only the hypergradient below, added to the step's
//! gradients before the optimiser applies them.

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::{in_group, Mode, ModelHooks, StepView, TauKind};
use crate::error::{Error, Result};
use crate::loss::scalar;

pub struct Meta;

impl ModelHooks for Meta {
    fn tau_kind(&self) -> TauKind {
        TauKind::Learned
    }
}

impl Mode for Meta {
    fn after_backward(&self, step: &StepView<'_>, grads: &mut GradStore) -> Result<()> {
        if step.cl.is_none() {
            return Ok(());
        }
        let input = step.out.tau_input.as_ref().ok_or_else(|| Error::Config("meta mode needs a learned tau".into()))?;
        add_hypergradient(step, &step.main_loss()?, input, grads)
    }
}

/// A plain step moves theta (every parameter but the relatedness network phi) to
/// theta' = theta - xi (v + lambda g_cl(theta, phi)), with v the main-loss gradient. To first
/// order L_main(theta') = L_main(theta) - xi v.(v + lambda g_cl), so
/// d L_main(theta') / d phi = -xi lambda d/dphi [v . grad_theta L_cl(theta, phi)], and the
/// directional derivative is a central difference (DARTS):
/// [grad_phi L_cl(theta + eps v) - grad_phi L_cl(theta - eps v)] / (2 eps).
/// xi is taken as 1: Adam normalises the step of phi anyway. The hypergradient is added to
/// `grads` for every parameter of phi; theta is restored exactly.
pub(crate) fn add_hypergradient(
    step: &StepView<'_>,
    main: &Tensor,
    input: &Tensor,
    grads: &mut GradStore,
) -> Result<()> {
    let lambda = step.loss.lambda as f64 * step.cl_scale;
    if lambda == 0.0 {
        return Ok(());
    }
    let (phi, theta): (Vec<_>, Vec<_>) = step.params.sorted().into_iter().partition(|(name, _)| in_group(name));
    let v_store = main.backward()?;
    let v: Vec<Option<Tensor>> = theta.iter().map(|(_, var)| v_store.get(var.as_tensor()).cloned()).collect();
    let mut sq = 0.0;
    for g in v.iter().flatten() {
        sq += scalar(&g.sqr()?.sum_all()?)?;
    }
    if !(sq > 0.0 && sq.is_finite()) {
        return Ok(());
    }
    let eps = step.loss.meta_epsilon / sq.sqrt();
    let theta0: Vec<Tensor> =
        theta.iter().map(|(_, var)| var.as_tensor().copy()).collect::<candle_core::Result<_>>()?;
    let mut phi_grads: Vec<Vec<Option<Tensor>>> = Vec::with_capacity(2);
    for sign in [1.0, -1.0] {
        for (((_, var), t0), vi) in theta.iter().zip(&theta0).zip(&v) {
            if let Some(vi) = vi {
                var.set(&(t0 + (vi * (sign * eps))?)?)?;
            }
        }
        // theta moves, tau stays a function of phi alone (its input is the one of the
        // real step), matching the step in which the contrastive term saw tau as fixed.
        let g = (step.contrastive_at)(input)?.backward()?;
        phi_grads.push(phi.iter().map(|(_, var)| g.get(var.as_tensor()).cloned()).collect());
    }
    for ((_, var), t0) in theta.iter().zip(&theta0) {
        var.set(t0)?;
    }
    for (i, (_, var)) in phi.iter().enumerate() {
        let (Some(plus), Some(minus)) = (&phi_grads[0][i], &phi_grads[1][i]) else { continue };
        let hyper = ((plus - minus)? * (-lambda / (2.0 * eps)))?;
        let total = match grads.remove(var.as_tensor()) {
            Some(g) => (g + hyper)?,
            None => hyper,
        };
        grads.insert(var.as_tensor(), total);
    }
    Ok(())
}
