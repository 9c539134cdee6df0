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
    let packed = Tensor::cat(&columns, 1)?.detach().to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let me = group.rank();
    let rows = packed.len() / width.max(1);
    if counts.get(me) != Some(&rows) || counts.contains(&0) {
        return Err(Error::Parallel(format!("rank {me} holds {rows} rows of a batch shared as {counts:?}")));
    }
    let all = group.gather(&packed, &counts.iter().map(|c| c * width).collect::<Vec<_>>())?;
    let total: usize = counts.iter().sum();
    let device = local.logit_ctr.device();
    let everyone = Tensor::from_vec(all, (total, width), device)?;
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
    let numel: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let mut buf = Vec::with_capacity(numel + vars.len());
    let mut present = Vec::with_capacity(vars.len());
    for (_, var) in &vars {
        match grads.get(var.as_tensor()) {
            Some(g) => {
                buf.extend(g.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
                present.push(1.0);
            }
            None => {
                buf.resize(buf.len() + var.elem_count(), 0.0);
                present.push(0.0);
            }
        }
    }
    buf.extend(present);
    group.sum(&mut buf)?;
    let mut start = 0;
    for (i, (_, var)) in vars.iter().enumerate() {
        let n = var.elem_count();
        if buf[numel + i] > 0.0 {
            let g = Tensor::from_slice(&buf[start..start + n], var.shape(), var.device())?.to_dtype(var.dtype())?;
            grads.insert(var.as_tensor(), g);
        }
        start += n;
    }
    Ok(())
}

/// A hash of every parameter's name and bits (FNV-1a), equal on replicas that agree.
pub fn checksum(params: &Params) -> Result<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, var) in params.sorted() {
        eat(name.as_bytes());
        for x in var.as_tensor().flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()? {
            eat(&x.to_bits().to_le_bytes());
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
