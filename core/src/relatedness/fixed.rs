//! `fixed`: one global temperature (`loss.fixed_tau`) for every instance. The contrastive
//! term shapes the representations; nothing learns tau.

use super::{Mode, ModelHooks, TauKind};

pub struct Fixed;

impl ModelHooks for Fixed {
    fn tau_kind(&self) -> TauKind {
        TauKind::Fixed
    }
}

impl Mode for Fixed {}
