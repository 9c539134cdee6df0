//! What the fused CPU kernels (`nce`, `nn::linear`, `nn::relu`) share: reading an
//! operand's storage as one contiguous f32 slice.

use candle_core::{CpuStorage, Layout, Result};

/// The elements of a contiguous f32 operand; an error naming `op` and `what` otherwise
/// (callers make their inputs contiguous and keep other dtypes on candle's own ops).
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{op}: {what} must be contiguous f32"),
    }
}

/// Largest absolute difference between two tensors of the same shape (kernel tests).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}
