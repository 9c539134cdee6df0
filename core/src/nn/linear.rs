//! A dense layer y = x W^T + b (optionally followed by ReLU) with candle-nn's parameters
//! (`weight` (out, in), `bias` (out), same initialisation).
//!
//! On the CPU (f32, 2-D input) the layer is one custom op: the gemm writes x W^T, and a
//! single pass adds the bias and applies the ReLU. Its backward is the two gemms, one pass
//! for the ReLU mask and one column sum for the bias. Built from candle's ops instead, a
//! layer costs a broadcast add, a ReLU and, backwards, candle's strided column sum (~15%
//! of a training step on its own), a zeros tensor, a comparison, a cast and a product: the
//! passes over the activations that profiling found between the gemms. Other devices,
//! dtypes and shapes use candle's ops.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

#[cfg(target_arch = "wasm32")]
use super::bank::{GroupedGradInput, GroupedGradWeight};
use super::gemv::gemv;
use super::relu::{relu, relu_grad};
use super::shared_rows::dense_shared_rows;
use crate::cpu_kernel::{f32_slice, product, with_f32_slices, written_by};

#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

/// Same names and initialisation as `candle_nn::linear`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let inner = candle_nn::linear(in_dim, out_dim, vb)?;
    let bias = inner.bias().cloned().ok_or_else(|| candle_core::Error::Msg("candle_nn::linear made no bias".into()))?;
    Ok(Linear { weight: inner.weight().clone(), bias })
}

impl Linear {
    /// relu(x W^T + b).
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, true)
    }

    fn apply(&self, x: &Tensor, with_relu: bool) -> Result<Tensor> {
        dense(x, &self.weight, &self.bias, with_relu)
    }

    /// (out, in).
    pub(crate) fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// (out,).
    pub(crate) fn bias(&self) -> &Tensor {
        &self.bias
    }
}

/// x W^T + b, then ReLU if `with_relu`: the fused CPU op where it applies, candle's ops
/// elsewhere. `weight` (out, in), `bias` (out).
pub(crate) fn dense(x: &Tensor, weight: &Tensor, bias: &Tensor, with_relu: bool) -> Result<Tensor> {
    if fused_applies(x, weight, bias) {
        let shapes_agree = weight.rank() == 2 && bias.rank() == 1 && weight.dims() == [bias.dim(0)?, x.dim(1)?];
        let n = x.dim(0)?;
        if shapes_agree && ![x, weight, bias].iter().any(|t| t.track_op()) {
            // Nothing needs a gradient (a loaded bundle predicting): read the weights in
            // place instead of going through an op (which reports mis-shaped operands as
            // errors), for one instance or a what-if batch (`nn::shared_rows`).
            let y = with_f32_slices(&[x, weight, bias], |s| {
                if n <= GEMV_ROWS {
                    Some(dense_rows(s[0], s[1], s[2], n, with_relu))
                } else {
                    dense_shared_rows(s[0], s[1], s[2], n, with_relu)
                }
            });
            if let Some(y) = y.flatten() {
                return Tensor::from_vec(y, (n, bias.dim(0)?), x.device());
            }
        }
        return x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Dense { relu: with_relu });
    }
    let y = x.broadcast_matmul(&weight.t()?)?.broadcast_add(bias)?;
    if with_relu {
        relu(&y)
    } else {
        Ok(y)
    }
}

/// The dense layer on `n` rows of x (n x k) by matrix-vector products, W (m x k): the
/// few-rows path, for the fused op and for weights read in place.
fn dense_rows(x: &[f32], w: &[f32], b: &[f32], n: usize, relu: bool) -> Vec<f32> {
    let m = b.len();
    let mut y = vec![0f32; n * m];
    if n == 0 || m == 0 {
        return y;
    }
    for (yr, xr) in y.chunks_exact_mut(m).zip(x.chunks_exact(x.len() / n)) {
        dense_row(w, b, xr, yr, relu);
    }
    y
}

/// One row: y = W x + b, then ReLU if `relu`.
pub(crate) fn dense_row(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32], relu: bool) {
    gemv(w, x, y);
    bias_row(y, b, relu);
}

