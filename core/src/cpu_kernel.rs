//! What the fused CPU kernels (`nce`, `nn::*`) share: reading an operand's storage as one
//! contiguous f32 slice, a strided matrix product, and compiling a kernel for the CPU's
//! vector width.

use candle_core::{CpuStorage, Layout, Result};

// Compiled everywhere so that its tests run natively; only wasm32 calls it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod simd128_gemm;

/// The elements of a contiguous f32 operand; an error naming `op` and `what` otherwise
/// (callers make their inputs contiguous and keep other dtypes on candle's own ops).
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{op}: {what} must be contiguous f32"),
    }
}

/// dst (rows x cols) = a (rows x inner) b (inner x cols), each matrix given by its pointer
/// and (row, column) strides in elements. The `gemm` crate's, except in wasm32, which has
/// a kernel of its own (`simd128_gemm`: V8 spills the crate's simd128 tile).
///
/// # Safety
/// Every pointer must address a matrix of the stated size and strides inside its buffer;
/// `dst` must not overlap `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn product(
    rows: usize,
    cols: usize,
    inner: usize,
    dst: (*mut f32, usize, usize),
    a: (*const f32, usize, usize),
    b: (*const f32, usize, usize),
) {
    if inner == 0 {
        for i in 0..rows {
            for j in 0..cols {
                // SAFETY: (i, j) is inside dst.
                unsafe { *dst.0.add(i * dst.1 + j * dst.2) = 0.0 };
            }
        }
        return;
    }
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the caller's promise, passed on.
    unsafe {
        simd128_gemm::product(rows, cols, inner, dst, a, b)
    };
    #[cfg(not(target_arch = "wasm32"))]
    if rows > 0 && cols > 0 {
        // SAFETY: the caller's promise; gemm takes (column, row) strides.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                inner,
                dst.0,
                dst.2 as isize,
                dst.1 as isize,
                false,
                a.0,
                a.2 as isize,
                a.1 as isize,
                b.0,
                b.2 as isize,
                b.1 as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                crate::nn::linear::parallelism(),
            )
        };
    }
}

/// A new vector of `len` floats, every one written by `write` (a product's destination,
/// which [`product`] overwrites: zeroing it first is a wasted pass over a training step's
/// largest buffers).
///
/// # Safety
/// `write` must write all `len` floats from the pointer it is given.
pub(crate) unsafe fn written_by(len: usize, write: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    write(v.as_mut_ptr());
    // SAFETY: the first `len` floats were written (the caller's promise).
    unsafe { v.set_len(len) };
    v
}

/// Runs `f` on the elements of CPU f32 tensors, read in place (no op, no copy, no graph);
/// `None` when a tensor is on another device, of another dtype or not contiguous.
pub(crate) fn with_f32_slices<R>(ts: &[&candle_core::Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Option<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(ts.len());
    for (storage, layout) in &guards {
        match (&**storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => slices.push(&v[a..b]),
            _ => return None,
        }
    }
    Some(f(&slices))
}

/// Largest absolute difference between two tensors of the same shape (kernel tests).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    d.to_dtype(candle_core::DType::F32).unwrap().to_scalar::<f32>().unwrap()
}

/// Defines a function whose body runs compiled for the widest vector unit this CPU has:
/// AVX-512, else AVX2, else the baseline target (on wasm32 with simd128 that vectorises
/// too). A release build targets baseline x86-64 (SSE2) so that one binary runs
/// everywhere; a kernel defined with this gets 16-lane (or 8-lane) vectors where the CPU
/// has them, without a second binary. The body is inlined into each version, and so must
/// be the helpers it calls (`#[inline(always)]`) to be vectorised with it.
///
/// No version lets a multiply and an add fuse (Rust never contracts `a * b + c` into an
/// FMA), so every version computes the same bits as long as the kernel fixes its own order
/// of summation (the kernels' LANES partial sums): results do not depend on the machine's
/// vector width. Tests check this against the baseline (`force_baseline`).
macro_rules! vectorised_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn kernel($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            if !$crate::cpu_kernel::baseline_forced() {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    kernel($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    kernel($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the feature this version was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            kernel($($arg),*)
        }
    };
}
pub(crate) use vectorised_fn;

#[cfg(test)]
static BASELINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether kernels run their baseline version (tests compare it with the vectorised ones).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline]
pub(crate) fn baseline_forced() -> bool {
    #[cfg(test)]
    return BASELINE.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(test))]
    false
}

/// Runs `f` with every kernel on its baseline version, for tests that compare the versions.
/// Process-wide: other tests running meanwhile take the baseline too, which only slows them.
#[cfg(test)]
pub(crate) fn force_baseline<R>(f: impl FnOnce() -> R) -> R {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    BASELINE.store(true, std::sync::atomic::Ordering::Relaxed);
    let out = f();
    BASELINE.store(false, std::sync::atomic::Ordering::Relaxed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty inner dimension is a zero product, written over whatever was there (the
    /// callers' destinations are not zeroed first: [`written_by`]).
    #[test]
    fn an_empty_inner_dimension_writes_zeros() {
        let (a, b) = ([0f32; 0], [0f32; 0]);
        // SAFETY: a 3 x 4 destination; the operands hold no element and none is read.
        let y = unsafe { written_by(12, |y| product(3, 4, 0, (y, 4, 1), (a.as_ptr(), 0, 1), (b.as_ptr(), 4, 1))) };
        assert_eq!(y, vec![0.0; 12]);
    }
}
