//! MMoE: E expert MLPs shared by both tasks, one softmax gate per task.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::gate::Gate;
use crate::nn::bank::{expert_names, ExpertBank};

#[derive(Clone, Debug)]
pub struct Mmoe {
    experts: ExpertBank,
    gate_ctr: Gate,
    gate_cvr: Gate,
}

impl Mmoe {
    pub fn new(in_dim: usize, widths: &[usize], n_experts: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        let experts = ExpertBank::new(in_dim, widths, dropout, &expert_names("expert", n_experts), vb.clone())?;
        Ok(Self {
            experts,
            gate_ctr: Gate::new(in_dim, n_experts, vb.pp("gate_ctr"))?,
            gate_cvr: Gate::new(in_dim, n_experts, vb.pp("gate_cvr"))?,
        })
    }

    pub fn out_dim(&self) -> usize {
        self.experts.out_dim()
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let joined = self.experts.forward_t(x, train)?;
        let (width, all) = (self.out_dim(), (0..self.experts.groups()).collect::<Vec<_>>());
        Ok((self.gate_ctr.mix(x, &joined, width, &all)?, self.gate_cvr.mix(x, &joined, width, &all)?))
    }
}
