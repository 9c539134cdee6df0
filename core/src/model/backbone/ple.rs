//! PLE (customised gate control): per level, shared experts plus task-specific experts;
//! each task's gate mixes its own and the shared experts, and a shared gate (on all
//! experts) feeds the next level's shared experts.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::gate::Gate;
use crate::nn::mlp::Mlp;

#[derive(Clone, Debug)]
struct Level {
    shared: Vec<Mlp>,
    ctr: Vec<Mlp>,
    cvr: Vec<Mlp>,
    gate_ctr: Gate,
    gate_cvr: Gate,
    gate_shared: Option<Gate>,
}

fn experts(n: usize, in_dim: usize, widths: &[usize], dropout: f32, vb: VarBuilder, name: &str) -> Result<Vec<Mlp>> {
    (0..n).map(|e| Mlp::new(in_dim, widths, dropout, vb.pp(format!("{name}{e}")))).collect()
}

fn run(experts: &[Mlp], x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
    experts.iter().map(|e| e.forward_t(x, train)).collect()
}

#[derive(Clone, Debug)]
pub struct Ple {
    levels: Vec<Level>,
    out_dim: usize,
}

pub struct PleSizes<'a> {
    pub widths: &'a [usize],
    pub levels: usize,
    pub shared_experts: usize,
    pub task_experts: usize,
    pub dropout: f32,
}

impl Ple {
    pub fn new(in_dim: usize, s: &PleSizes, vb: VarBuilder) -> Result<Self> {
        let mut levels = Vec::with_capacity(s.levels);
        let mut d = in_dim;
        for l in 0..s.levels {
            let vb = vb.pp(format!("level{l}"));
            let last = l + 1 == s.levels;
            let task_gate = s.task_experts + s.shared_experts;
            let level = Level {
                shared: experts(s.shared_experts, d, s.widths, s.dropout, vb.clone(), "shared")?,
                ctr: experts(s.task_experts, d, s.widths, s.dropout, vb.clone(), "ctr")?,
                cvr: experts(s.task_experts, d, s.widths, s.dropout, vb.clone(), "cvr")?,
                gate_ctr: Gate::new(d, task_gate, vb.pp("gate_ctr"))?,
                gate_cvr: Gate::new(d, task_gate, vb.pp("gate_cvr"))?,
                gate_shared: if last || s.shared_experts == 0 {
                    None
                } else {
                    Some(Gate::new(d, 2 * s.task_experts + s.shared_experts, vb.pp("gate_shared"))?)
                },
            };
            levels.push(level);
            d = *s.widths.last().unwrap_or(&d);
        }
        Ok(Self { levels, out_dim: d })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let (mut in_c, mut in_v, mut in_s) = (x.clone(), x.clone(), x.clone());
        for level in &self.levels {
            let shared = run(&level.shared, &in_s, train)?;
            let ctr = run(&level.ctr, &in_c, train)?;
            let cvr = run(&level.cvr, &in_v, train)?;
            let both = |own: &[Tensor]| own.iter().chain(shared.iter()).cloned().collect::<Vec<_>>();
            let next_c = level.gate_ctr.mix(&in_c, &both(&ctr))?;
            let next_v = level.gate_cvr.mix(&in_v, &both(&cvr))?;
            if let Some(g) = &level.gate_shared {
                let all: Vec<Tensor> = ctr.iter().chain(cvr.iter()).chain(shared.iter()).cloned().collect();
                in_s = g.mix(&in_s, &all)?;
            }
            in_c = next_c;
            in_v = next_v;
        }
        Ok((in_c, in_v))
    }
}
