//! The relatedness network: one temperature per instance,
//! tau = tau_min + (tau_max - tau_min) * sigmoid(r), r from a small MLP.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::linear::{linear, Linear};
use crate::nn::mlp::Mlp;

#[derive(Clone, Debug)]
pub struct Relatedness {
    hidden: Mlp,
    out: Linear,
    tau_min: f64,
    tau_max: f64,
}

impl Relatedness {
    pub fn new(in_dim: usize, hidden: usize, tau_min: f32, tau_max: f32, vb: VarBuilder) -> Result<Self> {
        let mlp = Mlp::new(in_dim, &[hidden], 0.0, vb.pp("hidden"))?;
        Ok(Self {
            out: linear(hidden, 1, vb.pp("out"))?,
            hidden: mlp,
            tau_min: tau_min as f64,
            tau_max: tau_max as f64,
        })
    }

    /// The input for the `towers` choice: [h_c ; h_v ; h_c * h_v].
    pub fn tower_input(h_ctr: &Tensor, h_cvr: &Tensor) -> Result<Tensor> {
        Tensor::cat(&[h_ctr, h_cvr, &(h_ctr * h_cvr)?], 1)
    }

    /// (N, in) -> (tau, r), both (N,): the temperature, always inside [tau_min, tau_max],
    /// and the logit it comes from.
    pub fn forward(&self, input: &Tensor) -> Result<(Tensor, Tensor)> {
        let r = self.out.forward(&self.hidden.forward_t(input, false)?)?.squeeze(1)?;
        let tau = candle_nn::ops::sigmoid(&r)?.affine(self.tau_max - self.tau_min, self.tau_min)?;
        Ok((tau, r))
    }

    /// The logit r whose temperature is `tau` (for priors stated as temperatures).
    pub fn logit_of(&self, tau: f64) -> f64 {
        let p = ((tau - self.tau_min) / (self.tau_max - self.tau_min)).clamp(1e-6, 1.0 - 1e-6);
        (p / (1.0 - p)).ln()
    }
}
