//! A softmax gate mixing expert outputs, shared by MMoE and PLE.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::linear::{linear, Linear};

#[derive(Clone, Debug)]
pub struct Gate {
    proj: Linear,
}

impl Gate {
    pub fn new(in_dim: usize, n_experts: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { proj: linear(in_dim, n_experts, vb)? })
    }

    /// Weighted sum of `experts` (each (N, H)) with softmax weights computed from `input`.
    pub fn mix(&self, input: &Tensor, experts: &[Tensor]) -> Result<Tensor> {
        let weights = candle_nn::ops::softmax_last_dim(&self.proj.forward(input)?)?; // (N, E)
        let stacked = Tensor::stack(experts, 1)?; // (N, E, H)
        stacked.broadcast_mul(&weights.unsqueeze(2)?)?.sum(1)
    }
}
