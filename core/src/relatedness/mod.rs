//! The relatedness modes (`loss.cl`): where each instance's InfoNCE temperature tau comes
//! from and how it is learned. Each mode is one file holding everything that is particular
//! to it, behind the [`ModelHooks`] (the model) and [`Mode`] (training) traits:
//!
//! | mode | tau | what is particular to it |
//! |---|---|---|
//! | [`none`] | none | no contrastive term, no projection heads: the plain backbone |
//! | [`fixed`] | one global `fixed_tau` | nothing learns tau |
//! | [`joint`] | the relatedness network | the contrastive term trains the network through tau |
//! | [`meta`] | the relatedness network | the network learns from a lookahead hypergradient |
//! | [`transfer`] | the relatedness network | the network learns from its own auxiliary loss, on a detached input |
//! | [`readout`] | the relatedness network | as `transfer`, without the contrastive term: the plain backbone's predictions plus tau |
//!
//! What all modes share lives here: the relatedness network and its parameter group
//! (`relatedness.*`, trained at `train.tau_lr_scale`), the model's tau source
//! ([`ModelPart`]), and the prior on the relatedness logit.
//!
//! A new mode is a new file with a type implementing [`ModelHooks`] and [`Mode`], one
//! variant of `config::ClMode` and one arm in [`model_hooks`] and in [`mode`]. The model
//! hooks say where tau comes from, whether the network's input is detached, and a [`Head`]
//! with its own parameters that may change the logits (and so the predictions); the
//! training hooks say how the contrastive term sees tau, an auxiliary term, and a change to
//! the gradients before the optimiser step.

pub mod fixed;
pub mod joint;
pub mod meta;
mod net;
pub mod none;
pub mod readout;
pub mod transfer;

use std::fmt;
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

pub use net::Relatedness;

use crate::config::{ClMode, LossConfig, ModelConfig, RelatednessInput, TrainConfig};
use crate::data::Batch;
use crate::model::Outputs;
use crate::nn::Params;

/// The `VarBuilder` path of the relatedness network: its parameters are `relatedness.*`.
pub const PATH: &str = "relatedness";

/// Whether the parameter called `name` belongs to the relatedness group (the network phi
/// that predicts tau, and any mode parameters named under [`PATH`]).
pub fn in_group(name: &str) -> bool {
    name.strip_prefix(PATH).is_some_and(|rest| rest.starts_with('.'))
}

/// The learning-rate multiplier of each parameter, by name: `tau_lr_scale` for the
/// relatedness group, 1 for the rest.
pub fn lr_scale(train: &TrainConfig) -> impl Fn(&str) -> f64 {
    let tau = train.tau_lr_scale;
    move |name: &str| if in_group(name) { tau } else { 1.0 }
}

/// Where a mode's temperature comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TauKind {
    /// No temperature and no contrastive term.
    None,
    /// `loss.fixed_tau` for every instance.
    Fixed,
    /// The relatedness network, per instance.
    Learned,
}

/// The parts of one forward pass that a mode's model part reads.
pub struct Pass<'a> {
    /// The embedding vector x (N, (F + 1) d).
    pub x: &'a Tensor,
    /// The task representations h^c and h^v (N, k).
    pub h_ctr: &'a Tensor,
    pub h_cvr: &'a Tensor,
    /// Training (dropout on) or inference.
    pub train: bool,
}

/// The pre-sigmoid scores (N,) that a [`Head`] may change before the probabilities.
pub struct Logits {
    pub ctr: Tensor,
    pub cvr: Tensor,
}

/// A batch's temperatures.
#[derive(Debug, Clone, Default)]
pub struct TauOutputs {
    /// (N,) the temperature; `None` without a contrastive term.
    pub tau: Option<Tensor>,
    /// The relatedness logit r behind a learned tau.
    pub logit: Option<Tensor>,
    /// What the relatedness network read (detached), for a learned tau.
    pub input: Option<Tensor>,
}

/// Model dimensions a mode's parts are built for.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    /// Width of the embedding vector x.
    pub embedding: usize,
    /// Size k of each task representation.
    pub repr: usize,
}

/// A mode's own layers in the model, run in every forward pass after tau and before the
/// probabilities: it may change the logits (and so the predictions), e.g. a tau-gated
/// transfer from the click score into the conversion score.
pub trait Head: fmt::Debug + Send + Sync {
    fn forward(&self, pass: &Pass<'_>, tau: &TauOutputs, logits: &mut Logits) -> Result<()>;
}

/// What a mode's training hook sees of one step, after the backward pass of the total loss
/// and before the optimiser step.
pub struct StepView<'a> {
    pub loss: &'a LossConfig,
    pub params: &'a Params,
    pub out: &'a Outputs,
    /// The main-loss terms of the step: L_ctr, L_ctcvr and (when on) L_cvr_click.
    pub main: Vec<&'a Tensor>,
    /// The contrastive term of the step, if there is one.
    pub cl: Option<&'a Tensor>,
    /// The warm-up multiplier of lambda in [0, 1].
    pub cl_scale: f64,
    /// The contrastive loss of this batch recomputed at the parameters' current values
    /// (no dropout, the step's negatives), with tau from the relatedness network on the
    /// given input.
    pub contrastive_at: &'a dyn Fn(&Tensor) -> crate::Result<Tensor>,
}

