//! `readout`: tau is learned exactly as in [`transfer`](super::transfer) (the relatedness
//! network, on a detached input, from the auxiliary conversion loss), but no contrastive
//! term aligns the two representations and the model has no projection heads. Nothing the
//! relatedness network learns reaches the backbone, so the predictions are the plain
//! backbone's (`none`) bit for bit, and tau is a per-instance reading beside them: the
//! variant that cannot do harm.

use candle_core::Result;

use super::transfer::Transfer;
use super::{Mode, ModelHooks, TauKind, Weighted};
use crate::config::LossConfig;
use crate::data::Batch;
use crate::model::Outputs;

pub struct ReadOut;

impl ModelHooks for ReadOut {
    fn tau_kind(&self) -> TauKind {
        TauKind::Learned
    }

    fn detach_input(&self) -> bool {
        true
    }

    fn aligns(&self) -> bool {
        false
    }
}

impl Mode for ReadOut {
    fn aux_loss(&self, out: &Outputs, batch: &Batch, loss: &LossConfig) -> Result<Option<Weighted>> {
        Transfer.aux_loss(out, batch, loss)
    }
}
