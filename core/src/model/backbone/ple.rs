//! PLE (customised gate control): per level, shared experts plus task-specific experts;
//! each task's gate mixes its own and the shared experts, and a shared gate (on all
//! experts) feeds the next level's shared experts.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::gate::Gate;
use crate::nn::bank::{expert_names, ExpertBank};

/// One level's experts, evaluated as banks (`nn::bank`). Their outputs, side by side, are
/// in the order ctr experts, cvr experts, shared experts: the gates' blocks index into it,
/// and each gate lists its experts in the order its weights were trained with.
#[derive(Clone, Debug)]
enum Experts {
    /// The first level: every expert reads the embeddings, so one bank runs them all.
    OneInput(ExpertBank),
    /// Deeper levels: the ctr, cvr and shared experts read their own inputs (a bank is
    /// absent when it has no experts).
    PerInput { ctr: Option<ExpertBank>, cvr: Option<ExpertBank>, shared: Option<ExpertBank> },
}

#[derive(Clone, Debug)]
struct Level {
    experts: Experts,
    gate_ctr: Gate,
    gate_cvr: Gate,
    gate_shared: Option<Gate>,
    /// Each gate's experts, as blocks of the level's side-by-side output.
    ctr_blocks: Vec<usize>,
    cvr_blocks: Vec<usize>,
    all_blocks: Vec<usize>,
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
        let (t, sh) = (s.task_experts, s.shared_experts);
        for l in 0..s.levels {
            let vb = vb.pp(format!("level{l}"));
            let last = l + 1 == s.levels;
            let bank = |names: Vec<String>| -> Result<Option<ExpertBank>> {
                if names.is_empty() {
                    return Ok(None);
                }
                ExpertBank::new(d, s.widths, s.dropout, &names, vb.clone()).map(Some)
            };
            let experts = if l == 0 {
                let all = [expert_names("ctr", t), expert_names("cvr", t), expert_names("shared", sh)].concat();
                Experts::OneInput(ExpertBank::new(d, s.widths, s.dropout, &all, vb.clone())?)
            } else {
                Experts::PerInput {
                    ctr: bank(expert_names("ctr", t))?,
                    cvr: bank(expert_names("cvr", t))?,
                    shared: bank(expert_names("shared", sh))?,
                }
            };
            let shared_blocks = 2 * t..2 * t + sh;
            let level = Level {
                experts,
                gate_ctr: Gate::new(d, t + sh, vb.pp("gate_ctr"))?,
                gate_cvr: Gate::new(d, t + sh, vb.pp("gate_cvr"))?,
                gate_shared: if last || sh == 0 { None } else { Some(Gate::new(d, 2 * t + sh, vb.pp("gate_shared"))?) },
                ctr_blocks: (0..t).chain(shared_blocks.clone()).collect(),
                cvr_blocks: (t..2 * t).chain(shared_blocks).collect(),
                all_blocks: (0..2 * t + sh).collect(),
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
        let h = self.out_dim;
        for level in &self.levels {
            let joined = match &level.experts {
                Experts::OneInput(bank) => bank.forward_t(&in_c, train)?,
                Experts::PerInput { ctr, cvr, shared } => {
                    let parts = [(ctr, &in_c), (cvr, &in_v), (shared, &in_s)]
                        .into_iter()
                        .filter_map(|(bank, input)| bank.as_ref().map(|b| b.forward_t(input, train)))
                        .collect::<Result<Vec<_>>>()?;
                    Tensor::cat(&parts, 1)?
                }
            };
            let next_c = level.gate_ctr.mix(&in_c, &joined, h, &level.ctr_blocks)?;
            let next_v = level.gate_cvr.mix(&in_v, &joined, h, &level.cvr_blocks)?;
            if let Some(g) = &level.gate_shared {
                in_s = g.mix(&in_s, &joined, h, &level.all_blocks)?;
            }
            in_c = next_c;
            in_v = next_v;
        }
        Ok((in_c, in_v))
    }
}