impl StepView<'_> {
    /// L_main = L_ctr + L_ctcvr [+ L_cvr_click].
    pub fn main_loss(&self) -> Result<Tensor> {
        let mut terms = self.main.iter();
        let first = terms.next().ok_or_else(|| candle_core::Error::Msg("a step without loss terms".into()))?;
        terms.try_fold((*first).clone(), |acc, t| acc + *t)
    }
}

/// A loss term with its weight in the total.
pub struct Weighted {
    pub loss: Tensor,
    pub weight: f64,
}

/// What a mode builds into the model. Kept apart from the training hooks of [`Mode`] so
/// that inference (the browser above all) links only these: a model reaches its mode
/// through this trait's vtable, and the hypergradient, the auxiliary losses and the
/// backward pass they need stay out of a build that never trains.
pub trait ModelHooks: Sync {
    /// Where tau comes from (and so whether the model has a relatedness network and
    /// projection heads).
    fn tau_kind(&self) -> TauKind;

    /// Forces the stop-gradient at the relatedness network's input (besides
    /// `model.relatedness_detach_input`).
    fn detach_input(&self) -> bool {
        false
    }

    /// Whether a contrastive term aligns the two task representations (and so whether the
    /// model has projection heads): wherever there is a temperature, by default.
    fn aligns(&self) -> bool {
        self.tau_kind() != TauKind::None
    }

    /// The mode's own layers, under `vb` (the model's root): none by default.
    fn head(
        &self,
        _dims: Dims,
        _model: &ModelConfig,
        _loss: &LossConfig,
        _vb: VarBuilder,
    ) -> Result<Option<Arc<dyn Head>>> {
        Ok(None)
    }
}

/// One relatedness mode in training. Every hook has the behaviour of the plain case by
/// default, so a mode states only what is particular to it.
pub trait Mode: ModelHooks {
    /// tau as the contrastive term sees it: a constant by default, so that the term shapes
    /// the representations and not the relatedness network.
    fn contrastive_tau(&self, tau: &Tensor) -> Result<Tensor> {
        Ok(tau.detach())
    }

    /// The mode's auxiliary loss, added to the total with its weight.
    fn aux_loss(&self, _out: &Outputs, _batch: &Batch, _loss: &LossConfig) -> Result<Option<Weighted>> {
        Ok(None)
    }

    /// Changes the gradients of a step before the optimiser applies them.
    fn after_backward(&self, _step: &StepView<'_>, _grads: &mut GradStore) -> crate::Result<()> {
        Ok(())
    }
}

/// The training side of a configured mode.
pub fn mode(cl: ClMode) -> &'static dyn Mode {
    match cl {
        ClMode::None => &none::NoTerm,
        ClMode::Fixed => &fixed::Fixed,
        ClMode::Joint => &joint::Joint,
        ClMode::Meta => &meta::Meta,
        ClMode::Transfer => &transfer::Transfer,
        ClMode::Readout => &readout::ReadOut,
    }
}

/// The model side of a configured mode: the same type per mode as [`mode`]. Not written
/// as `mode(cl)` upcast, because the upcast builds `Mode`'s vtable, and that would link the
/// training hooks into every build that only predicts.
pub fn model_hooks(cl: ClMode) -> &'static dyn ModelHooks {
    match cl {
        ClMode::None => &none::NoTerm,
        ClMode::Fixed => &fixed::Fixed,
        ClMode::Joint => &joint::Joint,
        ClMode::Meta => &meta::Meta,
        ClMode::Transfer => &transfer::Transfer,
        ClMode::Readout => &readout::ReadOut,
    }
}

/// The prior on the relatedness logit: mean((r - r0)^2), with r0 the logit of
/// `loss.tau_prior_mean`.
pub fn prior_loss(logit: &Tensor, center: f64) -> Result<Tensor> {
    (logit - center)?.sqr()?.mean_all()
}

#[derive(Clone, Debug)]
enum TauSource {
    None,
    Fixed(f64),
    Net { net: Relatedness, input: RelatednessInput, detach_input: bool },
}