/// Adds `b` to every row of the (., b.len()) matrix `y`, then ReLU if `relu`: the pass after
/// a layer's product, in parallel over chunks of rows.
pub(crate) fn add_bias(y: &mut [f32], b: &[f32], relu: bool) {
    let m = b.len().max(1);
    y.par_chunks_mut(m * chunk_rows(m)).for_each(|rows| {
        for row in rows.chunks_exact_mut(m) {
            bias_row(row, b, relu);
        }
    });
}

#[inline]
fn bias_row(row: &mut [f32], b: &[f32], relu: bool) {
    for (v, &bj) in row.iter_mut().zip(b) {
        let z = *v + bj;
        *v = if relu { super::relu::positive(z) } else { z };
    }
}

/// Whether the fused CPU kernels take these operands: a 2-D f32 input on the CPU.
pub(crate) fn fused_applies(x: &Tensor, weight: &Tensor, bias: &Tensor) -> bool {
    x.device().is_cpu() && x.rank() == 2 && [x.dtype(), weight.dtype(), bias.dtype()] == [DType::F32; 3]
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x, false)
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn parallelism() -> gemm::Parallelism {
    match candle_core::utils::get_num_threads() {
        n if n > 1 => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    }
}

/// Rows per parallel chunk of an (N, width) element-wise pass: about 16k elements, so that
/// small layers stay on one thread.
pub(crate) fn chunk_rows(width: usize) -> usize {
    (16_384 / width.max(1)).max(1)
}

/// Up to this many rows the product is a matrix-vector product per row (`nn::gemv`): the
/// single-instance path, where the weights are read once and gemm's one-row kernel is slow.
pub(crate) const GEMV_ROWS: usize = 4;

struct Dense {
    relu: bool,
}

