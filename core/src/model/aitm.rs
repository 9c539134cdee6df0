//! AITM's adaptive information transfer (Xi et al., KDD 2021): the CTR tower's
//! representation is projected into a transfer vector p, and the CVR representation is an
//! attention-weighted mix of p and the CVR tower's own output q.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{linear_no_bias, VarBuilder};

use crate::nn::linear::{linear, Linear};
use crate::nn::relu::relu;

#[derive(Clone, Debug)]
pub struct Aitm {
    transfer: Linear,
    query: candle_nn::Linear,
    key: candle_nn::Linear,
    value: candle_nn::Linear,
    scale: f64,
}

impl Aitm {
    pub fn new(k: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            transfer: linear(k, k, vb.pp("transfer"))?,
            query: linear_no_bias(k, k, vb.pp("query"))?,
            key: linear_no_bias(k, k, vb.pp("key"))?,
            value: linear_no_bias(k, k, vb.pp("value"))?,
            scale: 1.0 / (k as f64).sqrt(),
        })
    }

    /// `h_ctr`, `q_cvr`: (N, k). Returns the CVR representation (N, k).
    pub fn forward(&self, h_ctr: &Tensor, q_cvr: &Tensor) -> Result<Tensor> {
        let p = relu(&self.transfer.forward(h_ctr)?)?;
        let u = Tensor::stack(&[&p, q_cvr], 1)?; // (N, 2, k)
        let q = self.query.forward(&u)?;
        let k = self.key.forward(&u)?;
        let v = self.value.forward(&u)?;
        let w = candle_nn::ops::softmax(&(q * k)?.sum(D::Minus1)?.affine(self.scale, 0.0)?, 1)?; // (N, 2)
        v.broadcast_mul(&w.unsqueeze(2)?)?.sum(1)
    }
}
