//! The AdaFTR model: embeddings -> backbone -> towers -> heads, plus the relatedness mode's
//! part (the network that predicts each instance's InfoNCE temperature, see
//! [`crate::relatedness`]) and the projection heads the contrastive term compares.
//!
//! Parameter names (the bundle's tensor names) follow the `VarBuilder` paths:
//! `embedding.*` (`embedding_cvr.*` for single-task), `backbone.*`, `tower_ctr.*`,
//! `tower_cvr.*`, `aitm.*`, `head_ctr`, `head_cvr`, `relatedness.*`, `projection_ctr.*`,
//! `projection_cvr.*`.

pub mod aitm;
pub mod backbone;
pub mod embedding;
mod outputs;
pub mod projection;

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::{Backbone, Config, LossConfig, ModelConfig};
use crate::nn::init::{seeded_var_builder, strict_var_builder, Tracking};
use crate::nn::linear::{linear, Linear};
use crate::nn::mlp::Mlp;
use crate::nn::Params;
use crate::relatedness::{self, Dims, Logits, ModelHooks, ModelPart, Pass};
use crate::schema::Schema;
use aitm::Aitm;
use backbone::BackboneNet;
use embedding::FieldEmbeddings;
pub use outputs::Outputs;
use projection::Projection;

#[derive(Clone, Debug)]
pub struct AdaFtr {
    /// Single-task keeps the CTR network out of the CTCVR product's gradient.
    isolate_ctr: bool,
    embedding: FieldEmbeddings,
    embedding_cvr: Option<FieldEmbeddings>,
    backbone: BackboneNet,
    tower_ctr: Mlp,
    tower_cvr: Mlp,
    aitm: Option<Aitm>,
    head_ctr: Linear,
    head_cvr: Linear,
    projection: Option<(Projection, Projection)>,
    relatedness: ModelPart,
}

impl AdaFtr {
    /// `cardinalities`: embedding rows per categorical field (OOV included); `n_numeric`:
    /// number of numeric inputs. The relatedness mode is `loss.cl`.
    pub fn new(
        cfg: &ModelConfig,
        loss: &LossConfig,
        cardinalities: &[usize],
        n_numeric: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::with_mode(relatedness::model_hooks(loss.cl), cfg, loss, cardinalities, n_numeric, vb)
    }

    /// [`AdaFtr::new`] with an explicit relatedness mode.
    pub(crate) fn with_mode(
        mode: &dyn ModelHooks,
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
        let relatedness = ModelPart::new(mode, cfg, loss, Dims { embedding: x_dim, repr: k }, vb.clone())?;
        let projection = match relatedness.aligns() && !cfg.projection.is_empty() {
            false => None,
            true => Some((
                Projection::new(k, &cfg.projection, vb.pp("projection_ctr"))?,
                Projection::new(k, &cfg.projection, vb.pp("projection_cvr"))?,
            )),
        };
        Ok(Self {
            isolate_ctr: cfg.backbone == Backbone::SingleTask,
            embedding,
            embedding_cvr,
            backbone,
            tower_ctr,
            tower_cvr,
            aitm,
            head_ctr: linear(k, 1, vb.pp("head_ctr"))?,
            head_cvr: linear(k, 1, vb.pp("head_cvr"))?,
            projection,
            relatedness,
        })
    }

    /// A fresh model for `config` and `schema`, its parameters drawn from `seed`.
    pub fn seeded(config: &Config, schema: &Schema, seed: u64, device: &Device) -> Result<(Self, Params)> {
        let (vb, params) = seeded_var_builder(seed, device);
        let model = Self::new(&config.model, &config.loss, &schema.cardinalities(), schema.num_numeric(), vb)?;
        Ok((model, params))
    }

