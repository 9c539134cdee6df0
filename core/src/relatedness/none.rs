//! `none`: no contrastive term, no temperature and no projection heads; the plain
//! backbone, trained on the click and CTCVR losses alone.

use super::{Mode, TauKind};

pub struct NoTerm;

impl Mode for NoTerm {
    fn tau_kind(&self) -> TauKind {
        TauKind::None
    }
}
