//! `fixed`: one global temperature (`loss.fixed_tau`) for every instance. The contrastive
//! term shapes the representations; nothing learns tau.

use super::{Mode, TauKind};

pub struct Fixed;

impl Mode for Fixed {
    fn tau_kind(&self) -> TauKind {
        TauKind::Fixed
    }
}