    /// The model of `config` and `schema` built from exactly `params`: each parameter must
    /// be present with its shape, and a parameter the model does not use is an error too
    /// (the config and the weights disagree).
    pub fn from_params(config: &Config, schema: &Schema, params: &Params, device: &Device) -> crate::Result<Self> {
        Self::built_from(config, schema, params, device, Tracking::Trainable)
    }

    /// As [`from_params`](Self::from_params), for a model that only runs forward (a loaded
    /// bundle): a cache-line-aligned copy of the weights that records no backward graph.
    pub fn for_inference(config: &Config, schema: &Schema, params: &Params, device: &Device) -> crate::Result<Self> {
        Self::built_from(config, schema, params, device, Tracking::InferenceOnly)
    }

    fn built_from(
        config: &Config,
        schema: &Schema,
        params: &Params,
        device: &Device,
        tracking: Tracking,
    ) -> crate::Result<Self> {
        schema_matches_weights(schema, params)?;
        let (vb, state) = strict_var_builder(params, device, tracking);
        let built = Self::new(&config.model, &config.loss, &schema.cardinalities(), schema.num_numeric(), vb);
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        let model = built.map_err(|e| state.first_error.take().unwrap_or(crate::Error::Candle(e)))?;
        if let Some((extra, _)) = params.sorted().into_iter().find(|(n, _)| !state.used.contains(n)) {
            return Err(crate::Error::UnexpectedTensor(extra));
        }
        Ok(model)
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
        let pass = Pass { x: &x, h_ctr: &h_ctr, h_cvr: &h_cvr, train };
        let tau = self.relatedness.tau(&pass)?;
        let mut logits =
            Logits { ctr: self.head_ctr.forward(&h_ctr)?.squeeze(1)?, cvr: self.head_cvr.forward(&h_cvr)?.squeeze(1)? };
        self.relatedness.adjust(&pass, &tau, &mut logits)?;
        let Logits { ctr: logit_ctr, cvr: logit_cvr } = logits;
        let pctr = candle_nn::ops::sigmoid(&logit_ctr)?;
        let pcvr = candle_nn::ops::sigmoid(&logit_cvr)?;
        let (logit_ctr_in_ctcvr, pctcvr) = if self.isolate_ctr {
            (logit_ctr.detach(), (pctr.detach() * &pcvr)?)
        } else {
            (logit_ctr.clone(), (&pctr * &pcvr)?)
        };
        let (z_ctr, z_cvr) = match &self.projection {
            Some((pc, pv)) => (pc.forward(&h_ctr)?, pv.forward(&h_cvr)?),
            None => (h_ctr.clone(), h_cvr.clone()),
        };
        Ok(Outputs {
            logit_ctr,
            logit_cvr,
            logit_ctr_in_ctcvr,
            pctr,
            pcvr,
            pctcvr,
            tau: tau.tau,
            tau_logit: tau.logit,
            tau_input: tau.input,
            h_ctr,
            h_cvr,
            z_ctr,
            z_cvr,
        })
    }

    /// Temperatures (and logits) of the relatedness network for a given input (as in
    /// `Outputs::tau_input`); `None` without a learned tau.
    pub fn tau_from(&self, input: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        self.relatedness.tau_from(input)
    }

    /// The relatedness logit of a temperature, for priors; `None` without a learned tau.
    pub fn tau_logit_of(&self, tau: f64) -> Option<f64> {
        self.relatedness.logit_of(tau)
    }
}

