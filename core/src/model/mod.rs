//! The AdaFTR model: embeddings -> backbone -> towers -> heads, plus the relatedness
//! network that predicts each instance's InfoNCE temperature.
//!
//! Parameter names (the bundle's tensor names) follow the `VarBuilder` paths:
//! `embedding.*` (`embedding_cvr.*` for single-task), `backbone.*`, `tower_ctr.*`,
//! `tower_cvr.*`, `aitm.*`, `head_ctr`, `head_cvr`, `relatedness.*`, `projection_ctr.*`,
//! `projection_cvr.*`.

pub mod aitm;
pub mod backbone;
pub mod embedding;
pub mod init;
pub mod linear;
pub mod mlp;
pub mod projection;
pub mod relatedness;
pub mod relu;

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::{Backbone, ClMode, LossConfig, ModelConfig, RelatednessInput};
use aitm::Aitm;
use backbone::BackboneNet;
use embedding::FieldEmbeddings;
use linear::{linear, Linear};
use mlp::Mlp;
use projection::Projection;
use relatedness::Relatedness;

/// Everything one forward pass produces for a batch of N instances.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// (N,) pre-sigmoid CTR and CVR scores.
    pub logit_ctr: Tensor,
    pub logit_cvr: Tensor,
    pub pctr: Tensor,
    pub pcvr: Tensor,
    pub pctcvr: Tensor,
    /// (N,) the InfoNCE temperature; `None` for `cl = none`, constant for `fixed`.
    pub tau: Option<Tensor>,
    /// The relatedness logit r behind tau (only for a learned tau).
    pub tau_logit: Option<Tensor>,
    /// What the relatedness network read (only for a learned tau), detached.
    pub tau_input: Option<Tensor>,
    /// (N, k) task representations h^c and h^v.
    pub h_ctr: Tensor,
    pub h_cvr: Tensor,
    /// What InfoNCE compares: the representations after the projection heads (the
    /// representations themselves when there are none).
    pub z_ctr: Tensor,
    pub z_cvr: Tensor,
}

/// The per-instance temperature source, fixed by the contrastive mode.
#[derive(Clone, Debug)]
enum TauSource {
    None,
    Fixed(f64),
    Net(Relatedness),
}

#[derive(Clone, Debug)]
pub struct AdaFtr {
    backbone_kind: Backbone,
    relatedness_input: RelatednessInput,
    relatedness_detach_input: bool,
    embedding: FieldEmbeddings,
    embedding_cvr: Option<FieldEmbeddings>,
    backbone: BackboneNet,
    tower_ctr: Mlp,
    tower_cvr: Mlp,
    aitm: Option<Aitm>,
    head_ctr: Linear,
    head_cvr: Linear,
    projection: Option<(Projection, Projection)>,
    tau: TauSource,
}

impl AdaFtr {
    /// `cardinalities`: embedding rows per categorical field (OOV included); `n_numeric`:
    /// number of numeric inputs.
    pub fn new(
        cfg: &ModelConfig,
        loss: &LossConfig,
        cardinalities: &[usize],
        n_numeric: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let d = cfg.embedding_dim;
        let embedding = FieldEmbeddings::new(cardinalities, n_numeric, d, vb.pp("embedding"))?;
        let embedding_cvr = match cfg.backbone {
            Backbone::SingleTask => Some(FieldEmbeddings::new(cardinalities, n_numeric, d, vb.pp("embedding_cvr"))?),
            _ => None,
        };
        let x_dim = embedding.out_dim();
        let backbone = BackboneNet::new(cfg, x_dim, vb.clone())?;
        let tower_in = backbone.out_dim();
        let tower_ctr = Mlp::new(tower_in, &cfg.tower, cfg.dropout, vb.pp("tower_ctr"))?;
        let tower_cvr = Mlp::new(tower_in, &cfg.tower, cfg.dropout, vb.pp("tower_cvr"))?;
        let k = cfg.repr_dim();
        let aitm = match cfg.backbone {
            Backbone::Aitm => Some(Aitm::new(k, vb.pp("aitm"))?),
            _ => None,
        };
        let tau = match loss.cl {
            ClMode::None => TauSource::None,
            ClMode::Fixed => TauSource::Fixed(loss.fixed_tau as f64),
            ClMode::Joint | ClMode::Meta | ClMode::Transfer => {
                let in_dim = match cfg.relatedness_input {
                    RelatednessInput::Towers => 3 * k,
                    RelatednessInput::Embedding => x_dim,
                };
                TauSource::Net(Relatedness::new(
                    in_dim,
                    cfg.relatedness_hidden,
                    cfg.tau_min,
                    cfg.tau_max,
                    vb.pp("relatedness"),
                )?)
            }
        };
        let projection = match loss.cl {
            ClMode::None => None,
            _ if cfg.projection.is_empty() => None,
            _ => Some((
                Projection::new(k, &cfg.projection, vb.pp("projection_ctr"))?,
                Projection::new(k, &cfg.projection, vb.pp("projection_cvr"))?,
            )),
        };
        Ok(Self {
            backbone_kind: cfg.backbone,
            relatedness_input: cfg.relatedness_input,
            // `transfer` trains the relatedness network on its own loss only.
            relatedness_detach_input: cfg.relatedness_detach_input || loss.cl == ClMode::Transfer,
            embedding,
            embedding_cvr,
            backbone,
            tower_ctr,
            tower_cvr,
            aitm,
            head_ctr: linear(k, 1, vb.pp("head_ctr"))?,
            head_cvr: linear(k, 1, vb.pp("head_cvr"))?,
            projection,
            tau,
        })
    }

