//! MMoE: E expert MLPs shared by both tasks, one softmax gate per task.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::gate::Gate;
use crate::nn::mlp::Mlp;

#[derive(Clone, Debug)]
pub struct Mmoe {
    experts: Vec<Mlp>,
    gate_ctr: Gate,
    gate_cvr: Gate,
}

impl Mmoe {
    pub fn new(in_dim: usize, widths: &[usize], n_experts: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        let experts = (0..n_experts)
            .map(|e| Mlp::new(in_dim, widths, dropout, vb.pp(format!("expert{e}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            experts,
            gate_ctr: Gate::new(in_dim, n_experts, vb.pp("gate_ctr"))?,
            gate_cvr: Gate::new(in_dim, n_experts, vb.pp("gate_cvr"))?,
        })
    }

    pub fn out_dim(&self) -> usize {
        self.experts[0].out_dim()
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let outs = self.experts.iter().map(|e| e.forward_t(x, train)).collect::<Result<Vec<_>>>()?;
        Ok((self.gate_ctr.mix(x, &outs)?, self.gate_cvr.mix(x, &outs)?))
    }
}
