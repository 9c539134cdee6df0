//! `joint`: the relatedness network trains end to end through the contrastive loss (the
//! literal reading of the method). The one mode in which the contrastive term's gradient
//! reaches tau; on our data it pushes tau onto `tau_min` (docs/RELATEDNESS.md).

use candle_core::{Result, Tensor};

use super::{Mode, ModelHooks, TauKind};

pub struct Joint;

impl ModelHooks for Joint {
    fn tau_kind(&self) -> TauKind {
        TauKind::Learned
    }
}

impl Mode for Joint {
    fn contrastive_tau(&self, tau: &Tensor) -> Result<Tensor> {
        Ok(tau.clone())
    }
}