/// A mode's part of the model: the temperature source and the mode's [`Head`], if any.
#[derive(Clone, Debug)]
pub struct ModelPart {
    tau: TauSource,
    aligns: bool,
    head: Option<Arc<dyn Head>>,
}

impl ModelPart {
    /// The relatedness network (a learned tau) is built under `vb.pp("relatedness")`.
    pub fn new(
        mode: &dyn ModelHooks,
        cfg: &ModelConfig,
        loss: &LossConfig,
        dims: Dims,
        vb: VarBuilder,
    ) -> Result<Self> {
        let tau = match mode.tau_kind() {
            TauKind::None => TauSource::None,
            TauKind::Fixed => TauSource::Fixed(loss.fixed_tau as f64),
            TauKind::Learned => {
                let in_dim = match cfg.relatedness_input {
                    RelatednessInput::Towers => 3 * dims.repr,
                    RelatednessInput::Embedding => dims.embedding,
                };
                TauSource::Net {
                    net: Relatedness::new(in_dim, cfg.relatedness_hidden, cfg.tau_min, cfg.tau_max, vb.pp(PATH))?,
                    input: cfg.relatedness_input,
                    detach_input: cfg.relatedness_detach_input || mode.detach_input(),
                }
            }
        };
        let head = mode.head(dims, cfg, loss, vb)?;
        Ok(Self { tau, aligns: mode.aligns(), head })
    }

    /// Whether the model predicts a temperature.
    pub fn has_tau(&self) -> bool {
        !matches!(self.tau, TauSource::None)
    }

    /// Whether a contrastive term compares the two representations (see
    /// [`ModelHooks::aligns`]).
    pub fn aligns(&self) -> bool {
        self.aligns
    }

    /// The batch's temperatures.
    pub fn tau(&self, pass: &Pass<'_>) -> Result<TauOutputs> {
        Ok(match &self.tau {
            TauSource::None => TauOutputs::default(),
            TauSource::Fixed(t) => {
                let n = pass.h_ctr.dim(0)?;
                let ones = Tensor::ones(n, pass.h_ctr.dtype(), pass.h_ctr.device())?;
                TauOutputs { tau: Some((ones * *t)?), ..TauOutputs::default() }
            }
            TauSource::Net { net, input, detach_input } => {
                let mut x = match input {
                    RelatednessInput::Towers => Relatedness::tower_input(pass.h_ctr, pass.h_cvr)?,
                    RelatednessInput::Embedding => pass.x.clone(),
                };
                if *detach_input {
                    x = x.detach();
                }
                let (tau, r) = net.forward(&x)?;
                TauOutputs { tau: Some(tau), logit: Some(r), input: Some(x.detach()) }
            }
        })
    }

    /// Runs the mode's head, if it has one, on the logits.
    pub fn adjust(&self, pass: &Pass<'_>, tau: &TauOutputs, logits: &mut Logits) -> Result<()> {
        match &self.head {
            Some(h) => h.forward(pass, tau, logits),
            None => Ok(()),
        }
    }

    /// Temperatures and logits of the relatedness network for a given input (as in
    /// [`TauOutputs::input`]); `None` without a learned tau.
    pub fn tau_from(&self, input: &Tensor) -> Result<Option<(Tensor, Tensor)>> {
        match &self.tau {
            TauSource::Net { net, .. } => net.forward(input).map(Some),
            _ => Ok(None),
        }
    }

    /// The relatedness logit of a temperature, for priors; `None` without a learned tau.
    pub fn logit_of(&self, tau: f64) -> Option<f64> {
        match &self.tau {
            TauSource::Net { net, .. } => Some(net.logit_of(tau)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_is_the_relatedness_path() {
        assert!(in_group("relatedness.out.weight") && in_group("relatedness.hidden.0.bias"));
        assert!(!in_group("relatedness") && !in_group("relatednessx.w") && !in_group("tower_ctr.0.weight"));
        let scale = lr_scale(&TrainConfig { tau_lr_scale: 0.25, ..TrainConfig::default() });
        assert_eq!((scale("relatedness.out.bias"), scale("head_cvr.weight")), (0.25, 1.0));
    }

    #[test]
    fn every_mode_states_its_tau() {
        let modes = ClMode::ALL;
        let kinds: Vec<TauKind> = modes.iter().map(|&c| model_hooks(c).tau_kind()).collect();
        use TauKind::*;
        assert_eq!(kinds, [Learned, Learned, Fixed, None, Learned, Learned]);
        let detached: Vec<bool> = modes.iter().map(|&c| model_hooks(c).detach_input()).collect();
        assert_eq!(detached, [false, false, false, false, true, true]);
        let aligned: Vec<bool> = modes.iter().map(|&c| model_hooks(c).aligns()).collect();
        assert_eq!(aligned, [true, true, true, false, true, false]);
    }
}
