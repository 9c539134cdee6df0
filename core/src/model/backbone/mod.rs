//! Backbones: from the embedding vector(s) to one input per task tower.

mod gate;
mod mmoe;
mod ple;

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

pub use mmoe::Mmoe;
pub use ple::{Ple, PleSizes};

use crate::config::{Backbone, ModelConfig};
use crate::nn::mlp::Mlp;

#[derive(Clone, Debug)]
pub enum BackboneNet {
    /// A separate bottom per task, each reading its own embeddings.
    SingleTask {
        ctr: Mlp,
        cvr: Mlp,
    },
    SharedBottom(Mlp),
    /// Towers read the embeddings directly (ESMM and AITM).
    Direct {
        dim: usize,
    },
    Mmoe(Mmoe),
    Ple(Ple),
}

impl BackboneNet {
    pub fn new(cfg: &ModelConfig, in_dim: usize, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("backbone");
        Ok(match cfg.backbone {
            Backbone::SingleTask => Self::SingleTask {
                ctr: Mlp::new(in_dim, &cfg.bottom, cfg.dropout, vb.pp("ctr"))?,
                cvr: Mlp::new(in_dim, &cfg.bottom, cfg.dropout, vb.pp("cvr"))?,
            },
            Backbone::SharedBottom => Self::SharedBottom(Mlp::new(in_dim, &cfg.bottom, cfg.dropout, vb.pp("bottom"))?),
            Backbone::Esmm | Backbone::Aitm => Self::Direct { dim: in_dim },
            Backbone::Mmoe => Self::Mmoe(Mmoe::new(in_dim, &cfg.bottom, cfg.mmoe_experts, cfg.dropout, vb)?),
            Backbone::Ple => Self::Ple(Ple::new(
                in_dim,
                &PleSizes {
                    widths: &cfg.bottom,
                    levels: cfg.ple_levels,
                    shared_experts: cfg.ple_shared_experts,
                    task_experts: cfg.ple_task_experts,
                    dropout: cfg.dropout,
                },
                vb,
            )?),
        })
    }

    /// Width of each task's tower input.
    pub fn out_dim(&self) -> usize {
        match self {
            Self::SingleTask { ctr, .. } => ctr.out_dim(),
            Self::SharedBottom(m) => m.out_dim(),
            Self::Direct { dim } => *dim,
            Self::Mmoe(m) => m.out_dim(),
            Self::Ple(p) => p.out_dim(),
        }
    }

    /// `x_ctr` and `x_cvr` are the embedding vectors; they differ only for single-task.
    pub fn forward_t(&self, x_ctr: &Tensor, x_cvr: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        match self {
            Self::SingleTask { ctr, cvr } => Ok((ctr.forward_t(x_ctr, train)?, cvr.forward_t(x_cvr, train)?)),
            Self::SharedBottom(m) => {
                let b = m.forward_t(x_ctr, train)?;
                Ok((b.clone(), b))
            }
            Self::Direct { .. } => Ok((x_ctr.clone(), x_cvr.clone())),
            Self::Mmoe(m) => m.forward_t(x_ctr, train),
            Self::Ple(p) => p.forward_t(x_ctr, train),
        }
    }
}
