//! Data-parallel training: what a step needs from a group of processes (MPI ranks, or
//! threads in a test) that each hold the same model and see the same global batch.
//!
//! Each rank runs the forward pass on its contiguous share of the batch's rows. The
//! outputs are then gathered, so that every rank computes the whole objective of the global
//! batch (in-batch InfoNCE over all its rows, the batch statistics of `transfer`, the means
//! over clicked rows) from the gathered values with only its own rows' outputs attached to
//! its graph. The backward pass then gives each rank the gradient that flows through its
//! own rows, and the sum of those over the ranks (one reduction per step) is the gradient
//! of the global objective: the same step as one process on the whole batch, up to float
//! rounding. The duplicated objective is cheap next to the network (per-row terms, and an
//! N x N similarity that one process computes anyway); see docs/DISTRIBUTED.md.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::model::Outputs;
use crate::nn::Params;
use crate::rng::{fnv1a, FNV_OFFSET};

/// A group of processes training one model together. Every rank calls the same methods in
/// the same order; an implementation blocks until all ranks have called.
pub trait Collective: Send {
    /// This process's index in the group, from 0.
    fn rank(&self) -> usize;
    /// The number of processes in the group.
    fn size(&self) -> usize;
    /// The element-wise sum of `buf` over the group, in place. Every rank must receive the
    /// same bits (the replicas' parameters stay identical only if their updates are).
    fn sum(&mut self, buf: &mut [f32]) -> Result<()>;
    /// Every rank's `local` concatenated in rank order; `counts[r]` is rank r's length.
    fn gather(&mut self, local: &[f32], counts: &[usize]) -> Result<Vec<f32>>;
    /// Every rank's `value`, in rank order.
    fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>>;

    /// [`Self::sum`] of a tensor of any shape, as a new tensor on its device. Through host
    /// memory by default; a transport that reduces device memory directly (NCCL) overrides
    /// it.
    fn sum_tensor(&mut self, t: &Tensor) -> Result<Tensor> {
        sum_through_host(self, t)
    }

    /// Every rank's `local` (rows, width) stacked in rank order into (sum of `counts`,
    /// width); `counts[r]` is rank r's number of rows. Through host memory by default.
    fn gather_rows(&mut self, local: &Tensor, counts: &[usize]) -> Result<Tensor> {
        gather_through_host(self, local, counts)
    }
}

/// [`Collective::sum_tensor`] through host memory and [`Collective::sum`].
pub fn sum_through_host<C: Collective + ?Sized>(group: &mut C, t: &Tensor) -> Result<Tensor> {
    let mut host = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    group.sum(&mut host)?;
    Ok(Tensor::from_vec(host, t.shape(), t.device())?.to_dtype(t.dtype())?)
}

/// [`Collective::gather_rows`] through host memory and [`Collective::gather`].
pub fn gather_through_host<C: Collective + ?Sized>(group: &mut C, local: &Tensor, counts: &[usize]) -> Result<Tensor> {
    let width = local.dim(1)?;
    let host = local.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let all = group.gather(&host, &counts.iter().map(|c| c * width).collect::<Vec<_>>())?;
    Ok(Tensor::from_vec(all, (counts.iter().sum::<usize>(), width), local.device())?)
}

/// How many of a batch's `rows` each of `size` ranks takes: contiguous shares that differ
/// by at most one row, in rank order.
pub fn shares(rows: usize, size: usize) -> Vec<usize> {
    (0..size).map(|r| rows * (r + 1) / size - rows * r / size).collect()
}

