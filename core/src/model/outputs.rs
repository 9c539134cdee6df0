//! What one forward pass of the model produces.

use candle_core::Tensor;

/// Everything one forward pass produces for a batch of N instances.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// (N,) pre-sigmoid CTR and CVR scores.
    pub logit_ctr: Tensor,
    pub logit_cvr: Tensor,
    /// The click score as the CTCVR product uses it: detached for single-task, whose click
    /// network learns from clicks alone.
    pub logit_ctr_in_ctcvr: Tensor,
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
