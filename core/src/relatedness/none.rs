//! `none`: no contrastive term, no temperature and no projection heads; the plain
//! backbone, trained on the click and CTCVR losses alone.

use super::{Mode, ModelHooks, TauKind};

pub struct NoTerm;

impl ModelHooks for NoTerm {
    fn tau_kind(&self) -> TauKind {
        TauKind::None
    }
}

impl Mode for NoTerm {}