/// The outputs of the whole batch on every rank: `local` (this rank's share, attached to
/// the graph) in its place among the other ranks' values (constants). `counts` are the
/// shares of [`shares`]; each must be at least one row.
pub(crate) fn gather_outputs(local: &Outputs, group: &mut dyn Collective, counts: &[usize]) -> Result<Outputs> {
    // The fields the objective and the modes' losses read; `tau_input` (what the
    // relatedness network read) is left out: only `meta`'s lookahead uses it, and `meta`
    // is not data-parallel.
    let mut fields: Vec<&Tensor> = vec![
        &local.logit_ctr,
        &local.logit_cvr,
        &local.logit_ctr_in_ctcvr,
        &local.pctr,
        &local.pcvr,
        &local.pctcvr,
        &local.h_ctr,
        &local.h_cvr,
        &local.z_ctr,
        &local.z_cvr,
    ];
    fields.extend(local.tau.iter().chain(local.tau_logit.iter()));
    let widths: Vec<usize> = fields.iter().map(|t| if t.rank() == 1 { 1 } else { t.dim(1).unwrap_or(1) }).collect();
    let width: usize = widths.iter().sum();
    let columns: Vec<Tensor> = fields
        .iter()
        .map(|t| if t.rank() == 1 { t.unsqueeze(1) } else { Ok((*t).clone()) })
        .collect::<candle_core::Result<_>>()?;
    let packed = Tensor::cat(&columns, 1)?.detach().to_dtype(DType::F32)?;
    let me = group.rank();
    let rows = packed.dim(0)?;
    if counts.get(me) != Some(&rows) || counts.contains(&0) {
        return Err(Error::Parallel(format!("rank {me} holds {rows} rows of a batch shared as {counts:?}")));
    }
    let everyone = group.gather_rows(&packed, counts)?;
    debug_assert_eq!(everyone.dims(), [counts.iter().sum::<usize>(), width]);
    let mut gathered = Vec::with_capacity(fields.len());
    let mut col = 0;
    for (t, w) in fields.iter().zip(&widths) {
        let mut pieces = Vec::with_capacity(counts.len());
        let mut start = 0;
        for (r, &n) in counts.iter().enumerate() {
            if r == me {
                pieces.push((*t).clone());
            } else {
                let block = everyone.narrow(0, start, n)?.narrow(1, col, *w)?.to_dtype(t.dtype())?;
                pieces.push(if t.rank() == 1 { block.squeeze(1)? } else { block });
            }
            start += n;
        }
        gathered.push(Tensor::cat(&pieces, 0)?);
        col += w;
    }
    let mut it = gathered.into_iter();
    let mut next = || it.next().ok_or_else(|| Error::Parallel("a gathered output is missing".into()));
    Ok(Outputs {
        logit_ctr: next()?,
        logit_cvr: next()?,
        logit_ctr_in_ctcvr: next()?,
        pctr: next()?,
        pcvr: next()?,
        pctcvr: next()?,
        h_ctr: next()?,
        h_cvr: next()?,
        z_ctr: next()?,
        z_cvr: next()?,
        tau: local.tau.as_ref().map(|_| next()).transpose()?,
        tau_logit: local.tau_logit.as_ref().map(|_| next()).transpose()?,
        tau_input: None,
    })
}

/// Replaces each parameter's gradient in `grads` by its sum over the group, in one
/// reduction. A parameter with a gradient on any rank gets one on every rank (zeros where
/// it had none), so that every rank's optimiser updates the same parameters.
pub(crate) fn sum_gradients(params: &Params, grads: &mut GradStore, group: &mut dyn Collective) -> Result<()> {
    let vars = params.sorted();
    let Some((_, first)) = vars.first() else { return Ok(()) };
    let device = first.device();
    // One flat buffer on the parameters' device: every gradient (zeros where there is
    // none), then one presence flag per parameter.
    let mut parts = Vec::with_capacity(vars.len() + 1);
    let mut present = Vec::with_capacity(vars.len());
    for (_, var) in &vars {
        match grads.get(var.as_tensor()) {
            Some(g) => {
                parts.push(g.flatten_all()?.to_dtype(DType::F32)?);
                present.push(1f32);
            }
            None => {
                parts.push(Tensor::zeros(var.elem_count(), DType::F32, device)?);
                present.push(0.0);
            }
        }
    }
    parts.push(Tensor::from_vec(present, vars.len(), device)?);
    let summed = group.sum_tensor(&Tensor::cat(&parts, 0)?)?;
    let numel = summed.dim(0)? - vars.len();
    let present = summed.narrow(0, numel, vars.len())?.to_vec1::<f32>()?;
    let mut start = 0;
    for ((_, var), flag) in vars.iter().zip(present) {
        let n = var.elem_count();
        if flag > 0.0 {
            let g = summed.narrow(0, start, n)?.reshape(var.shape())?.to_dtype(var.dtype())?;
            grads.insert(var.as_tensor(), g);
        }
        start += n;
    }
    Ok(())
}

/// A hash of every parameter's name and bits (FNV-1a), equal on replicas that agree.
pub fn checksum(params: &Params) -> Result<u64> {
    let mut h = FNV_OFFSET;
    for (name, var) in params.sorted() {
        h = fnv1a(h, name.as_bytes());
        for x in var.as_tensor().flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()? {
            h = fnv1a(h, &x.to_bits().to_le_bytes());
        }
    }
    Ok(h)
}

/// An error unless every rank's parameters are the same bits; `when` says at which point
/// of training (for the message).
pub(crate) fn check_replicas(params: &Params, group: &mut dyn Collective, when: &str) -> Result<()> {
    let sums = group.gather_u64(checksum(params)?)?;
    match sums.iter().position(|&s| s != sums[0]) {
        None => Ok(()),
        Some(r) => Err(Error::Parallel(format!(
            "{when}, rank {r}'s parameters differ from rank 0's (checksums {:016x} and {:016x}); the ranks must \
             start from the same seed or checkpoint, and their reductions must give every rank the same bits",
            sums[r], sums[0]
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::shares;

    #[test]
    fn shares_cover_the_batch_in_order_and_differ_by_at_most_one_row() {
        for rows in [2, 3, 7, 512, 1001] {
            for size in 1..=4 {
                let s = shares(rows, size);
                assert_eq!(s.iter().sum::<usize>(), rows);
                assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1, "{rows} over {size}: {s:?}");
            }
        }
        assert_eq!(shares(5, 2), [2, 3]);
    }
}