/// Checks the schema against the weights that encode its fields, so a disagreement names
/// the schema rather than a tensor shape: the packed embedding table has one row per
/// vocabulary value plus one OOV row per field, and the numeric projection takes one input
/// per numeric field (single-task models have a second set under `embedding_cvr`).
pub(crate) fn schema_matches_weights(schema: &Schema, params: &Params) -> crate::Result<()> {
    use crate::error::{Error, SchemaProblem};
    let rows: usize = schema.cardinalities().iter().sum();
    for prefix in ["embedding", "embedding_cvr"] {
        let dim = |name: &str, axis: usize| params.get(name).and_then(|v| v.dims().get(axis).copied());
        let table = format!("{prefix}.table");
        if let Some(found) = dim(&table, 0).filter(|&r| !schema.categorical.is_empty() && r != rows) {
            let problem = SchemaProblem::EmbeddingRows { tensor: table, expected: rows, found };
            return Err(Error::Schema { field: "categorical".into(), problem });
        }
        let numeric = format!("{prefix}.numeric.weight");
        let width = schema.num_numeric();
        if let Some(found) = dim(&numeric, 1).filter(|&w| width > 0 && w != width) {
            let problem = SchemaProblem::NumericWidth { tensor: numeric, expected: width, found };
            return Err(Error::Schema { field: "numeric".into(), problem });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::ClMode;
    use crate::relatedness::{Head, TauKind, TauOutputs};

    /// A mode whose head moves the conversion score by a learned multiple of the click
    /// score: what a mode that changes predictions (not only the loss) looks like.
    struct Gated;

    #[derive(Debug)]
    struct GateHead(Tensor);

    impl Head for GateHead {
        fn forward(&self, _pass: &Pass<'_>, _tau: &TauOutputs, logits: &mut Logits) -> Result<()> {
            logits.cvr = (&logits.cvr + logits.ctr.broadcast_mul(&self.0)?)?;
            Ok(())
        }
    }

    impl ModelHooks for Gated {
        fn tau_kind(&self) -> TauKind {
            TauKind::Learned
        }

        fn head(
            &self,
            _dims: Dims,
            _model: &ModelConfig,
            _loss: &LossConfig,
            vb: VarBuilder,
        ) -> Result<Option<Arc<dyn Head>>> {
            let w = vb.pp("gate").get_with_hints(1, "weight", candle_nn::Init::Const(0.5))?;
            Ok(Some(Arc::new(GateHead(w))))
        }
    }

    #[test]
    fn a_mode_head_has_its_own_weights_and_changes_the_predictions() {
        let dev = Device::Cpu;
        let mut cfg = Config::default();
        (cfg.model.embedding_dim, cfg.model.bottom, cfg.model.tower) = (3, vec![6], vec![5, 4]);
        (cfg.model.projection, cfg.model.relatedness_hidden) = (vec![4], 4);
        cfg.loss.cl = ClMode::Joint;
        let build = |mode: &dyn ModelHooks| {
            let (vb, params) = seeded_var_builder(9, &dev);
            (AdaFtr::with_mode(mode, &cfg.model, &cfg.loss, &[3, 5], 1, vb).unwrap(), params)
        };
        let (plain, plain_params) = build(relatedness::model_hooks(ClMode::Joint));
        let (gated, gated_params) = build(&Gated);
        assert!(plain_params.get("gate.weight").is_none());
        assert_eq!(gated_params.get("gate.weight").unwrap().to_vec1::<f32>().unwrap(), [0.5]);
        assert_eq!(gated_params.len(), plain_params.len() + 1);
        let cat = Tensor::new(&[[1u32, 2], [0, 4], [2, 1]], &dev).unwrap();
        let num = Tensor::new(&[[0.3f32], [-1.0], [2.0]], &dev).unwrap();
        let (a, b) = (plain.forward(&cat, &num).unwrap(), gated.forward(&cat, &num).unwrap());
        let v = |t: &Tensor| t.to_vec1::<f32>().unwrap();
        let expected: Vec<f32> = v(&a.logit_cvr).iter().zip(v(&a.logit_ctr)).map(|(c, r)| c + 0.5 * r).collect();
        assert_eq!(v(&b.logit_ctr), v(&a.logit_ctr), "same weights, same click score");
        assert_eq!(v(&b.logit_cvr), expected);
        assert_ne!(v(&b.pcvr), v(&a.pcvr));
        assert_eq!(v(&b.tau.unwrap()), v(&a.tau.unwrap()));
    }
}