    /// Inference forward pass (no dropout).
    pub fn forward(&self, cat: &Tensor, num: &Tensor) -> Result<Outputs> {
        self.forward_t(cat, num, false)
    }

    pub fn forward_t(&self, cat: &Tensor, num: &Tensor, train: bool) -> Result<Outputs> {
        let x = self.embedding.forward(cat, num)?;
        let x_cvr = match &self.embedding_cvr {
            Some(e) => e.forward(cat, num)?,
            None => x.clone(),
        };
        let (in_c, in_v) = self.backbone.forward_t(&x, &x_cvr, train)?;
        let h_ctr = self.tower_ctr.forward_t(&in_c, train)?;
        let mut h_cvr = self.tower_cvr.forward_t(&in_v, train)?;
        if let Some(aitm) = &self.aitm {
            h_cvr = aitm.forward(&h_ctr, &h_cvr)?;
        }
        let logit_ctr = self.head_ctr.forward(&h_ctr)?.squeeze(1)?;
        let logit_cvr = self.head_cvr.forward(&h_cvr)?.squeeze(1)?;
        let pctr = candle_nn::ops::sigmoid(&logit_ctr)?;
        let pcvr = candle_nn::ops::sigmoid(&logit_cvr)?;
        // Single-task keeps the CTR network out of the CTCVR gradient.
        let pctcvr = match self.backbone_kind {
            Backbone::SingleTask => (pctr.detach() * &pcvr)?,
            _ => (&pctr * &pcvr)?,
        };
        let (tau, tau_logit, tau_input) = match &self.tau {
            TauSource::None => (None, None, None),
            TauSource::Fixed(t) => (Some((pctr.ones_like()? * *t)?), None, None),
            TauSource::Net(net) => {
                let mut input = match self.relatedness_input {
                    RelatednessInput::Towers => Relatedness::tower_input(&h_ctr, &h_cvr)?,
                    RelatednessInput::Embedding => x.clone(),
                };
                if self.relatedness_detach_input {
                    input = input.detach();
                }
                let (tau, r) = net.forward(&input)?;
                (Some(tau), Some(r), Some(input.detach()))
            }
        };
        let (z_ctr, z_cvr) = match &self.projection {
            Some((pc, pv)) => (pc.forward(&h_ctr)?, pv.forward(&h_cvr)?),
            None => (h_ctr.clone(), h_cvr.clone()),
        };
        Ok(Outputs { logit_ctr, logit_cvr, pctr, pcvr, pctcvr, tau, tau_logit, tau_input, h_ctr, h_cvr, z_ctr, z_cvr })
    }

    pub fn backbone(&self) -> Backbone {
        self.backbone_kind
    }

    /// Temperatures (and logits) of the relatedness network for a given input (as in
    /// `Outputs::tau_input`); `None` without a learned tau.
    pub fn tau_from(&self, input: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        match &self.tau {
            TauSource::Net(net) => net.forward(input).map(Some),
            _ => Ok(None),
        }
    }

    /// The relatedness logit of a temperature, for priors; `None` without a learned tau.
    pub fn tau_logit_of(&self, tau: f64) -> Option<f64> {
        match &self.tau {
            TauSource::Net(net) => Some(net.logit_of(tau)),
            _ => None,
        }
    }
}