impl CustomOp3 for Dense {
    fn name(&self) -> &'static str {
        "adaftr-dense"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let f = |s, l, what| f32_slice(s, l, "dense layer", what);
        let (x, w, b) = (f(s1, l1, "input")?, f(s2, l2, "weight")?, f(s3, l3, "bias")?);
        let (n, k) = l1.shape().dims2()?;
        let (m, k2) = l2.shape().dims2()?;
        if k != k2 || b.len() != m {
            candle_core::bail!("dense layer: input (.., {k}), weight ({m}, {k2}), bias ({})", b.len());
        }
        if n <= GEMV_ROWS {
            return Ok((CpuStorage::F32(dense_rows(x, w, b, n, self.relu)), Shape::from((n, m))));
        }
        // SAFETY: the product writes all of y, n x m row-major, from x n x k row-major and
        // w m x k row-major read as the k x m matrix W^T (row stride 1, column stride k).
        let mut y =
            unsafe { written_by(n * m, |y| product(n, m, k, (y, m, 1), (x.as_ptr(), k, 1), (w.as_ptr(), 1, k))) };
        add_bias(&mut y, b, self.relu);
        Ok((CpuStorage::F32(y), Shape::from((n, m))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = if self.relu { relu_grad(grad, y)? } else { grad.contiguous()? };
        // In wasm32 the two products go through `cpu_kernel::product` (candle's matmul
        // would run the `gemm` crate's simd128 kernel, several times slower there); natively
        // candle's matmul, whose results the parity benchmarks were measured with.
        #[cfg(target_arch = "wasm32")]
        let (grad_x, grad_w) = (
            g.apply_op2_no_bwd(&w.contiguous()?, &GroupedGradInput { groups: 1 })?,
            g.apply_op2_no_bwd(&x.contiguous()?, &GroupedGradWeight { groups: 1 })?,
        );
        #[cfg(not(target_arch = "wasm32"))]
        let (grad_x, grad_w) = (g.matmul(w)?, g.t()?.matmul(x)?);
        Ok((Some(grad_x), Some(grad_w), Some(column_sum(&g)?)))
    }
}

/// The sum of the rows of a contiguous (N, m) matrix: a bias gradient.
pub(crate) fn column_sum(g: &Tensor) -> Result<Tensor> {
    g.apply_op2_no_bwd(g, &ColumnSum)
}

/// Sums an (N, m) matrix over its rows: the bias gradient. (A CustomOp2 on the same tensor
/// twice because candle has no no-backward CustomOp1 entry point.)
struct ColumnSum;

impl CustomOp2 for ColumnSum {
    fn name(&self) -> &'static str {
        "adaftr-column-sum"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, _s2: &CpuStorage, _l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, "column sum", "gradient")?;
        let (_, m) = l1.shape().dims2()?;
        let width = m.max(1);
        // Fixed chunks summed in order: the same bits on every run and any thread count
        // (checkpoints resume bit-identically).
        let partials: Vec<Vec<f32>> = g
            .par_chunks(width * chunk_rows(width))
            .map(|rows| {
                let mut acc = vec![0f32; m];
                for row in rows.chunks_exact(width) {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                acc
            })
            .collect();
        let mut sum = vec![0f32; m];
        for p in &partials {
            for (s, v) in sum.iter_mut().zip(p) {
                *s += v;
            }
        }
        Ok((CpuStorage::F32(sum), Shape::from(m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu_kernel::max_abs_diff as max_diff;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    #[test]
    fn fused_layer_matches_candle_ops_in_value_and_gradient() {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &dev);
        // Large enough for several parallel chunks, odd sizes for the edges.
        let ours = linear(37, 13, vb.pp("l")).unwrap();
        for (rows, with_relu) in [(3001, false), (3001, true), (GEMV_ROWS, true), (1, false)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (rows, 37), &dev).unwrap()).unwrap();
            let up = Tensor::randn(0f32, 1.0, (rows, 13), &dev).unwrap();
            let reference = {
                let y = x.matmul(&ours.weight.t().unwrap()).unwrap().broadcast_add(&ours.bias).unwrap();
                if with_relu {
                    y.relu().unwrap()
                } else {
                    y
                }
            };
            let fused = ours.apply(&x, with_relu).unwrap();
            assert!(max_diff(&fused, &reference) < 1e-5);
            let ga = (&fused * &up).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&reference * &up).unwrap().sum_all().unwrap().backward().unwrap();
            for t in [&ours.bias, &ours.weight, x.as_tensor()] {
                let d = max_diff(ga.get(t).unwrap(), gb.get(t).unwrap());
                assert!(d < 1e-3, "gradient differs by {d} (relu {with_relu})");
            }
        }
    }

    /// Untracked operands (a loaded bundle's) read in place give the op's values, and
    /// mis-shaped ones its error rather than a panic or garbage.
    #[test]
    fn untracked_operands_in_place() {
        let dev = Device::Cpu;
        let (w, b) = (Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap(), Tensor::randn(0f32, 1.0, 3, &dev).unwrap());
        let x = Tensor::randn(0f32, 1.0, (2, 4), &dev).unwrap();
        let reference = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap().relu().unwrap();
        assert!(max_diff(&dense(&x, &w, &b, true).unwrap(), &reference) < 1e-6);
        let wide = Tensor::randn(0f32, 1.0, (1, 5), &dev).unwrap();
        assert!(dense(&wide, &w, &b, true).is_err());
        assert!(dense(&x, &w, &Tensor::zeros(2, DType::F32, &dev).unwrap(), true).is_err());
    }

    #[test]
    fn empty_batch_and_strided_input() {
        let dev = Device::Cpu;
        let map = VarMap::new();
        let l = linear(4, 3, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
        assert_eq!(l.forward(&Tensor::zeros((0, 4), DType::F32, &dev).unwrap()).unwrap().dims(), &[0, 3]);
        let xt = Tensor::randn(0f32, 1.0, (4, 6), &dev).unwrap().t().unwrap();
        let reference = xt.matmul(&l.weight.t().unwrap()).unwrap().broadcast_add(&l.bias).unwrap();
        assert!(max_diff(&l.forward(&xt).unwrap(), &reference) < 1e-6);
    }
}
